"""Peak resident memory of ``encode.py`` on one long recording, and its embeddings against the whole-file path.

Writes a 44.1 kHz 16-bit WAV of tones over noise (one hour by default) block by block into a temporary
folder, with a randomly initialised audio encoder and a scaler fitted on random patches, runs
``encode.py`` on it in a child process and reads the child's peak resident set size
(``ru_maxrss`` of ``RUSAGE_CHILDREN``). Then it computes the same file's embeddings the whole-file way,
in this process: the whole signal decoded, resampled by ``librosa.resample`` in one call, reflect-padded
and turned into one spectrogram (frames transformed a slice at a time only to bound this check's own
memory; the numbers are those of one pass), chunked, scaled and embedded, and prints the smallest
per-chunk cosine between the two. Last lines: ``peak_rss_gb: X`` and ``min_chunk_cosine_vs_whole_file: X``.

    python bench/encode_memory.py                # one hour, the figure in docs/performance.md
    python bench/encode_memory.py --minutes 5    # a quick look
    python bench/encode_memory.py --project ../main   # another checkout's encode.py, for a before/after
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import scipy.fft
import scipy.signal
import soundfile as sf
import torch
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coala.core.frontend import HOP_LENGTH, LOG_EPS, N_FFT, N_MELS, PATCH_FRAMES, SAMPLE_RATE  # noqa: E402
from coala.core.frontend import scaled_chunks  # noqa: E402
from coala.audio.scaler import MinMaxScaler, save_scaler  # noqa: E402
from coala.core.model import embed# noqa: E402
from coala.encode.inference import inference_model# noqa: E402
from models_t1000 import AudioEncoder  # noqa: E402

FILE_SR = 44100
WRITE_BLOCK = 1 << 20


def write_long_clip(path: Path, seconds: float, seed: int = 0) -> None:
    """Tones over noise, written a block at a time so this process never holds the whole signal."""
    rng = np.random.default_rng(seed)
    freqs = rng.uniform(60, 6000, size=5)
    with sf.SoundFile(path, "w", FILE_SR, 1, subtype="PCM_16") as f:
        for start in range(0, int(seconds * FILE_SR), WRITE_BLOCK):
            t = np.arange(start, min(start + WRITE_BLOCK, int(seconds * FILE_SR))) / FILE_SR
            y = 0.05 * rng.standard_normal(t.size)
            for k, freq in enumerate(freqs):
                y += 0.15 * np.sin(2 * np.pi * freq * t) * np.exp(-(t % (0.3 + 0.4 * k)) * 4)
            f.write(np.clip(y, -1, 1))


def whole_file_embeddings(model: AudioEncoder, scaler: MinMaxScaler, path: Path) -> np.ndarray:
    """The whole-file computation: one decode, one resampling call, one padded signal, one spectrogram."""
    y, file_sr = sf.read(path, dtype="float32")
    y = librosa.resample(y, orig_sr=file_sr, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    padded = np.pad(y.astype(np.float64), N_FFT // 2, mode="reflect")
    del y
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH]
    mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float64)
    window = scipy.signal.get_window("hann", N_FFT, fftbins=True)
    spec = np.empty((N_MELS, len(frames)), dtype=np.float32)
    for start in range(0, len(frames), 4096):
        magnitude = np.abs(scipy.fft.rfft(frames[start:start + 4096] * window, axis=1))
        spec[:, start:start + 4096] = np.log(mel @ magnitude.T + LOG_EPS)
    chunks = scaled_chunks(spec, scaler)
    folded = inference_model(model)
    return np.concatenate([embed(folded, chunks[i:i + 64])[0].numpy() for i in range(0, len(chunks), 64)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the generated 44.1 kHz recording")
    parser.add_argument("--cli-args", default="", help="extra encode.py options, e.g. '--workers 1'")
    parser.add_argument("--project", type=Path, default=ROOT, help="the checkout whose encode.py is measured")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="coala_bench_memory_") as tmp_name:
        tmp = Path(tmp_name)
        clip = tmp / "long.wav"
        write_long_clip(clip, args.minutes * 60)
        torch.manual_seed(0)
        model = AudioEncoder().eval()
        model_path = tmp / "bench" / "audio_encoder_epoch_0.pt"
        model_path.parent.mkdir()
        torch.save(model.state_dict(), model_path)
        scaler = MinMaxScaler.fit(np.random.default_rng(0).uniform(-16, 4, size=(20, N_MELS, PATCH_FRAMES)))
        save_scaler(scaler, tmp / "scaler.json")

        command = [sys.executable, str(args.project / "encode.py"), "--model", str(model_path), "--scaler",
                   str(tmp / "scaler.json"), "--input", str(clip), "--output", str(tmp / "out"), "--quiet",
                   "--device", "cpu", *args.cli_args.split()]
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=args.project)
        seconds = time.perf_counter() - start
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9  # Linux reports KiB

        streamed = np.load(tmp / "out" / "long.npy").astype(np.float64)
        with threadpool_limits(limits=1, user_api="blas"):
            whole = whole_file_embeddings(model, scaler, clip).astype(np.float64)
        assert streamed.shape == whole.shape, (streamed.shape, whole.shape)
        cosine = (streamed * whole).sum(1) / (np.linalg.norm(streamed, axis=1) * np.linalg.norm(whole, axis=1))
        print(f"{args.minutes:g} min of 44.1 kHz mono 16-bit ({clip.stat().st_size / 1e6:.0f} MB on disk): "
              f"{len(streamed)} chunks, encode.py took {seconds:.1f} s")
        print(f"peak_rss_gb: {peak_gb:.2f}")
        print(f"min_chunk_cosine_vs_whole_file: {cosine.min():.6f}")


if __name__ == "__main__":
    main()
