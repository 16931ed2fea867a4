"""The paper's three downstream tasks: reading their on-disk layouts and the embeddings encode.py wrote.

A task is a list of items (one per audio clip: the embeddings subfolder it lives in, its file stem, its
class) and the train/test splits of the paper's protocol over those items. Reading the dataset's own
lists (rather than whatever embeddings happen to exist) is what lets missing embeddings be counted
instead of silently shrinking the evaluation, which is what the paper's script did.

Layouts, under ``--data-dir`` (see contracts): ``UrbanSound8K/metadata/UrbanSound8K.csv``;
``GTZAN/{train,test}_filtered.txt``; ``nsynth/nsynth-test/audio/*.wav`` and the NSynth training
selection JSON. Embeddings: ``<embeddings-dir>/<us8k | gtzan | nsynth/train | nsynth/test>/<NAME>/<stem>.npy``.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TASK_KEYS = {"us8k": "US8K", "gtzan": "GTZAN", "nsynth": "NSynth"}  # CLI name -> results-file key
US8K_CSV = Path("UrbanSound8K") / "metadata" / "UrbanSound8K.csv"
US8K_COLUMNS = ("slice_file_name", "fold", "classID", "class")
GTZAN_LISTS = {"train": Path("GTZAN") / "train_filtered.txt", "test": Path("GTZAN") / "test_filtered.txt"}
NSYNTH_TEST_AUDIO = Path("nsynth") / "nsynth-test" / "audio"
NSYNTH_SELECTION = Path("json") / "nsynth_selected_sounds_per_class.json"
NSYNTH_FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string",
                   "synth_lead", "vocal")
NSYNTH_LEFT_OUT = "synth_lead"  # the paper leaves this family out of training and test
NSYNTH_PER_FAMILY = 2000        # size of the paper's per-family training selection
_NSYNTH_NAME = re.compile(r"^(?P<family>[a-z_]+?)_(?P<source>acoustic|electronic|synthetic)_\d{3}-\d{3}-\d{3}$")


class DownstreamError(ValueError):
    """A user-facing problem with a dataset file or an embedding: the message names the file."""


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
    """One embedding set's clip vectors for a task's items, and what could not be used."""
    name: str
    vectors: np.ndarray            # (n_present, width) float32
    present: np.ndarray            # bool per task item
    missing: list[str]             # relative paths of listed items with no .npy
    unreadable: list[str]          # "<path>: <reason>" of .npy files that could not be used


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_us8k(data_dir: Path) -> Task:
    """UrbanSound8K: every clip of the metadata CSV; the 10-fold cross-validation by its ``fold`` column."""
    path = data_dir / US8K_CSV
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        absent = [c for c in US8K_COLUMNS if c not in (reader.fieldnames or [])]
        if absent:
            raise DownstreamError(f"{path}: missing column(s) {', '.join(absent)}")
        rows = list(reader)
    if not rows:
        raise DownstreamError(f"{path}: no clips listed")
    stems, labels, folds, names = [], [], [], {}
    for line, row in enumerate(rows, start=2):
        if any(not row[c] for c in US8K_COLUMNS):
            raise DownstreamError(f"{path} line {line}: empty or missing {', '.join(US8K_COLUMNS)} value")
        try:
            class_id, fold = int(row["classID"]), int(row["fold"])
        except ValueError:
            raise DownstreamError(f"{path} line {line}: classID and fold must be integers, "
                                  f"got {row['classID']!r} and {row['fold']!r}") from None
        stems.append(Path(row["slice_file_name"]).stem)
        labels.append(class_id)
        folds.append(fold)
        names[class_id] = row["class"]
    ids = sorted(names)
    index = {class_id: i for i, class_id in enumerate(ids)}
    folds_sorted = sorted(set(folds))
    return Task("US8K", [names[i] for i in ids], ["us8k"] * len(stems), stems,
                np.array([index[c] for c in labels]), np.array(folds), folds_sorted, {"metadata": str(path)})


def read_gtzan(data_dir: Path) -> Task:
    """GTZAN: the fault-filtered lists, every line read (the paper's pandas call dropped each list's first)."""
    stems, genres, groups = [], [], []
    for part, rel in GTZAN_LISTS.items():
        path = data_dir / rel
        for line in _read_lines(path):
            genre, _, filename = line.rpartition("/")
            if not genre or not filename:
                raise DownstreamError(f"{path}: line {line!r} is not <genre>/<file> (e.g. blues/blues.00000.wav)")
            stems.append(Path(filename).stem)
            genres.append(genre.split("/")[-1])
            groups.append(part)
    classes = sorted(set(genres))
    return Task("GTZAN", classes, ["gtzan"] * len(stems), stems,
                np.array([classes.index(g) for g in genres]), np.array(groups), None,
                {"lists": [str(data_dir / rel) for rel in GTZAN_LISTS.values()]})


def nsynth_family(name: str, source: Path | str) -> str:
    """The instrument family of an NSynth note name ``<family>_<source>_<NNN>-<pitch>-<velocity>``."""
    match = _NSYNTH_NAME.match(name)
    if not match or match["family"] not in NSYNTH_FAMILIES:
        raise DownstreamError(f"{source}: {name!r} is not an NSynth note name "
                              "<family>_<acoustic|electronic|synthetic>_<NNN>-<pitch>-<velocity>")
    return match["family"]


def embedding_names(embeddings_dir: Path, subdir: str) -> set[str]:
    """The embedding sets (folder names) written for one embeddings subfolder."""
    folder = embeddings_dir / subdir
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}


def _stems_on_disk(folders: list[Path], suffix: str) -> set[str]:
    return {p.stem for folder in folders if folder.is_dir() for p in folder.glob(f"*{suffix}")}


def select_nsynth_training(pool: set[str], seed: int) -> list[str]:
    """A seeded stand-in for the paper's selection: up to 2,000 notes per family, drawn from ``pool``."""
    by_family: dict[str, list[str]] = {}
    for name in sorted(pool):
        by_family.setdefault(nsynth_family(name, "nsynth/train embeddings"), []).append(name)
    rng = np.random.default_rng(seed)
    chosen = []
    for family, names in sorted(by_family.items()):
        take = rng.choice(len(names), size=min(len(names), NSYNTH_PER_FAMILY), replace=False)
        chosen += [names[i] for i in sorted(take)]
    return chosen


