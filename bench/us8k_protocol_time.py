"""Time the full UrbanSound8K protocol end to end: `classify.py --tasks us8k --runs 10 --jobs 2`.

Target: under 30 minutes on 2 cores for 8,732 clips, 10 folds x 10 runs of MLPClassifier(256).

The embeddings are synthetic but shaped like the real ones (8,732 clips in UrbanSound8K's fold sizes
and class frequencies, 4 chunks x 1152 float32 per clip as encode.py writes them for clips padded to
10 s) and about as hard: class means in a low-rank subspace buried in noise, so the MLP needs tens of
epochs and scores far from 100%, like on real embeddings. The time of an MLP fit grows with its epochs,
so the bench also prints the mean epochs it saw and the time projected to the worst case, every fit
running to ``max_iter`` (200). First it times one fold's fit side by side the paper's way (float64,
BLAS's default threads) and ours (float32, one BLAS thread per worker).

    python bench/us8k_protocol_time.py                 # the full protocol (the figure in docs/performance.md)
    python bench/us8k_protocol_time.py --runs 2        # a quick sanity run; minutes scale with runs
"""
from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coala.evaluation.datasets import US8K_CSV, read_us8k  # noqa: E402
from coala.evaluation.protocol import fit_and_score  # noqa: E402
from coala.evaluation.task import load_embeddings  # noqa: E402
from coala.core.model import LATENT_DIM  # noqa: E402

FOLD_SIZES = (873, 888, 925, 990, 936, 823, 838, 806, 816, 837)  # UrbanSound8K's folds 1-10: 8,732 clips
CLASS_COUNTS = {"air_conditioner": 1000, "car_horn": 429, "children_playing": 1000, "dog_bark": 1000,
                "drilling": 1000, "engine_idling": 1000, "gun_shot": 374, "jackhammer": 1000,
                "siren": 929, "street_music": 1000}
CHUNKS = 4             # a clip of at most 4 s, padded to 10 s: 430 frames, 4 chunks of 96
SUBSPACE = 48          # rank of the class structure
SEPARATION = 0.35      # class-mean spread in the subspace: the MLP scores about 70%
NAME = "embeddings_synthetic_1"
TARGET_MINUTES = 30.0
MAX_ITER = 200         # MLPClassifier's default, which the protocol keeps


