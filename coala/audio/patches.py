"""From a spectrogram to the model's inputs: 96-frame chunks, the max-energy training patch, scaling."""
from __future__ import annotations

import numpy as np

from coala.audio.frontend import MAX_ENERGY_STEP, N_MELS, PATCH_FRAMES
from coala.audio.scaler import MinMaxScaler


def chunk_spectrogram(spec: np.ndarray) -> np.ndarray:
    """Non-overlapping 96-frame chunks ``(n, 96, 96)``; a trailing partial chunk is dropped."""
    n = spec.shape[-1] // PATCH_FRAMES
    return np.ascontiguousarray(spec[:, : n * PATCH_FRAMES].reshape(N_MELS, n, PATCH_FRAMES).transpose(1, 0, 2))


def max_energy_patch(spec: np.ndarray) -> np.ndarray:
    """The 96-frame window with the largest log-mel sum, over starts 0, 12, 24, ...; first on ties."""
    if spec.shape[-1] < PATCH_FRAMES:
        raise ValueError(f"spectrogram has {spec.shape[-1]} frames, fewer than one {PATCH_FRAMES}-frame patch")
    starts = np.arange(0, spec.shape[-1] - PATCH_FRAMES + 1, MAX_ENERGY_STEP)
    frame_energy = spec.sum(axis=0, dtype=np.float64)
    energies = np.lib.stride_tricks.sliding_window_view(frame_energy, PATCH_FRAMES)[starts].sum(axis=1)
    start = int(starts[np.argmax(energies)])
    return np.ascontiguousarray(spec[:, start : start + PATCH_FRAMES])


def scaled_chunks(spec: np.ndarray, scaler: MinMaxScaler) -> np.ndarray:
    """The spectrogram's 96-frame chunks ``(n, 96, 96)``, scaled in the paper's orientation: what the
    encoder sees for every chunk of a clip."""
    return scaler.transform(chunk_spectrogram(spec))
