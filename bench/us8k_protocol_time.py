"""Time the full UrbanSound8K protocol end to end: `classify.py --tasks us8k --runs 10 --jobs 2`.

Target: under 30 minutes on 2 cores for 8,732 clips, 10 folds x 10 runs of MLPClassifier(256).

The embeddings are synthetic but shaped like the real ones (8,732 clips in UrbanSound8K's fold sizes
and class frequencies, 4 chunks x 1152 float32 per clip as encode.py writes them for clips padded to
10 s) and about as hard: class means in a low-rank subspace buried in noise, so the MLP needs tens of
epochs and scores far from 100%, like on real embeddings. The time of an MLP fit grows with its epochs,
so the bench also prints the mean epochs it saw and the time projected to the worst case, every fit
running to ``max_iter`` (200).

    python bench/us8k_protocol_time.py                 # the full protocol (the figure in the README)
    python bench/us8k_protocol_time.py --runs 2        # a quick sanity run; minutes scale with runs
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coala.audio import LATENT_DIM  # noqa: E402
from coala.downstream import US8K_CSV  # noqa: E402

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=10, help="runs of the protocol (default: 10, the paper's)")
    p.add_argument("--jobs", type=int, default=2, help="classify.py --jobs (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic embeddings")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data", Path(tmp) / "performances.json"
        started = time.perf_counter()
        write_dataset(data, args.seed)
        print(f"wrote {sum(FOLD_SIZES)} synthetic clip embeddings in {time.perf_counter() - started:.1f} s")
        command = [sys.executable, str(ROOT / "classify.py"), "--data-dir", str(data), "--tasks", "us8k",
                   "--runs", str(args.runs), "--jobs", str(args.jobs), "--out", str(out)]
        print("timing:", " ".join(command[1:]), flush=True)
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        minutes = (time.perf_counter() - started) / 60
        results = json.loads(out.read_text())
    fits = results["meta"]["tasks"]["US8K"]["fits"][NAME]
    scores = 100 * np.array(results["US8K"][NAME])
    full = minutes * 10 / args.runs
    worst = full * MAX_ITER / fits["mean_iterations"]
    print(f"accuracy {scores.mean():.1f} ± {scores.std():.1f}% over {args.runs} runs; "
          f"{fits['total']} fits, mean {fits['mean_iterations']} epochs, {fits['not_converged']} hit max_iter")
    print(f"{args.runs} runs: {minutes:.1f} min; 10 runs: {full:.1f} min "
          f"(if every fit ran {MAX_ITER} epochs: {worst:.1f} min)")
    verdict = "under" if full < TARGET_MINUTES else "OVER"
    print(f"us8k protocol, 10 folds x 10 runs, --jobs {args.jobs}: {full:.1f} min, {verdict} the "
          f"{TARGET_MINUTES:.0f} min target")


if __name__ == "__main__":
    main()
