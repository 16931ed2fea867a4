"""Choosing the torch device from a name: training's ``device`` key and ``encode.py --device`` alike."""
from __future__ import annotations

import torch

from coala.errors import ConfigError

# Each DataLoader worker (training's num_workers, encode.py's --workers) is a process forked when the
# loader starts, a copy of the parent: a value in the thousands is a typo that would swamp the machine.
MAX_WORKERS = 64


def resolve_device(name: str) -> torch.device:
    """``"auto"`` is CUDA when present, else CPU; a name torch does not know, or a CUDA device that is not
    there, is a ``ConfigError`` (training's ``device`` key and encode.py's ``--device`` alike)."""
    if name == "auto":
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
