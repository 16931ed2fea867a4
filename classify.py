"""Downstream evaluation: the paper's UrbanSound8K, GTZAN and NSynth protocols on encode.py's embeddings.

    python classify.py                                   # every embedding set, every task, 10 runs
    python classify.py --tasks us8k --embedding mfcc --runs 3 --jobs 2

Writes the results JSON (the paper's shape plus "meta"), a markdown table beside it and a confusion
matrix PNG per task for its best embedding set. Rows are named from each set's model.json (encode.py's
record of the model that made it); the paper's figures stand beside the paper's models only. See
docs/evaluation.md.
"""
from __future__ import annotations

import argparse
import logging
import platform
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn

from coala import assets
from coala.atomic import require_writable_folder
from coala.cli import EXIT_FAILURES, EXIT_OK, entry_point, require_file
from coala.core.errors import DataAbsentError, UsageError
from coala.evaluation.datasets import DOWNSTREAM, EMBEDDINGS_FOLDER
from coala.encode.provenance import FOLDER_RECORD
from coala.evaluation.protocol import (CLASSIFIERS, LINEAR_MAX_ITER, LINEAR_SUFFIX, MLP_HIDDEN, MODEL_KEY, evaluate_task,
                                       run_seeds)
from coala.evaluation.report import META_KEY, best_result, merge_previous, plot_confusion, write_results
from coala.evaluation.task import task_embedding_names

log = logging.getLogger("coala.evaluation")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=Path("data"),
                   help="folder holding UrbanSound8K/, GTZAN/ and nsynth/ (default: data)")
    p.add_argument("--embeddings-dir", type=Path, default=None,
                   help=f"folder of encode.py's embeddings (default: <data-dir>/{EMBEDDINGS_FOLDER})")
    p.add_argument("--tasks", nargs="+", choices=list(DOWNSTREAM), default=list(DOWNSTREAM),
                   help="tasks to evaluate (default: all three)")
    p.add_argument("--embedding", nargs="+", metavar="NAME", default=None,
                   help="embedding sets (folder names, e.g. mfcc embeddings_dual_ae_c_200) "
                        "(default: every set present for each task)")
    p.add_argument("--runs", type=int, default=10, help="repetitions, each with its own seed (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="seed the run seeds are derived from (default: 0)")
    p.add_argument("--classifier", nargs="+", choices=CLASSIFIERS, default=["mlp"],
                   help="mlp: the paper's MLPClassifier(256); linear: a logistic-regression probe, stored "
                        f"as '<name>{LINEAR_SUFFIX}'; give both to run both (default: mlp)")
    p.add_argument("--jobs", type=int, default=1,
                   help="parallel fits over folds and runs (-1: one per core; default: 1)")
    p.add_argument("--out", type=Path, default=Path("results/performances.json"),
                   help="results JSON; the table goes beside it as .md (default: results/performances.json)")
    p.add_argument("--nsynth-selection", type=Path, default=None,
                   help=f"NSynth training notes JSON (default: the installed {assets.NSYNTH_SELECTION} when "
                        "present, else a seeded selection of up to 2,000 per family among the training embeddings)")
    args = p.parse_args(argv)
    if args.runs < 1:
        raise UsageError(f"--runs must be at least 1, got {args.runs}")
    if args.jobs == 0 or args.jobs < -1:
        raise UsageError(f"--jobs must be a positive number or -1, got {args.jobs}")
    require_file(args.nsynth_selection, "--nsynth-selection")
    if args.out.is_dir():
        raise UsageError(f"--out: {args.out} is a folder; give the results JSON file's path")
    require_writable_folder(args.out.parent, "--out")
    args.embeddings_dir = args.embeddings_dir or args.data_dir / EMBEDDINGS_FOLDER
    return args


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run every requested task; return the results in the paper's shape with the "meta" key."""
    seeds = run_seeds(args.seed, args.runs)
    meta: dict[str, Any] = {
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "scikit-learn": sklearn.__version__, "joblib": joblib.__version__},
        "runs": args.runs, "seed": args.seed, "run_seeds": seeds,
        "classifiers": {"mlp": f"MLPClassifier(hidden_layer_sizes={MLP_HIDDEN}), defaults otherwise",
                        "linear": f"LogisticRegression(max_iter={LINEAR_MAX_ITER}), one deterministic run"},
        "classifier": args.classifier, "data_dir": str(args.data_dir),
        "embeddings_dir": str(args.embeddings_dir), "tasks": {}, "skipped": {}, "failed": {},
    }
    results: dict[str, Any] = {META_KEY: meta}
    started = time.perf_counter()
    for name in args.tasks:
        key = DOWNSTREAM[name].key
        try:
            task = DOWNSTREAM[name].read_task(args.data_dir, args.embeddings_dir, args.nsynth_selection, args.seed)
        except DataAbsentError as exc:
            reason = f"data absent: {exc}"
            log.info(f"{key}: skipped, {reason}")
            meta["skipped"][key] = reason
            continue
        present = task_embedding_names(task, args.embeddings_dir)
        names = [n for n in args.embedding if n in present] if args.embedding else present
        for absent in sorted(set(args.embedding or []) - set(present)):
            log.warning(f"{key}: no embedding set {absent} under {args.embeddings_dir}")
        if not names:
            wanted = f" named {' '.join(args.embedding)}" if args.embedding else ""
            reason = f"no embedding sets{wanted} under {args.embeddings_dir} for {key}"
            log.info(f"{key}: skipped, {reason}")
            meta["skipped"][key] = reason
            continue
        if "training_selection" in task.info:
            log.info(f"{key}: training notes from {_describe_selection(task.info['training_selection'])}")
        evaluation = evaluate_task(task, args.embeddings_dir, names, args.classifier, seeds, args.jobs)
        if not evaluation.scores:
            reason = f"none of the embedding sets {', '.join(names)} could be evaluated (see the warnings above)"
            log.error(f"{key}: {reason}; its earlier results in {args.out}, if any, are kept")
            meta["failed"][key] = reason
            continue
        results[key] = evaluation.scores
        meta["tasks"][key] = evaluation.meta
        if evaluation.scores:
            best = best_result(evaluation.scores)
            png = args.out.with_name(f"{args.out.stem}_confusion_{name}.png")
            plot_confusion(png, evaluation.confusion[best], task.classes,
                           f"{key}: {best}\nrow-normalized, summed over runs and splits")
            meta["tasks"][key]["confusion_matrix"] = {"embedding": best, "png": str(png)}
    meta["elapsed_s"] = round(time.perf_counter() - started, 1)
    _note_unrecorded(meta)
    return results


