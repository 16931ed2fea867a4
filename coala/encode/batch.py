"""Embedding extraction at scale: many files decoded in a DataLoader, their chunks batched through the model.

The paper's script ran one file at a time: decode, spectrogram, a forward pass of a handful of chunks.
Here a ``FileStream`` does the per-file work (decode, pad, log-mel, scale; or the MFCC summary) in
DataLoader worker processes when ``workers > 0``. A file's chunks come out as the streamed front end
completes them (``coala.audio.frontend.iter_spectrogram``), so a one-hour recording is never held
whole: the pieces of consecutive files are concatenated into batches of about ``batch_size`` chunks,
sent through the model in one forward each, and the outputs are gathered back per file. Every file's
numbers are those of ``encode.extract_audio_embedding_chunks``; only the batch a chunk rides in
changes, which moves results by float32 rounding at most.

A file that cannot be processed does not stop the run: it is reported with its reason, and the run
writes them to ``failures.tsv`` beside its outputs.
"""
from __future__ import annotations

import fcntl
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from coala import assets
from coala.atomic import atomic_write, atomic_write_text, remove_stale_temporaries, require_writable_folder
from coala.audio.frontend import AUDIO_SUFFIXES, BLOCK_SAMPLES, iter_spectrogram
from coala.audio.patches import iter_chunks
from coala.audio.scaler import MinMaxScaler
from coala.cli import RunSummary, progress_bar
from coala.distributed import Runtime, balanced_shares, file_weight, from_main, gather, round_robin
from coala.encode.inference import embed_patches, inference_model
from coala.encode.shards import EmbeddingFolder, ShardWriter, clip_name
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

