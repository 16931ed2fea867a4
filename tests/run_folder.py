"""A run folder as training leaves it (``config.json``, ``model.safetensors`` and the paper-named checkpoints
of its epoch), made without training: a vocabulary of its own and a scaler fitted at another level than
the paper's, so a tool that falls back to the paper's defaults gives other numbers or refuses."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from coala import assets
from coala.core.frontend import MinMaxScaler
from coala.core.model import DualAE, ModelDims
from coala.models.record import ModelRecord, write_model_folder

N_TAGS = 30
EPOCH = 3


def run_scaler(seed: int = 7) -> MinMaxScaler:
    """Fitted on log-mel values of -40 .. -20 (the paper's patches reach about +4)."""
    return MinMaxScaler.fit(np.random.default_rng(seed).uniform(-40.0, -20.0, size=(4, 96, 96)))


def run_vocabulary(n_tags: int = N_TAGS) -> list[str]:
    return [f"runword{i}" for i in range(n_tags)]


def write_run_folder(folder: Path, n_tags: int = N_TAGS, epoch: int = EPOCH, seed: int = 0, **sizes: int) -> ModelRecord:
    """A dual autoencoder of random weights (seeded) with its record, of the paper's sizes but ``n_tags``
    and ``sizes`` (``ModelDims`` fields); returns the record."""
    torch.manual_seed(seed)
    dims = ModelDims(n_tags=n_tags, **sizes)
    parts = {name: module.state_dict() for name, module in DualAE(dims=dims).parts().items()}
    record = ModelRecord(kind="dual_ae", dims=dims, parts=list(parts), epoch=epoch, scaler=run_scaler(),
                         vocabulary=run_vocabulary(n_tags))
    write_model_folder(folder, record, parts)
    for name, state in parts.items():
        torch.save(state, folder / assets.checkpoint_name(name, epoch))
    return record
