"""Does this project's training learn what the paper's training learns? Both trained from the same
seeds on the same batches, then evaluated as a user evaluates a model.

The procedures (``bench/procedures.py``): the paper's (stock networks, three weighted backward passes
with retain_graph, two default SGD optimizers) and this project's default step (one backward of the
weighted sum, fused SGD, and on the CPU the fast layers and channels_last), plus the bf16 step where
bf16 is fast (``coala.device.bf16_is_fast``; ``--bf16``). For each seed every procedure starts from the
weights the training loop builds from that seed and trains on the batches the loop draws (its sampler,
seeded with the seed, ``set_epoch`` each epoch), with its dropout stream started at seed + 1 as the
loop starts it; the only differences are the procedures'. Each (procedure, seed) training is a job that
rebuilds all of this from the seed, so ``--workers`` jobs run side by side in their own processes; each
prints its losses per epoch as it goes, and the summary shows both procedures' curves side by side.

Each trained model is then evaluated from its checkpoints, in the paper's format, through the calls the
scripts make: ``load_pair`` (search.py's loader) reads the encoders; the audio encoder embeds the
downstream sets as ``encode.py --dataset`` does (``run_extraction``; the front end, which no procedure
changes, is computed once per clip); ``classify.py``'s protocol scores them (``evaluate_task``: the
paper's MLP over ``--runs`` seeded runs, the same run seeds for every model, and the linear probe); and
``search.py evaluate``'s retrieval (``evaluate_release``) ranks the validation set. The bench prints per
procedure the mean ± std over seeds, the paired per-seed differences, and last ``quality_delta: X ± Y``:
ours minus the paper's procedure in the quality task's MLP accuracy (NSynth when evaluated), in
accuracy points, mean ± std over seeds of the paired differences.

    make hdf5_ds/spec_tags_demo                  # the demo corpus and downstream sets, once
    python bench/train_quality.py                # 3 seeds x 6 epochs of the demo corpus, NSynth-like task
    python bench/train_quality.py --seeds 0 --epochs 1 --runs 1                    # a quick look
    python bench/train_quality.py --tasks us8k gtzan nsynth                        # all three demo tasks
    python bench/train_quality.py --train hdf5_ds/spec_tags_mine --validation hdf5_ds/spec_tags_mine_val \\
        --data-dir data --scaler json/scaler_mine.json                             # another corpus

Checkpoints and embeddings go to a temporary folder removed at the end; ``--out`` keeps every figure.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procedures import BF16, OURS, PAPER, Batch, procedures  # noqa: E402
from coala.atomic import atomic_write_text  # noqa: E402
from coala.audio.scaler import load_scaler  # noqa: E402
from coala.cli import entry_point, require_file  # noqa: E402
from coala.data.checks import check_values  # noqa: E402
from coala.data.hdf5 import inspect_hdf5, open_dataset, read_provenance  # noqa: E402
from coala.device import bf16_is_fast, resolve_device  # noqa: E402
from coala.core.errors import DataAbsentError, DatasetError, UsageError  # noqa: E402
from coala.core.model import AudioEncoder, default_batch_size, model_device  # noqa: E402
from coala.encode.files import chunk_computer  # noqa: E402
from coala.encode.jobs import dataset_jobs  # noqa: E402
from coala.encode.run import run_extraction  # noqa: E402
from coala.evaluation.datasets import DOWNSTREAM  # noqa: E402
from coala.evaluation.protocol import LINEAR_SUFFIX, evaluate_task, load_sets, run_seeds  # noqa: E402
from coala.evaluation.task import Task  # noqa: E402
from coala.search import evaluate_release, load_pair  # noqa: E402
from coala.search.metrics import DIRECTIONS  # noqa: E402
from coala.train.config import TrainConfig, load_config  # noqa: E402
from coala.train.state import save_checkpoints  # noqa: E402
from coala.train.step import DualAE, Objective  # noqa: E402

DEMO_CONFIG = ROOT / "configs" / "demo.json"
DEMO_DATA = Path("demo") / "data"
DEMO_SCALER = Path("json") / "scaler_demo.json"
# Where make_demo_data.py writes the NSynth-like training selection, under the data folder.
SELECTION_IN_DATA = Path("json") / "nsynth_selected_sounds_per_class.json"
# The task whose MLP accuracy is the quality_delta: the NSynth-like one when evaluated.
QUALITY_TASKS = ("nsynth", "us8k", "gtzan")
BF16_CHOICES = ("auto", "on", "off")
# Three seeds of the three procedures on the demo corpus fit 25 minutes on 2 cores at 6 epochs (the paper's
# procedure takes about 55 s an epoch there on one thread; docs/performance.md#training-quality).
DEFAULT_EPOCHS = 6


def epoch_batches(dataset: Dataset, batch_size: int, seed: int, epoch: int) -> list[Batch]:
    """Epoch ``epoch``'s training batches in the order one training process draws them (the loop's
    ``DistributedSampler``, seeded with ``seed``, ``set_epoch(epoch)``, the last partial batch dropped)."""
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    return list(DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True))


class FrontEndCache:
    """encode.py's per-file work (decode, pad, log-mel, scale), done once per clip and replayed for every
    model: the front end is the same for every procedure, and it is most of extraction's time."""

    def __init__(self, scaler_path: Path) -> None:
        self.compute = chunk_computer(load_scaler(scaler_path))
        self.chunks: dict[Path, list[np.ndarray]] = {}

    def __call__(self, path: Path) -> list[np.ndarray]:
        if path not in self.chunks:
            self.chunks[path] = list(self.compute(path))
        return self.chunks[path]


