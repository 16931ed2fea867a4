"""Training files with some tags held out: the same clips and patches, without those tags' label columns.

To measure retrieval for words a model never saw as tags, it is trained on files from which the words
are removed, and evaluated on the validation file that still has them. Deriving the files from a build
of ``create_dataset.py`` (rather than building again from a tag CSV without the words) keeps the clips,
their split and the scaler: a new build would choose its split on the other labels, and validation
clips of the full build would land in the training set. A clip left with no tag is dropped (its tag
side would be empty). The files record the reduced vocabulary and the same scaler, so a model trained
on them records both.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from coala.atomic import atomic_paths
from coala.core.errors import DatasetError, VocabularyError
from coala.core.frontend import MinMaxScaler
from coala.data.hdf5 import GROUP, inspect_hdf5, read_labels, read_provenance, write_provenance

# Patches copied per read: 1024 patches of 96x96 float32 are 38 MB.
BLOCK = 1024
COMMIT_JOURNAL_SUFFIX = ".hold-out-commit.json"


def _kept(path: Path, words: Sequence[str]) -> tuple[MinMaxScaler, list[str], np.ndarray, np.ndarray]:
    """The file's scaler, the vocabulary without ``words``, its columns and the rows left with a tag;
    ``VocabularyError`` naming held-out words the file does not have (a typo would hold out nothing)."""
    inspect_hdf5(path)
    scaler, vocabulary = read_provenance(path)
    if vocabulary is None or scaler is None:
        raise DatasetError(f"{path}: records no vocabulary or scaler (not a file of create_dataset.py): the held-out "
                           "tags cannot be told by name")
    missing = [w for w in words if w not in vocabulary]
    if missing:
        raise VocabularyError(f"{path}: held-out tags {missing} are not in its vocabulary of {len(vocabulary)} tags")
    held_out = set(words)
    columns = np.array([i for i, w in enumerate(vocabulary) if w not in held_out])
    rows = np.flatnonzero(read_labels(path)[:, columns].any(axis=1))
    return scaler, [vocabulary[i] for i in columns], columns, rows


def _write(source: Path, target: Path, scaler: MinMaxScaler, vocabulary: list[str], columns: np.ndarray,
           rows: np.ndarray) -> None:
    with h5py.File(source, "r") as f, h5py.File(target, "w") as out:
        group, into = f[GROUP], out.create_group(GROUP)
        write_provenance(into, scaler, vocabulary)
        into.create_dataset("id", data=group["id"][...][rows])
        into.create_dataset("label", data=group["label"][...][rows][:, columns])
        data = into.create_dataset("data", shape=(len(rows), *group["data"].shape[1:]), dtype=group["data"].dtype)
        for start in range(0, len(rows), BLOCK):
            data[start:start + BLOCK] = group["data"][rows[start:start + BLOCK]]


def hold_out_tags(sources: Sequence[Path], targets: Sequence[Path], words: Sequence[str]) -> dict[str, object]:
    """``targets[i]``: ``sources[i]`` (a training and a validation file of one build) without the tags
    ``words``; written together, atomically. Returns what was kept: vocabulary size and patches per file."""
    if not words:
        raise VocabularyError("no tags to hold out")
    kept = [_kept(Path(source), words) for source in sources]
    if any(k[1] != kept[0][1] for k in kept):
        raise DatasetError(f"{', '.join(map(str, sources))}: not files of one build (their vocabularies differ)")
    if any(not len(rows) for *_, rows in kept):
        raise DatasetError(f"holding out {list(words)} leaves a file without any tagged patch")
    targets = [Path(t) for t in targets]
    with atomic_paths(targets, targets[0].with_name(targets[0].name + COMMIT_JOURNAL_SUFFIX)) as temporaries:
        for source, temporary, selection in zip(sources, temporaries, kept):
            _write(Path(source), temporary, *selection)
    return {"held_out": list(words), "tags_kept": len(kept[0][1]),
            "patches": {str(t): len(rows) for t, (*_, rows) in zip(targets, kept)}}
