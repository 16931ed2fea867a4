"""Embedding extraction: the paper's notebook functions (``api``), many files batched through the model
with failures reported and outputs written atomically (``batch``), and the inference-only model
(``inference``)."""
