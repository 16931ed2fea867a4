"""Running under ``torchrun``: joining its process group, and the few agreements the processes need.

Training, ``encode.py`` and ``create_dataset.py`` share this: torchrun describes the job in the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), one node or
many, and its own rendezvous is the only service. torch.distributed (gloo on CPUs, NCCL on GPUs)
carries only small Python objects here: a plan, counts, failure lists. Without torchrun (``WORLD_SIZE``
unset or 1) nothing is joined and every helper is a no-op, so a plain run behaves as it always did.
"""
from __future__ import annotations

import contextlib
import heapq
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from coala.device import resolve_device
from coala.core.errors import CoalaError, PlanMismatchError

T = TypeVar("T")

SHARE_TIMEOUT = timedelta(hours=24)
"""How long a process that finished its share waits in a collective for the slowest one (encoding or a
dataset's spectrograms: hours on a large collection). It waits on a socket, without using the CPU; a
process that dies instead ends the job sooner, as torchrun then stops the others."""


@dataclass(frozen=True)
class Runtime:
    """This process's place in the job: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def label(self) -> str:
        return f"rank {self.rank} of {self.world_size}"


def start_runtime(device_name: str, timeout: timedelta | None = None) -> Runtime:
    """Join the process group torchrun describes in the environment, if any.

    On GPUs each process takes the device of its ``LOCAL_RANK``. ``timeout`` bounds how long a process
    waits in a collective for the others (torch's default when None); jobs whose processes finish their
    shares at different times pass a long one.
    """
    device = resolve_device(device_name)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Runtime(0, 1, device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    extra = {} if timeout is None else {"timeout": timeout}
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", **extra)
    return Runtime(dist.get_rank(), world_size, device)


@contextlib.contextmanager
def joined(device_name: str, timeout: timedelta | None = None) -> Iterator[Runtime]:
    """``start_runtime`` for the length of a ``with`` block; the group is left however the block ends."""
    runtime = start_runtime(device_name, timeout)
    try:
        yield runtime
    finally:
        if runtime.distributed:
            dist.destroy_process_group()


def on_main(runtime: Runtime, check: Callable[[], T]) -> T | None:
    """Run ``check`` on rank 0 only, and have every process raise the ``CoalaError`` it raised: no process
    goes on (and waits forever) while another stopped, and the data is read once, not once per process.

    Returns what ``check`` returned on rank 0, None on the others."""
    error: CoalaError | None = None
    result = None
    if runtime.main:
        try:
            result = check()
        except CoalaError as exc:
            error = exc
    if runtime.distributed:
        outcome = [error]
        dist.broadcast_object_list(outcome, src=0)
        error = outcome[0]
    if error is not None:
        raise error
    return result


def from_main(runtime: Runtime, make: Callable[[], T]) -> T:
    """``make()`` on rank 0, its value on every process (a plan decided once, from one view of the disk)."""
    value = make() if runtime.main else None
    if runtime.distributed:
        box = [value]
        dist.broadcast_object_list(box, src=0)
        value = box[0]
    return value


def gather(runtime: Runtime, value: T) -> list[T]:
    """Every process's ``value``, in rank order, on every process."""
    if not runtime.distributed:
        return [value]
    values: list = [None] * runtime.world_size
    dist.all_gather_object(values, value)
    return values


def agree(runtime: Runtime, settings: Mapping[str, Any]) -> None:
    """Refuse to start when any process was given other ``settings`` than rank 0 (each process's own
    command line: a node started with other arguments would write other outputs under the same names).

    Every process raises the same ``PlanMismatchError``, naming the first setting that differs."""
    views = gather(runtime, dict(settings))
    for rank, view in enumerate(views[1:], start=1):
        for key in sorted(set(views[0]) | set(view)):
            if view.get(key) != views[0].get(key):
                raise PlanMismatchError(f"rank {rank} of {runtime.world_size} was started with {key} {view.get(key)!r}, "
                                        f"rank 0 with {views[0].get(key)!r}: every process must get the same arguments")


def file_weight(path: Path) -> int:
    """A file's weight in ``balanced_shares`` (its size); one gone meanwhile weighs 0 and fails when
    computed, where it is listed like any bad file, not here in the plan."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def balanced_shares(weights: Sequence[int], world_size: int) -> list[list[int]]:
    """Indices of ``weights`` per rank, each share in ascending order, the totals as even as a greedy
    can make them: the heaviest item first, each to the least loaded rank (ties to the lower rank).

    Deterministic, so every process computes the same split; weights are file sizes, so one rank does
    not get all the long files as a split by position would when long files sit together."""
    loads = [(0, 0, rank) for rank in range(world_size)]  # (total weight, items, rank)
    shares: list[list[int]] = [[] for _ in range(world_size)]
    for index in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        load, items, rank = heapq.heappop(loads)
        shares[rank].append(index)
        heapq.heappush(loads, (load + weights[index], items + 1, rank))
    return [sorted(share) for share in shares]


def round_robin(n: int, runtime: Runtime) -> range:
    """This rank's indices of ``n`` items that cost nothing (already done): counted, not balanced."""
    return range(runtime.rank, n, runtime.world_size)
