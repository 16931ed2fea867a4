"""Reading a ``.npy`` file whose header may declare more than the file holds.

``np.load`` trusts the header: a few hundred bytes declaring 10^9 rows make it allocate terabytes (or
fail after a long wait) before it finds the file short. Every ``.npy`` a user can hand over (embeddings,
shards, a search index, the dataset builder's patch cache) is read here: the header's size is checked
against the file's before anything is allocated or mapped, and every failure is one ``ValueError``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}


def declared(path: str | Path) -> tuple[tuple[int, ...], np.dtype, int, int]:
    """``(shape, dtype, bytes the header declares, bytes the file holds)``, reading the header alone."""
    with open(path, "rb") as f:
        version = npy_format.read_magic(f)
        if version not in _HEADER_READERS:
            raise ValueError(f".npy format version {version[0]}.{version[1]}, which this reader does not read")
        shape, _, dtype = _HEADER_READERS[version](f)
        size = os.fstat(f.fileno()).st_size
        return shape, dtype, f.tell() + math.prod(shape) * dtype.itemsize, size


def read_npy(path: str | Path, mmap_mode: str | None = None) -> np.ndarray:
    """The array in ``path`` (memory-mapped with ``mmap_mode``), never pickled objects; ``ValueError`` when
    the file is not a ``.npy`` or is shorter than its header declares, ``OSError`` when it cannot be read."""
    shape, dtype, needed, size = declared(path)
    if needed > size and not dtype.hasobject:  # objects are pickled: np.load refuses them (allow_pickle=False)
        raise ValueError(f"its header declares {dtype} {shape} ({needed} bytes) but the file holds {size} bytes")
    return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def float32_problem(values: np.ndarray, allow_nan: bool = False) -> str | None:
    """The first value of ``values`` that is no finite float32 number, in words (``"inf at index (3,)"``,
    ``"1e+300 at index (0, 2), beyond float32"``: a float64 file's 1e300 becomes inf when cast), or None.

    Every vector a user hands over (embeddings, an index's rows, descriptors) is checked by this before
    its arithmetic, where an inf or a NaN would spread to every score or correlation unnoticed. NaN may be
    ``allow_nan``ed where the reader leaves such rows out itself (a skewness over a constant window).
    """
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":
        return f"holds {array.dtype} values, not real numbers"
    as_float = array.astype(np.float64, copy=False)
    bad = ~(np.abs(as_float) <= FLOAT32_MAX)  # NaN fails the comparison too
    if allow_nan:
        bad &= ~np.isnan(as_float)
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), array.shape))
    value = float(as_float[index])
    beyond = ", beyond float32" if np.isfinite(value) else ""
    return f"{value!r} at index {index}{beyond}"
