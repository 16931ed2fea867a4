"""Files per second of ``encode.py``'s command line against the paper's one-file-at-a-time procedure.

Generates UrbanSound8K-like clips (4 s, 44.1 kHz, stereo 16-bit) and GTZAN-like clips (30 s, 22050 Hz,
mono) in a temporary folder, a randomly initialised audio encoder (weights do not change speed) and a
scaler fitted on random patches, then times, in one process with interleaved repetitions:

- ours: ``encode.main([...])`` in-process, the command line's own code path and defaults;
- paper: the paper's procedure per file (``librosa.load(sr=22000, res_type='kaiser_fast')``, zero
  padding and noise, ``librosa.feature.melspectrogram(power=1, pad_mode='reflect')``, log, the
  scikit-learn scaler per chunk, one forward per file, ``np.save``) with the libraries' default thread
  settings, as the paper's script ran;
- paper, 1-thread BLAS: the same under ``threadpool_limits(1, 'blas')``, which removes the fight
  between numpy's BLAS threads and torch's on a small machine: the honest lower bound of the gain;
- ours, bf16: the command line with ``--bf16`` (bfloat16 autocast of the model) on the first
  ``--bf16-clips`` of the 4 s clips (a CPU without bf16 instructions runs it many times slower: give it
  fewer clips there).

Prints medians, the speedups, the agreement of our outputs with the paper procedure's (smallest
per-chunk cosine), and as its last lines ``speedup_vs_paper: X.XX`` (4 s clips),
``speedup_vs_paper_30s: X.XX``, ``bf16_speedup_vs_paper: X.XX`` (4 s clips, against the paper's rate on
all of them) and ``bf16_min_cosine: X`` (per chunk, bf16 against our float32 outputs of the same files).

    python bench/encode_throughput.py                              # the figures in docs/performance.md
    python bench/encode_throughput.py --short 20 --long 2 --reps 1 # a quick look
"""
from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch
from sklearn.preprocessing import MinMaxScaler as SkMinMaxScaler
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coala.core.frontend import (HOP_LENGTH, LOG_EPS, N_FFT, N_MELS, NOISE_AMPLITUDE, NOISE_SEED, PAD_SAMPLES,  # noqa: E402
                         PATCH_FRAMES, SAMPLE_RATE)
from coala.audio.scaler import load_scaler, save_scaler  # noqa: E402
import encode  # noqa: E402
from models_t1000 import AudioEncoder  # noqa: E402


def make_clips(folder: Path, n: int, seconds: float, sr: int, channels: int, seed: int) -> Path:
    """``n`` clips of decaying tones over noise, 16-bit WAV, in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        y = 0.05 * rng.standard_normal((t.size, channels))
        for f in rng.uniform(60, 6000, size=5):
            y += (0.15 * np.sin(2 * np.pi * f * t) * np.exp(-(t % rng.uniform(0.3, 2.0)) * 4))[:, None]
        sf.write(folder / f"clip_{i:04d}.wav", np.clip(y, -1, 1), sr, subtype="PCM_16")
    return folder


def paper_procedure(model: AudioEncoder, scaler: SkMinMaxScaler, files: list[Path], out: Path) -> None:
    """The paper's extraction, one file at a time, written out from its published procedure."""
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        y, sr = librosa.load(str(path), sr=SAMPLE_RATE, res_type="kaiser_fast")
        if len(y) <= PAD_SAMPLES:
            y = np.concatenate([y, np.zeros(PAD_SAMPLES - len(y), dtype=y.dtype)])
            y = y + NOISE_AMPLITUDE * np.random.RandomState(NOISE_SEED).rand(PAD_SAMPLES)
        mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS,
                                             power=1, pad_mode="reflect")
        spec = np.log(mel + LOG_EPS)
        frames = librosa.util.frame(np.asfortranarray(spec), frame_length=PATCH_FRAMES, hop_length=PATCH_FRAMES,
                                    axis=-1).T
        chunks = np.array([scaler.transform(frame.T) for frame in frames])
        with torch.no_grad():
            embedding, _ = model(torch.unsqueeze(torch.tensor(chunks).float(), 1))
        np.save(out / f"{path.stem}.npy", embedding.numpy())


def ours(model_path: Path, scaler_path: Path, folder: Path, out: Path, extra: list[str]) -> None:
    """The command line, in-process: its parsing, defaults, pipeline and atomic writes."""
    argv = ["--model", str(model_path), "--scaler", str(scaler_path), "--input", str(folder), "--output", str(out),
            "--overwrite", "--quiet", "--device", "cpu", *extra]
    with contextlib.redirect_stdout(io.StringIO()) as summary:
        code = encode.main(argv)
    if code != 0:
        raise SystemExit(f"encode.py failed ({code}): {summary.getvalue().strip()}")


