"""From a spectrogram to the model's inputs: 96-frame chunks, the max-energy training patch, scaling."""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from coala.audio.frontend import MAX_ENERGY_STEP, N_MELS, PATCH_FRAMES
from coala.audio.scaler import MinMaxScaler


def chunk_spectrogram(spec: np.ndarray) -> np.ndarray:
    """Non-overlapping 96-frame chunks ``(n, 96, 96)``; a trailing partial chunk is dropped."""
    n = spec.shape[-1] // PATCH_FRAMES
    return np.ascontiguousarray(spec[:, : n * PATCH_FRAMES].reshape(N_MELS, n, PATCH_FRAMES).transpose(1, 0, 2))


def iter_chunks(spec_blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """``chunk_spectrogram`` of a spectrogram that arrives as blocks of frames: each block's completed
    chunks ``(k, 96, 96)`` as soon as they are complete, the same chunks as of the whole spectrogram."""
    held = np.zeros((N_MELS, 0), dtype=np.float32)
    for block in spec_blocks:
        held = np.concatenate([held, block], axis=1)
        n = held.shape[1] // PATCH_FRAMES
        if n:
            yield chunk_spectrogram(held[:, : n * PATCH_FRAMES])
            held = held[:, n * PATCH_FRAMES :]


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
