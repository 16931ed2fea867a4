"""Training data: the paper's HDF5 release layout, streamed from disk or held in memory.

Each file has a group ``dataset`` with ``id`` (N, 1) int32, ``data`` (N, 96, 96) float32 (scaled
log-mel patches) and ``label`` (N, n_tags) int16 (multi-hot tags). The vocabulary size is whatever
width ``label`` has, so a corpus with another vocabulary trains without code changes.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from coala.audio import PATCH_SHAPE

GROUP = "dataset"


class DatasetError(ValueError):
    """A training file that is missing or not in the release layout; the message names file and dataset."""


def inspect_hdf5(path: str | Path) -> tuple[int, int]:
    """Check the layout of ``path`` and return ``(n_patches, n_tags)`` without reading the patches."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: HDF5 file not found")
    try:
        with h5py.File(path, "r") as f:
            if GROUP not in f or not isinstance(f[GROUP], h5py.Group):
                raise DatasetError(f"{path}: no group {GROUP!r}")
            group = f[GROUP]
            shapes = {}
            for name in ("id", "data", "label"):
                if name not in group or not isinstance(group[name], h5py.Dataset):
                    raise DatasetError(f"{path}: no dataset {GROUP}/{name}")
                shapes[name] = group[name].shape
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({exc})") from None
    if shapes["data"][1:] != PATCH_SHAPE:
        raise DatasetError(f"{path}: {GROUP}/data has shape {shapes['data']}, expected (N, {PATCH_SHAPE[0]}, {PATCH_SHAPE[1]})")
    if len(shapes["label"]) != 2 or shapes["label"][1] < 1:
        raise DatasetError(f"{path}: {GROUP}/label has shape {shapes['label']}, expected (N, n_tags)")
    if len(shapes["id"]) not in (1, 2) or (len(shapes["id"]) == 2 and shapes["id"][1] != 1):
        raise DatasetError(f"{path}: {GROUP}/id has shape {shapes['id']}, expected (N, 1)")
    lengths = {name: shape[0] for name, shape in shapes.items()}
    if len(set(lengths.values())) != 1:
        raise DatasetError(f"{path}: mismatched lengths " + ", ".join(f"{k} {v}" for k, v in lengths.items()))
    if lengths["data"] == 0:
        raise DatasetError(f"{path}: the file holds no patches")
    return lengths["data"], shapes["label"][1]


def _sample(sound_id: np.ndarray, patch: np.ndarray, label: np.ndarray) -> tuple[int, torch.Tensor, torch.Tensor]:
    return (int(np.asarray(sound_id).reshape(-1)[0]),
            torch.from_numpy(np.asarray(patch, dtype=np.float32)).unsqueeze(0),
            torch.from_numpy(np.asarray(label, dtype=np.float32)))


class HDF5Dataset(Dataset):
    """Reads patches from disk on demand, so memory use does not grow with the file.

    The file is opened lazily on first access in each process: an h5py handle cannot cross a fork,
    so a handle opened in the parent would break ``num_workers > 0``. Items are
    ``(sound_id, patch (1, 96, 96) float32, tags float32)``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.length, self.n_tags = inspect_hdf5(self.path)
        self._file: h5py.File | None = None

    def __len__(self) -> int:
        return self.length

    def _group(self) -> h5py.Group:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file[GROUP]

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        group = self._group()
        return _sample(group["id"][index], group["data"][index], group["label"][index])

    def __getitems__(self, indices: list[int]) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """A whole batch in one read per dataset (h5py wants increasing indices: sort, then restore)."""
        order = np.argsort(indices)
        sorted_indices = np.asarray(indices)[order]
        unique, inverse = np.unique(sorted_indices, return_inverse=True)
        group = self._group()
        ids, patches, labels = (group[name][unique][inverse] for name in ("id", "data", "label"))
        samples: list = [None] * len(indices)
        for position, i in enumerate(order):
            samples[i] = _sample(ids[position], patches[position], labels[position])
        return samples

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None  # workers open their own handle
        return state


class InMemoryDataset(Dataset):
    """The whole file loaded once (about 6.5 GB for the paper's training set): fastest when it fits."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.length, self.n_tags = inspect_hdf5(self.path)
        with h5py.File(self.path, "r") as f:
            group = f[GROUP]
            self.ids = np.asarray(group["id"][...]).reshape(self.length, -1)[:, 0].astype(np.int64)
            self.data = torch.from_numpy(np.asarray(group["data"][...], dtype=np.float32)).unsqueeze(1)
            self.labels = torch.from_numpy(np.asarray(group["label"][...], dtype=np.float32))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        return int(self.ids[index]), self.data[index], self.labels[index]


def open_dataset(path: str | Path, in_memory: bool) -> HDF5Dataset | InMemoryDataset:
    return InMemoryDataset(path) if in_memory else HDF5Dataset(path)
