"""The paper's classification protocol: standardize on the training part, fit a classifier, score the test part.

Every (embedding set, classifier, run, split) fit is an independent job, so they run in parallel with
joblib. With more than one job each worker's BLAS is held to one thread: two processes each spawning a
thread per core on a 2-core machine would otherwise fight over the cores.

Seeds: the paper left its MLPs unseeded, so its runs differ by their random initialisation and batch
order only. Run ``r`` here gets a fixed seed derived from ``(seed, r)``; the same run seeds are used for
every embedding set and task, so comparisons between embeddings are paired.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from coala.cli import check_coverage, progress_bar
from coala.core.errors import DownstreamError
from coala.evaluation.task import Embeddings, Task, load_embeddings

CLASSIFIERS = ("mlp", "linear")
MLP_HIDDEN = (256,)          # the paper's MLPClassifier(hidden_layer_sizes=(256,)), defaults otherwise
LINEAR_MAX_ITER = 1000       # lbfgs on 1152 standardized features needs more than the default 100
LINEAR_SUFFIX = " (linear)"  # results of the linear probe are stored under "<name> (linear)"
MODEL_KEY = "model"          # a set's model.json in the results' meta (None: made by an unknown model)

log = logging.getLogger(__name__)


def run_seeds(seed: int, runs: int) -> list[int]:
    """One reproducible 32-bit seed per run, derived from the user's seed."""
    return [int(np.random.SeedSequence([seed, run]).generate_state(1)[0]) for run in range(runs)]


def classifier_runs(kind: str, runs: int) -> int:
    """How many runs a classifier needs: the linear probe (lbfgs on a convex loss) is deterministic."""
    return runs if kind == "mlp" else 1


def make_classifier(kind: str, seed: int) -> MLPClassifier | LogisticRegression:
    if kind == "mlp":
        return MLPClassifier(hidden_layer_sizes=MLP_HIDDEN, random_state=seed)
    return LogisticRegression(max_iter=LINEAR_MAX_ITER)


@dataclass
class Fit:
    """The outcome of one fit: accuracy on the split's test part, its confusion counts, convergence."""
    accuracy: float
    confusion: np.ndarray
    converged: bool
    iterations: int


def fit_and_score(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, kind: str,
                  seed: int, n_classes: int, blas_threads: int | None) -> Fit:
    """Fit ``kind`` on ``x[train]`` (standardized with the training part's statistics), score ``x[test]``.

    float32 inputs are kept float32 (scikit-learn's MLP and scaler preserve it): half the memory
    traffic of float64 for the same protocol. Not converging within ``max_iter`` is recorded, not
    printed: with the paper's defaults (``max_iter`` 200) a fit can stop there, and a hundred identical
    warnings would bury the output.
    """
    with threadpool_limits(limits=blas_threads), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        scaler = StandardScaler().fit(x[train])
        model = make_classifier(kind, seed).fit(scaler.transform(x[train]), y[train])
        predicted = model.predict(scaler.transform(x[test]))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return Fit(float(np.mean(predicted == y[test])),
               confusion_matrix(y[test], predicted, labels=np.arange(n_classes)),
               converged, int(np.max(model.n_iter_)))


@dataclass
class Job:
    """One fit to run: which result it belongs to and what it trains and tests on."""
    result: str          # the results-file name: the embedding set, suffixed for the linear probe
    run: int
    split: str
    kind: str
    seed: int
    x: np.ndarray
    y: np.ndarray
    train: np.ndarray
    test: np.ndarray


@dataclass
class Outcome:
    """Per result name: one score per run (the mean over the splits), summed confusion counts."""
    scores: list[float]
    confusion: np.ndarray
    fits: int
    not_converged: int
    iterations: int


def run_jobs(jobs: list[Job], n_classes: int, n_jobs: int, label: str = "fits",
             progress: bool = True) -> dict[str, Outcome]:
    """Run every fit (in parallel with ``n_jobs`` > 1) and gather one score per run for each result.

    A run's score is the mean of its splits' accuracies: for US8K the mean of the 10 fold accuracies,
    as the paper computed it.
    """
    blas_threads = 1 if n_jobs != 1 else None
    fits = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(fit_and_score)(j.x, j.y, j.train, j.test, j.kind, j.seed, n_classes, blas_threads)
        for j in jobs)
    fits = progress_bar(fits, progress, total=len(jobs), desc=label, unit="fit")
    by_run: dict[str, dict[int, list[float]]] = {}
    outcomes: dict[str, Outcome] = {}
    for job, fit in zip(jobs, fits):
        by_run.setdefault(job.result, {}).setdefault(job.run, []).append(fit.accuracy)
        out = outcomes.setdefault(job.result, Outcome([], np.zeros((n_classes, n_classes), np.int64), 0, 0, 0))
        out.confusion += fit.confusion
        out.fits += 1
        out.not_converged += not fit.converged
        out.iterations += fit.iterations
    for result, runs in by_run.items():
        outcomes[result].scores = [float(np.mean(runs[r])) for r in sorted(runs)]
    return outcomes


