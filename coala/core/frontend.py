"""The paper's front end: audio -> log-mel -> 96x96 patches -> MinMax scaling, one chain for every tool.

Every fixed number of the pipeline lives here, once. The values are the paper's (see the reference
README): 22000 Hz (not 22050), 1024-point FFT, hop 512, 96 Slaney mel bands on the magnitude, centred
frames with reflect padding, natural log with float32 epsilon, clips of at most 10 s zero-padded to
10 s with a small uniform noise floor.

Files are streamed: decoded, resampled and turned into log-mel frames block by block
(``iter_audio``, ``LogMelStream``, ``iter_spectrogram``), with the numbers of the whole-file computation,
so a recording's length does not set the memory it takes.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache, reduce
from pathlib import Path
from typing import TYPE_CHECKING

import librosa
import numpy as np
import scipy.fft
import scipy.signal
import scipy.sparse
import soundfile as sf
import soxr

if TYPE_CHECKING:
    import torch

from coala.core.errors import AudioError, AudioInputError, ScalerError

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
REFLECT = N_FFT // 2  # centred frames: the signal is reflect-padded by half a frame at each end
# Frames of a file decoded at a time (about 6 s at 44.1 kHz): streaming keeps a one-hour file's
# memory to a few blocks. Frames of the log-mel transformed at a time (kept in cache).
BLOCK_SAMPLES = 1 << 18
FRAME_BLOCK = 128

# The sample rates a file or array may declare. Resampling multiplies a block's samples by 22000 / rate:
# a header declaring 1 Hz would turn one block into gigabytes. The range holds telephone audio (8 kHz)
# and ultrasonic recorders (500 kHz); outside it a declared rate is a damaged header, not audio.
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 1_000_000
# A decoded block holds at most this many values (frames x channels): a file declaring hundreds of
# channels gets blocks of fewer frames, so its blocks weigh what a stereo file's do.
BLOCK_VALUES = 2 * BLOCK_SAMPLES

DEFAULT_RESAMPLER = "soxr_hq"
# File name suffixes searched for audio in folders (GTZAN ships as .au).
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".m4a", ".opus"})


class _Unreadable(Exception):
    """soundfile cannot open the file: the librosa/audioread fallback gets its turn."""


def _mono(y: np.ndarray) -> np.ndarray:
    # Channel mean as a sum of columns: numpy's reduction along the short contiguous axis took 2-5 ms
    # per 4 s stereo clip, longer than decoding and resampling together; the numbers are the same.
    return reduce(np.add, y.T) / np.float32(y.shape[1]) if y.shape[1] > 1 else y[:, 0]


class _SequentialSoundFile(sf.SoundFile):
    """A file soundfile reads front to back, with nothing but libsndfile's reads in between.

    soundfile ends every read of a seekable file with a seek (``SEEK_SET``) to where the read
    stopped. libsndfile's MP3 decoder turns that seek into ``mpg123_seek``, which drops the decoded
    frames and decodes again from a frame or two before the position, without the bit reservoir of
    the frames before those: up to three MP3 frames after every block boundary then differ from a
    whole-file read (by as much as 0.4 to 1.2 in 32 kbps files, by a float rounding at 128 kbps). Told the
    file is unseekable, ``read`` calls libsndfile's read alone (the frames left are counted by
    ``_soundfile_blocks``); the other formats libsndfile reads gave the same samples either way.
    """

    def seekable(self) -> bool:
        return False


def _soundfile_blocks(path: Path, block_samples: int) -> tuple[int, Iterator[np.ndarray]]:
    """The file's rate and its mono float32 blocks of ``block_samples`` frames (fewer for a file of more
    than two channels: ``BLOCK_VALUES``), read as they are asked for.

    Their concatenation is the whole-file read's samples (``sf.read``: the file's ``frames`` frames,
    or fewer if the decoder ends sooner), whatever the format and block size. The name goes to
    libsndfile as the file system's bytes, so a name that is not valid UTF-8 opens like any other.
    """
    try:
        handle = _SequentialSoundFile(os.fsencode(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise _Unreadable from exc
    block_samples = max(1, min(block_samples, BLOCK_VALUES // max(1, handle.channels)))

    def blocks() -> Iterator[np.ndarray]:
        with handle:
            left = handle.frames
            while left > 0:
                asked = min(block_samples, left)
                block = handle.read(asked, dtype="float32", always_2d=True)
                if len(block):
                    yield _mono(block)
                if len(block) < asked:
                    return
                left -= asked
    return handle.samplerate, blocks()


def _librosa_whole(path: Path) -> tuple[int, Iterator[np.ndarray]]:
    """Formats libsndfile does not read (m4a, some mp3), decoded whole by librosa/audioread: not streamed."""
    try:
        with warnings.catch_warnings():  # librosa announces its audioread fallback; the outcome is what counts
            warnings.simplefilter("ignore")
            y, file_sr = librosa.load(str(path), sr=None, mono=True)
    except Exception as exc:  # audioread raises many unrelated types; all mean "cannot decode"
        raise AudioError(path, f"cannot decode audio ({_describe(exc)})") from None
    return int(file_sr), iter([np.asarray(y, dtype=np.float32)])


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _resampled(blocks: Iterator[np.ndarray], file_sr: int, sr: int, res_type: str) -> Iterator[np.ndarray]:
    """``blocks`` at ``sr``: equal to ``librosa.resample`` of their concatenation, length included.

    soxr's streaming resampler gives the one-shot resampler's samples to the last bit (its state carries
    the filter over block boundaries); librosa then fixes the length to ``ceil(n * sr / file_sr)``, which
    the budget below does. Other resamplers (resampy's, for the MFCC baseline) need the whole signal.
    """
    if not res_type.startswith("soxr"):
        y = np.concatenate(list(blocks))
        yield librosa.resample(y, orig_sr=file_sr, target_sr=sr, res_type=res_type) if y.size else y
        return
    stream = soxr.ResampleStream(file_sr, sr, 1, dtype="float32", quality=res_type.removeprefix("soxr_"))
    n_in = n_out = 0
    for block in blocks:
        n_in += block.size
        out = stream.resample_chunk(block)
        n_out += out.size
        yield out
    budget = math.ceil(n_in * sr / file_sr)
    tail = stream.resample_chunk(np.zeros(0, np.float32), last=True)[: max(0, budget - n_out)]
    yield np.concatenate([tail, np.zeros(budget - n_out - tail.size, np.float32)])


def rate_problem(rate: float) -> str | None:
    """Why audio declared at ``rate`` Hz is not read, or None when the rate is usable."""
    if MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        return None
    return f"sample rate {rate} Hz, outside the {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz that audio is read at"


def resample(y: np.ndarray, orig_sr: int, sr: int = SAMPLE_RATE, res_type: str = DEFAULT_RESAMPLER) -> np.ndarray:
    """A mono signal held in memory, resampled from ``orig_sr`` to ``sr`` as ``iter_audio`` resamples a
    file's samples: callers that get audio as arrays (``coala.hear``) see the numbers a file gives.
    An ``orig_sr`` outside the usable rates (``rate_problem``) is an ``AudioInputError``."""
    problem = rate_problem(orig_sr)
    if problem is not None:
        raise AudioInputError(problem)
    y = np.ascontiguousarray(y, dtype=np.float32).reshape(-1)
    return y if orig_sr == sr else np.concatenate([y[:0], *_resampled(iter([y]), orig_sr, sr, res_type)])


def iter_audio(path: str | Path, res_type: str = DEFAULT_RESAMPLER, sr: int = SAMPLE_RATE,
               block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """A file decoded, mixed to mono (channel mean) and resampled to ``sr`` in blocks, float32.

    Blocks of ``block_samples`` frames of the file are decoded one at a time, so a long recording never
    sits in memory whole; their concatenation is what ``load_audio`` returns. Raises ``AudioError``
    naming the file when it cannot be decoded or holds no (or non-finite) samples.

    soxr (librosa's default) replaces the paper's resampy ``kaiser_fast``: it is several times faster
    and moves embeddings by about 0.4% relative L2 (reference README, tolerances).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such file")
    try:
        file_sr, blocks = _soundfile_blocks(path, block_samples)
    except _Unreadable:
        file_sr, blocks = _librosa_whole(path)
    problem = rate_problem(file_sr)
    if problem is not None:
        raise AudioError(path, f"declared {problem}")
    n = 0
    try:
        for y in (blocks if file_sr == sr else _resampled(blocks, file_sr, sr, res_type)):
            if not np.all(np.isfinite(y)):
                raise AudioError(path, "holds non-finite samples")
            n += y.size
            yield np.ascontiguousarray(y, dtype=np.float32)
    except (sf.LibsndfileError, RuntimeError) as exc:  # a file that opened but breaks further on
        raise AudioError(path, f"cannot decode audio ({_describe(exc)})") from None
    if n == 0:
        raise AudioError(path, "holds no audio samples")


def audio_samples(path: str | Path) -> int:
    """How many samples ``iter_audio`` gives for a file at 22000 Hz (what ``audio_chunks`` counts in), read
    from the header where libsndfile reads the format (its frame count, resampled as ``_resampled``
    fixes the length), and by decoding where the header may be off (MP3) or libsndfile cannot read it."""
    path = Path(path)
    try:
        info = sf.info(os.fsencode(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        info = None
    if info is None or info.format == "MP3" or info.frames <= 0:
        return sum(block.size for block in iter_audio(path))
    return info.frames if info.samplerate == SAMPLE_RATE else math.ceil(info.frames * SAMPLE_RATE / info.samplerate)


def load_audio(path: str | Path, res_type: str = DEFAULT_RESAMPLER, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode any file soundfile or librosa reads, mix to mono, resample to ``sr`` (22000 Hz): the whole
    signal, float32. ``iter_audio`` gives the same samples block by block."""
    return np.concatenate(list(iter_audio(path, res_type, sr)))


def padded_length(sr: int) -> int:
    """Samples in 10 s at ``sr``: what short clips are padded to, and the longest clip that is padded."""
    return int(round(PAD_SECONDS * sr))


@lru_cache(maxsize=4)
def padding_noise(n: int) -> np.ndarray:
    """The noise floor added to padded clips: one seeded draw (what the paper's unseeded ``np.random.rand``
    gives after ``np.random.seed(0)``), the same for every file, so embeddings are repeatable."""
    return (NOISE_AMPLITUDE * np.random.RandomState(NOISE_SEED).rand(n)).astype(np.float32)


def pad(y: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The paper's ``utils.pad``: ``y`` zero-padded to 10 s at ``sr``, plus the noise floor below 5e-4, float32.

    Like the paper's, it raises ``ValueError`` for a signal longer than 10 s (its callers use such
    signals as they are).
    """
    n = padded_length(sr)
    y = np.asarray(y).reshape(-1)
    if y.size > n:
        raise ValueError(f"{y.size} samples are longer than the {PAD_SECONDS} s ({n} samples at {sr} Hz) that pad fills")
    padded = np.zeros(n, dtype=np.float32)
    padded[: y.size] = y
    return padded + padding_noise(n)


def pad_short_clip(y: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Clips of at most 10 s are padded (``pad``); longer ones are used as they are, without noise."""
    return y if y.shape[-1] > padded_length(sr) else pad(y, sr)


@lru_cache(maxsize=4)
def _mel_basis(sr: int, n_mels: int) -> scipy.sparse.csr_array:
    # About 2% of the Slaney filters' weights are non-zero (each FFT bin feeds at most two bands): the
    # sparse product is many times cheaper than the dense one and equal to float64 rounding.
    return scipy.sparse.csr_array(librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=n_mels).astype(np.float64))


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return scipy.signal.get_window("hann", N_FFT, fftbins=True)


def _log_mel_frames(padded: np.ndarray, sr: int, n_mels: int) -> np.ndarray:
    """Log-mel of every whole frame (start 0, hop, 2 hop, ...) of an already padded float64 signal.

    Frames are transformed ``FRAME_BLOCK`` at a time: each block's frames, spectrum and magnitudes stay
    in cache, which made a 30 s clip's log-mel about a third faster than one pass over all its frames.
    """
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH]
    out = np.empty((n_mels, len(frames)), dtype=np.float32)
    for start in range(0, len(frames), FRAME_BLOCK):
        magnitude = np.abs(scipy.fft.rfft(frames[start:start + FRAME_BLOCK] * _window(), axis=1))
        out[:, start:start + FRAME_BLOCK] = np.log(_mel_basis(sr, n_mels) @ magnitude.T + LOG_EPS)
    return out


class LogMelStream:
    """The paper's log-mel of a signal that arrives in blocks: ``push`` each block, then ``finish``.

    The concatenated outputs equal ``log_mel`` of the whole signal frame for frame: frame ``t`` covers
    samples ``[t*hop - n_fft/2, t*hop + n_fft/2)`` of the signal reflect-padded by ``n_fft/2`` at both
    ends. The start's padding is made once ``n_fft/2 + 1`` samples have arrived, every frame is
    computed once all its samples are there, and the end's padding when the signal is known to end;
    the samples kept in between are those of the frames not yet complete (under ``n_fft``).
    """

    def __init__(self, sr: int = SAMPLE_RATE, n_mels: int = N_MELS) -> None:
        self.sr, self.n_mels = sr, n_mels
        self._buffer = np.zeros(0, dtype=np.float64)
        self._next = 0  # where the next frame starts in the buffer (padded coordinates)
        self._padded_start = False

    def push(self, y: np.ndarray) -> np.ndarray:
        """The frames completed by ``y``: ``(n_mels, k)`` float32, ``k`` possibly 0."""
        self._buffer = np.concatenate([self._buffer, np.asarray(y, dtype=np.float64).reshape(-1)])
        if not self._padded_start:
            if self._buffer.size <= REFLECT:
                return np.zeros((self.n_mels, 0), dtype=np.float32)
            self._buffer = np.concatenate([self._buffer[REFLECT:0:-1], self._buffer])
            self._padded_start = True
        return self._complete_frames()

    def finish(self) -> np.ndarray:
        """The last frames, over the end's reflect padding; the stream is spent afterwards."""
        if not self._padded_start:  # at most n_fft/2 samples in all: numpy pads such a short signal
            padded, self._buffer = np.pad(self._buffer, REFLECT, mode="reflect"), np.zeros(0)
            return _log_mel_frames(padded, self.sr, self.n_mels)
        self._buffer = np.concatenate([self._buffer, self._buffer[-2:-REFLECT - 2:-1]])
        return self._complete_frames()

    def _complete_frames(self) -> np.ndarray:
        n = max(0, (self._buffer.size - self._next - N_FFT) // HOP_LENGTH + 1)
        spec = _log_mel_frames(self._buffer[self._next:self._next + (n - 1) * HOP_LENGTH + N_FFT], self.sr,
                               self.n_mels) if n else np.zeros((self.n_mels, 0), dtype=np.float32)
        self._next += n * HOP_LENGTH
        # Keep the samples of frames still to come, and the last n_fft/2 + 1 for the end's reflection.
        drop = min(self._next, self._buffer.size - (REFLECT + 1))
        self._buffer, self._next = self._buffer[drop:], self._next - drop
        return spec


def log_mel(y: np.ndarray, sr: int = SAMPLE_RATE, n_mels: int = N_MELS) -> np.ndarray:
    """The paper's log-mel spectrogram ``(96, frames)`` of a 22000 Hz mono signal, float32.

    The arithmetic of ``librosa.feature.melspectrogram(power=1, pad_mode='reflect')`` then
    ``log(S + eps)``, in float64: centred frames of the reflect-padded signal, periodic Hann window,
    magnitude of the real FFT, Slaney mel filters. Written out with scipy's FFT because it is 2.5x
    faster than ``torch.stft`` on a 10 s clip and gives the same numbers to the last bit.
    """
    stream = LogMelStream(sr, n_mels)
    return np.concatenate([stream.push(y), stream.finish()], axis=1)


def spectrogram_blocks(signal: Iterable[np.ndarray], sr: int = SAMPLE_RATE,
                       n_mels: int = N_MELS) -> Iterator[np.ndarray]:
    """The paper's spectrogram of one clip, whose ``sr`` signal arrives in blocks, as consecutive
    ``(n_mels, k)`` blocks of frames.

    Whether a clip is padded depends on its length: the first 10 s are held until the signal proves
    longer (then it is used as it is) or ends (then it is padded, ``pad``). After that, memory holds
    one block and a frame's worth of samples, whatever the signal's length.
    """
    limit, held, n_held = padded_length(sr), [], 0
    stream: LogMelStream | None = None
    for y in signal:
        if stream is not None:
            yield stream.push(y)
            continue
        held.append(y)
        n_held += y.size
        if n_held > limit:
            stream = LogMelStream(sr, n_mels)
            yield stream.push(np.concatenate(held))
            held = []
    if stream is None:
        stream = LogMelStream(sr, n_mels)
        yield stream.push(pad(np.concatenate(held) if held else np.zeros(0, np.float32), sr))
    yield stream.finish()


def iter_spectrogram(path: str | Path, res_type: str = DEFAULT_RESAMPLER, sr: int = SAMPLE_RATE,
                     n_mels: int = N_MELS, block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """A file's spectrogram block by block (``spectrogram_blocks`` of ``iter_audio``)."""
    return spectrogram_blocks(iter_audio(path, res_type, sr, block_samples), sr, n_mels)


def compute_spectrogram(path: str | Path, res_type: str = DEFAULT_RESAMPLER, sr: int = SAMPLE_RATE,
                        n_mels: int = N_MELS) -> np.ndarray:
    """File -> padded signal -> log-mel ``(n_mels, frames)``: the paper's spectrogram of one clip."""
    return np.concatenate(list(iter_spectrogram(path, res_type, sr, n_mels)), axis=1)


# --- patches: 96-frame chunks, the max-energy training patch ------------------------------------------


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


# Chunk k's first frame is centred on sample k * CHUNK_SAMPLES of the (padded) signal: 2.23 s per chunk.
CHUNK_SAMPLES = PATCH_FRAMES * HOP_LENGTH
CHUNK_SECONDS = CHUNK_SAMPLES / SAMPLE_RATE


def chunk_count(n_samples: "int | np.ndarray") -> "int | np.ndarray":
    """How many chunks the front end makes of a clip of ``n_samples`` samples at 22000 Hz: a clip of at
    most 10 s is padded to 10 s first (``pad_short_clip``), centred frames give ``1 + length // hop``
    frames, and a trailing partial chunk is dropped (``chunk_spectrogram``). Works on arrays of counts."""
    return (1 + np.maximum(n_samples, PAD_SAMPLES) // HOP_LENGTH) // PATCH_FRAMES


def audio_chunks(n_samples: "int | np.ndarray") -> "int | np.ndarray":
    """How many of a clip's leading chunks hold its audio; the others hold only the padding of a clip
    shorter than 10 s. Chunk k holds audio when it starts before the clip ends, ``k * CHUNK_SAMPLES <
    n_samples``: a chunk starting later sees at most the tail of its first frame's window of the clip.
    A clip longer than 10 s is not padded, and all its chunks hold audio. Works on arrays of counts."""
    return np.minimum(chunk_count(n_samples), -(-np.asarray(n_samples) // CHUNK_SAMPLES))


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


# --- scaling ------------------------------------------------------------------------------------------
def file_chunks(path: str | Path, scaler: "MinMaxScaler", block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """The front end of one file, streamed: its scaled 96x96 chunks ``(k, 96, 96)`` as they complete.

    Every tool that embeds a file goes through here, so a clip gives the same chunks in ``encode.py``,
    search, the notebook functions and ``coala.load``.
    """
    for chunks in iter_chunks(iter_spectrogram(path, block_samples=block_samples)):
        yield scaler.transform(chunks)


def signal_chunks(y: np.ndarray, sr: int, scaler: "MinMaxScaler") -> np.ndarray:
    """The front end of a mono signal held in memory at rate ``sr``: resampled as a file would be
    (``resample``), then the chain of ``file_chunks``; all its scaled chunks ``(n, 96, 96)``."""
    blocks = iter_chunks(spectrogram_blocks([resample(y, sr)]))
    chunks = [scaler.transform(c) for c in blocks]
    return np.concatenate(chunks) if chunks else np.zeros((0, N_MELS, PATCH_FRAMES), np.float32)


def clamp_held_out(patches: "np.ndarray | torch.Tensor") -> "np.ndarray | torch.Tensor":
    """Held-out patches (validation, analysis, retrieval) clamped at 0, as the paper's validation did: the
    scaler was fitted on the training patches, so other patches can dip below its range."""
    return patches.clamp(min=0) if hasattr(patches, "clamp") else np.clip(patches, 0.0, None)


def frontend_parameters() -> dict:
    """Every number of the front end, as a model record keeps them: a model trained on patches made
    otherwise would need another front end, which this code does not offer."""
    return {"sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop_length": HOP_LENGTH, "n_mels": N_MELS,
            "patch_frames": PATCH_FRAMES, "max_energy_step": MAX_ENERGY_STEP, "pad_seconds": PAD_SECONDS,
            "noise_amplitude": NOISE_AMPLITUDE, "noise_seed": NOISE_SEED, "log_eps": LOG_EPS,
            "window": "hann", "mel_norm": "slaney", "magnitude_power": 1, "stft_padding": "reflect",
            "resampler": DEFAULT_RESAMPLER}


@dataclass(frozen=True)
class MinMaxScaler:
    """Fitted MinMax parameters over the 96 frame positions of a patch.

    ``scale`` and ``min`` are stored, not re-derived, because the paper's pickle holds values rounded
    differently from a float64 recomputation (by up to 1e-7 relative).
    """

    data_min: np.ndarray
    data_max: np.ndarray
    scale: np.ndarray
    min: np.ndarray
    feature_range: tuple[float, float] = (0.0, 1.0)
    n_samples_seen: int = 0

    def transform(self, patches: np.ndarray) -> np.ndarray:
        """Scale ``(..., 96 mels, 96 frames)`` patches; float32 out, as the paper's model saw them.

        A 2-D ``(rows, 96)`` array is what the paper passed to scikit-learn's ``transform`` (one chunk,
        mel bands as rows), so code written for its pickle runs on this scaler unchanged.
        """
        patches = np.asarray(patches)
        if patches.ndim < 2 or patches.shape[-1] != self.data_min.shape[0]:
            raise ValueError(f"scaler has {self.data_min.shape[0]} features; expected an array (..., "
                             f"{self.data_min.shape[0]}), got shape {patches.shape}")
        return (patches.astype(np.float64) * self.scale + self.min).astype(np.float32)

    def inverse_transform(self, scaled: np.ndarray) -> np.ndarray:
        """Back from the scaled range to log-mel values (to look at a reconstruction as a spectrogram)."""
        return ((np.asarray(scaled, dtype=np.float64) - self.min) / self.scale).astype(np.float32)

    # scikit-learn's attribute names, for code written against the paper's pickle.
    data_min_ = property(lambda self: self.data_min)
    data_max_ = property(lambda self: self.data_max)
    data_range_ = property(lambda self: self.data_max - self.data_min)
    scale_ = property(lambda self: self.scale)
    min_ = property(lambda self: self.min)
    n_features_in_ = property(lambda self: int(self.data_min.shape[0]))
    n_samples_seen_ = property(lambda self: self.n_samples_seen)

    @classmethod
    def fit(cls, patches: np.ndarray) -> "MinMaxScaler":
        """Fit on ``(n, 96 mels, 96 frames)`` patches: every mel row of every patch is one sample."""
        rows = patches.reshape(-1, patches.shape[-1]).astype(np.float64)
        data_min, data_max = rows.min(axis=0), rows.max(axis=0)
        data_range = data_max - data_min
        scale = 1.0 / np.where(data_range == 0.0, 1.0, data_range)
        return cls(data_min, data_max, scale, -data_min * scale, n_samples_seen=int(rows.shape[0]))

    def to_dict(self) -> dict:
        return {
            "kind": "MinMaxScaler",
            "feature_range": list(self.feature_range),
            "n_features": int(self.data_min.shape[0]),
            "data_min": self.data_min.tolist(),
            "data_max": self.data_max.tolist(),
            "scale": self.scale.tolist(),
            "min": self.min.tolist(),
            "n_samples_seen": self.n_samples_seen,
        }

    @classmethod
    def from_dict(cls, params: dict, source: object) -> "MinMaxScaler":
        """The scaler ``to_dict`` wrote, checked: ``ScalerError`` naming ``source`` otherwise."""
        try:
            scaler = cls(*(np.asarray(params[k], dtype=np.float64) for k in ("data_min", "data_max", "scale", "min")),
                         tuple(float(v) for v in params.get("feature_range", (0.0, 1.0))),
                         int(params.get("n_samples_seen", 0)))
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
            raise ScalerError(f"{source}: not a scaler of this project ({type(exc).__name__}: {exc})") from None
        return scaler.checked(source)

    def checked(self, source: object) -> "MinMaxScaler":
        """The scaler, when it was fitted on 96 frame positions (a scaler of other data would mis-scale
        patches) and its parameters are finite (a NaN or Inf would make every embedding NaN, unnoticed)."""
        parameters = {"data_min": self.data_min, "data_max": self.data_max, "scale": self.scale, "min": self.min}
        shapes = {a.shape for a in parameters.values()}
        if shapes != {(PATCH_FRAMES,)}:
            raise ScalerError(f"{source}: scaler parameters must have {PATCH_FRAMES} features each, found {sorted(shapes)}")
        for name, values in parameters.items():
            if not np.isfinite(values).all():
                index = int(np.flatnonzero(~np.isfinite(values))[0])
                raise ScalerError(f"{source}: scaler parameter {name} holds {values[index]} at feature {index}")
        return self

    def same_as(self, other: "MinMaxScaler") -> bool:
        """Whether two scalers scale every patch alike (their fitted statistics are equal)."""
        return all(np.array_equal(a, b) for a, b in ((self.scale, other.scale), (self.min, other.min)))


