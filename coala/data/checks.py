"""Checks on the values of a training file, and a cheap fingerprint that identifies its contents.

One NaN patch or a label outside {0, 1} otherwise surfaces deep in an epoch as an anonymous error, or
as NaN losses. ``check_values`` reads the whole file once, in blocks (memory stays flat for the
paper's 6.5 GB file), and names the first offending patch. A file that passed is remembered under the
asset root (``.cache/data_checks``), keyed by its fingerprint and identity (``coala.files``), so an
unchanged file is not read again on the next run.

``fingerprint`` is what a training state records of its data: the file size, the HDF5 shapes and a
hash of a fixed number of blocks sampled across the file. It costs about 1 MiB of reading whatever
the file's size, and tells a file replaced by other contents from the one a run started on.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from coala import assets
from coala.atomic import atomic_write_text
from coala.data.hdf5 import GROUP, inspect_hdf5
from coala.files import file_identity
from coala.core.errors import DatasetError

log = logging.getLogger(__name__)

MEMO_FOLDER = Path(".cache") / "data_checks"
# Bumped when the checks change, so files that passed older checks are read again.
CHECKS_VERSION = 1
SAMPLED_BLOCKS = 16
SAMPLE_BYTES = 1 << 16
# Patches are read this many bytes at a time (about 1800 patches of 96x96 float32).
READ_BYTES = 64 << 20

Fingerprint = dict[str, Any]


def fingerprint(path: str | Path) -> Fingerprint:
    """Size, HDF5 shapes and a SHA-256 of ``SAMPLED_BLOCKS`` blocks spread evenly over the file."""
    path = Path(path)
    inspect_hdf5(path)
    with h5py.File(path, "r") as f:
        shapes = {name: list(f[GROUP][name].shape) for name in ("id", "data", "label")}
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        last = max(size - SAMPLE_BYTES, 0)
        for offset in sorted({last * i // (SAMPLED_BLOCKS - 1) for i in range(SAMPLED_BLOCKS)}):
            f.seek(offset)
            digest.update(f.read(SAMPLE_BYTES))
    return {"size": size, "shapes": shapes, "sampled_sha256": digest.hexdigest()}


def fingerprint_difference(saved: Fingerprint, current: Fingerprint) -> str | None:
    """What tells ``current`` from ``saved`` in words, or None when they are the same file contents."""
    for name, shape in current["shapes"].items():
        if saved["shapes"].get(name) != shape:
            return f"{GROUP}/{name} had shape {tuple(saved['shapes'].get(name, ()))}, now {tuple(shape)}"
    if saved["size"] != current["size"]:
        return f"the file had {saved['size']} bytes, now {current['size']}"
    if saved["sampled_sha256"] != current["sampled_sha256"]:
        return "its contents changed"
    return None


def _memo_file(path: Path, print_: Fingerprint) -> Path:
    # The file's identity joins the key: an edit in place that the sampled blocks miss (one patch
    # rewritten), or a replacement dated earlier, still changes it, so the file is checked again.
    key = json.dumps([CHECKS_VERSION, print_, file_identity(path)], sort_keys=True)
    return assets.asset_root() / MEMO_FOLDER / f"{hashlib.sha256(key.encode()).hexdigest()}.json"


def _remember(memo: Path, path: Path) -> None:
    """Record a passed check; a cache that cannot be written only costs a check on the next run."""
    try:
        ignore = memo.parents[1] / ".gitignore"
        if not ignore.is_file():  # the asset root may be a git checkout: the cache stays out of it
            atomic_write_text(ignore, "*\n")
        atomic_write_text(memo, json.dumps({"file": str(path.resolve()), "checked": CHECKS_VERSION}) + "\n")
    except OSError as exc:
        log.warning(f"{memo.parent}: cannot remember that {path} was checked ({exc.strerror or exc}); "
                    "it will be checked again next run")


def _first_bad(data: np.ndarray, labels: np.ndarray) -> tuple[int, str] | None:
    """Row and description of the first patch in a block with a non-finite value or a label not 0/1."""
    bad_data = ~np.isfinite(data).reshape(len(data), -1).all(axis=1)
    bad_label = ~((labels == 0) | (labels == 1)).all(axis=1)
    rows = np.flatnonzero(bad_data | bad_label)
    if not len(rows):
        return None
    row = int(rows[0])
    if bad_data[row]:
        value = data[row][~np.isfinite(data[row])][0]
        return row, f"holds {value} in {GROUP}/data"
    column = int(np.flatnonzero((labels[row] != 0) & (labels[row] != 1))[0])
    return row, f"holds label value {labels[row, column]} for tag {column} in {GROUP}/label (labels must be 0 or 1)"


def check_values(path: str | Path) -> None:
    """Refuse a file with a non-finite patch value or a label other than 0 and 1 (``DatasetError``
    naming the file, the first offending patch's index and its sound id). Passed files are remembered."""
    path = Path(path)
    print_ = fingerprint(path)
    memo = _memo_file(path, print_)
    if memo.is_file():
        return
    n, n_tags = print_["shapes"]["label"]
    rows = max(1, READ_BYTES // (print_["shapes"]["data"][1] * print_["shapes"]["data"][2] * 4 + n_tags * 2))
    if n > rows:  # more than one block: long enough to say what the wait is
        log.info(f"{path}: checking the values of {n} patches (once; remembered while the file is unchanged)")
    with h5py.File(path, "r") as f:
        group = f[GROUP]
        for start in range(0, n, rows):
            block = slice(start, min(start + rows, n))
            try:
                found = _first_bad(group["data"][block], group["label"][block])
            except OSError as exc:  # a damaged chunk, a compression filter this h5py lacks
                raise DatasetError(f"{path}: patches {block.start} to {block.stop - 1} cannot be read ({exc})") from None
            if found is not None:
                index = start + found[0]
                sound_id = int(np.asarray(group["id"][index]).reshape(-1)[0])
                raise DatasetError(f"{path}: patch {index} (sound id {sound_id}) {found[1]}; "
                                   "fix or drop it before training")
    _remember(memo, path)
