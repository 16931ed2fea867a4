"""Loading checkpoints in the paper's format: plain ``state_dict``s, legacy (torch < 1.6) or zip."""
from __future__ import annotations

import inspect
import pickle
import zipfile
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)

# The last Linear of each tag-sized model: its output (or input) width is the vocabulary size.
_TAG_WIDTH_KEYS = {"tag_encoder.0.weight": 1, "tag_decoder.7.weight": 0, "fc.2.weight": 0}


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message names file and keys."""


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


def infer_n_tags(state: dict[str, torch.Tensor]) -> int | None:
    """The vocabulary size a tag-sized checkpoint was trained with, or None for audio-only models."""
    for key, dim in _TAG_WIDTH_KEYS.items():
        if key in state:
            return int(state[key].shape[dim])
    return None


def build_model(model_class: type[M], state: dict[str, torch.Tensor]) -> M:
    """Instantiate ``model_class`` with the vocabulary size the checkpoint implies, when it takes one."""
    n_tags = infer_n_tags(state)
    if n_tags is not None and "n_tags" in inspect.signature(model_class).parameters:
        return model_class(n_tags=n_tags)
    return model_class()


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


def load_model(model_class: type[M], path: str | Path, device: str | torch.device = "cpu") -> M:
    """A ``model_class`` instance holding the checkpoint's weights, in eval mode, on ``device``."""
    state = read_state_dict(path)
    model = build_model(model_class, state)
    load_into(model, state, path)
    return model.to(device).eval()
