"""Signal primitives for the demo's procedurally synthesized sounds.

Every generator is vectorized numpy (Karplus-Strong runs one delay-line period per step), takes its
randomness from a ``numpy.random.Generator`` passed in, and returns float64 mono at the rate asked for.
The demo corpus and the three small downstream sets are built from these same pieces, so an encoder
trained on the corpus has seen the ingredients the downstream classes are mixed from.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from coala.atomic import atomic_path


def n_samples(seconds: float, sr: int) -> int:
    return max(1, int(round(seconds * sr)))


def midi_to_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def adsr(n: int, sr: int, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    """Piecewise-linear attack/decay/sustain/release envelope over ``n`` samples (release at the end)."""
    a, d, r = (min(n, n_samples(t, sr)) for t in (attack, decay, release))
    env = np.full(n, sustain, dtype=np.float64)
    env[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    d_end = min(n, a + d)
    env[a:d_end] = np.linspace(1.0, sustain, d_end - a, endpoint=False)
    env[n - r:] *= np.linspace(1.0, 0.0, r)
    return env


def exp_decay(n: int, sr: int, t60: float) -> np.ndarray:
    """exp envelope falling by 60 dB in ``t60`` seconds: the decay of struck and plucked sounds."""
    return 10.0 ** (-3.0 * np.arange(n) / (sr * t60))


def glide(n: int, f_start: float, f_end: float) -> np.ndarray:
    """Instantaneous frequency moving geometrically from ``f_start`` to ``f_end`` (a musical glide)."""
    return f_start * (f_end / f_start) ** np.linspace(0.0, 1.0, n)


def additive(freq: np.ndarray, sr: int, amplitudes: np.ndarray, ratios: np.ndarray | None = None,
             rng: np.random.Generator | None = None) -> np.ndarray:
    """Sum of partials at ``ratios`` (default harmonic 1..k) of an instantaneous frequency track.

    Partials that would pass Nyquist anywhere on the track are left out, so nothing aliases.
    """
    amplitudes = np.asarray(amplitudes, dtype=np.float64)
    ratios = np.arange(1, len(amplitudes) + 1, dtype=np.float64) if ratios is None else np.asarray(ratios, float)
    phase = 2.0 * np.pi * np.cumsum(freq) / sr
    start = rng.uniform(0, 2 * np.pi, len(ratios)) if rng is not None else np.zeros(len(ratios))
    out = np.zeros_like(phase)
    f_max = float(np.max(freq))
    for amp, ratio, phi in zip(amplitudes, ratios, start):
        if ratio * f_max < 0.48 * sr and amp != 0.0:
            out += amp * np.sin(ratio * phase + phi)
    return out


def harmonic_amplitudes(k: int, rolloff: float, odd_only: bool = False) -> np.ndarray:
    """``1 / h**rolloff`` for harmonics 1..k: rolloff 0 is buzzy, 2 is dull, large is almost a sine."""
    h = np.arange(1, k + 1, dtype=np.float64)
    amps = 1.0 / h ** rolloff
    if odd_only:
        amps[1::2] = 0.0
    return amps


def vibrato(n: int, sr: int, f0: float, rate: float, depth_semitones: float) -> np.ndarray:
    t = np.arange(n) / sr
    return f0 * 2.0 ** (depth_semitones / 12.0 * np.sin(2 * np.pi * rate * t))


def colored_noise(n: int, rng: np.random.Generator, exponent: float = 0.0) -> np.ndarray:
    """Noise with power spectrum ``1/f**exponent``: 0 white, 1 pink, 2 brown; unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spectrum / f ** (exponent / 2.0), n)
    return y / (np.sqrt(np.mean(y ** 2)) + 1e-12)


def band(x: np.ndarray, sr: int, low: float | None = None, high: float | None = None, order: int = 4) -> np.ndarray:
    """Butterworth low-, high- or band-pass (whichever edges are given), as second-order sections."""
    nyq = 0.5 * sr
    if low is not None and high is not None:
        sos = signal.butter(order, [max(low, 10.0) / nyq, min(high, 0.95 * nyq) / nyq], "bandpass", output="sos")
    elif low is not None:
        sos = signal.butter(order, min(low, 0.95 * nyq) / nyq, "highpass", output="sos")
    elif high is not None:
        sos = signal.butter(order, min(high, 0.95 * nyq) / nyq, "lowpass", output="sos")
    else:
        return x
    return signal.sosfilt(sos, x)


def resonators(x: np.ndarray, sr: int, centres: list[float], q: float = 8.0) -> np.ndarray:
    """Parallel peaking resonators (formants of a voice, body modes of an instrument)."""
    out = np.zeros_like(x)
    for fc in centres:
        if fc < 0.45 * sr:
            b, a = signal.iirpeak(fc, q, fs=sr)
            out += signal.lfilter(b, a, x)
    return out


