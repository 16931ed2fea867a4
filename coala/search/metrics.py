"""How well the shared space retrieves, on a validation file in the paper's release layout.

Both directions rank by cosine between ``z_d`` of a patch and ``z_d`` of a tag as a query of its own (a
one-hot row for COALA; for the contextual model the tag's word vector, so it also ranks for tags it was
never trained on: the held-out tags, measured alone when some model did not see them):

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
from coala.data.hdf5 import GROUP, inspect_hdf5, read_labels, read_provenance
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
    """Metrics of one model and the score matrix they came from (``(n_patches, n_tags)``, for curves);
    ``held_out`` the columns of the held-out tags."""

    metrics: dict
    scores: np.ndarray
    relevant: np.ndarray
    held_out: list[int]


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


def both_directions(scores: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    metrics = {}
    for direction, (s, r) in zip(DIRECTIONS, ((scores.T, relevant.T), (scores, relevant))):
        metrics.update({f"{direction}_{name}": value for name, value in ranking_metrics(s, r).items()})
    return metrics


def dataset_tags(dataset: Path, pair: ModelPair) -> list[str]:
    """The tags of the file's label columns: the vocabulary it records (``create_dataset.py`` files), else
    (the paper's release) the model's own, which must then be as wide as the labels."""
    n_tags = inspect_hdf5(dataset)[1]
    words = read_provenance(dataset)[1]
    if words is None:
        if n_tags != len(pair.vocabulary):
            raise SearchError(f"{dataset}: labels of {n_tags} tags, but the model's vocabulary has {len(pair.vocabulary)}")
        return [pair.vocabulary[i] for i in range(n_tags)]
    if len(words) != n_tags:
        raise SearchError(f"{dataset}: labels of {n_tags} tags, but the file's vocabulary has {len(words)}")
    return words


def held_out_tags(dataset: Path, pairs: list[ModelPair]) -> list[str]:
    """The file's tags that some model was not trained on (none for the paper's release, which does not
    record its vocabulary): the held-out tags every model that can encode them is measured on."""
    inspect_hdf5(dataset)
    words = read_provenance(dataset)[1] or []
    trained_on = [set(pair.vocabulary.values()) for pair in pairs]
    return [w for w in words if any(w not in tags for tags in trained_on)]


def evaluate_release(pair: ModelPair, dataset: str | Path, cnn: nn.Module | None = None,
                     held_out: list[str] | None = None) -> Evaluation:
    """Retrieval metrics of a pair on a validation HDF5 file (and, with ``cnn``, the CNN's beside them,
    under keys prefixed ``cnn_``); with ``held_out`` (tags of the file) tag -> audio on those tags alone,
    under keys prefixed ``held_out_``, and each one's AP and whether the model saw it in training.

    The tag side is each of the file's tags as a query of its own (``ModelPair.each_word_vectors``): for
    the contextual model, a tag it was not trained on is encoded through its word vectors.
    """
    dataset = Path(dataset)
    check_values(dataset)  # a NaN patch or a label of 3 would give metrics of garbage, silently
    n_patches, n_tags = inspect_hdf5(dataset)
    words = dataset_tags(dataset, pair)
    relevant = read_labels(dataset)
    scores = normalise(_forward_all(pair.audio_encoder, dataset, 1)) @ pair.each_word_vectors(words).T
    metrics = {"n_patches": n_patches, **both_directions(scores, relevant)}
    columns = [c for c in (words.index(w) for w in held_out or []) if relevant[:, c].any()]
    if columns:
        metrics.update({f"held_out_tag_to_audio_{key}": value
                        for key, value in ranking_metrics(scores[:, columns].T, relevant[:, columns].T).items()})
        trained_on = set(pair.vocabulary.values())
        metrics["held_out_tags"] = {words[c]: {"ap": float(average_precision_score(relevant[:, c], scores[:, c])),
                                               "seen_in_training": words[c] in trained_on} for c in columns}
    if cnn is not None:
        probabilities = _forward_all(cnn, dataset, 1)
        if probabilities.shape[1] != n_tags:
            raise SearchError(f"{dataset}: labels of {n_tags} tags, but the CNN predicts {probabilities.shape[1]}")
        metrics.update({f"cnn_{key}": value for key, value in both_directions(probabilities, relevant).items()})
    log.info(f"{pair.name}: tag->audio mAP {metrics['tag_to_audio_map']:.4f}, "
             f"audio->tag mAP {metrics['audio_to_tag_map']:.4f} on {n_patches} patches")
    return Evaluation(metrics, scores, relevant, columns)


def _held_out_label(metrics: dict) -> str:
    """How the held-out tags stood to the model's training: never seen, seen, or some of them."""
    seen = [entry["seen_in_training"] for entry in metrics["held_out_tags"].values()]
    what = "never seen in its training" if not any(seen) else "seen in its training" if all(seen) \
        else f"{sum(seen)} of {len(seen)} seen in its training"
    return f"held-out tags, {what}"


def metrics_table(results: dict[str, dict]) -> str:
    """A markdown table: per model (and CNN baseline) and direction, mAP, P@10, R@10 and random mAP."""
    lines = ["| model | direction | mAP | P@10 | R@10 | random mAP | random P@10 | queries |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, metrics in results.items():
        held_out = f"{name}: {_held_out_label(metrics)}" if "held_out_tags" in metrics else ""
        for prefix, label in (("", name), ("held_out_", held_out), ("cnn_", f"{name}: CNN baseline")):
            for direction in DIRECTIONS:
                key = f"{prefix}{direction}"
                if f"{key}_map" not in metrics:
                    continue
                cells = [f"{metrics[f'{key}_{m}']:.4f}" for m in ("map", "p@10", "r@10", "random_map", "random_p@10")]
                lines.append(f"| {label} | {direction.replace('_to_', ' -> ')} | {' | '.join(cells)} | "
                             f"{metrics[f'{key}_n_queries']} |")
    return "\n".join(lines) + "\n"


def plot_precision_recall(path: Path, evaluations: dict[str, Evaluation]) -> bool:
    """Tag -> audio precision-recall curves, micro-averaged over tags, one per model, as a PNG; beside them
    the same on the held-out tags alone when they were measured; False when it could not be drawn (warned)."""
    from matplotlib.figure import Figure

    from coala.figures import save_figure

    panels = [("all tags", "tag_to_audio_map", {name: (e, slice(None)) for name, e in evaluations.items()})]
    held_out = {name: (e, e.held_out) for name, e in evaluations.items() if e.held_out}
    if held_out:
        panels.append(("held-out tags", "held_out_tag_to_audio_map", held_out))
    fig = Figure(figsize=(5 * len(panels), 4))
    for ax, (title, key, curves) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for name, (evaluation, columns) in curves.items():
            relevant, scores = evaluation.relevant[:, columns], evaluation.scores[:, columns]
            precision, recall, _ = precision_recall_curve(relevant.ravel(), scores.ravel())
            ax.plot(recall, precision, label=f"{name} (mAP {evaluation.metrics[key]:.3f})")
        prevalence = float(np.mean([e.relevant[:, columns].mean() for e, columns in curves.values()]))
        ax.axhline(prevalence, color="grey", linestyle=":", label="random ranking (tag prevalence)")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"tag -> audio, micro-averaged over {title}", fontsize=9)
        ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=110)