# A file's whole result, or its pieces in order (chunks as the front end completes them).
Compute = Callable[[Path], "np.ndarray | Iterator[np.ndarray]"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileJob:
    """One input file and the ``.npy`` its result goes to."""

    source: Path
    output: Path


@dataclass(frozen=True)
class FileResult:
    """What became of the ``index``-th file: a value (chunks, features or embeddings) or an error reason.

    A file's value may come in several pieces, in order; ``last`` marks its final one. An error ends
    the file and voids the pieces before it.
    """

    index: int
    value: Any = None
    error: str | None = None
    last: bool = True


def file_chunks(path: Path, scaler: MinMaxScaler, block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """A file's scaled 96x96 chunks, ``(k, 96, 96)`` at a time as the streamed front end completes them:
    together exactly what ``extract_audio_embedding_chunks`` feeds."""
    for chunks in iter_chunks(iter_spectrogram(path, block_samples=block_samples)):
        yield scaler.transform(chunks)


def chunk_computer(scaler: MinMaxScaler, block_samples: int = BLOCK_SAMPLES) -> Compute:
    """The per-file work of embedding extraction, as a picklable callable for worker processes."""
    return partial(file_chunks, scaler=scaler, block_samples=block_samples)


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
    return " ".join(str(reason).split())


class FileStream(IterableDataset):
    """``compute(path)`` for each file, as ``FileResult`` pieces; failures become ``FileResult.error``.

    With DataLoader workers, worker ``i`` of ``n`` takes files ``i, i + n, ...``: the pieces of
    different files then interleave, and every piece carries its file's index.
    """

    def __init__(self, paths: Sequence[Path], compute: Compute) -> None:
        self.paths = list(paths)
        self.compute = compute

    def __iter__(self) -> Iterator[FileResult]:
        worker = get_worker_info()
        indices = range(len(self.paths)) if worker is None else range(worker.id, len(self.paths), worker.num_workers)
        for index in indices:
            yield from self._pieces(index)

    def _pieces(self, index: int) -> Iterator[FileResult]:
        # One piece is held back so that the file's final piece can be marked ``last``.
        previous = None
        try:
            value = self.compute(self.paths[index])
            for piece in ([value] if isinstance(value, np.ndarray) else value):
                if previous is not None:
                    yield FileResult(index, previous, last=False)
                previous = piece
        except Exception as exc:  # decoders and librosa raise many types; any of them is this file's failure
            yield FileResult(index, error=_reason(exc))
            return
        yield FileResult(index, previous) if previous is not None else FileResult(index, error="gave no output")


def _as_is(item: FileResult) -> FileResult:
    return item


def iter_files(paths: Sequence[Path], compute: Compute, workers: int = 0) -> Iterator[FileResult]:
    """``FileResult`` pieces of every file; ``workers`` DataLoader processes do the work (0: this process,
    files one after the other).

    On 2 cores, workers only compete with the model for the CPU (in-process was fastest); with more
    cores, or a GPU, they are what keeps the model fed.
    """
    extra = {"prefetch_factor": PREFETCH_FILES, "persistent_workers": False} if workers > 0 else {}
    loader = DataLoader(FileStream(paths, compute), batch_size=None, num_workers=workers, collate_fn=_as_is, **extra)
    yield from loader


def whole_files(results: Iterable[FileResult]) -> Iterator[FileResult]:
    """Each file's pieces concatenated into one result, yielded when its last piece arrives."""
    held: dict[int, list[np.ndarray]] = {}
    for result in results:
        if result.error is not None:
            held.pop(result.index, None)
            yield result
            continue
        pieces = held.setdefault(result.index, [])
        pieces.append(result.value)
        if result.last:
            del held[result.index]
            yield FileResult(result.index, pieces[0] if len(pieces) == 1 else np.concatenate(pieces))


class _Outputs:
    """Model outputs gathered per file from the forwards its pieces rode in, released in file order.

    Finished files wait for the files before them (a few, when workers interleave files), so callers
    get one result per file in the order of the paths.
    """

    def __init__(self) -> None:
        self.parts: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.finished: dict[int, FileResult] = {}
        self.next_index = 0

    def add(self, index: int, outputs: tuple[torch.Tensor, torch.Tensor], last: bool) -> None:
        self.parts.setdefault(index, []).append(outputs)
        if last:
            parts = self.parts.pop(index)
            self.finished[index] = FileResult(index, (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])))

    def fail(self, result: FileResult) -> None:
        self.parts.pop(result.index, None)
        self.finished[result.index] = result

    def release(self) -> Iterator[FileResult]:
        while self.next_index in self.finished:
            yield self.finished.pop(self.next_index)
            self.next_index += 1


def _embed_pending(model: nn.Module, pending: list[FileResult], batch_size: int, outputs: _Outputs) -> None:
    """One forward per ``batch_size`` chunks of the concatenated pieces, split back per piece."""
    chunks = np.concatenate([r.value for r in pending])
    forwards = [embed_patches(model, chunks[start:start + batch_size]) for start in range(0, len(chunks), batch_size)]
    first = torch.cat([o[0] for o in forwards])
    second = torch.cat([o[1] for o in forwards])
    splits = [len(r.value) for r in pending]
    for result, a, b in zip(pending, first.split(splits), second.split(splits)):
        outputs.add(result.index, (a, b), result.last)


def embed_stream(model: nn.Module, results: Iterable[FileResult], batch_size: int = CPU_BATCH_SIZE,
                 bf16: bool = False) -> Iterator[FileResult]:
    """Turn per-file chunk pieces into per-file ``(embedding, embedding_d)`` results, in file order.

    Consecutive pieces' chunks are gathered until the next piece would overflow ``batch_size`` chunks;
    a piece longer than that is run in several forwards. A file's outputs are held until its last piece
    is through the model, so a long file never holds more than one batch of chunks. The forwards run on
    ``inference_model(model, bf16)``, BatchNorm folded into the convolutions.
    """
    model = inference_model(model, bf16)
    outputs = _Outputs()
    pending: list[FileResult] = []
    n_pending = 0
    for result in results:
        if result.error is not None:
            pending = [p for p in pending if p.index != result.index]
            n_pending = sum(len(p.value) for p in pending)
            outputs.fail(result)
        else:
            if pending and n_pending + len(result.value) > batch_size:
                _embed_pending(model, pending, batch_size, outputs)
                pending, n_pending = [], 0
            pending.append(result)
            n_pending += len(result.value)
        yield from outputs.release()
    if pending:
        _embed_pending(model, pending, batch_size, outputs)
    yield from outputs.release()


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


