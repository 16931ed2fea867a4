"""Where the downstream datasets' audio lives under ``--data-dir`` and where their embeddings go.

The layout is the paper's (and the project's contract): classify.py finds embeddings at
``<data-dir>/embeddings/<us8k | gtzan | nsynth/train | nsynth/test>/<NAME>/<stem>.npy``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coala.audio import AUDIO_SUFFIXES

DATASETS = ("us8k", "gtzan", "nsynth")
EMBEDDINGS_FOLDER = "embeddings"


@dataclass(frozen=True)
class DatasetPart:
    """One folder of a dataset's audio and the embedding subfolder it maps to (e.g. ``nsynth/test``)."""

    key: str
    audio_dir: Path
    pattern: str

    def files(self) -> list[Path]:
        return sorted(p for p in self.audio_dir.glob(self.pattern) if p.suffix.lower() in AUDIO_SUFFIXES)

    def output_dir(self, data_dir: Path, name: str) -> Path:
        return data_dir / EMBEDDINGS_FOLDER / self.key / name


def dataset_parts(dataset: str, data_dir: Path) -> list[DatasetPart]:
    """The audio folders of ``dataset`` (one of ``DATASETS``), in the paper's ``data/`` layout."""
    layouts = {
        "us8k": [DatasetPart("us8k", data_dir / "UrbanSound8K" / "audio", "fold*/*")],
        "gtzan": [DatasetPart("gtzan", data_dir / "GTZAN" / "genres", "*/*")],
        "nsynth": [DatasetPart("nsynth/train", data_dir / "nsynth" / "nsynth-train" / "audio_selected", "*"),
                   DatasetPart("nsynth/test", data_dir / "nsynth" / "nsynth-test" / "audio", "*")],
    }
    if dataset not in layouts:
        raise ValueError(f"unknown dataset {dataset!r} (choose from {', '.join(DATASETS)})")
    return layouts[dataset]