def min_chunk_cosine(ours_dir: Path, paper_dir: Path) -> float:
    """Smallest per-chunk cosine between the ``.npy`` files of ``paper_dir`` and their namesakes."""
    worst = 1.0
    for path in sorted(paper_dir.glob("*.npy")):
        a, b = np.load(ours_dir / path.name).astype(np.float64), np.load(path).astype(np.float64)
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        worst = min(worst, float(cos.min()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--short", type=int, default=200, help="number of 4 s 44.1 kHz clips")
    parser.add_argument("--long", type=int, default=20, help="number of 30 s 22050 Hz clips")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (medians reported)")
    parser.add_argument("--cli-args", default="", help="extra encode.py options for our path, e.g. '--workers 2'")
    parser.add_argument("--bf16-clips", type=int, default=200,
                        help="4 s clips timed with --bf16 (0: no bf16 run)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="coala_bench_") as tmp_name:
        tmp = Path(tmp_name)
        sets = {"4 s": make_clips(tmp / "short", args.short, 4.0, 44100, 2, seed=0),
                "30 s": make_clips(tmp / "long", args.long, 30.0, 22050, 1, seed=1)}
        torch.manual_seed(0)
        model = AudioEncoder().eval()
        model_path = tmp / "bench" / "audio_encoder_epoch_0.pt"
        model_path.parent.mkdir()
        torch.save(model.state_dict(), model_path)
        sk_scaler = SkMinMaxScaler().fit(np.random.default_rng(0).uniform(-16, 4, size=(20 * N_MELS, PATCH_FRAMES)))
        scaler_path = tmp / "scaler.json"
        save_scaler(load_scaler(sk_scaler), scaler_path)
        extra = args.cli_args.split()

        methods: dict[str, Callable[[Path, Path], None]] = {
            "ours (encode.py)": lambda folder, out: ours(model_path, scaler_path, folder, out, extra),
            "paper": lambda folder, out: paper_procedure(model, sk_scaler, sorted(folder.glob("*.wav")), out),
        }

        def paper_one_blas(folder: Path, out: Path) -> None:
            with threadpool_limits(limits=1, user_api="blas"):
                methods["paper"](folder, out)
        methods["paper, 1-thread BLAS"] = paper_one_blas

        warm = make_clips(tmp / "warm", 3, 4.0, 44100, 2, seed=2)  # numba JIT of resampy, caches, allocators
        for name, method in methods.items():
            method(warm, tmp / "warm_out" / name)

        names = list(methods)
        jobs = {set_name: [(name, folder) for name in names] for set_name, folder in sets.items()}
        bf16_name = "ours, bf16"
        if args.bf16_clips > 0:
            bf16_folder = tmp / "short_bf16"
            bf16_folder.mkdir()
            for clip in sorted(sets["4 s"].glob("*.wav"))[:args.bf16_clips]:
                shutil.copy(clip, bf16_folder / clip.name)
            methods[bf16_name] = lambda folder, out: ours(model_path, scaler_path, folder, out, [*extra, "--bf16"])
            methods[bf16_name](warm, tmp / "warm_out" / bf16_name)
            jobs["4 s"].append((bf16_name, bf16_folder))

        seconds: dict[tuple[str, str], list[float]] = {}
        for rep in range(args.reps):
            for set_name, set_jobs in jobs.items():
                for name, folder in set_jobs[rep % len(set_jobs):] + set_jobs[:rep % len(set_jobs)]:  # rotate the order
                    start = time.perf_counter()
                    methods[name](folder, tmp / "out" / set_name / name)
                    seconds.setdefault((set_name, name), []).append(time.perf_counter() - start)

        print(f"{torch.get_num_threads()} torch threads; {args.short} clips of 4 s (44.1 kHz stereo), "
              f"{args.long} of 30 s (22050 Hz mono); median of {args.reps}")
        print(f"{'clips':<6} {'method':<22} {'files/s':>8} {'ms/file':>8}")
        rate: dict[tuple[str, str], float] = {}
        for (set_name, name), times in seconds.items():
            n = len(list(dict(jobs[set_name])[name].glob("*.wav")))
            rate[set_name, name] = n / statistics.median(times)
            print(f"{set_name:<6} {name:<22} {rate[set_name, name]:>8.1f} {1000 / rate[set_name, name]:>8.1f}")
        for set_name in sets:
            ours_rate = rate[set_name, names[0]]
            agreement = min_chunk_cosine(tmp / "out" / set_name / names[0], tmp / "out" / set_name / "paper")
            print(f"{set_name} clips: {ours_rate / rate[set_name, 'paper']:.2f}x the paper, "
                  f"{ours_rate / rate[set_name, 'paper, 1-thread BLAS']:.2f}x the paper with 1-thread BLAS; "
                  f"min per-chunk cosine to the paper's outputs {agreement:.6f}")
        print(f"speedup_vs_paper: {rate['4 s', names[0]] / rate['4 s', 'paper']:.2f}")
        print(f"speedup_vs_paper_30s: {rate['30 s', names[0]] / rate['30 s', 'paper']:.2f}")
        if args.bf16_clips > 0:
            bf16_cosine = min_chunk_cosine(tmp / "out" / "4 s" / names[0], tmp / "out" / "4 s" / bf16_name)
            print(f"bf16_speedup_vs_paper: {rate['4 s', bf16_name] / rate['4 s', 'paper']:.2f}")
            print(f"bf16_min_cosine: {bf16_cosine:.6f}")


if __name__ == "__main__":
    main()