def _note_unrecorded(meta: dict[str, Any]) -> None:
    """One line per set evaluated without a record of its model (encoded before encode.py wrote one)."""
    unrecorded = {name for task in meta["tasks"].values() for name, info in task["embeddings"].items()
                  if info.get(MODEL_KEY) is None}
    for name in sorted(unrecorded):
        log.info(f"note: {name}: no {FOLDER_RECORD} in its folders (encoded by an earlier version), so which model "
                 "made it is unknown and no paper figures stand beside it; encode it again to compare it with the paper")


def _describe_selection(selection: dict[str, Any]) -> str:
    if selection["source"] == "file":
        return f"the selection file {selection['path']}"
    return (f"a seeded selection (seed {selection['seed']}) of up to {selection['per_family_at_most']} "
            f"per family among {selection['pool']} training embeddings, "
            f"since {selection['missing_file']} is absent")


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = evaluate(args)
    if not any(d.key in results for d in DOWNSTREAM.values()):
        if results[META_KEY]["failed"]:
            log.error(f"nothing was evaluated; {args.out} is left as it was")
            return EXIT_FAILURES
        raise DataAbsentError("no task could be evaluated (see the messages above)")
    for kept in merge_previous(args.out, results):
        log.info(f"kept from {args.out}: {kept}")
    table_path = write_results(args.out, results)
    print()
    print(table_path.read_text(encoding="utf-8"), end="")
    log.info(f"wrote {args.out} and {table_path}")
    return EXIT_FAILURES if results[META_KEY]["failed"] else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
