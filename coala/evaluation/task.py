"""A downstream task (its clips, classes and the protocol's splits) and the embeddings encode.py wrote for it.

Embeddings live at ``<embeddings-dir>/<us8k | gtzan | nsynth/train | nsynth/test>/<NAME>/``, as clip
``<stem>`` of either of encode.py's layouts (``coala.encode.shards``; ``coala.evaluation.datasets`` says
which subfolder each clip's embedding is in). Reading the dataset's own lists, rather than whatever
embeddings happen to exist, is what lets missing embeddings be counted instead of silently shrinking the
evaluation, which is what the paper's script did.

Which model made a set is read from its folders' ``model.json`` (``coala.encode.provenance``), never
guessed from the set's name: a folder named ``embeddings_dual_ae_c_200`` may hold anyone's embeddings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coala.encode.provenance import FOLDER_RECORD, describe, read_folder_record, same_maker
from coala.encode.shards import EmbeddingFolder
from coala.files import visible_files
from coala.npyfile import float32_problem
from coala.core.errors import DownstreamError


@dataclass
class Task:
    """One downstream task: its items, their classes, and the protocol's splits over them.

    With ``folds`` set, ``groups`` holds each item's fold and every fold is tested in turn against a
    model trained on all the others (US8K); otherwise ``groups`` is "train" or "test" and there is a
    single split (GTZAN, NSynth).
    """
    key: str
    classes: list[str]
    subdirs: list[str]
    stems: list[str]
    labels: np.ndarray
    groups: np.ndarray
    folds: list[int] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def splits(self, keep: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(name, train indices, test indices) of each split, over the items where ``keep`` is true."""
        groups = self.groups[keep]
        if self.folds is None:
            return [("test", np.flatnonzero(groups == "train"), np.flatnonzero(groups == "test"))]
        return [(f"fold {k}", np.flatnonzero(groups != k), np.flatnonzero(groups == k)) for k in self.folds]


@dataclass
class Embeddings:
    """One embedding set's clip vectors for a task's items, what could not be used, and what made it."""
    name: str
    vectors: np.ndarray            # (n_present, width) float32
    present: np.ndarray            # bool per task item
    missing: list[str]             # relative paths of listed items with no embedding
    unreadable: list[str]          # "<path>: <reason>" of embeddings that could not be used
    record: dict | None = None     # the folders' model.json (set_record); None: made by an unknown model


def embedding_names(embeddings_dir: Path, subdir: str) -> set[str]:
    """The embedding sets (folder names) written for one embeddings subfolder."""
    folder = embeddings_dir / subdir
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}


def stems_on_disk(folders: list[Path], suffix: str) -> set[str]:
    return {p.stem for folder in folders for p in visible_files(folder, f"*{suffix}")}


def clips_on_disk(folders: list[Path]) -> set[str]:
    """The clips embedded in encode.py output folders, in either layout."""
    return set().union(*(EmbeddingFolder(folder) for folder in folders))


def task_embedding_names(task: Task, embeddings_dir: Path) -> list[str]:
    """Every embedding set written for any of the task's subfolders."""
    return sorted(set().union(*(embedding_names(embeddings_dir, s) for s in set(task.subdirs))))


def set_record(task: Task, embeddings_dir: Path, name: str) -> dict | None:
    """The ``model.json`` of set ``name`` in the task's folders: which model and output made it.

    None when a folder has none, or an unreadable one (written before ``encode.py`` recorded its model):
    which model made it is then unknown. Folders of one set made by different models or outputs are a
    ``DownstreamError``: a classifier trained on one model's embeddings and tested on another's measures
    neither.
    """
    folders = [embeddings_dir / subdir / name for subdir in sorted(set(task.subdirs))]
    folders = [folder for folder in folders if folder.is_dir()]
    records = [read_folder_record(folder) for folder in folders]
    if not records or any(record is None for record in records):
        return None
    for folder, record in zip(folders[1:], records[1:]):
        if not same_maker(records[0], record):
            raise DownstreamError(f"{folder / FOLDER_RECORD}: {describe(record)}, but {folders[0] / FOLDER_RECORD}: "
                                  f"{describe(records[0])}; the folders of one embedding set must come from one model")
    return records[0]


def clip_vector(embeddings: EmbeddingFolder, clip: str) -> np.ndarray:
    """A clip's vector: (n_chunks, d) chunk embeddings averaged over chunks, a (d,) vector as it is."""
    array = embeddings[clip]
    path = embeddings.location(clip)
    # Integers or floats: strings cannot be averaged (a TypeError), and complex vectors would lose
    # their imaginary part in the cast to float32 unnoticed.
    if array.dtype.kind not in "iuf":
        raise DownstreamError(f"{path}: expected an array of real numbers, got {array.dtype}")
    if array.ndim not in (1, 2) or array.size == 0:
        raise DownstreamError(f"{path}: expected a (n_chunks, d) or (d,) numeric array, got shape {array.shape}")
    problem = float32_problem(array)  # before the average, which 1e300 and -1e300 would cancel
    if problem is not None:
        raise DownstreamError(f"{path}: holds non-finite values ({problem})")
    return (array.mean(axis=0, dtype=np.float64) if array.ndim == 2 else array).astype(np.float32)


def load_embeddings(task: Task, embeddings_dir: Path, name: str) -> Embeddings:
    """Load embedding set ``name`` for every item of ``task``, with its record (``set_record``).

    Missing and unreadable files are recorded and left out (the evaluation goes on with what is
    present); vectors of differing widths within one set stop with a DownstreamError naming the file,
    since they mean two different extractions were mixed in one folder.
    """
    record = set_record(task, embeddings_dir, name)  # folders of different models stop before any read
    vectors, present, missing, unreadable = [], np.zeros(len(task.stems), bool), [], []
    folders = {subdir: EmbeddingFolder(embeddings_dir / subdir / name) for subdir in set(task.subdirs)}
    first: str | None = None
    for i, (subdir, stem) in enumerate(zip(task.subdirs, task.stems)):
        folder = folders[subdir]
        if stem not in folder:
            missing.append(f"{subdir}/{name}/{stem}.npy")
            continue
        path = folder.location(stem)
        try:
            vector = clip_vector(folder, stem)
        except DownstreamError as exc:
            unreadable.append(str(exc))
            continue
        if first is None:
            first = path
        elif vector.size != vectors[0].size:
            raise DownstreamError(f"{path}: embedding width {vector.size} differs from {vectors[0].size} "
                                  f"of {first} in the same set")
        vectors.append(vector)
        present[i] = True
    matrix = np.stack(vectors) if vectors else np.zeros((0, 0), np.float32)
    return Embeddings(name, matrix, present, missing, unreadable, record)
