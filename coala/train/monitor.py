"""What a run tells while it runs: scalars every ``log_interval`` steps, the time left, and where both go.

The scalars go to two places in the run folder (``checkpoint_dir/experiment_name``), so that a run is
one folder: TensorBoard event files (``tensorboard --logdir saved_models`` shows every run side by side)
and ``scalars.csv`` for a script or a spreadsheet. Both are cut back to the last finished epoch when a
run resumes, as ``metrics.jsonl`` is: the steps of an epoch a kill interrupted are logged again, once.
"""
from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from coala.atomic import atomic_write_text

SCALARS_CSV = "scalars.csv"
LOG_FILE = "train.log"
# Columns of every row besides the loss terms (which depend on the model kind).
STEP_COLUMNS = ("learning_rate", "grad_norm", "samples_per_second", "epoch_seconds_left", "run_seconds_left")


def gradient_norm(parameters: Iterable[nn.Parameter]) -> float:
    """The L2 norm of all gradients together, the number that shows a run drifting toward divergence
    before its losses do. Called on logged steps only: it waits for the step to finish."""
    norms = [p.grad.detach().float().norm() for p in parameters if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def _kept_rows(path: Path, header: list[str], last_step: int) -> list[str]:
    """The CSV's lines up to ``last_step`` under the same header; a torn last line (a kill mid-write),
    rows of an interrupted epoch and a file of other columns are dropped."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != ",".join(header):
        return []
    kept = []
    for line in lines[1:]:
        fields = line.split(",")
        if len(fields) == len(header) and fields[1].isdigit() and int(fields[1]) <= last_step:
            kept.append(line)
    return kept


class ScalarLog:
    """Scalars of one run, written as they come: one CSV row and one event per scalar at each logged step,
    and the epoch's train and validation losses as ``<term>/train`` and ``<term>/val`` at the epoch's last
    step, so the step and epoch curves share their x axis."""

    def __init__(self, folder: Path, terms: Sequence[str], last_step: int) -> None:
        self.header = ["epoch", "step", *terms, *STEP_COLUMNS]
        path = folder / SCALARS_CSV
        kept = _kept_rows(path, self.header, last_step)
        atomic_write_text(path, "".join(line + "\n" for line in [",".join(self.header), *kept]))
        self._csv = path.open("a", encoding="utf-8", newline="")
        # purge_step: TensorBoard hides the events an earlier, interrupted process wrote from this step on.
        self._events = SummaryWriter(str(folder), purge_step=last_step + 1)

    def step(self, epoch: int, step: int, values: Mapping[str, float]) -> None:
        row = io.StringIO()
        csv.writer(row, lineterminator="\n").writerow([epoch, step, *(_cell(values[k]) for k in self.header[2:])])
        self._csv.write(row.getvalue())
        self._csv.flush()
        for key, value in values.items():
            self._events.add_scalar(f"step/{key}", value, step)

    def epoch(self, step: int, terms: Sequence[str], record: Mapping[str, float]) -> None:
        for term in terms:
            for split in ("train", "val"):
                self._events.add_scalar(f"{term}/{split}", record[f"{split}_{term}"], step)
        self._events.flush()

    def close(self) -> None:
        self._csv.close()
        self._events.close()


def _cell(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.6g}"


@dataclass
class Clock:
    """The time left: steps still to take at the mean step time measured so far in this process, plus an
    evaluation (train sample and validation) per epoch at the time the last one took (0 until one ran)."""

    steps_per_epoch: int
    epochs: int
    seconds_stepping: float = 0.0
    steps_timed: int = 0
    evaluation_seconds: float = 0.0

    def stepped(self, steps: int, seconds: float) -> None:
        self.seconds_stepping += seconds
        self.steps_timed += steps

    def left(self, epoch: int, step_in_epoch: int) -> tuple[float, float]:
        """Seconds left in ``epoch`` (its evaluation included) and in the whole run, after ``step_in_epoch``."""
        per_step = self.seconds_stepping / max(self.steps_timed, 1)
        this_epoch = (self.steps_per_epoch - step_in_epoch) * per_step + self.evaluation_seconds
        return this_epoch, this_epoch + (self.epochs - epoch) * (self.steps_per_epoch * per_step + self.evaluation_seconds)


def duration(seconds: float) -> str:
    """``1 h 02 min``, ``4 min 05 s``, ``12 s``: the time left as a log line shows it."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class Interval:
    """The step losses of one logging interval, summed on the device (no sync per step), and its timer."""

    def __init__(self, n_terms: int, device: torch.device) -> None:
        self.sums = torch.zeros(n_terms, dtype=torch.float64, device=device)
        self.steps = 0
        self.started = time.perf_counter()

    def add(self, losses: torch.Tensor) -> None:
        self.sums += losses
        self.steps += 1

    def seconds(self) -> float:
        return time.perf_counter() - self.started
