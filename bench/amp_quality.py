"""Does bf16 training cost accuracy? The demo corpus trained with ``"amp": true`` and without, side by side.

For each seed, the demo's config (``configs/demo.json``) is trained twice, float32 and bf16, with
``--epochs`` epochs; each model's audio encoder then goes through the demo's downstream protocol
(``encode.py`` on the three generated datasets, ``classify.py`` with ``--runs`` runs) and its model
pair through ``search.py evaluate`` on the demo's validation set. The script prints, per precision, the
mean and standard deviation over seeds of the three accuracies and the two retrieval mAPs, the
difference bf16 - float32 with its standard error (the seeds' spread), and the training time.

    make hdf5_ds/spec_tags_demo                        # the demo's corpus and datasets, once
    python bench/amp_quality.py                        # 3 seeds x 20 epochs, about 45 min on 2 cores
    python bench/amp_quality.py --seeds 0 --epochs 2 --runs 1   # a quick look

Everything it writes goes under ``--work`` (default ``demo/amp_quality``); a rerun reuses the trained
models and embeddings found there. Last lines: ``<metric>_bf16_minus_float32: D (se S)`` for each metric.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coala.evaluation.report import TASK_ORDER  # noqa: E402
from coala.search.metrics import DIRECTIONS  # noqa: E402

DEMO_CONFIG = ROOT / "configs" / "demo.json"
DEMO_DATA = ROOT / "demo" / "data"
PRECISIONS = {"float32": False, "bf16": True}


def run(*args: str | Path) -> None:
    """One of the project's scripts; a failure (its own error line is above) ends the benchmark in one line."""
    status = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT).returncode
    if status != 0:
        sys.exit(f"error: {args[0]} exited with status {status}; the benchmark stops here (a rerun resumes)")


def train(demo: dict[str, Any], work: Path, name: str, amp: bool, seed: int, epochs: int) -> tuple[Path, float | None]:
    """Train one model (unless its last checkpoint exists); its folder and the training seconds (None if reused)."""
    config = dict(demo)
    config.update(experiment_name=name, amp=amp, seed=seed, epochs=epochs,
                  checkpoint_dir=str(work / "saved_models"), log_dir=str(work / "runs"))
    folder = work / "saved_models" / name
    if (folder / f"audio_encoder_epoch_{epochs}.pt").exists():
        return folder, None
    config_path = work / "configs" / f"{name}.json"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config, indent=1))
    start = time.perf_counter()
    run("train_dual_ae.py", config_path)
    return folder, time.perf_counter() - start


def data_folder(work: Path) -> Path:
    """A data folder whose datasets are the demo's (links) and whose embeddings are this benchmark's own."""
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    for entry in DEMO_DATA.iterdir():
        link = data / entry.name
        if entry.is_dir() and entry.name != "embeddings" and not link.exists():
            link.symlink_to(entry.resolve(), target_is_directory=True)
    return data


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}" if len(values) > 1 else f"{values[0]:.4g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (the demo trains 10)")
    parser.add_argument("--runs", type=int, default=3, help="classify.py runs per embedding set")
    parser.add_argument("--work", type=Path, default=ROOT / "demo" / "amp_quality", help="output folder")
    args = parser.parse_args()
    demo = json.loads(DEMO_CONFIG.read_text())
    if not (ROOT / demo["train_dataset_file"]).exists() or not DEMO_DATA.is_dir():
        sys.exit("error: the demo's corpus is missing: run `make hdf5_ds/spec_tags_demo` first")

    data = data_folder(args.work)
    models: dict[tuple[str, int], Path] = {}
    seconds: dict[str, list[float]] = {precision: [] for precision in PRECISIONS}
    for seed in args.seeds:
        for precision, amp in PRECISIONS.items():
            name = f"amp_{precision}_s{seed}"
            models[precision, seed], took = train(demo, args.work, name, amp, seed, args.epochs)
            if took is not None:
                seconds[precision].append(took)
            # encode.py skips the files already encoded, so an interrupted run resumes here too.
            run("encode.py", "--quiet", "--model", models[precision, seed] / f"audio_encoder_epoch_{args.epochs}.pt",
                "--dataset", "all", "--data-dir", data, "--scaler", ROOT / "json" / "scaler_demo.json", "--name", name)

    results_path = args.work / "results" / "performances.json"
    run("classify.py", "--data-dir", data, "--runs", args.runs, "--jobs", 2, "--out", results_path,
        "--nsynth-selection", DEMO_DATA / "json" / "nsynth_selected_sounds_per_class.json",
        "--embedding", *(f"amp_{precision}_s{seed}" for precision, seed in models))
    search_path = args.work / "results" / "search.json"
    run("search.py", "evaluate", "--model", *models.values(), "--dataset", ROOT / demo["validation_dataset_file"],
        "--id2tag", ROOT / demo["id2tag_file"], "--out", search_path)

    accuracy = json.loads(results_path.read_text())
    retrieval = list(json.loads(search_path.read_text()).values())  # in the order of --model
    metrics: dict[str, dict[str, list[float]]] = {precision: {} for precision in PRECISIONS}
    for (precision, seed), search in zip(models, retrieval):
        for task in TASK_ORDER:
            metrics[precision].setdefault(task, []).append(statistics.mean(accuracy[task][f"amp_{precision}_s{seed}"]))
        for direction in DIRECTIONS:
            metrics[precision].setdefault(f"{direction}_map", []).append(search[f"{direction}_map"])

    print(f"\n{len(args.seeds)} seeds x {args.epochs} epochs, {args.runs} classify runs per model; mean ± std over seeds")
    print("| precision | " + " | ".join(metrics["float32"]) + " | training s |")
    print("| --- " * (len(metrics["float32"]) + 2) + "|")
    for precision, values in metrics.items():
        took = spread(seconds[precision]) if seconds[precision] else "(reused)"
        print(f"| {precision} | " + " | ".join(spread(v) for v in values.values()) + f" | {took} |")
    for metric, float32 in metrics["float32"].items():
        bf16 = metrics["bf16"][metric]
        paired = [b - f for b, f in zip(bf16, float32)]
        error = statistics.stdev(paired) / len(paired) ** 0.5 if len(paired) > 1 else float("nan")
        print(f"{metric}_bf16_minus_float32: {statistics.mean(paired):+.4g} (se {error:.2g})")


if __name__ == "__main__":
    main()
