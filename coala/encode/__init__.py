"""Embedding extraction: the paper's notebook functions (``api``), many files batched through the model
with failures reported and outputs written atomically (``batch``), the inference-only model
(``inference``), and the output layouts with their one reader (``shards``: ``read_embeddings``)."""
from coala.encode.shards import EmbeddingFolder, read_embeddings

__all__ = ["EmbeddingFolder", "read_embeddings"]
