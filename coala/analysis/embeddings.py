"""The validation set's embeddings, as the paper's analysis scripts took them.

Each validation patch (the clip's max-energy log-mel window, already scaled, from the HDF5 release
layout) is clamped at 0, as the paper's validation did, and embedded by an audio encoder (or the CNN
baseline): ``z``, the 1152-d embedding used downstream. A clip's tags enter the tag encoder as its
multi-hot label row, whose ``z`` is the clip's tag embedding.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from coala.data.hdf5 import InMemoryDataset
from coala.models.loading import load_model
from coala.core.model import default_batch_size
from coala.encode.jobs import embedding_name
from coala.core.model import embed, model_device
from coala.core.errors import UsageError
from coala.models.checkpoints import load_checkpoint

@dataclass(frozen=True)
class ValidationSet:
    """The patches of a validation HDF5 file: ``ids`` (n,), ``patches`` (n, 96, 96), ``labels`` (n, n_tags)."""

    path: Path
    ids: np.ndarray
    patches: np.ndarray
    labels: np.ndarray


def read_validation_set(path: Path) -> ValidationSet:
    """The whole file, checked for the release layout (``DatasetError`` naming it otherwise)."""
    dataset = InMemoryDataset(path)
    return ValidationSet(path, dataset.id.reshape(-1).astype(np.int64), dataset.data, dataset.label)


def model_label(spec: str) -> tuple[str, Path]:
    """``LABEL=PATH`` or a bare checkpoint path, named like encode.py's embedding folder without its
    ``embeddings_`` prefix (``saved_models/dual_ae_c/audio_encoder_epoch_200.pt`` -> ``dual_ae_c_200``)."""
    label, sep, path = spec.partition("=")
    if sep and label and path:
        return label, Path(path)
    return embedding_name(spec).removeprefix("embeddings_"), Path(spec)


@torch.inference_mode()
def audio_embeddings(model: nn.Module, patches: np.ndarray) -> np.ndarray:
    """``z`` of each patch clamped at 0: ``(n, 1152)`` float64."""
    size = default_batch_size(model_device(model))
    out = [embed(model, np.clip(patches[i:i + size], 0.0, None))[0].numpy() for i in range(0, len(patches), size)]
    return np.concatenate(out).astype(np.float64)


@torch.inference_mode()
def tag_embeddings(tag_encoder: nn.Module, multi_hot: np.ndarray) -> np.ndarray:
    """``z`` of the tag encoder for each row of multi-hot tags (a one-hot row: one tag): ``(n, 1152)``."""
    device = model_device(tag_encoder)
    size = default_batch_size(device)
    out = []
    for i in range(0, len(multi_hot), size):
        rows = torch.as_tensor(np.clip(multi_hot[i:i + size], 0, None), dtype=torch.float32, device=device)
        out.append(tag_encoder(rows)[0].float().cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def load_audio_models(specs: list[str], device: str | torch.device = "cpu") -> dict[str, nn.Module]:
    """Every ``[LABEL=]CHECKPOINT`` loaded (audio encoder or CNN) before any work, by label:
    ``CheckpointError`` naming a file that holds another network, ``UsageError`` for a shared label."""
    labelled = [model_label(spec) for spec in specs]
    labels = [label for label, _ in labelled]
    repeated = next((label for label in labels if labels.count(label) > 1), None)
    if repeated is not None:
        raise UsageError(f"--model: two checkpoints are labelled {repeated!r}; name them LABEL=CHECKPOINT")
    return {label: load_model(path, device=device).audio_encoder for label, path in labelled}


def load_dual_encoders(audio_checkpoint: Path, tag_checkpoint: Path,
                       device: str | torch.device = "cpu") -> tuple[nn.Module, nn.Module]:
    """The audio and tag encoders of one dual autoencoder (``CheckpointError`` for any other network)."""
    return (load_checkpoint(audio_checkpoint, ("audio_encoder",), device),
            load_checkpoint(tag_checkpoint, ("tag_encoder",), device))


def per_clip(ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One row per clip, in order of first appearance: a clip with several patches gets their mean."""
    unique, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    sums = np.zeros((len(unique), rows.shape[1]))
    np.add.at(sums, inverse, rows)
    means = sums / np.bincount(inverse)[:, None]
    order = np.argsort(first)
    return unique[order], means[order]
