"""Embedding extraction at scale: many files decoded in a DataLoader, their chunks batched through the model.

The paper's script ran one file at a time: decode, spectrogram, a forward pass of a handful of chunks.
Here a ``FileDataset`` does the per-file work (decode, pad, log-mel, scale; or the MFCC summary) in
DataLoader worker processes when ``workers > 0``, the chunks of consecutive files are concatenated into
batches of about ``batch_size`` and sent through the model in one forward each, and the batch output
is split back into files at the remembered split points. Every file's numbers are those of
``encode.extract_audio_embedding_chunks``; only the batch a chunk rides in changes, which moves
results by float32 rounding at most.

A file that cannot be processed does not stop the run: it is reported with its reason, and the run
writes them to ``failures.tsv`` beside its outputs.
"""
from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn
from torch.utils.data import DataLoader, Dataset

from coala import assets
from coala.atomic import atomic_write, atomic_write_text
from coala.audio.frontend import AUDIO_SUFFIXES, compute_spectrogram
from coala.audio.patches import scaled_chunks
from coala.audio.scaler import MinMaxScaler
from coala.cli import progress_bar
from coala.encode.inference import embed_patches, inference_model
from coala.errors import UsageError
from coala.evaluation.datasets import DOWNSTREAM

# Chunks per forward pass. On the CPU, forwards of at most 16 chunks keep the 48x48 activations in
# cache: 1.3 ms per chunk on 2 cores against 3.3 ms in forwards of 128 (measured here with the paper's
# encoder in float32). A GPU wants large batches.
CPU_BATCH_SIZE = 16
GPU_BATCH_SIZE = 256
FAILURES_FILE = "failures.tsv"
# Workers prefetch this many files each, so a batch of short clips is ready when the model asks.
PREFETCH_FILES = 8
# Atomic writes fsync each file (5-10 ms here, as long as computing a short clip): threads do them while
# the next files are computed. A bound on waiting writes keeps memory flat when the disk is slow.
WRITER_THREADS = 2
MAX_PENDING_WRITES = 256

Compute = Callable[[Path], np.ndarray]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileJob:
    """One input file and the ``.npy`` its result goes to."""

    source: Path
    output: Path


@dataclass(frozen=True)
class FileResult:
    """What became of the ``index``-th file: a value (chunks, features or embeddings) or an error reason."""

    index: int
    value: Any = None
    error: str | None = None


@dataclass
class RunSummary:
    """Counts of one run (or several, added up) and where its failure lists are, for the last line."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    failure_files: list[Path] = field(default_factory=list)

    def add(self, other: "RunSummary") -> None:
        self.done += other.done
        self.skipped += other.skipped
        self.failed += other.failed
        self.failure_files += other.failure_files

    def line(self) -> str:
        where = f" (reasons in {', '.join(map(str, self.failure_files))})" if self.failure_files else ""
        return f"done {self.done}, skipped {self.skipped}, failed {self.failed}{where}"


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def file_chunks(path: Path, scaler: MinMaxScaler) -> np.ndarray:
    """A file's scaled 96x96 chunks ``(n, 96, 96)``: exactly what ``extract_audio_embedding_chunks`` feeds."""
    return scaled_chunks(compute_spectrogram(path), scaler)


def chunk_computer(scaler: MinMaxScaler) -> Compute:
    """The per-file work of embedding extraction, as a picklable callable for worker processes."""
    return partial(file_chunks, scaler=scaler)


class FileDataset(Dataset):
    """``compute(path)`` for each file; failures become ``FileResult.error`` instead of exceptions."""

    def __init__(self, paths: Sequence[Path], compute: Compute) -> None:
        self.paths = list(paths)
        self.compute = compute

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> FileResult:
        # One file's STFT and mel product are small operations: on a busy 2-core machine two threads made
        # them 3-8x slower than one (each parallel region waits for a preempted thread). The model's
        # large batches keep every thread.
        try:
            with torch_threads(1):
                return FileResult(index, self.compute(self.paths[index]))
        except Exception as exc:  # decoders and librosa raise many types; any of them is this file's failure
            reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
            return FileResult(index, error=" ".join(str(reason).split()))


def _as_is(item: FileResult) -> FileResult:
    return item


def iter_files(paths: Sequence[Path], compute: Compute, workers: int = 0) -> Iterator[FileResult]:
    """``FileResult``s in file order; ``workers`` DataLoader processes do the work (0: this process).

    On 2 cores, workers only compete with the model for the CPU (in-process was fastest); with more
    cores, or a GPU, they are what keeps the model fed.
    """
    extra = {"prefetch_factor": PREFETCH_FILES, "persistent_workers": False} if workers > 0 else {}
    loader = DataLoader(FileDataset(paths, compute), batch_size=None, shuffle=False, num_workers=workers,
                        collate_fn=_as_is, **extra)
    yield from loader