def karplus_strong(f0: float, seconds: float, sr: int, rng: np.random.Generator,
                   damping: float = 0.996, brightness: float = 1.0) -> np.ndarray:
    """Plucked string: a noise burst recirculating in a delay line with an averaging low-pass.

    Each step computes a whole period at once (a sample depends only on the previous period), so the
    loop runs ``seconds * f0`` times instead of once per sample.
    """
    n = n_samples(seconds, sr)
    period = max(2, int(round(sr / f0)))
    burst = rng.uniform(-1.0, 1.0, period)
    if brightness < 1.0:
        burst = band(burst, sr, high=max(200.0, brightness * 0.45 * sr), order=2)
    y = np.zeros(n + period + 1)
    y[1:period + 1] = burst
    pos = period + 1
    while pos < len(y):
        end = min(len(y), pos + period)
        prev = y[pos - period:end - period]
        prev_1 = y[pos - period - 1:end - period - 1]
        y[pos:end] = damping * 0.5 * (prev + prev_1)
        pos = end
    return y[1:n + 1]


def click_train(seconds: float, sr: int, rate: float, rng: np.random.Generator, jitter: float = 0.0,
                click_ms: float = 2.0) -> np.ndarray:
    """Short noise clicks at ``rate`` per second, onsets jittered by ``jitter`` of a period."""
    n = n_samples(seconds, sr)
    onsets = np.arange(0.0, seconds, 1.0 / rate)
    onsets = onsets + rng.uniform(-jitter, jitter, len(onsets)) / rate
    click_len = max(2, n_samples(click_ms / 1000.0, sr))
    click = rng.standard_normal(click_len) * exp_decay(click_len, sr, click_ms / 1000.0)
    return place(n, sr, [(t, click) for t in onsets])


def drum(kind: str, sr: int, rng: np.random.Generator, pitch_scale: float = 1.0) -> np.ndarray:
    """One drum hit: ``kick`` (falling sine), ``snare`` (tone plus band noise), ``hihat`` (high noise)."""
    if kind == "kick":
        n = n_samples(0.45, sr)
        f = glide(n, 150.0 * pitch_scale, 45.0 * pitch_scale)
        return np.sin(2 * np.pi * np.cumsum(f) / sr) * exp_decay(n, sr, 0.4)
    if kind == "snare":
        n = n_samples(0.25, sr)
        body = np.sin(2 * np.pi * 185.0 * pitch_scale * np.arange(n) / sr) * exp_decay(n, sr, 0.1)
        rattle = band(rng.standard_normal(n), sr, 1500.0, 7000.0) * exp_decay(n, sr, 0.2)
        return 0.5 * body + 0.8 * rattle
    if kind == "hihat":
        n = n_samples(0.08, sr)
        return 0.5 * band(rng.standard_normal(n), sr, low=6000.0 * min(pitch_scale, 1.2)) * exp_decay(n, sr, 0.06)
    raise ValueError(f"unknown drum kind {kind!r}")


def place(n: int, sr: int, events: list[tuple[float, np.ndarray]]) -> np.ndarray:
    """Mix ``(onset_seconds, samples)`` events into an ``n``-sample buffer, cutting what overruns."""
    out = np.zeros(n)
    for onset, x in events:
        start = int(round(onset * sr))
        if 0 <= start < n:
            end = min(n, start + len(x))
            out[start:end] += x[:end - start]
    return out


def reverb(x: np.ndarray, sr: int, rng: np.random.Generator, t60: float = 0.8, wet: float = 0.3) -> np.ndarray:
    """Convolution with exponentially decaying noise: a cheap, plausible room."""
    ir_len = n_samples(t60, sr)
    ir = rng.standard_normal(ir_len) * exp_decay(ir_len, sr, t60)
    tail = signal.fftconvolve(x, ir)[:len(x)]
    tail *= np.sqrt(np.mean(x ** 2) / (np.mean(tail ** 2) + 1e-12))
    return (1.0 - wet) * x + wet * tail


def mix_at_snr(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x`` plus ``noise`` scaled so that their power ratio is ``snr_db``."""
    px, pn = np.mean(x ** 2), np.mean(noise ** 2) + 1e-12
    return x + noise * np.sqrt(px / pn / 10.0 ** (snr_db / 10.0))


def soft_clip(x: np.ndarray, drive: float) -> np.ndarray:
    """tanh distortion: drive 1 is almost clean, 10 is heavily distorted."""
    return np.tanh(drive * x) / np.tanh(drive)


def normalize(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    m = float(np.max(np.abs(x)))
    return x * (peak / m) if m > 0 else x


def to_stereo(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Two channels: a random pan and a sub-millisecond inter-channel delay; shape (n, 2)."""
    pan = rng.uniform(0.2, 0.8)
    delay = int(rng.integers(0, max(1, sr // 2000)))
    right = np.concatenate([np.zeros(delay), x[:len(x) - delay]])
    return np.stack([np.sqrt(1 - pan) * x, np.sqrt(pan) * right], axis=1)


def write_audio(path: Path, y: np.ndarray, sr: int, subtype: str = "PCM_16") -> None:
    """Write a clip atomically (``y`` (n,) or (n, channels), within [-1, 1])."""
    fmt = "FLAC" if path.suffix == ".flac" else "WAV"
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(y, -1.0, 1.0).astype(np.float32), sr, subtype=subtype, format=fmt)
