"""The audio front end: decoding, the paper's log-mel spectrogram, 96x96 chunks and the max-energy patch.

Every fixed number of the pipeline lives here, once. The values are the paper's (see the reference
README): 22000 Hz (not 22050), 1024-point FFT, hop 512, 96 Slaney mel bands on the magnitude, centred
frames with reflect padding, natural log with float32 epsilon, clips of at most 10 s zero-padded to
10 s with a small uniform noise floor.
"""
from __future__ import annotations

import warnings
from functools import lru_cache, reduce
from pathlib import Path

import librosa
import numpy as np
import scipy.fft
import scipy.signal
import soundfile as sf

SAMPLE_RATE = 22000
N_FFT = 1024
HOP_LENGTH = 512
N_MELS = 96
PATCH_FRAMES = 96
PATCH_SHAPE = (N_MELS, PATCH_FRAMES)
MAX_ENERGY_STEP = 12
PAD_SECONDS = 10
PAD_SAMPLES = PAD_SECONDS * SAMPLE_RATE
NOISE_AMPLITUDE = 5e-4
NOISE_SEED = 0
LOG_EPS = float(np.finfo(np.float32).eps)

LATENT_CHANNELS = 128
LATENT_SIDE = 3
LATENT_DIM = LATENT_CHANNELS * LATENT_SIDE * LATENT_SIDE

DEFAULT_RESAMPLER = "soxr_hq"
# File name suffixes searched for audio in folders (GTZAN ships as .au).
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".m4a", ".opus"})


class AudioError(ValueError):
    """A file that cannot be turned into a spectrogram; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def load_audio(path: str | Path, res_type: str = DEFAULT_RESAMPLER) -> np.ndarray:
    """Decode any file soundfile or librosa reads, mix to mono (channel mean), resample to 22000 Hz.

    soxr (librosa's default) replaces the paper's resampy ``kaiser_fast``: it is several times faster
    and moves embeddings by about 0.4% relative L2 (reference README, tolerances).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such file")
    try:
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
        # Channel mean as a sum of columns: numpy's reduction along the short contiguous axis took 2-5 ms
        # per 4 s stereo clip, longer than decoding and resampling together; the numbers are the same.
        y = reduce(np.add, y.T) / np.float32(y.shape[1]) if y.shape[1] > 1 else y[:, 0]
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        try:
            with warnings.catch_warnings():  # librosa announces its audioread fallback; the outcome is what counts
                warnings.simplefilter("ignore")
                y, sr = librosa.load(str(path), sr=None, mono=True)
        except Exception as exc:  # audioread raises many unrelated types; all mean "cannot decode"
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise AudioError(path, f"cannot decode audio ({detail})") from None
    if y.size == 0:
        raise AudioError(path, "holds no audio samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(path, "holds non-finite samples")
    if sr != SAMPLE_RATE:
        y = librosa.resample(y, orig_sr=sr, target_sr=SAMPLE_RATE, res_type=res_type)
    return np.ascontiguousarray(y, dtype=np.float32)


@lru_cache(maxsize=1)
def padding_noise() -> np.ndarray:
    """The noise floor added to padded clips: the same draw for every file, so embeddings are repeatable."""
    return (NOISE_AMPLITUDE * np.random.RandomState(NOISE_SEED).rand(PAD_SAMPLES)).astype(np.float32)


def pad_short_clip(y: np.ndarray) -> np.ndarray:
    """Clips of at most 10 s are zero-padded to 10 s, then the whole signal gets the noise floor."""
    if y.shape[-1] > PAD_SAMPLES:
        return y
    padded = np.zeros(PAD_SAMPLES, dtype=np.float32)
    padded[: y.shape[-1]] = y
    return padded + padding_noise()


@lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float64)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return scipy.signal.get_window("hann", N_FFT, fftbins=True)


def log_mel(y: np.ndarray) -> np.ndarray:
    """The paper's log-mel spectrogram ``(96, frames)`` of a 22000 Hz mono signal, float32.

    The arithmetic of ``librosa.feature.melspectrogram(power=1, pad_mode='reflect')`` then
    ``log(S + eps)``, in float64: centred frames of the reflect-padded signal, periodic Hann window,
    magnitude of the real FFT, Slaney mel filters. Written out with scipy's FFT because it is 2.5x
    faster than ``torch.stft`` on a 10 s clip and gives the same numbers to the last bit.
    """
    padded = np.pad(y.astype(np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH] * _window()
    magnitude = np.abs(scipy.fft.rfft(frames, axis=1))
    return np.log(_mel_basis() @ magnitude.T + LOG_EPS).astype(np.float32)


def compute_spectrogram(path: str | Path, res_type: str = DEFAULT_RESAMPLER) -> np.ndarray:
    """File -> padded signal -> log-mel ``(96, frames)``: the paper's spectrogram of one clip."""
    return log_mel(pad_short_clip(load_audio(path, res_type)))


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
