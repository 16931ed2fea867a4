"""Reading many files: each file's per-file work (the front end, or the MFCC summary) in this process or
in DataLoader worker processes, as ``FileResult`` pieces in file order per worker.

A file's chunks come out as the streamed front end completes them (``coala.core.frontend.file_chunks``),
so a one-hour recording is never held whole. A file that cannot be processed becomes a
``FileResult`` with its reason: one bad file never stops a run.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from coala.core.frontend import BLOCK_SAMPLES, MinMaxScaler, file_chunks

# Workers prefetch this many files each, so a batch of short clips is ready when the model asks.
PREFETCH_FILES = 8

# A file's whole result, or its pieces in order (chunks as the front end completes them).
Compute = Callable[[Path], "np.ndarray | Iterator[np.ndarray]"]


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
