"""The paper's MFCC baseline: a 120-d summary of a clip's MFCCs and their deltas.

Recipe (reference README): the clip decoded to mono at 22000 Hz with resampy's ``kaiser_fast`` and no
padding or noise; librosa's 20 MFCCs (its defaults: 2048-point FFT, hop 512, 128 mel bands, power
spectrogram in dB) and their first and second deltas (``width=5``, ``mode='nearest'``); the mean and
the variance over time of each, concatenated in the paper's order: mean and variance of the MFCCs,
then of the deltas, then of the second deltas.

Two choices differ from what ``coala.audio`` does for embeddings, both for fidelity: the resampler is
the paper's ``kaiser_fast`` (MFCC speed is not what users wait on, and the baseline's numbers should be
the paper's), and the STFT frames are padded by reflection as the paper's librosa 0.7.2 did
(librosa >= 0.10 pads with zeros).
"""
from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np

from coala.core.frontend import SAMPLE_RATE, load_audio

N_MFCC = 20
DELTA_WIDTH = 5
MFCC_RESAMPLER = "kaiser_fast"


def mfcc_features(path: str | Path) -> np.ndarray:
    """The paper's ``(120,)`` float32 MFCC vector of one audio file; ``AudioError`` when it cannot be read."""
    y = load_audio(path, res_type=MFCC_RESAMPLER)
    mfcc = librosa.feature.mfcc(y=y, sr=SAMPLE_RATE, n_mfcc=N_MFCC, pad_mode="reflect")
    deltas = [librosa.feature.delta(mfcc, order=order, width=DELTA_WIDTH, mode="nearest") for order in (1, 2)]
    stats = [stat(m, axis=1) for m in (mfcc, *deltas) for stat in (np.mean, np.var)]
    return np.concatenate(stats).astype(np.float32)