def read_nsynth(data_dir: Path, embeddings_dir: Path, selection: Path | None, seed: int) -> Task:
    """NSynth: train on the selected training notes, test on nsynth-test; synth_lead left out of both.

    The training notes are the selection JSON's when it exists, else a seeded draw among the training
    embeddings present. The test notes are nsynth-test's audio files when that folder exists, else every
    test embedding present (the audio need not be kept once encoded).
    """
    if selection is not None and selection.is_file():
        try:
            listed = json.loads(selection.read_text(encoding="utf-8"))
            train = [name.removesuffix(".wav") for names in listed.values() for name in names]
        except (json.JSONDecodeError, AttributeError, TypeError):
            raise DownstreamError(f"{selection}: not a JSON object of family -> list of note names") from None
        train_source: dict[str, Any] = {"source": "file", "path": str(selection)}
        train_origin: Path | str = selection
    else:
        pool = _stems_on_disk([embeddings_dir / "nsynth" / "train" / n
                               for n in sorted(embedding_names(embeddings_dir, "nsynth/train"))], ".npy")
        train = select_nsynth_training(pool, seed)
        train_source = {"source": "seeded", "seed": seed, "per_family_at_most": NSYNTH_PER_FAMILY,
                        "pool": len(pool), "missing_file": str(selection) if selection else None}
        train_origin = "nsynth/train embeddings"
    audio_dir = data_dir / NSYNTH_TEST_AUDIO
    if audio_dir.is_dir():
        test = sorted(_stems_on_disk([audio_dir], ".wav"))
        test_source = str(audio_dir)
    else:
        test = sorted(_stems_on_disk([embeddings_dir / "nsynth" / "test" / n
                                      for n in embedding_names(embeddings_dir, "nsynth/test")], ".npy"))
        test_source = "test embeddings present"
    if not train or not test:
        raise FileNotFoundError("no NSynth " + ("training selection or training embeddings" if not train
                                                else f"test notes in {audio_dir} or test embeddings"))
    items = [(n, "train", nsynth_family(n, train_origin)) for n in train]
    items += [(n, "test", nsynth_family(n, test_source)) for n in test]
    kept = [item for item in items if item[2] != NSYNTH_LEFT_OUT]
    classes = sorted({family for _, _, family in kept})
    info = {"training_selection": train_source, "test_notes": test_source,
            f"left_out_{NSYNTH_LEFT_OUT}": len(items) - len(kept)}
    return Task("NSynth", classes, [f"nsynth/{part}" for _, part, _ in kept], [n for n, _, _ in kept],
                np.array([classes.index(f) for _, _, f in kept]), np.array([p for _, p, _ in kept]),
                None, info)


def read_task(name: str, data_dir: Path, embeddings_dir: Path, nsynth_selection: Path | None,
              seed: int) -> Task:
    """Read one task's lists; FileNotFoundError when its data is absent (the caller skips the task)."""
    if name == "us8k":
        return read_us8k(data_dir)
    if name == "gtzan":
        return read_gtzan(data_dir)
    return read_nsynth(data_dir, embeddings_dir, nsynth_selection, seed)


def task_embedding_names(task: Task, embeddings_dir: Path) -> list[str]:
    """Every embedding set written for any of the task's subfolders."""
    return sorted(set().union(*(embedding_names(embeddings_dir, s) for s in set(task.subdirs))))


def clip_vector(path: Path) -> np.ndarray:
    """A clip's vector: (n_chunks, d) chunk embeddings averaged over chunks, a (d,) vector as it is."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DownstreamError(f"{path}: cannot read ({exc})") from None
    if array.ndim == 2 and array.shape[0] > 0:
        array = array.mean(axis=0, dtype=np.float64)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.number):
        raise DownstreamError(f"{path}: expected a (n_chunks, d) or (d,) numeric array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise DownstreamError(f"{path}: holds non-finite values")
    return array.astype(np.float32)


def load_embeddings(task: Task, embeddings_dir: Path, name: str) -> Embeddings:
    """Load embedding set ``name`` for every item of ``task``.

    Missing and unreadable files are recorded and left out (the evaluation goes on with what is
    present); vectors of differing widths within one set stop with a DownstreamError naming the file,
    since they mean two different extractions were mixed in one folder.
    """
    vectors, present, missing, unreadable = [], np.zeros(len(task.stems), bool), [], []
    first: Path | None = None
    for i, (subdir, stem) in enumerate(zip(task.subdirs, task.stems)):
        path = embeddings_dir / subdir / name / f"{stem}.npy"
        if not path.is_file():
            missing.append(f"{subdir}/{name}/{stem}.npy")
            continue
        try:
            vector = clip_vector(path)
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
    return Embeddings(name, matrix, present, missing, unreadable)
