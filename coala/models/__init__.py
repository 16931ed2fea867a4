"""Models on disk (the networks themselves are ``coala.core.model``): the self-describing run folder
(``record``), the one way every tool loads a model (``loading``), the paper's checkpoint format
(``checkpoints``), the table of network kinds a bare checkpoint can hold (``registry``) and the
CPU-tuned layers (``fast_layers``)."""
