"""The paper's networks (``networks``), their losses (``losses``), the table of network kinds
(``registry``), the one checkpoint loader (``checkpoints``) and the CPU-tuned layers (``fast_layers``)."""
