"""COALA: co-aligned audio and tag autoencoders (Favory, Drossos, Virtanen, Serra, 2020).

The package is laid out by job; the scripts at the repository root are thin command lines over it,
and the paper's modules (``models_t1000``, ``data_loader``, ``losses``, ``encode``, ``utils``) re-export
it under the paper's names.

- ``audio``: decoding, the log-mel front end, 96x96 patches, the MinMax scaler, the MFCC baseline
- ``data``: the HDF5 training files, tag preprocessing and vocabularies, building a dataset
- ``models``: the networks, losses, the table of network kinds, the checkpoint loader, CPU-tuned layers
- ``train``: config, objective and step, the training run, checkpoints and state, pictures
- ``encode``: the notebook functions and batched extraction of many files
- ``evaluation``: the downstream datasets, the classification protocol, the results report
- ``demo``: the generated data ``make demo`` runs on
- ``assets`` / ``fetch``: where the published files live, and downloading them
- ``errors`` / ``cli``: the user-error classes, and what every entry point shares (logging, exit codes)
"""

__version__ = "1.1.0"
