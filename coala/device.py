"""Choosing the torch device from a name (training's ``device`` key and ``encode.py --device`` alike),
and what the machine can hold."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from coala.core.errors import ConfigError

# Each DataLoader worker (training's num_workers, encode.py's --workers) is a process forked when the
# loader starts, a copy of the parent: a value in the thousands is a typo that would swamp the machine.
MAX_WORKERS = 64
# The value of a setting that the machine decides: training's ``device`` and ``amp`` keys.
AUTO = "auto"


def resolve_device(name: str) -> torch.device:
    """``"auto"`` is CUDA when present, else CPU; a name torch does not know, or a CUDA device that is not
    there, is a ``ConfigError`` (training's ``device`` key and encode.py's ``--device`` alike)."""
    if name == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r}: not a device name (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f'device {name!r}: CUDA is not available on this machine (use "cpu" or "auto")')
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return device


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 training was measured faster than float32 on this kind of device, at equal quality.

    On a CPU with bf16 instructions (AVX-512 BF16 or AMX) it was, with the same downstream accuracy and
    retrieval mAP; on a CPU without them bf16 runs many times slower (docs/performance.md#bf16). No GPU
    has been measured yet: CUDA stays float32 until ``bench/gpu_check.sh`` says otherwise.
    """
    if device.type != "cpu":
        return False
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_amp(amp: bool | str, device: torch.device) -> bool:
    """Training's ``amp`` key: ``true`` or ``false`` as given, ``"auto"`` bf16 where ``bf16_is_fast``."""
    return bf16_is_fast(device) if amp == AUTO else bool(amp)


# The memory limits that bind a process: the machine's, and its container's (cgroup v2, then v1).
MEMINFO = Path("/proc/meminfo")
CGROUP_LIMITS = ((Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
                 (Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"), Path("/sys/fs/cgroup/memory/memory.usage_in_bytes")))


def available_memory() -> int | None:
    """Bytes this process could still allocate without swapping: the machine's available memory, or its
    container's limit less its use when that is lower; None where neither can be read (not Linux).

    Checked before a load sized by a file (``in_memory`` training data), so that a file larger than the
    memory is one line, not a kernel's OOM kill an hour later.
    """
    sizes = []
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                sizes.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in CGROUP_LIMITS:
        try:
            limit, usage = limit_file.read_text().strip(), int(usage_file.read_text())
            if limit != "max":
                sizes.append(max(0, int(limit) - usage))
            break
        except (OSError, ValueError):
            continue
    if not sizes and hasattr(os, "sysconf"):
        try:
            sizes.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError):
            pass
    return min(sizes) if sizes else None
