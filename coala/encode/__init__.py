"""Embedding extraction: the paper's notebook functions (``api``); many files read (``files``), their chunks
batched through the model (``stream``), planned (``jobs``) and run with outputs written atomically
(``run``) and failures listed (``failures``); the record of which model made a folder (``provenance``);
the inference-only model (``inference``); the output layouts with their one reader (``shards``)."""
from coala.encode.shards import EmbeddingFolder, read_embeddings

__all__ = ["EmbeddingFolder", "read_embeddings"]
