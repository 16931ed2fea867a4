"""How well the shared space retrieves, on a validation file in the paper's release layout.

Both directions rank by cosine between ``z_d`` of a patch and ``z_d`` of a one-hot tag:

- tag -> audio: for each tag with at least one positive patch, the patches ranked for the tag;
- audio -> tag: for each patch with at least one tag, the vocabulary ranked for the patch.

Each ranking gets scikit-learn's ``average_precision_score``, precision and recall at 10, and the
expected values of a random ranking of the same items (the floor a useful space must clear). The
tag-supervised CNN's own tag probabilities, ranked the same way, are the natural competitor.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve
from torch import nn

from coala.data.checks import check_values
from coala.data.hdf5 import GROUP, inspect_hdf5
from coala.core.frontend import clamp_held_out
from coala.core.model import embed
from coala.encode.inference import inference_model
from coala.core.errors import SearchError
from coala.search.model import ModelPair, normalise

K = 10
DIRECTIONS = ("tag_to_audio", "audio_to_tag")
# Patches per read and forward: 256 patches of 96x96 float32 are 9 MB.
EVAL_BATCH = 256
log = logging.getLogger(__name__)


def expected_random_ap(n_items: int, n_positive: int) -> float:
    """The mean average precision of a uniformly random ranking of ``n_items`` with ``n_positive`` relevant.

    AP averages precision@k over the relevant positions k; position k is relevant with probability
    R/n and then holds 1 + (k-1)(R-1)/(n-1) relevant items in its first k, which sums to
    (H_n + (R-1)/(n-1) (n - H_n)) / n with H_n the n-th harmonic number.
    """
    if n_items == 1:
        return 1.0
    harmonic = float(np.sum(1.0 / np.arange(1, n_items + 1)))
    return (harmonic + (n_positive - 1) / (n_items - 1) * (n_items - harmonic)) / n_items


def ranking_metrics(scores: np.ndarray, relevant: np.ndarray, k: int = K) -> dict[str, float]:
    """Mean AP, P@k, R@k (and their random-ranking expectations) over the rows with a relevant item.

    ``scores`` and ``relevant`` are ``(n_queries, n_items)``; each row is one query's ranking.
    """
    relevant = relevant.astype(bool)
    rows = np.flatnonzero(relevant.any(axis=1))
    if len(rows) == 0:
        raise SearchError("no query has a relevant item: the labels are empty")
    n_items = scores.shape[1]
    depth = min(k, n_items)
    ap, precision, recall, random_ap = [], [], [], []
    for row in rows:
        n_positive = int(relevant[row].sum())
        ap.append(average_precision_score(relevant[row], scores[row]))
        hits = int(relevant[row, np.argsort(-scores[row], kind="stable")[:depth]].sum())
        precision.append(hits / k)
        recall.append(hits / n_positive)
        random_ap.append(expected_random_ap(n_items, n_positive))
    positives = relevant[rows].sum(axis=1)
    return {"map": float(np.mean(ap)), f"p@{k}": float(np.mean(precision)), f"r@{k}": float(np.mean(recall)),
            "random_map": float(np.mean(random_ap)), f"random_p@{k}": float(np.mean(positives / n_items * depth / k)),
            f"random_r@{k}": depth / n_items, "n_queries": len(rows)}


@dataclass
class Evaluation:
    """Metrics of one model and the score matrix they came from (``(n_patches, n_tags)``, for curves)."""

    metrics: dict
    scores: np.ndarray
    relevant: np.ndarray


def _forward_all(model: nn.Module, path: Path, output: int) -> np.ndarray:
    """Model output ``output`` for every patch of the file, clamped at 0 as the paper's validation did
    (patches can dip below 0: the scaler was fitted on training data).

    Patches are read ``EVAL_BATCH`` at a time and run through extraction's inference copy (BatchNorm
    folded) in forwards of the device's batch size (``embed``), which is what is fast on a CPU.
    """
    model = inference_model(model)
    with h5py.File(path, "r") as f:
        data = f[GROUP]["data"]
        outputs = [embed(model, clamp_held_out(data[start:start + EVAL_BATCH]))[output].numpy()
                   for start in range(0, len(data), EVAL_BATCH)]
    return np.concatenate(outputs)


def read_labels(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[GROUP]["label"][...] > 0


def both_directions(scores: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    metrics = {}
    for direction, (s, r) in zip(DIRECTIONS, ((scores.T, relevant.T), (scores, relevant))):
        metrics.update({f"{direction}_{name}": value for name, value in ranking_metrics(s, r).items()})
    return metrics


def evaluate_release(pair: ModelPair, dataset: str | Path, cnn: nn.Module | None = None) -> Evaluation:
    """Retrieval metrics of a pair on a validation HDF5 file (and, with ``cnn``, the CNN's beside them,
    under keys prefixed ``cnn_``)."""
    dataset = Path(dataset)
    check_values(dataset)  # a NaN patch or a label of 3 would give metrics of garbage, silently
    n_patches, n_tags = inspect_hdf5(dataset)
    if n_tags != len(pair.vocabulary):
        raise SearchError(f"{dataset}: labels of {n_tags} tags, but the model's vocabulary has {len(pair.vocabulary)}")
    relevant = read_labels(dataset)
    scores = normalise(_forward_all(pair.audio_encoder, dataset, 1)) @ pair.vocabulary_vectors().T
    metrics = {"n_patches": n_patches, **both_directions(scores, relevant)}
    if cnn is not None:
        probabilities = _forward_all(cnn, dataset, 1)
        if probabilities.shape[1] != n_tags:
            raise SearchError(f"{dataset}: labels of {n_tags} tags, but the CNN predicts {probabilities.shape[1]}")
        metrics.update({f"cnn_{key}": value for key, value in both_directions(probabilities, relevant).items()})
    log.info(f"{pair.name}: tag->audio mAP {metrics['tag_to_audio_map']:.4f}, "
             f"audio->tag mAP {metrics['audio_to_tag_map']:.4f} on {n_patches} patches")
    return Evaluation(metrics, scores, relevant)


def metrics_table(results: dict[str, dict]) -> str:
    """A markdown table: per model (and CNN baseline) and direction, mAP, P@10, R@10 and random mAP."""
    lines = ["| model | direction | mAP | P@10 | R@10 | random mAP | random P@10 | queries |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, metrics in results.items():
        for prefix, label in (("", name), ("cnn_", f"{name}: CNN baseline")):
            for direction in DIRECTIONS:
                key = f"{prefix}{direction}"
                if f"{key}_map" not in metrics:
                    continue
                cells = [f"{metrics[f'{key}_{m}']:.4f}" for m in ("map", "p@10", "r@10", "random_map", "random_p@10")]
                lines.append(f"| {label} | {direction.replace('_to_', ' -> ')} | {' | '.join(cells)} | "
                             f"{metrics[f'{key}_n_queries']} |")
    return "\n".join(lines) + "\n"


def plot_precision_recall(path: Path, evaluations: dict[str, Evaluation]) -> None:
    """Tag -> audio precision-recall curves, micro-averaged over tags, one per model, as a PNG."""
    from matplotlib.figure import Figure

    from coala.figures import save_figure

    fig = Figure(figsize=(5, 4))
    ax = fig.add_subplot()
    for name, evaluation in evaluations.items():
        precision, recall, _ = precision_recall_curve(evaluation.relevant.ravel(), evaluation.scores.ravel())
        ax.plot(recall, precision, label=f"{name} (mAP {evaluation.metrics['tag_to_audio_map']:.3f})")
    prevalence = float(np.mean([e.relevant.mean() for e in evaluations.values()]))
    ax.axhline(prevalence, color="grey", linestyle=":", label="random ranking (tag prevalence)")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("tag -> audio, micro-averaged over tags", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, path, dpi=110)
