"""What a training run leaves on disk: the paper's checkpoints and a resumable training state.

Checkpoints are plain ``state_dict``s under the paper's names, loadable by its classes. The training
state (weights, optimizers, last finished epoch, RNG states, metrics) is one file rewritten atomically
after each epoch, so a ``kill -9`` at any moment leaves either the previous or the new state, never a
torn one, and a rerun continues from the last finished epoch.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from coala import assets
from coala.atomic import atomic_path
from coala.data.checks import Fingerprint, fingerprint_difference
from coala.core.errors import CheckpointError, StateError
from coala.core.frontend import MinMaxScaler
from coala.core.model import ModelDims
from coala.models.checkpoints import load_into, read_state_dict
from coala.models.record import ModelRecord, write_model_folder
from coala.train.config import TrainConfig, config_defaults

log = logging.getLogger(__name__)
_CONFIG_DEFAULTS = config_defaults()

STATE_FILE = "training_state.pt"
# What a state holds and of which type; anything else is not a state this code wrote.
_STATE_KEYS = {"epoch": int, "config": dict, "models": dict, "optimizers": list, "metrics": list, "rng": list}
# Settings that change what the saved optimisation trajectory means; resuming across a change is refused.
TRAJECTORY_KEYS = ("model", "train_dataset_file", "audio_loss_weight", "tag_loss_weight", "contrastive_loss_weight",
                   "contrastive_temperature", "batch_size", "learning_rate", "seed", "word_vectors", "word_dim",
                   "attention_heads")


def checkpoint_path(folder: Path, part: str, epoch: int) -> Path:
    return folder / assets.checkpoint_name(part, epoch)


def _plain(module: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU ``state_dict`` with default (contiguous) layout, as the paper's classes produce it."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save_checkpoints(folder: Path, parts: dict[str, nn.Module], epoch: int) -> None:
    for name, module in parts.items():
        with atomic_path(checkpoint_path(folder, name, epoch)) as tmp:
            torch.save(_plain(module), tmp)


def save_model_folder(cfg: TrainConfig, dims: ModelDims, parts: dict[str, nn.Module], epoch: int,
                      scaler: MinMaxScaler | None, vocabulary: list[str], data: dict[str, Fingerprint],
                      extra: dict[str, Any]) -> None:
    """The run folder's record and safetensors weights of ``epoch`` (``coala.models.record``): what every
    tool reads to use the model with its own scaler, vocabulary and sizes (and ``extra``, what its kind
    needs besides: the contextual model's word vectors)."""
    record = ModelRecord(kind=cfg.model, dims=dims, parts=list(parts), epoch=epoch, scaler=scaler,
                         vocabulary=list(vocabulary), training={"config": cfg.to_dict(), "data": data}, extra=extra)
    write_model_folder(cfg.checkpoint_folder, record, {name: _plain(module) for name, module in parts.items()})


def rng_state() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_state(folder: Path, cfg: TrainConfig, data: Fingerprint, parts: dict[str, nn.Module],
               optimizers: list[torch.optim.Optimizer], epoch: int, metrics: list[dict[str, float]],
               rng: list[dict[str, torch.Tensor]]) -> None:
    """Everything needed to continue after ``epoch``; ``data`` identifies the training file's contents,
    ``rng`` holds one RNG state per process."""
    state = {
        "epoch": epoch,
        "config": cfg.to_dict(),
        "data_fingerprint": data,
        "models": {name: _plain(module) for name, module in parts.items()},
        "optimizers": [optimizer.state_dict() for optimizer in optimizers],
        "metrics": metrics,
        "rng": rng,
    }
    with atomic_path(folder / STATE_FILE) as tmp:
        torch.save(state, tmp)


def _check_layout(path: Path, state: Any) -> None:
    if not isinstance(state, dict):
        raise StateError(f"{path}: not a training state (holds {type(state).__name__}); move it away to start afresh")
    for key, kind in _STATE_KEYS.items():
        if key not in state:
            raise StateError(f"{path}: not a training state (no {key!r}); move it away to start afresh")
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            raise StateError(f"{path}: {key!r} is {type(state[key]).__name__}, expected {kind.__name__}; "
                             "move it away to start afresh")


def load_state(folder: Path, cfg: TrainConfig, data: Fingerprint) -> dict[str, Any] | None:
    """The saved state of this experiment, or None; refuses one written under other trajectory settings
    or on other training data (``data``: the fingerprint of the training file now)."""
    path = folder / STATE_FILE
    if not path.exists():
        return None
    if not path.is_file():
        raise StateError(f"{path}: not a file; move it away to start afresh")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line report
        raise StateError(f"{path}: unreadable training state ({type(exc).__name__}); move it away to start afresh") from None
    _check_layout(path, state)
    saved = state["config"]
    for key in TRAJECTORY_KEYS:
        # A key newer than the state was at its default then (a state of an earlier version resumes).
        was = saved.get(key, _CONFIG_DEFAULTS.get(key))
        if was != getattr(cfg, key):
            raise StateError(f"{path}: written with {key} = {was!r} but the config says {getattr(cfg, key)!r}; "
                             "use another experiment_name (or checkpoint_dir) for a new run")
    if "data_fingerprint" not in state:
        log.warning(f"{path}: written before states recorded their data; cannot tell whether "
                    f"{cfg.train_dataset_file} still holds the same patches")
    else:
        difference = fingerprint_difference(state["data_fingerprint"], data)
        if difference is not None:
            raise StateError(f"{path}: the training file {cfg.train_dataset_file} is not the one this run started on "
                             f"({difference}); use another experiment_name (or checkpoint_dir) for a new run")
    return state


def restore(path: Path, state: dict[str, Any], parts: dict[str, nn.Module], optimizers: list[torch.optim.Optimizer]) -> None:
    """Load a state read from ``path`` into the models and optimizers; a misfit is one ``StateError``."""
    try:
        for name, module in parts.items():
            if name not in state["models"]:
                raise StateError(f"{path}: no weights for {name!r}")
            load_into(module, state["models"][name], f"{path} ({name})")
        if len(state["optimizers"]) != len(optimizers):
            raise StateError(f"{path}: {len(state['optimizers'])} optimizer states, the model has {len(optimizers)}")
        for optimizer, saved in zip(optimizers, state["optimizers"]):
            optimizer.load_state_dict(saved)
    except CheckpointError as exc:
        raise StateError(str(exc)) from None
    except (KeyError, ValueError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StateError(f"{path}: saved weights or optimizer states do not fit the model ({reason})") from None


def load_checkpoints(folder: Path, parts: dict[str, nn.Module], epoch: int) -> None:
    """Strictly load the paper-format checkpoints of ``epoch`` (``CheckpointError`` names file and keys)."""
    for name, module in parts.items():
        path = checkpoint_path(folder, name, epoch)
        load_into(module, read_state_dict(path), path)
