"""What a run encodes: the jobs (an input file and the ``.npy`` its result goes to) for files and folders
named on the command line, or for the downstream datasets in their layouts."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from coala.core.errors import UsageError
from coala.core.frontend import AUDIO_SUFFIXES
from coala.encode.failures import FAILURES_FILE
from coala.evaluation.datasets import DOWNSTREAM

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileJob:
    """One input file and the ``.npy`` its result goes to."""

    source: Path
    output: Path


def plan_inputs(inputs: Sequence[Path], output_dir: Path) -> list[FileJob]:
    """Jobs for files and folders named on the command line; folders are searched recursively.

    A folder's audio files keep their subfolders under ``output_dir``; a file named directly goes to
    ``output_dir/<stem>.npy``. Raises ``UsageError`` for a path that does not exist.
    """
    tasks = []
    for given in inputs:
        if given.is_dir():
            files = sorted(p for p in given.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            tasks += [FileJob(p, output_dir / p.relative_to(given).with_suffix(".npy")) for p in files]
        elif given.is_file():
            tasks.append(FileJob(given, output_dir / f"{given.stem}.npy"))
        else:
            raise UsageError(f"{given}: no such file or folder")
    return tasks


def dataset_jobs(datasets: Sequence[str], data_dir: Path, embeddings_dir: Path, name: str,
                 nsynth_selection: Path | None = None) -> list[tuple[list[FileJob], Path]]:
    """``(jobs, failures.tsv path)`` per audio folder of the named downstream datasets.

    With one dataset named, a folder without audio is an error; with several, it is skipped with a
    note (a user rarely has all three).
    """
    plans = []
    for dataset in datasets:
        for part in DOWNSTREAM[dataset].audio_parts(data_dir, nsynth_selection):
            files = part.files()
            if not files:
                message = f"{part.audio_dir}: no {part.pattern} audio files for {part.key}{part.when_absent}"
                if len(datasets) == 1:
                    raise UsageError(message)
                log.info(f"note: {message}; skipped")
                continue
            out = part.output_dir(embeddings_dir, name)
            plans.append(([FileJob(f, out / f"{f.stem}.npy") for f in files], out / FAILURES_FILE))
    if not plans:
        raise UsageError(f"none of the datasets found under {data_dir}")
    return plans
