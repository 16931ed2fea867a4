"""The paper's three downstream datasets: where their audio and lists live, and their tasks.

One entry of ``DOWNSTREAM`` per dataset holds everything about it: its results-file key, the audio
folders ``encode.py --dataset`` embeds (and the embeddings subfolder each maps to), and the reader of
its task for ``classify.py``. Adding a downstream dataset is one reader and one entry.

Layouts, under ``--data-dir`` (the paper's ``data/``): ``UrbanSound8K/audio/fold*/`` with
``UrbanSound8K/metadata/UrbanSound8K.csv``; ``GTZAN/genres/<genre>/`` with
``GTZAN/{train,test}_filtered.txt``; ``nsynth/nsynth-test/audio/`` and the NSynth training selection,
read from ``nsynth/nsynth-train/audio_selected/`` when that folder exists (the paper's README had users
copy the selected notes there), else from ``nsynth/nsynth-train/audio/`` through the selection JSON.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coala import assets
from coala.core.frontend import AUDIO_SUFFIXES
from coala.core.errors import DataAbsentError, DownstreamError
from coala.evaluation.task import Task, clips_on_disk, embedding_names, stems_on_disk
from coala.files import visible_files
from coala.jsonfile import read_json
from coala.text import read_text

EMBEDDINGS_FOLDER = "embeddings"
US8K_CSV = Path("UrbanSound8K") / "metadata" / "UrbanSound8K.csv"
US8K_AUDIO = Path("UrbanSound8K") / "audio"
US8K_COLUMNS = ("slice_file_name", "fold", "classID", "class")
US8K_CLASSES = ("air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling", "engine_idling",
                "gun_shot", "jackhammer", "siren", "street_music")
US8K_FOLDS = 10
GTZAN_AUDIO = Path("GTZAN") / "genres"
GTZAN_LISTS = {"train": Path("GTZAN") / "train_filtered.txt", "test": Path("GTZAN") / "test_filtered.txt"}
GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
NSYNTH_TRAIN_AUDIO = Path("nsynth") / "nsynth-train" / "audio"
NSYNTH_SELECTED_AUDIO = Path("nsynth") / "nsynth-train" / "audio_selected"
NSYNTH_TEST_AUDIO = Path("nsynth") / "nsynth-test" / "audio"
NSYNTH_FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string",
                   "synth_lead", "vocal")
NSYNTH_SOURCES = ("acoustic", "electronic", "synthetic")
NSYNTH_LEFT_OUT = "synth_lead"  # the paper leaves this family out of training and test
NSYNTH_PER_FAMILY = 2000        # size of the paper's per-family training selection
_NSYNTH_NAME = re.compile(rf"^(?P<family>[a-z_]+?)_(?P<source>{'|'.join(NSYNTH_SOURCES)})_\d{{3}}-\d{{3}}-\d{{3}}$")


@dataclass(frozen=True)
class AudioPart:
    """One folder of a dataset's audio and the embeddings subfolder it maps to (e.g. ``nsynth/test``).

    ``listed`` names the files to take from the folder (the NSynth selection); without it every file
    matching ``pattern`` is taken.
    """

    key: str
    audio_dir: Path
    pattern: str = "*"
    listed: tuple[str, ...] | None = None
    listed_by: Path | None = None  # the file that lists them
    when_absent: str = ""  # what else would have given this part its files, for the message when it has none

    def files(self) -> list[Path]:
        """The part's audio files; listed files are returned whether or not they exist, so that a missing
        one is reported by the run that reads it instead of silently dropped."""
        if self.listed is not None:
            return [self.audio_dir / name for name in self.listed]
        return [p for p in visible_files(self.audio_dir, self.pattern) if p.suffix.lower() in AUDIO_SUFFIXES]

    def output_dir(self, embeddings_dir: Path, name: str) -> Path:
        return embeddings_dir / self.key / name


def _read_text(path: Path) -> str:
    """A list's or CSV's text, as the datasets' own tools read it: UTF-8, a byte-order mark dropped."""
    try:
        return read_text(path)
    except ValueError as exc:
        raise DownstreamError(f"{path}: not UTF-8 text ({exc})") from None


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in _read_text(path).splitlines() if line.strip()]


def _require(path: Path) -> Path:
    if not path.exists():
        raise DataAbsentError(f"{path}: not found")
    return path


def read_selection(path: Path) -> list[str]:
    """The note names (no ``.wav``) of the paper's NSynth training selection JSON (family -> file names)."""
    try:
        listed = read_json(path)
        return [name.removesuffix(".wav") for names in listed.values() for name in names]
    except (ValueError, AttributeError, TypeError):
        raise DownstreamError(f"{path}: not a JSON object of family -> list of note names") from None