def _read_failures(path: Path) -> dict[str, str]:
    """``path -> reason`` of a failure list (reasons never hold tabs; a path might)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
    except FileNotFoundError:
        return {}
    return dict(line.rsplit("\t", 1) for line in lines if "\t" in line)


def _done_check(folder: Path, shards: bool) -> Callable[[FileJob], bool]:
    """Whether a job's output exists now: its ``.npy``, or with shards its clip in a completed shard (or
    in a ``.npy`` of its own, as a folder begun in the other layout is read as one)."""
    if not shards:
        return lambda job: job.output.exists()
    written = EmbeddingFolder(folder)
    return lambda job: clip_name(job.output, folder) in written


def _update_failures(path: Path, tasks: Sequence[FileJob], failures: list[tuple[Path, str]],
                     done: Callable[[FileJob], bool]) -> None:
    """Merge this run's failures into the list at ``path``, or remove the list when nothing is left.

    Entries stay until their file is encoded: an earlier entry goes when its file is one of this run's
    and its output now exists (``done``); entries of files this run did not take are kept, so runs on other files
    (or at the same time) into the same folder do not lose each other's failures. The read-merge-write
    runs under an exclusive ``flock`` of ``<list>.lock`` beside it (left in place: removing a lock file
    others may be waiting on would break the exclusion).
    """
    if not failures and not path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    jobs = {str(task.source): task for task in tasks}
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = {source: reason for source, reason in _read_failures(path).items()
                  if not (source in jobs and done(jobs[source]))}
        merged.update((str(source), reason) for source, reason in failures)
        if merged:
            atomic_write_text(path, "path\treason\n" + "".join(f"{p}\t{reason}\n" for p, reason in merged.items()))
        else:
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Claims:
    """What a run will do with its tasks, decided from one view of the disk before any output is written:
    indices of the tasks to compute, how many are skipped (their output exists), the tasks that name an
    output an earlier task already claimed (failures), and, under torchrun, the todo files' sizes."""

    todo: list[int]
    skipped: int
    duplicates: list[tuple[Path, str]]
    sizes: list[int]


def _claim(tasks: Sequence[FileJob], overwrite: bool, with_sizes: bool, done: Callable[[FileJob], bool]) -> _Claims:
    duplicates: list[tuple[Path, str]] = []
    claimed: dict[Path, Path] = {}
    todo: list[int] = []
    skipped = 0
    for index, task in enumerate(tasks):
        if task.output in claimed:
            duplicates.append((task.source, f"same output {task.output} as {claimed[task.output]}"))
        elif not overwrite and done(task):
            claimed[task.output] = task.source
            skipped += 1
        else:
            claimed[task.output] = task.source
            todo.append(index)
    return _Claims(todo, skipped, duplicates, [file_weight(tasks[i].source) for i in todo] if with_sizes else [])


