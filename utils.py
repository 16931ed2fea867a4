"""The paper's ``utils`` module, for code written against it: ``from utils import pad, compute_spectrogram``.

``pad`` and ``compute_spectrogram`` keep the paper's signatures and results: the spectrogram is
computed with its resampler (resampy's ``kaiser_fast``) and its STFT padding, so it matches the
paper's own output; the project's pipeline uses the faster soxr (``coala.core.frontend``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from coala.core.frontend import N_MELS, SAMPLE_RATE, pad
from coala.core.frontend import compute_spectrogram as _compute_spectrogram
from coala.core.frontend import max_energy_patch as return_spectrogram_max_nrg_frame
from coala.core.model import contrastive_loss as _contrastive_loss
from coala.core.model import kullback_leibler

PAPER_RESAMPLER = "kaiser_fast"

__all__ = ["pad", "compute_spectrogram", "return_spectrogram_max_nrg_frame", "kullback_leibler", "contrastive_loss"]


def compute_spectrogram(filename: str | Path, sr: int = SAMPLE_RATE, n_mels: int = N_MELS) -> np.ndarray:
    """The paper's log-mel spectrogram ``(n_mels, frames)`` of a file: resampled to ``sr`` with
    ``kaiser_fast``, padded to 10 s with the noise floor when shorter, magnitude mel, ``log(S + eps)``."""
    return _compute_spectrogram(filename, PAPER_RESAMPLER, sr, n_mels)


def contrastive_loss(z_audio: torch.Tensor, z_tag: torch.Tensor, t: float = 1.0) -> torch.Tensor:
    """The paper's ``contrastive_loss`` with its default temperature of 1 (training uses 0.1)."""
    return _contrastive_loss(z_audio, z_tag, t)