@dataclasses.dataclass
class Downstream:
    """The downstream sets to embed and the tasks to score, checked before any training."""

    data_dir: Path
    selection: Path | None
    tasks: dict[str, Task]
    front_end: FrontEndCache

    def embed(self, encoder: AudioEncoder, embeddings_dir: Path, name: str) -> None:
        """Every clip of every task embedded by ``encoder`` under ``name``, as encode.py writes it."""
        for jobs, failures in dataset_jobs(list(self.tasks), self.data_dir, embeddings_dir, name, self.selection):
            run_extraction(jobs, self.front_end, failures, encoder, default_batch_size(model_device(encoder)),
                           progress=False)

    def accuracies(self, embeddings_dir: Path, names: list[str], runs: int, jobs: int) -> dict[str, dict[str, float]]:
        """Per embedding set, each task's mean accuracy over the runs in %, MLP under the task's key and the
        linear probe under ``<key> (linear)``."""
        results: dict[str, dict[str, float]] = {name: {} for name in names}
        for task in self.tasks.values():
            scores = evaluate_task(task, load_sets(task, embeddings_dir, names, allow_subset=False), ["mlp", "linear"],
                                   run_seeds(0, runs), jobs, progress=False).scores
            for name in names:
                for suffix in ("", LINEAR_SUFFIX):
                    runs_scores = scores.get(name + suffix)
                    results[name][task.key + suffix] = 100 * statistics.mean(runs_scores) if runs_scores else math.nan
        return results


def prepare_downstream(data_dir: Path, selection: Path | None, scaler: Path, names: Sequence[str]) -> Downstream:
    """Read every requested task now, so that absent data stops the bench before training, not after."""
    selection = selection or (data_dir / SELECTION_IN_DATA if (data_dir / SELECTION_IN_DATA).is_file() else None)
    tasks = {}
    for name in names:
        try:
            tasks[name] = DOWNSTREAM[name].read_task(data_dir, data_dir / "embeddings", selection, 0)
        except DataAbsentError as exc:
            raise UsageError(f"--tasks {name}: its data is absent under --data-dir {data_dir} ({exc})") from None
    return Downstream(data_dir, selection, tasks, FrontEndCache(scaler))


