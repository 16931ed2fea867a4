"""COALA: co-aligned audio and tag autoencoders (Favory, Drossos, Virtanen, Serra, 2020).

``coala.load(path)`` gives a notebook the model with its three uses (``coala.notebook``). The package
is laid out by job; its command lines are the ``coala`` command (``commands``), which the scripts at
the repository root also run, and the checkout's paper modules (``models_t1000``, ``data_loader``,
``losses``, ``encode``, ``utils``) re-export it under the paper's names.

- ``core``: the paper's math (front end, networks, objective, ``embed``); imports nothing else of coala
- ``audio``: the scaler's files, the MFCC baseline
- ``data``: the HDF5 training files, tag preprocessing and vocabularies, building a dataset
- ``models``: the model folder's record, the one model loader, checkpoints, CPU-tuned layers
- ``train``: config, the step, the training run, checkpoints, the record and state, pictures
- ``encode``: the notebook functions and batched extraction of many files
- ``evaluation``: the downstream datasets, the classification protocol, the results report
- ``demo``: the generated data ``make demo`` runs on
- ``assets`` / ``fetch``: where the published files live, and downloading them
- ``commands``: the ``coala`` command and its subcommands (``train``, ``encode``, ``search``...)
- ``cli``: what every entry point shares (logging, one `error:` line per user error, exit codes)
"""

__version__ = "1.2.0"


def __getattr__(name: str):
    """``coala.load``, imported on first use: ``import coala`` stays light (no torch) for ``coala.assets``."""
    if name == "load":
        from coala.notebook import load
        return load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
