"""Training data: the paper's HDF5 release layout, streamed from disk or held in memory.

Each file has a group ``dataset`` with ``id`` (N, 1) int32, ``data`` (N, 96, 96) float32 (scaled
log-mel patches) and ``label`` (N, n_tags) int16 (multi-hot tags). The vocabulary size is whatever
width ``label`` has, so a corpus with another vocabulary trains without code changes.

Items are the paper's ``(data, label, sound_id)`` as numpy arrays (``(96, 96)`` float32, ``(n_tags,)``
int16, ``(1,)`` int32), which a DataLoader batches into tensors: code written against the paper's
``data_loader`` runs on these classes, and training uses them too.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
from torch.utils.data import Dataset

from coala.core.frontend import PATCH_SHAPE, MinMaxScaler
from coala.core.errors import DatasetError

GROUP = "dataset"
Item = tuple[np.ndarray, np.ndarray, np.ndarray]
# numpy dtype kinds each dataset may hold: integers or floats (labels also booleans). Strings fail the
# value checks with a TypeError, and complex patches would lose their imaginary part unnoticed.
NUMBER_KINDS = {"data": "iuf", "label": "biuf", "id": "iuf"}
KIND_NAMES = {"c": "complex", "S": "byte string", "U": "string", "O": "variable-length", "V": "compound or opaque",
              "b": "boolean", "M": "datetime", "m": "timedelta"}


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
            shapes, kinds = {}, {}
            for name in ("id", "data", "label"):
                if name not in group or not isinstance(group[name], h5py.Dataset):
                    raise DatasetError(f"{path}: no dataset {GROUP}/{name}")
                shapes[name] = group[name].shape
                kinds[name] = group[name].dtype.kind
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({exc})") from None
    for name, kind in kinds.items():
        if kind not in NUMBER_KINDS[name]:
            raise DatasetError(f"{path}: {GROUP}/{name} holds {KIND_NAMES.get(kind, kind)} values, expected real numbers")
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


class HDF5Dataset(Dataset):
    """The paper's ``data_loader.HDF5Dataset``: patches read from disk on demand, memory flat in the file size.

    ``h_file`` is the open ``h5py.File``, as the paper's attribute was. It is opened on first use in
    each process (an h5py handle cannot cross a fork, so one inherited from the parent would break
    ``num_workers > 0``), and a whole batch is read in one access per dataset.
    """

    def __init__(self, h5_path: str | Path) -> None:
        self.h5_path = Path(h5_path)
        self.length, self.n_tags = inspect_hdf5(self.h5_path)
        self._file: h5py.File | None = None
        self._pid: int | None = None

    @property
    def h_file(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.h5_path, "r")
            self._pid = os.getpid()
        return self._file

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Item:
        group = self.h_file[GROUP]
        return group["data"][index], group["label"][index], group["id"][index]

    def __getitems__(self, indices: list[int]) -> list[Item]:
        """A whole batch in one read per dataset (h5py wants increasing indices: sort, then restore)."""
        order = np.argsort(indices)
        unique, inverse = np.unique(np.asarray(indices)[order], return_inverse=True)
        group = self.h_file[GROUP]
        data, labels, ids = (group[name][unique][inverse] for name in ("data", "label", "id"))
        items: list = [None] * len(indices)
        for position, i in enumerate(order):
            items[i] = (data[position], labels[position], ids[position])
        return items

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None  # workers open their own handle
        return state


class InMemoryDataset(Dataset):
    """The paper's ``data_loader.InMemoryDataset``: the whole file read once (about 6.5 GB for the
    paper's training set), fastest when it fits."""

    def __init__(self, h5_path: str | Path) -> None:
        self.h5_path = Path(h5_path)
        self.length, self.n_tags = inspect_hdf5(self.h5_path)
        with h5py.File(self.h5_path, "r") as f:
            group = f[GROUP]
            self.data = np.asarray(group["data"][...], dtype=np.float32)
            self.label = np.asarray(group["label"][...])
            self.id = np.asarray(group["id"][...])

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Item:
        return self.data[index], self.label[index], self.id[index]


def open_dataset(path: str | Path, in_memory: bool) -> HDF5Dataset | InMemoryDataset:
    return InMemoryDataset(path) if in_memory else HDF5Dataset(path)


# Attributes of the ``dataset`` group naming what made the patches and labels (``create_dataset.py``
# writes them; the paper's release has none): a model trained on the file records them.
SCALER_ATTRIBUTE = "coala_scaler"
VOCABULARY_ATTRIBUTE = "coala_vocabulary"


def write_provenance(group: h5py.Group, scaler: MinMaxScaler, vocabulary: list[str] | tuple[str, ...]) -> None:
    group.attrs[SCALER_ATTRIBUTE] = json.dumps(scaler.to_dict())
    group.attrs[VOCABULARY_ATTRIBUTE] = json.dumps(list(vocabulary), ensure_ascii=False)


def read_provenance(path: str | Path) -> tuple[MinMaxScaler | None, list[str] | None]:
    """The scaler and vocabulary a file says made it, or None for each it does not say (the paper's release)."""
    with h5py.File(path, "r") as f:
        attrs = f[GROUP].attrs
        scaler_text, vocabulary_text = attrs.get(SCALER_ATTRIBUTE), attrs.get(VOCABULARY_ATTRIBUTE)
    try:
        scaler = None if scaler_text is None else MinMaxScaler.from_dict(json.loads(scaler_text), f"{path} ({SCALER_ATTRIBUTE})")
        vocabulary = None if vocabulary_text is None else json.loads(vocabulary_text)
    except ValueError as exc:
        raise DatasetError(f"{path}: attribute of {GROUP} unreadable ({exc})") from None
    if vocabulary is not None and not (isinstance(vocabulary, list) and all(isinstance(t, str) for t in vocabulary)):
        raise DatasetError(f"{path}: {GROUP} attribute {VOCABULARY_ATTRIBUTE} is not a list of tags")
    return scaler, vocabulary


def read_labels(path: str | Path) -> np.ndarray:
    """The file's labels as booleans ``(N, n_tags)``: which tags each patch has."""
    with h5py.File(path, "r") as f:
        return f[GROUP]["label"][...] > 0
