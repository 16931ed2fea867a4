"""The paper's ``data_loader`` module: ``HDF5Dataset`` and ``InMemoryDataset`` over its HDF5 release.

Items are the paper's ``(data, label, sound_id)``, and ``HDF5Dataset.h_file`` is the open file, as the
paper's analysis scripts use it. The classes live in ``coala.data.hdf5``.
"""
from coala.data.hdf5 import HDF5Dataset, InMemoryDataset, inspect_hdf5

__all__ = ["HDF5Dataset", "InMemoryDataset", "inspect_hdf5"]