def run_extraction(tasks: Sequence[FileJob], compute: Compute, failures_path: Path, model: nn.Module | None = None,
                   batch_size: int = CPU_BATCH_SIZE, workers: int = 0, overwrite: bool = False,
                   progress: bool = True, bf16: bool = False, output: int = 0,
                   runtime: Runtime | None = None, shard_bytes: int | None = None) -> RunSummary:
    """Compute, embed (when ``model`` is given) and write every task's ``.npy``; the CLI's whole job.

    Jobs whose output exists are skipped unless ``overwrite``; outputs are written atomically, so an
    interrupted run leaves only complete files and resumes where it stopped. With a model the file's
    model output number ``output`` is saved: 0, the embedding ``z``, as the paper's script did; 1, an
    encoder's contrastive projection ``z_d`` (what ``search.py`` indexes); ``bf16`` runs the model
    under bfloat16 autocast (``inference_model``). Failures are merged into ``failures_path``
    (``_update_failures``).

    With ``shard_bytes`` the outputs go into shards of about that many bytes in the folder of
    ``failures_path`` instead (``coala.encode.shards``): a job is done when its clip is in a completed
    shard, and an interruption loses only the shard being filled.

    Under torchrun (``runtime.distributed``) rank 0 decides what is to do and every process computes its
    ``balanced_shares`` of it, by file size; rank 0 then merges every process's failures into the list
    once, in the order one process would have written them. The summary holds this process's counts.
    """
    distributed = runtime is not None and runtime.distributed
    shards = shard_bytes is not None
    output_root = failures_path.parent
    require_writable_folder(output_root, "output")
    remove_stale_temporaries(output_root, recursive=True)  # only temporaries of dead writers: safe beside other ranks
    if distributed:
        claims = from_main(runtime, lambda: _claim(tasks, overwrite, True, _done_check(output_root, shards)))
        mine = [claims.todo[i] for i in balanced_shares(claims.sizes, runtime.world_size)[runtime.rank]]
        summary = RunSummary(skipped=len(round_robin(claims.skipped, runtime)))
        progress = progress and runtime.main  # one bar, not one per process over each other
    else:
        claims = _claim(tasks, overwrite, False, _done_check(output_root, shards))
        mine = claims.todo
        summary = RunSummary(skipped=claims.skipped)
    todo = [tasks[i] for i in mine]
    shard_writer = ShardWriter(output_root, shard_bytes, runtime.rank if distributed else 0) if shards else None
    failed: list[tuple[int, Path, str]] = []  # (task index, source, reason) of this process's share
    # numpy's BLAS threads and torch's threads fight over the cores (perf notes); torch does the math here.
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(WRITER_THREADS) as writer, \
            progress_bar(None, progress, total=len(todo), unit="file") as bar:
        results = iter_files([t.source for t in todo], compute, workers)
        results = whole_files(results) if model is None else embed_stream(model, results, batch_size, bf16)
        writes: deque[Future] = deque()
        try:
            for result in results:
                task = todo[result.index]
                if result.error is not None:
                    failed.append((mine[result.index], task.source, result.error))
                else:
                    value = np.asarray(result.value[output] if model is not None else result.value, dtype=np.float32)
                    if not np.isfinite(value).all():
                        # A scaler or weights out of range give NaN or Inf: never a silent embedding file.
                        failed.append((mine[result.index], task.source,
                                       "non-finite values in the output (check the scaler and model)"))
                        bar.update(1)
                        continue
                    if shard_writer is not None:
                        shard_writer.add(clip_name(task.output, output_root), task.source, value)
                    else:
                        writes.append(writer.submit(_write_npy, task.output, value))
                        if len(writes) > MAX_PENDING_WRITES:
                            writes.popleft().result()
                    summary.done += 1
                bar.update(1)
            while writes:
                writes.popleft().result()  # a write error (disk full, no permission) ends the run here
            if shard_writer is not None:
                shard_writer.close()
        finally:
            writes_list = not distributed or runtime.main
            summary.failed = len(failed) + (len(claims.duplicates) if writes_list else 0)
            if not distributed:
                failures = claims.duplicates + [(source, reason) for _, source, reason in failed]
                _update_failures(failures_path, tasks, failures, _done_check(output_root, shards))
    if distributed:
        # A process that died before this point loses the list of its failures, not its outputs: a rerun
        # computes its unfinished and failed files again and lists those that still fail.
        everyone = sorted(f for share in gather(runtime, failed) for f in share)
        failures = claims.duplicates + [(source, reason) for _, source, reason in everyone]
        if runtime.main:
            _update_failures(failures_path, tasks, failures, _done_check(output_root, shards))
    if failures and writes_list:
        summary.failure_files.append(failures_path)
    return summary