def _embed_pending(model: nn.Module, pending: list[FileResult], batch_size: int) -> Iterator[FileResult]:
    """One forward per ``batch_size`` chunks of the concatenated files, split back per file."""
    chunks = np.concatenate([r.value for r in pending])
    outputs = [embed_patches(model, chunks[start:start + batch_size]) for start in range(0, len(chunks), batch_size)]
    first = torch.cat([o[0] for o in outputs])
    second = torch.cat([o[1] for o in outputs])
    splits = [len(r.value) for r in pending]
    for result, a, b in zip(pending, first.split(splits), second.split(splits)):
        yield FileResult(result.index, (a, b))


def embed_stream(model: nn.Module, results: Iterable[FileResult],
                 batch_size: int = CPU_BATCH_SIZE) -> Iterator[FileResult]:
    """Turn per-file chunk results into per-file ``(embedding, embedding_d)`` results.

    Consecutive files' chunks are gathered until the next file would overflow ``batch_size`` chunks;
    a single file longer than that is run in several forwards. Failed files pass through at once.
    The forwards run on ``inference_model(model)``, BatchNorm folded into the convolutions.
    """
    model = inference_model(model)
    pending: list[FileResult] = []
    n_pending = 0
    for result in results:
        if result.error is not None:
            yield result
            continue
        if pending and n_pending + len(result.value) > batch_size:
            yield from _embed_pending(model, pending, batch_size)
            pending, n_pending = [], 0
        pending.append(result)
        n_pending += len(result.value)
    if pending:
        yield from _embed_pending(model, pending, batch_size)


def default_batch_size(device: torch.device) -> int:
    return CPU_BATCH_SIZE if device.type == "cpu" else GPU_BATCH_SIZE


def embedding_name(checkpoint: str | Path) -> str:
    """The paper's embedding folder name: ``embeddings_<checkpoint folder>_<epoch>``.

    ``saved_models/dual_ae_c/audio_encoder_epoch_200.pt`` -> ``embeddings_dual_ae_c_200``; a file not
    named ``*_epoch_<N>.pt`` contributes its stem instead of the epoch.
    """
    path = Path(checkpoint).resolve()
    epoch = assets.checkpoint_epoch(path)
    return f"embeddings_{path.parent.name}_{path.stem if epoch is None else epoch}"


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


def _write_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, array))


def _write_failures(path: Path, failures: list[tuple[Path, str]]) -> None:
    """The run's failures, or no file when there were none (a stale list from an earlier run is removed)."""
    if failures:
        atomic_write_text(path, "path\treason\n" + "".join(f"{p}\t{reason}\n" for p, reason in failures))
    else:
        path.unlink(missing_ok=True)


def run_extraction(tasks: Sequence[FileJob], compute: Compute, failures_path: Path, model: nn.Module | None = None,
                   batch_size: int = CPU_BATCH_SIZE, workers: int = 0, overwrite: bool = False,
                   progress: bool = True) -> RunSummary:
    """Compute, embed (when ``model`` is given) and write every task's ``.npy``; the CLI's whole job.

    Jobs whose output exists are skipped unless ``overwrite``; outputs are written atomically, so an
    interrupted run leaves only complete files and resumes where it stopped. With a model the file's
    first model output (the embedding ``z``) is saved, as the paper's script did.
    """
    summary = RunSummary()
    failures: list[tuple[Path, str]] = []
    claimed: dict[Path, Path] = {}
    todo: list[FileJob] = []
    for task in tasks:
        if task.output in claimed:
            failures.append((task.source, f"same output {task.output} as {claimed[task.output]}"))
        elif not overwrite and task.output.exists():
            claimed[task.output] = task.source
            summary.skipped += 1
        else:
            claimed[task.output] = task.source
            todo.append(task)
    # numpy's BLAS threads and torch's threads fight over the cores (perf notes); torch does the math here.
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(WRITER_THREADS) as writer, \
            progress_bar(None, progress, total=len(todo), unit="file") as bar:
        results = iter_files([t.source for t in todo], compute, workers)
        if model is not None:
            results = embed_stream(model, results, batch_size)
        writes: deque[Future] = deque()
        try:
            for result in results:
                task = todo[result.index]
                if result.error is not None:
                    failures.append((task.source, result.error))
                else:
                    value = result.value[0] if model is not None else result.value
                    writes.append(writer.submit(_write_npy, task.output, np.asarray(value, dtype=np.float32)))
                    if len(writes) > MAX_PENDING_WRITES:
                        writes.popleft().result()
                    summary.done += 1
                bar.update(1)
            while writes:
                writes.popleft().result()  # a write error (disk full, no permission) ends the run here
        finally:
            summary.failed = len(failures)
            _write_failures(failures_path, failures)
    if failures:
        summary.failure_files.append(failures_path)
    return summary