def spread(values: Sequence[float], digits: int) -> str:
    """``mean ± std`` (sample std; the mean alone for one value)."""
    if len(values) < 2:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std over seeds of ``a - b`` (std nan for one seed)."""
    differences = [x - y for x, y in zip(a, b)]
    return statistics.mean(differences), statistics.stdev(differences) if len(differences) > 1 else math.nan


def train_job(cfg: TrainConfig, name: str, seed: int, epochs: int, device: torch.device, threads: int,
              folder: Path) -> list[dict]:
    """Train procedure ``name`` from ``seed`` for ``epochs`` epochs and save its checkpoints in the paper's
    format under ``folder/<name>_s<seed>``; its losses and training seconds per epoch.

    Every job rebuilds the same initial weights and the same batches from the seed, so jobs can run in
    any order, in any process.
    """
    torch.set_num_threads(threads)
    train_set, val_batches, n_tags = load_data(cfg)
    objective = Objective(cfg.audio_loss_weight, cfg.tag_loss_weight, cfg.contrastive_loss_weight,
                          cfg.contrastive_temperature)
    procedure = procedures(n_tags, seed, cfg.learning_rate, device, bf16=name == BF16)[name]
    history = []
    for epoch in range(1, epochs + 1):
        batches = epoch_batches(train_set, cfg.batch_size, seed, epoch)
        started = time.perf_counter()
        with procedure.random_stream():
            train = procedure.train_epoch(batches, objective)
        seconds = time.perf_counter() - started
        val = procedure.validate(val_batches, objective)
        history.append({"name": name, "seed": seed, "epoch": epoch, "train": dict(zip(DualAE.loss_names, train)),
                        "val": dict(zip(DualAE.loss_names, val)), "seconds": round(seconds, 2)})
        print(f"{name:>5} seed {seed} epoch {epoch:>2}/{epochs}: train loss {train[0]:.4f}, val loss {val[0]:.4f} "
              f"({seconds:.0f} s)", flush=True)
    save_checkpoints(folder / f"{name}_s{seed}", procedure.model.parts(), epochs)
    return history


def run_jobs(jobs: list[tuple[str, int]], workers: int, **job: object) -> list[dict]:
    """Every (procedure, seed) job, ``workers`` at a time in fresh processes (one: in this process); their
    histories. Jobs are independent, and on a CPU two single-threaded trainings side by side were measured
    faster than one two-threaded training after the other."""
    if workers == 1:
        return [record for name, seed in jobs for record in train_job(name=name, seed=seed, **job)]
    # spawn, not fork: a forked child of a process whose OpenMP pool has run can hang in its first kernel.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(train_job, name=name, seed=seed, **job) for name, seed in jobs]
        return [record for future in futures for record in future.result()]


def print_loss_curves(history: list[dict], names: list[str], epochs: int) -> None:
    """Per epoch, each procedure's training and validation loss, mean over seeds."""
    print("\nper epoch, mean over seeds: " + ", ".join(f"{n} train / val loss" for n in names))
    for epoch in range(1, epochs + 1):
        rows = {n: [r for r in history if r["name"] == n and r["epoch"] == epoch] for n in names}
        print(f"epoch {epoch:>2}  " + "  ".join(
            f"{n} {statistics.mean(r['train']['loss'] for r in rows[n]):.4f} / "
            f"{statistics.mean(r['val']['loss'] for r in rows[n]):.4f}" for n in names))


