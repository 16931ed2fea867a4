"""A whole extraction run: what is done already, each process's share, the forwards, atomic writes and
the failure list; the CLI's whole job (``encode.py``, ``search.py index``)."""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from torch import nn

from coala.atomic import atomic_write, remove_stale_temporaries, require_writable_folder
from coala.cli import RunSummary, progress_bar
from coala.core.errors import UsageError
from coala.core.model import CPU_BATCH_SIZE, MAX_BATCH_SIZE
from coala.device import MAX_WORKERS
from coala.distributed import Runtime, balanced_shares, file_weight, from_main, gather, round_robin
from coala.encode.failures import update_failures
from coala.encode.files import Compute, iter_files, whole_files
from coala.encode.jobs import FileJob
from coala.encode.shards import EmbeddingFolder, ShardWriter, clip_name
from coala.encode.stream import embed_stream

# Atomic writes fsync each file (5-10 ms here, as long as computing a short clip): threads do them while
# the next files are computed. A bound on waiting writes keeps memory flat when the disk is slow.
WRITER_THREADS = 2
MAX_PENDING_WRITES = 256
log = logging.getLogger(__name__)


def check_extraction_options(batch_size: int | None, workers: int | None) -> None:
    """``--batch-size`` and ``--workers`` of the commands that extract (``encode.py``, ``search.py index``),
    checked before any model is loaded; None is the command's default."""
    if (batch_size is not None and batch_size < 1) or (workers is not None and not 0 <= workers <= MAX_WORKERS):
        raise UsageError(f"--batch-size must be at least 1 and --workers between 0 and {MAX_WORKERS}")
    if batch_size is not None and batch_size > MAX_BATCH_SIZE:
        raise UsageError(f"--batch-size must be at most {MAX_BATCH_SIZE} chunks, got {batch_size}")


def _write_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, array))


def _done_check(folder: Path, shards: bool) -> Callable[[FileJob], bool]:
    """Whether a job's output exists now: its ``.npy``, or with shards its clip in a completed shard (or
    in a ``.npy`` of its own, as a folder begun in the other layout is read as one)."""
    if not shards:
        return lambda job: job.output.exists()
    written = EmbeddingFolder(folder)
    return lambda job: clip_name(job.output, folder) in written


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
                update_failures(failures_path, tasks, failures, _done_check(output_root, shards))
    if distributed:
        # A process that died before this point loses the list of its failures, not its outputs: a rerun
        # computes its unfinished and failed files again and lists those that still fail.
        everyone = sorted(f for share in gather(runtime, failed) for f in share)
        failures = claims.duplicates + [(source, reason) for _, source, reason in everyone]
        if runtime.main:
            update_failures(failures_path, tasks, failures, _done_check(output_root, shards))
    if failures and writes_list:
        summary.failure_files.append(failures_path)
    return summary
