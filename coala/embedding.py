"""Turning scaled 96x96 patches into embeddings with a loaded encoder (or the CNN baseline)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from coala.audio import chunk_spectrogram
from coala.scaler import MinMaxScaler


def scaled_chunks(spec: np.ndarray, scaler: MinMaxScaler) -> np.ndarray:
    """The spectrogram's 96-frame chunks ``(n, 96, 96)``, scaled in the paper's orientation."""
    return scaler.transform(chunk_spectrogram(spec))


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def embed_patches(model: nn.Module, patches: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``(n, 96, 96)`` scaled patches through the model as ``(n, 1, 96, 96)``; returns its two outputs.

    For an encoder that is ``(z, z_d)``, for the CNN baseline ``(z, tag_probabilities)``; results are
    float32 on the CPU whatever device the model is on.
    """
    x = torch.as_tensor(np.asarray(patches, dtype=np.float32)).unsqueeze(1).to(model_device(model))
    first, second = model(x)
    return first.float().cpu(), second.float().cpu()
