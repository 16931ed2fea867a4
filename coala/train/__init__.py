"""Training: the validated config (``config``), the model kinds, objective and step (``step``), the run
itself with resuming and torchrun (``loop``), what a run leaves on disk (``state``) and its pictures
(``plots``)."""