def print_summary(metrics: dict[str, dict[str, list[float]]], quality_key: str) -> tuple[float, float]:
    """The table (mean ± std over seeds), the paired differences, and the quality delta it returns."""
    names = list(metrics)
    columns = list(metrics[PAPER])
    print("\n| procedure | " + " | ".join(columns) + " |")
    print("| --- " * (len(columns) + 1) + "|")
    for name in names:
        print(f"| {name} | " + " | ".join(spread(metrics[name][c], 4 if "mAP" in c or "loss" in c else 2)
                                          for c in columns) + " |")
    print()
    pairs = [(OURS, PAPER)] + ([(BF16, OURS)] if BF16 in metrics else [])
    for a, b in pairs:
        for column in columns:
            mean, std = paired(metrics[a][column], metrics[b][column])
            print(f"{a} - {b}, {column}: {mean:+.4g} ± {std:.2g}")
    if BF16 in metrics:
        mean, std = paired(metrics[BF16][quality_key], metrics[OURS][quality_key])
        print(f"bf16_delta: {mean:+.2f} ± {std:.2f}")
    return paired(metrics[OURS][quality_key], metrics[PAPER][quality_key])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG,
                        help="training config: batch size, learning rate, loss weights, temperature, data files "
                             "(default: configs/demo.json)")
    parser.add_argument("--train", type=Path, default=None, help="training HDF5 file (default: the config's)")
    parser.add_argument("--validation", type=Path, default=None, help="validation HDF5 file (default: the config's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                        help=f"training epochs (default: {DEFAULT_EPOCHS}, not the config's: the bench trains every "
                             "procedure for every seed)")
    parser.add_argument("--data-dir", type=Path, default=DEMO_DATA,
                        help="folder of the downstream sets, classify.py's --data-dir (default: demo/data)")
    parser.add_argument("--scaler", type=Path, default=DEMO_SCALER,
                        help="scaler the training data was built with (default: json/scaler_demo.json)")
    parser.add_argument("--nsynth-selection", type=Path, default=None,
                        help=f"NSynth training notes JSON (default: <data-dir>/{SELECTION_IN_DATA} when present, "
                             "else classify.py's default)")
    parser.add_argument("--tasks", nargs="+", choices=list(DOWNSTREAM), default=["nsynth"],
                        help="downstream tasks (default: nsynth; us8k's 10 folds cost 10 times its fits); "
                             f"quality_delta is on the first of {', '.join(QUALITY_TASKS)} among them")
    parser.add_argument("--runs", type=int, default=5, help="classifier runs per model (default: 5)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel classifier fits (default: 2)")
    parser.add_argument("--bf16", choices=BF16_CHOICES, default="auto",
                        help="also train the bf16 step: auto where bf16 is fast on the device (default), on, off")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default: the config's)")
    parser.add_argument("--workers", type=int, default=2,
                        help="trainings run side by side, each in its own process (default: 2; 1: in this process)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per training (default: torch's threads divided among --workers)")
    parser.add_argument("--out", type=Path, default=None, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    for option, value, least in (("--epochs", args.epochs, 1), ("--runs", args.runs, 1), ("--jobs", args.jobs, 1),
                                 ("--workers", args.workers, 1), ("--threads", args.threads, 1)):
        if value is not None and value < least:
            raise UsageError(f"{option} must be at least {least}, got {value}")
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        raise UsageError(f"--seeds must be distinct and non-negative, got {' '.join(map(str, args.seeds))}")
    require_file(args.nsynth_selection, "--nsynth-selection")
    require_file(args.scaler, "--scaler")
    return args


def check_data(cfg: TrainConfig) -> tuple[int, int, int]:
    """Both files checked before any training, without reading their patches into memory: training and
    validation patches and the vocabulary size."""
    for path in (cfg.train_dataset_file, cfg.validation_dataset_file):
        check_values(path)
    n_train, n_tags = inspect_hdf5(cfg.train_dataset_file)
    n_val, val_tags = inspect_hdf5(cfg.validation_dataset_file)
    if val_tags != n_tags:
        raise DatasetError(f"{cfg.validation_dataset_file}: {val_tags} tags, but the training file has {n_tags}")
    if n_train < cfg.batch_size:
        raise DatasetError(f"{cfg.train_dataset_file}: {n_train} patches, fewer than one batch of {cfg.batch_size}")
    return n_train, n_val, n_tags


def load_data(cfg: TrainConfig) -> tuple[Dataset, list[Batch], int]:
    """A job's data (``check_data`` passed): the training set in memory, the validation batches (the loop's
    order) and the vocabulary size."""
    train_set = open_dataset(cfg.train_dataset_file, in_memory=True)
    val_set = open_dataset(cfg.validation_dataset_file, in_memory=True)
    return train_set, list(DataLoader(val_set, batch_size=cfg.batch_size)), train_set.n_tags


def training_vocabulary(cfg: TrainConfig, n_tags: int) -> dict[int, str]:
    """The tags the trained models rank, as retrieval names them: the vocabulary the training file records
    (a ``create_dataset.py`` file, the demo's), else (the paper's release) the column indices, which the
    validation file then shares. Checked before training: a validation file recording other tags would
    stop the bench only after every model had trained."""
    train_words = read_provenance(cfg.train_dataset_file)[1]
    val_words = read_provenance(cfg.validation_dataset_file)[1]
    if val_words is not None and val_words != train_words:
        raise DatasetError(f"{cfg.validation_dataset_file}: its recorded vocabulary is not the training file's "
                           f"({cfg.train_dataset_file}); retrieval compares the tags the models were trained on")
    return dict(enumerate(train_words if train_words is not None else map(str, range(n_tags))))


@entry_point
def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    cfg = load_config(args.config)
    cfg = dataclasses.replace(cfg, train_dataset_file=str(args.train or cfg.train_dataset_file),
                              validation_dataset_file=str(args.validation or cfg.validation_dataset_file))
    epochs = args.epochs
    device = resolve_device(args.device or cfg.device)
    bf16 = args.bf16 == "on" or (args.bf16 == "auto" and bf16_is_fast(device))
    names = [PAPER, OURS, BF16] if bf16 else [PAPER, OURS]
    threads = args.threads or max(1, torch.get_num_threads() // args.workers)
    quality_task = next(t for t in QUALITY_TASKS if t in args.tasks)
    downstream = prepare_downstream(args.data_dir, args.nsynth_selection, args.scaler, args.tasks)
    quality_key = downstream.tasks[quality_task].key
    n_train, n_val, n_tags = check_data(cfg)
    vocabulary = training_vocabulary(cfg, n_tags)
    print(f"torch {torch.__version__}, {device}, {args.workers} training process(es) of {threads} thread(s); "
          f"{n_train} training / {n_val} validation patches, {n_tags} tags; "
          f"batch {cfg.batch_size}, lr {cfg.learning_rate:g}; seeds {' '.join(map(str, args.seeds))} x {epochs} "
          "epochs; bf16 step " + ("included" if bf16 else "left out (bf16 is not fast here; --bf16 on adds it)"),
          flush=True)

    retrieval: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="train_quality_") as folder:
        work = Path(folder)
        history = run_jobs([(name, seed) for seed in args.seeds for name in names], args.workers, cfg=cfg,
                           epochs=epochs, device=device, threads=threads, folder=work / "models")
        for seed in args.seeds:
            for name in names:
                key = f"{name}_s{seed}"
                pair = load_pair(work / "models" / key, epochs, vocabulary, device)
                downstream.embed(pair.audio_encoder, work / "embeddings", key)
                retrieval[key] = evaluate_release(pair, cfg.validation_dataset_file).metrics
        accuracy = downstream.accuracies(work / "embeddings", list(retrieval), args.runs, args.jobs)

    metrics: dict[str, dict[str, list[float]]] = {name: {} for name in names}
    for name in names:
        for seed in args.seeds:
            key = f"{name}_s{seed}"
            runs = [r for r in history if r["name"] == name and r["seed"] == seed]
            row = {**{f"{task} %": value for task, value in accuracy[key].items()},
                   **{f"{d.replace('_to_', '→')} mAP": retrieval[key][f"{d}_map"] for d in DIRECTIONS},
                   "val loss": runs[-1]["val"]["loss"], "s/epoch": statistics.mean(r["seconds"] for r in runs)}
            for column, value in row.items():
                metrics[name].setdefault(column, []).append(value)
    print_loss_curves(history, names, epochs)
    print(f"\n{len(args.seeds)} seeds x {epochs} epochs, {args.runs} classifier runs per model; accuracy in %, "
          "mean ± std over seeds")
    delta, delta_std = print_summary(metrics, f"{quality_key} %")
    wall = time.perf_counter() - started
    print(f"wall time: {wall / 60:.1f} min")
    if args.out is not None:
        atomic_write_text(args.out, json.dumps({"config": cfg.to_dict(), "args": {k: str(v) for k, v in vars(args).items()},
                                                "history": history, "metrics": metrics, "retrieval": retrieval,
                                                "accuracy": accuracy, "wall_s": round(wall, 1)}, indent=1))
    print(f"quality task: {quality_key} (MLP), ours minus paper in accuracy points, mean ± std over seeds")
    print(f"quality_delta: {delta:+.2f} ± {delta_std:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
