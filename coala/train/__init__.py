"""Training: the validated config (``config``), one optimisation step of a model kind of ``coala.core.model`` (``step``), the run
itself with resuming and torchrun (``loop``), what a run leaves on disk: checkpoints, the run folder's record, the state (``state``) and its pictures
(``plots``)."""