def nsynth_selection_file(selection: Path | None) -> Path:
    """The NSynth training selection a user named, or the installed paper's (``coala.assets``)."""
    return selection or assets.default_path(assets.NSYNTH_SELECTION)


# --- audio folders, for encode.py --dataset -----------------------------------------------------------

def us8k_audio(data_dir: Path, selection: Path | None) -> list[AudioPart]:
    return [AudioPart("us8k", data_dir / US8K_AUDIO, "fold*/*")]


def gtzan_audio(data_dir: Path, selection: Path | None) -> list[AudioPart]:
    return [AudioPart("gtzan", data_dir / GTZAN_AUDIO, "*/*")]


def nsynth_audio(data_dir: Path, selection: Path | None) -> list[AudioPart]:
    """nsynth-test's notes, and the training selection: ``audio_selected/`` when it exists, else the
    selection JSON's notes read from ``nsynth-train/audio/``."""
    selection = nsynth_selection_file(selection)
    train = AudioPart("nsynth/train", data_dir / NSYNTH_SELECTED_AUDIO,
                      when_absent=f" (nor {data_dir / NSYNTH_TRAIN_AUDIO} with the selection {selection})")
    if not train.audio_dir.is_dir() and (data_dir / NSYNTH_TRAIN_AUDIO).is_dir() and selection.is_file():
        train = AudioPart("nsynth/train", data_dir / NSYNTH_TRAIN_AUDIO,
                          listed=tuple(f"{name}.wav" for name in read_selection(selection)), listed_by=selection)
    return [train, AudioPart("nsynth/test", data_dir / NSYNTH_TEST_AUDIO)]


# --- tasks, for classify.py ------------------------------------------------------------------------------

def read_us8k(data_dir: Path, embeddings_dir: Path, selection: Path | None, seed: int) -> Task:
    """UrbanSound8K: every clip of the metadata CSV; the 10-fold cross-validation by its ``fold`` column."""
    path = _require(data_dir / US8K_CSV)
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
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


def read_gtzan(data_dir: Path, embeddings_dir: Path, selection: Path | None, seed: int) -> Task:
    """GTZAN: the fault-filtered lists, every line read (the paper's pandas call dropped each list's first)."""
    stems, genres, groups = [], [], []
    for part, rel in GTZAN_LISTS.items():
        path = _require(data_dir / rel)
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

    The training notes are the selection JSON's when it exists (default: the installed paper's), else
    a seeded draw among the training embeddings present. The test notes are nsynth-test's audio files
    when that folder exists, else every test embedding present (the audio need not be kept once encoded).
    """
    selection = nsynth_selection_file(selection)
    if selection.is_file():
        train = read_selection(selection)
        train_source: dict[str, Any] = {"source": "file", "path": str(selection)}
        train_origin: Path | str = selection
    else:
        pool = clips_on_disk([embeddings_dir / "nsynth" / "train" / n
                              for n in sorted(embedding_names(embeddings_dir, "nsynth/train"))])
        train = select_nsynth_training(pool, seed)
        train_source = {"source": "seeded", "seed": seed, "per_family_at_most": NSYNTH_PER_FAMILY,
                        "pool": len(pool), "missing_file": str(selection)}
        train_origin = "nsynth/train embeddings"
    audio_dir = data_dir / NSYNTH_TEST_AUDIO
    if audio_dir.is_dir():
        test = sorted(stems_on_disk([audio_dir], ".wav"))
        test_source = str(audio_dir)
    else:
        test = sorted(clips_on_disk([embeddings_dir / "nsynth" / "test" / n
                                     for n in embedding_names(embeddings_dir, "nsynth/test")]))
        test_source = "test embeddings present"
    if not train or not test:
        raise DataAbsentError("no NSynth " + ("training selection or training embeddings" if not train
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


@dataclass(frozen=True)
class DownstreamDataset:
    """One downstream dataset: its command-line name, its key in the results file, its audio folders
    (``(data_dir, nsynth_selection) -> parts``) and its task reader
    (``(data_dir, embeddings_dir, nsynth_selection, seed) -> Task``, ``DataAbsentError`` when absent)."""

    name: str
    key: str
    audio_parts: Callable[[Path, Path | None], list[AudioPart]]
    read_task: Callable[[Path, Path, Path | None, int], Task]


DOWNSTREAM: dict[str, DownstreamDataset] = {d.name: d for d in (
    DownstreamDataset("us8k", "US8K", us8k_audio, read_us8k),
    DownstreamDataset("gtzan", "GTZAN", gtzan_audio, read_gtzan),
    DownstreamDataset("nsynth", "NSynth", nsynth_audio, read_nsynth),
)}