def write_dataset(data: Path, seed: int) -> None:
    """The metadata CSV and one (4, 1152) .npy per clip, in the exact layouts classify.py reads."""
    rng = np.random.default_rng(seed)
    names = list(CLASS_COUNTS)
    counts = np.array(list(CLASS_COUNTS.values()))
    labels = rng.permutation(np.repeat(np.arange(len(names)), counts))
    folds = np.repeat(np.arange(1, len(FOLD_SIZES) + 1), FOLD_SIZES)
    mix = rng.standard_normal((SUBSPACE, LATENT_DIM)).astype(np.float32) / np.sqrt(SUBSPACE)
    centres = SEPARATION * rng.standard_normal((len(names), SUBSPACE)).astype(np.float32)
    csv_path = data / US8K_CSV
    csv_path.parent.mkdir(parents=True)
    folder = data / "embeddings" / "us8k" / NAME
    folder.mkdir(parents=True)
    with open(csv_path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"])
        for i, (label, fold) in enumerate(zip(labels, folds)):
            stem = f"{100000 + i}-{label}-0-0"
            out.writerow([f"{stem}.wav", 100000 + i, 0.0, 4.0, 1, fold, label, names[label]])
            latent = centres[label] + rng.standard_normal(SUBSPACE, dtype=np.float32)
            clip = np.maximum(latent @ mix, 0)
            chunks = clip + 1.4 * rng.standard_normal((CHUNKS, LATENT_DIM), dtype=np.float32)
            np.save(folder / f"{stem}.npy", chunks.astype(np.float32))


def _children_cpu_s() -> float:
    """CPU seconds of finished child processes (classify.py and its workers): insensitive to other load."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def compare_fits(data: Path, reps: int, jobs: int) -> None:
    """Fold 1's fit the paper's way (float64, BLAS's default threads) against ours (float32, one BLAS
    thread, as each of classify.py's workers runs it), interleaved; medians of seconds per epoch, since
    the two dtypes may stop after slightly different numbers of epochs. A float64 fit held to one BLAS
    thread is timed too: on a loaded machine default threads oversubscribe, which flatters the ratio."""
    task = read_us8k(data, data / "embeddings", None, 0)
    emb = load_embeddings(task, data / "embeddings", NAME)
    _, train, test = task.splits(emb.present)[0]
    y = task.labels[emb.present]
    variants = {"paper: float64, default BLAS threads": (np.float64, None),
                "paper's float64, 1 BLAS thread": (np.float64, 1),
                "ours: float32, 1 BLAS thread": (np.float32, 1)}
    per_epoch: dict[str, list[float]] = {label: [] for label in variants}
    for rep in range(reps):
        for label, (dtype, threads) in variants.items():
            x = emb.vectors.astype(dtype)
            started = time.perf_counter()
            fit = fit_and_score(x, y, train, test, "mlp", rep, len(task.classes), threads)
            per_epoch[label].append((time.perf_counter() - started) / fit.iterations)
    medians = {label: float(np.median(times)) for label, times in per_epoch.items()}
    for label, median in medians.items():
        print(f"one fit, {label}: {1000 * median:.0f} ms per epoch (median of {reps})")
    paper, paper_one_thread, ours = medians.values()
    print(f"per fit: {paper / ours:.2f}x the paper's speed ({paper_one_thread / ours:.2f}x a one-thread-BLAS "
          f"float64 fit); with {jobs} such fits at once: about {jobs * paper / ours:.1f}x its throughput")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=10, help="runs of the protocol (default: 10, the paper's)")
    p.add_argument("--jobs", type=int, default=2, help="classify.py --jobs (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic embeddings")
    p.add_argument("--compare-reps", type=int, default=3,
                   help="interleaved repetitions of the single-fit comparison with the paper's way (0: skip)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data", Path(tmp) / "performances.json"
        started = time.perf_counter()
        write_dataset(data, args.seed)
        print(f"wrote {sum(FOLD_SIZES)} synthetic clip embeddings in {time.perf_counter() - started:.1f} s")
        if args.compare_reps:
            compare_fits(data, args.compare_reps, args.jobs)
        command = [sys.executable, str(ROOT / "classify.py"), "--data-dir", str(data), "--tasks", "us8k",
                   "--runs", str(args.runs), "--jobs", str(args.jobs), "--out", str(out)]
        print("timing:", " ".join(command[1:]), flush=True)
        started, cpu_before = time.perf_counter(), _children_cpu_s()
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        minutes = (time.perf_counter() - started) / 60
        cpu_minutes = (_children_cpu_s() - cpu_before) / 60
        results = json.loads(out.read_text())
    fits = results["meta"]["tasks"]["US8K"]["fits"][NAME]
    scores = 100 * np.array(results["US8K"][NAME])
    full = minutes * 10 / args.runs
    worst = full * MAX_ITER / fits["mean_iterations"]
    print(f"accuracy {scores.mean():.1f} ± {scores.std():.1f}% over {args.runs} runs; "
          f"{fits['total']} fits, mean {fits['mean_iterations']} epochs, {fits['not_converged']} hit max_iter")
    print(f"{args.runs} runs: {minutes:.1f} min wall, {cpu_minutes:.1f} min CPU; 10 runs: {full:.1f} min "
          f"(if every fit ran {MAX_ITER} epochs: {worst:.1f} min)")
    print(f"CPU time / {args.jobs} jobs, projected to 10 runs (about what an otherwise idle machine would take): "
          f"{cpu_minutes * 10 / args.runs / args.jobs:.1f} min")
    verdict = "under" if full < TARGET_MINUTES else "OVER"
    print(f"us8k protocol, 10 folds x 10 runs, --jobs {args.jobs}: {full:.1f} min, {verdict} the "
          f"{TARGET_MINUTES:.0f} min target")


if __name__ == "__main__":
    main()
