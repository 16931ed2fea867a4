"""Loading checkpoints in the paper's format (plain ``state_dict``s, legacy torch < 1.6 or zip): one loader."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from coala import assets
from coala.errors import CheckpointError
from coala.models.registry import Network, detect, network_of

M = TypeVar("M", bound=nn.Module)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` on CPU, with one-line errors for unreadable files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, AttributeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({first_line})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state_dict of tensors, found {type(state).__name__}")
    return state


def load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """``load_state_dict(strict=True)`` with an error that names the mismatching keys, not a traceback."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    problems = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatch", wrong_shape)):
        if keys:
            shown = ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError(f"{source}: does not fit {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def load_checkpoint(path: str | Path | None, network: type[M] | Network | tuple[str, ...] | None = None,
                    device: str | torch.device = "cpu") -> M:
    """The network in a checkpoint, sized from it, strictly loaded, in eval mode on ``device``.

    ``network`` is a class or registry entry to load into, or a tuple of registry names to choose from
    by the checkpoint's keys (None: any network). A relative ``path`` that does not exist from the
    current folder is looked up under the asset root; None means the paper's published checkpoint of
    ``network`` (see ``coala.assets``).
    """
    if isinstance(network, type):
        network = network_of(network)
    if path is None:
        if not isinstance(network, Network):
            raise CheckpointError("no checkpoint named, and no single network to take the default one for")
        path = assets.default_path(assets.pretrained_checkpoint(network.name))
    path = assets.locate(path)
    state = read_state_dict(path)
    if not isinstance(network, Network):
        network = detect(state, path, network)
    model = network.build(state)
    load_into(model, state, path)
    return model.to(device).eval()