@dataclass
class TaskEvaluation:
    """A task's results (name -> one score per run), confusion counts and metadata for the results file."""
    scores: dict[str, list[float]]
    confusion: dict[str, np.ndarray]
    meta: dict[str, Any]


def load_sets(task: Task, embeddings_dir: Path, names: list[str], allow_subset: bool) -> dict[str, Embeddings]:
    """Each embedding set of ``names`` for ``task``'s items, refused (``DownstreamError``, before any fit)
    when more than a few listed items have no usable embedding, unless ``allow_subset``."""
    sets = {}
    for name in names:
        emb = load_embeddings(task, embeddings_dir, name)
        lost = emb.missing + emb.unreadable
        # A set that cannot be fitted is skipped with its own warning.
        if not _unfit(task.labels[emb.present], task.splits(emb.present)):
            check_coverage(f"{task.key} {name}", len(lost), len(task.stems),
                           f"clips have no usable embedding (e.g. {lost[0] if lost else ''})", allow_subset,
                           DownstreamError)
        sets[name] = emb
    return sets


def _unfit(y: np.ndarray, splits: list[tuple[str, np.ndarray, np.ndarray]]) -> bool:
    """Whether a split of the items present (their labels ``y``, ``Task.splits``) has no test clip or fewer
    than 2 training classes."""
    return any(len(np.unique(y[train])) < 2 or len(test) == 0 for _, train, test in splits)


def evaluate_task(task: Task, loaded: dict[str, Embeddings], classifiers: list[str],
                  seeds: list[int], n_jobs: int, progress: bool = True) -> TaskEvaluation:
    """Evaluate each embedding set of ``loaded`` (``load_sets``) on ``task`` with each classifier and run seed.

    An embedding set with missing files is evaluated on the items present, and the count is reported;
    one left with a split that cannot be fitted or scored is skipped with a message.
    """
    jobs: list[Job] = []
    sets: dict[str, Any] = {}
    for name, emb in loaded.items():
        splits = task.splits(emb.present)
        counts = {split: {"train": int(len(train)), "test": int(len(test))} for split, train, test in splits}
        sets[name] = {"width": int(emb.vectors.shape[1]) if emb.vectors.size else None,
                      "present": int(emb.present.sum()), "missing": len(emb.missing),
                      "unreadable": len(emb.unreadable), "missing_examples": emb.missing[:5],
                      "unreadable_examples": emb.unreadable[:5], "counts": counts, MODEL_KEY: emb.record,
                      "subset": bool(emb.missing or emb.unreadable)}
        if emb.missing or emb.unreadable:
            log.warning(f"{task.key} {name}: {len(emb.missing)} of {len(task.stems)} listed embeddings missing, "
                        f"{len(emb.unreadable)} unreadable (e.g. {(emb.missing + emb.unreadable)[0]}); "
                        "evaluating the rest")
        y = task.labels[emb.present]
        if _unfit(y, splits):
            log.warning(f"{task.key} {name}: skipped, a split has no test clip or fewer than 2 training classes left")
            sets[name]["skipped"] = "a split has no test clip or fewer than 2 training classes"
            continue
        for kind in classifiers:
            result = name if kind == "mlp" else name + LINEAR_SUFFIX
            for run, seed in enumerate(seeds[:classifier_runs(kind, len(seeds))]):
                jobs += [Job(result, run, split, kind, seed, emb.vectors, y, train, test)
                         for split, train, test in splits]
    log.info(f"{task.key}: {len(jobs)} fits ({len(task.stems)} clips listed, {len(task.classes)} classes)")
    outcomes = run_jobs(jobs, len(task.classes), n_jobs, task.key, progress) if jobs else {}
    meta = {"classes": task.classes, "listed": len(task.stems), **task.info, "embeddings": sets,
            "fits": {r: {"total": o.fits, "not_converged": o.not_converged,
                         "mean_iterations": round(o.iterations / o.fits, 1)} for r, o in outcomes.items()}}
    return TaskEvaluation({r: o.scores for r, o in outcomes.items()},
                          {r: o.confusion for r, o in outcomes.items()}, meta)
