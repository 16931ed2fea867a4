"""Files per second of ``encode.py`` in one process and under ``torchrun`` with several processes.

Generates UrbanSound8K-like clips (4 s, 44.1 kHz, stereo 16-bit), a randomly initialised audio encoder
(weights do not change speed) and a scaler fitted on random patches, then times the whole command, as a
user runs it, into a fresh output folder each time, interleaving the launches over the repetitions:

- ``python encode.py ...`` (one process, torch's default threads);
- ``torchrun --standalone --nproc_per_node=N encode.py ...`` for each N of ``--procs`` (torchrun gives
  each process one thread unless ``OMP_NUM_THREADS`` is set).

Wall time includes starting Python, importing torch and, under torchrun, the rendezvous: the same
launches on one file are timed too, and files/s is also given with that fixed cost taken off. Prints a
table of medians and, as its last lines, ``files_per_s_<N>proc: X`` for each launch.

    python bench/cluster_throughput.py                       # the figures in docs/cluster.md
    python bench/cluster_throughput.py --clips 40 --reps 1   # a quick look
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coala.audio.scaler import MinMaxScaler, save_scaler  # noqa: E402
from models_t1000 import AudioEncoder  # noqa: E402


def make_clips(folder: Path, n: int, seconds: float = 4.0, sr: int = 44100, seed: int = 0) -> None:
    """``n`` clips of decaying tones over noise, stereo 16-bit WAV."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        y = 0.02 * rng.standard_normal((t.size, 2))
        for f in rng.uniform(80, 4000, size=4):
            y += (0.2 * np.sin(2 * np.pi * f * t) * np.exp(-t % 1.0 * 3))[:, None]
        sf.write(folder / f"clip_{i:04d}.wav", np.clip(y, -1, 1), sr, subtype="PCM_16")


def command(procs: int, argv: list[str]) -> list[str]:
    if procs == 1:
        return [sys.executable, str(ROOT / "encode.py"), *argv]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
            str(ROOT / "encode.py"), *argv]


def timed(procs: int, argv: list[str], output: Path) -> float:
    shutil.rmtree(output, ignore_errors=True)
    started = time.perf_counter()
    result = subprocess.run(command(procs, [*argv, "--output", str(output), "--quiet"]), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{procs} process(es) failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=400, help="4 s clips to encode (default %(default)s)")
    parser.add_argument("--procs", type=int, nargs="+", default=[2], help="torchrun process counts (default 2)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions, medians reported (default %(default)s)")
    args = parser.parse_args()
    env_threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"{os.cpu_count()} CPU(s), torch {torch.__version__}, OMP_NUM_THREADS {env_threads}, "
          f"cuda {'available' if torch.cuda.is_available() else 'not available'}")
    launches = [1, *args.procs]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_clips(root / "clips", args.clips)
        make_clips(root / "one_clip", 1)
        torch.manual_seed(0)
        (root / "model").mkdir()
        torch.save(AudioEncoder().state_dict(), root / "model" / "audio_encoder_epoch_1.pt")
        save_scaler(MinMaxScaler.fit(np.random.default_rng(1).uniform(-16.0, 4.0, size=(8, 96, 96))), root / "scaler.json")
        common = ["--model", str(root / "model" / "audio_encoder_epoch_1.pt"), "--scaler", str(root / "scaler.json")]
        walls: dict[int, list[float]] = {p: [] for p in launches}
        fixed: dict[int, list[float]] = {p: [] for p in launches}
        for _ in range(args.reps):
            for procs in launches:
                fixed[procs].append(timed(procs, [*common, "--input", str(root / "one_clip")], root / "out"))
                walls[procs].append(timed(procs, [*common, "--input", str(root / "clips")], root / "out"))
    print(f"{args.clips} clips of 4 s (44.1 kHz stereo), medians of {args.reps}")
    print("| processes | wall (s) | files/s | start-up on 1 file (s) | files/s without start-up |")
    print("| --- | --- | --- | --- | --- |")
    rates = {}
    for procs in launches:
        wall, start = statistics.median(walls[procs]), statistics.median(fixed[procs])
        rates[procs] = args.clips / wall
        work = f"{args.clips / (wall - start):.1f}" if wall > start else "n/a (start-up dominates: use more clips)"
        print(f"| {procs} | {wall:.1f} | {rates[procs]:.1f} | {start:.1f} | {work} |")
    for procs in launches:
        print(f"files_per_s_{procs}proc: {rates[procs]:.2f}")


if __name__ == "__main__":
    main()
