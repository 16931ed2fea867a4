"""Pictures of a training run: validation reconstructions with their top tags, and loss curves.

Drawn on matplotlib figures without pyplot (no display needed, the user's backend untouched) and
written atomically (``coala.figures``).
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from coala.figures import save_figure

N_EXAMPLES = 8
TOP_TAGS = 6


def tag_names(row: np.ndarray, vocabulary: Mapping[int, str], top: int = TOP_TAGS) -> list[str]:
    """The ``top`` highest-scoring tags of ``row``, named through ``vocabulary`` (index when unnamed)."""
    order = np.argsort(-row, kind="stable")[:top]
    return [vocabulary.get(int(i), f"#{int(i)}") for i in order]


DPI = 80
# Characters of a tag line under one example (2.2 inches at 6 points). Lines are wrapped here, not by
# matplotlib, whose wrapping measures each word as mathtext when it holds two dollar signs.
LABEL_CHARS = 45


def save_examples(path: Path, patches: np.ndarray, reconstructions: np.ndarray | None, sound_ids: Sequence[int],
                  tags: np.ndarray, tag_scores: np.ndarray, vocabulary: Mapping[int, str]) -> None:
    """Up to 8 validation patches (low frequencies at the bottom), their reconstructions when the model
    has a decoder, and for each clip its true tags and the top-6 reconstructed (or predicted) tags."""
    n = min(N_EXAMPLES, len(patches))
    rows = 2 if reconstructions is not None else 1
    fig = Figure(figsize=(2.2 * n, 2.4 * rows + 1.6))
    axes = fig.subplots(rows, n, squeeze=False)
    for i in range(n):
        axes[0, i].imshow(patches[i].reshape(patches.shape[-2:]), origin="lower", aspect="auto", vmin=0, vmax=1)
        axes[0, i].set_title(f"id {sound_ids[i]}", fontsize=8)
        if reconstructions is not None:
            axes[1, i].imshow(reconstructions[i].reshape(patches.shape[-2:]), origin="lower", aspect="auto", vmin=0, vmax=1)
        true = [vocabulary.get(int(j), f"#{int(j)}") for j in np.flatnonzero(tags[i] > 0)[:TOP_TAGS]]
        label = ["true: " + ", ".join(true), "top-6: " + ", ".join(tag_names(tag_scores[i], vocabulary))]
        axes[-1, i].set_xlabel("\n".join(textwrap.fill(line, LABEL_CHARS) for line in label), fontsize=6)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("input (mel bands)", fontsize=8)
    if reconstructions is not None:
        axes[1, 0].set_ylabel("reconstruction", fontsize=8)
    save_figure(fig, path, DPI)


def save_loss_curves(path: Path, metrics: Sequence[Mapping[str, float]]) -> None:
    """One panel per loss term, training and validation against the epoch."""
    terms = [key[len("train_"):] for key in metrics[0] if key.startswith("train_")]
    epochs = [m["epoch"] for m in metrics]
    fig = Figure(figsize=(4 * len(terms), 3.2))
    axes = fig.subplots(1, len(terms), squeeze=False)
    for ax, term in zip(axes[0], terms):
        for split in ("train", "val"):
            values = [m.get(f"{split}_{term}") for m in metrics]
            if all(v is not None for v in values):
                ax.plot(epochs, values, marker="o", markersize=3, label=split)
        ax.set_title(term)
        ax.set_xlabel("epoch")
        ax.legend()
    save_figure(fig, path, DPI)
