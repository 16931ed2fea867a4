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
import math
import os
from pathlib import Path

import h5py
import numpy as np
from torch.utils.data import Dataset

from coala.core.frontend import PATCH_SHAPE, MinMaxScaler
from coala.core.errors import DatasetError
from coala.device import available_memory
from coala.jsonfile import json_text

GROUP = "dataset"
Item = tuple[np.ndarray, np.ndarray, np.ndarray]
# numpy dtype kinds each dataset may hold: integers or floats (labels also booleans). Strings fail the
# value checks with a TypeError, and complex patches would lose their imaginary part unnoticed.
NUMBER_KINDS = {"data": "iuf", "label": "biuf", "id": "iuf"}
KIND_NAMES = {"c": "complex", "S": "byte string", "U": "string", "O": "variable-length", "V": "compound or opaque",
              "b": "boolean", "M": "datetime", "m": "timedelta"}


def _member(parent: h5py.Group, name: str, path: Path) -> h5py.Group | h5py.Dataset | None:
    """``parent[name]`` when its values are stored in ``path`` itself, None when there is no such member.

    An external link, or a soft link that leads through one, reads another file, which the fingerprint
    and the value check (both of ``path``) never see: refused, naming the file it points into.
    """
    link = parent.get(name, getlink=True)
    if link is None:
        return None
    if isinstance(link, h5py.ExternalLink):
        raise DatasetError(f"{path}: {parent.name.strip('/')}/{name} is an external link into {link.filename}; "
                           f"copy its values into {path.name} (training reads one self-contained file)")
    try:
        member = parent[name]
    except KeyError:  # a soft link to nothing
        return None
    if member.file.filename != parent.file.filename:
        raise DatasetError(f"{path}: {member.name.strip('/')} lies in another file ({member.file.filename}); "
                           f"copy its values into {path.name} (training reads one self-contained file)")
    return member


def _unwritten(dataset: h5py.Dataset) -> str | None:
    """Why part of ``dataset``'s declared shape holds no stored values (HDF5 would read its fill value,
    zeros, there), or None when every value is stored in the file.

    A header can declare 10^9 patches in a file of a few kilobytes; counting the stored chunks (or bytes)
    costs milliseconds, where reading the patches would take hours and give zeros.
    """
    if dataset.is_virtual:
        return "is a virtual dataset (its values are read from other files, and read as zeros where one is missing)"
    if dataset.external:
        return f"keeps its values in external files ({', '.join(str(name) for name, *_ in dataset.external)})"
    if dataset.size == 0:
        return None
    layout = dataset.id.get_create_plist().get_layout()
    if layout == h5py.h5d.CHUNKED:
        needed = math.prod(-(-n // c) for n, c in zip(dataset.shape, dataset.chunks))
        stored = dataset.id.get_num_chunks()
        return None if stored >= needed else f"declares {dataset.shape[0]} rows but stores {stored} of its {needed} chunks"
    if layout == h5py.h5d.CONTIGUOUS and dataset.id.get_storage_size() < dataset.size * dataset.dtype.itemsize:
        return f"declares {dataset.shape[0]} rows but stores {dataset.id.get_storage_size()} of their " \
               f"{dataset.size * dataset.dtype.itemsize} bytes"
    return None


def inspect_hdf5(path: str | Path) -> tuple[int, int]:
    """Check the layout of ``path`` and return ``(n_patches, n_tags)`` without reading the patches.

    Every reader of a training file goes through here first (the datasets, the value check, the
    fingerprint): what it refuses (links into other files, virtual or external storage, declared rows
    with no stored values) is refused for all of them.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: HDF5 file not found")
    try:
        with h5py.File(path, "r") as f:
            group = _member(f, GROUP, path)
            if not isinstance(group, h5py.Group):
                raise DatasetError(f"{path}: no group {GROUP!r}")
            shapes, kinds = {}, {}
            for name in ("id", "data", "label"):
                dataset = _member(group, name, path)
                if not isinstance(dataset, h5py.Dataset):
                    raise DatasetError(f"{path}: no dataset {GROUP}/{name}")
                shapes[name] = dataset.shape
                kinds[name] = dataset.dtype.kind
                problem = _unwritten(dataset)
                if problem is not None:
                    raise DatasetError(f"{path}: {GROUP}/{name} {problem}")
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
            needed = sum(group[name].size * (4 if name == "data" else group[name].dtype.itemsize)
                         for name in ("data", "label", "id"))
            available = available_memory()
            too_big = DatasetError(f"{self.h5_path}: in_memory needs {needed / 2**30:.1f} GiB, more than the "
                                   f"{(available or 0) / 2**30:.1f} GiB of memory available; set in_memory to false "
                                   "to stream the file from disk")
            if available is not None and needed > available:
                raise too_big
            try:
                self.data = np.asarray(group["data"][...], dtype=np.float32)
                self.label = np.asarray(group["label"][...])
                self.id = np.asarray(group["id"][...])
            except MemoryError:
                raise too_big from None

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
    group.attrs[VOCABULARY_ATTRIBUTE] = json_text(list(vocabulary))


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
