"""Throughput of the dataset builder's spectrogram stage: clips/s with one worker process and with two.

    python bench/build_throughput.py [--clips 256] [--seconds 5] [--sample-rate 44100] [--repeats 3]

Generates clips like Freesound uploads (44.1 kHz, resampled to 22000 Hz by the front end), then runs
``coala.dataset_builder.compute_patches`` (decode, resample, pad, log-mel, max-energy patch, cache write)
on an empty cache with 1 and with 2 workers, alternating after one untimed warm-up, and prints the
medians. Each worker process runs single-threaded. Pool start-up and each worker's first clip (about
0.1 s per worker here) are part of the stage, so small corpora understate the parallel speed-up. Last line:
``speedup_parallel: X.XX`` (two workers over one; the target is at least 1.7 on 2 cores).
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coala.data.builder import compute_patches  # noqa: E402


def write_clips(folder: Path, n: int, seconds: float, sample_rate: int) -> dict[int, Path]:
    """``n`` chirps over noise as 16-bit WAV files named ``<id>.wav``."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    clips = {}
    for clip_id in range(n):
        f0 = rng.uniform(80, 2000)
        y = 0.4 * np.sin(2 * np.pi * f0 * t * (1 + t)) + 0.05 * rng.standard_normal(t.size)
        clips[clip_id] = folder / f"{clip_id}.wav"
        sf.write(clips[clip_id], y, sample_rate, subtype="PCM_16")
    return clips


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the pool's workers, once joined)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(clips: dict[int, Path], workers: int, scratch: Path) -> tuple[float, float]:
    """Clips/s (wall clock) and CPU milliseconds per clip of one run on an empty cache.

    On a shared machine the wall-clock figures are noisy; equal CPU time per clip with one and two
    workers shows that the stage itself parallelises, whatever else the cores were doing.
    """
    cache = Path(tempfile.mkdtemp(dir=scratch))
    start, cpu = time.perf_counter(), cpu_seconds()
    failures = compute_patches(clips, cache, workers, progress=False)
    elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    if failures:
        raise RuntimeError(f"generated clips failed: {failures[:3]}")
    return len(clips) / elapsed, 1000 * cpu / len(clips)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=256, help="clips per measurement (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length; at most 10 s takes the padding path (default %(default)s)")
    parser.add_argument("--sample-rate", type=int, default=44100, help="sample rate of the generated files (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repetitions, medians reported (default %(default)s)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        (scratch / "audio").mkdir()
        clips = write_clips(scratch / "audio", args.clips, args.seconds, args.sample_rate)
        measure(dict(list(clips.items())[:2]), 1, scratch)  # one-time lazy imports, untimed
        rates: dict[int, list[float]] = {1: [], 2: []}
        cpu: dict[int, list[float]] = {1: [], 2: []}
        for repeat in range(args.repeats):
            for workers in rates:
                rate, cpu_ms = measure(clips, workers, scratch)
                rates[workers].append(rate)
                cpu[workers].append(cpu_ms)
            print(f"repeat {repeat + 1}: 1 worker {rates[1][-1]:.1f} clips/s, 2 workers {rates[2][-1]:.1f} clips/s")
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"{args.clips} clips of {args.seconds:g} s at {args.sample_rate} Hz, median of {args.repeats}:")
    for workers, rate in ((1, one), (2, two)):
        print(f"{workers} worker(s): {rate:.1f} clips/s, {statistics.median(cpu[workers]):.1f} CPU ms per clip")
    print(f"speedup_parallel: {two / one:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
