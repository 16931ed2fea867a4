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


# Sizes for a picture read at its saved size: 100 dpi and text of at least 10 pt (14 px). A panel is
# PANEL_INCHES wide, and captions are wrapped to the characters of 10 pt text that fit in it.
DPI = 100
TEXT_PT = 10
TITLE_PT = 12
PANEL_INCHES = 3.0
CAPTION_CHARS = 34


def _caption(label: str, tags: Sequence[str]) -> str:
    return textwrap.fill(f"{label}: " + ", ".join(tags), CAPTION_CHARS, break_long_words=True)


def save_examples(path: Path, patches: np.ndarray, reconstructions: np.ndarray | None, sound_ids: Sequence[int],
                  tags: np.ndarray, tag_scores: np.ndarray, vocabulary: Mapping[int, str]) -> None:
    """Up to 8 validation patches (low frequencies at the bottom), their reconstructions when the model
    has a decoder, and for each clip its true tags and the top-6 reconstructed (or predicted) tags."""
    n = min(N_EXAMPLES, len(patches))
    rows = 2 if reconstructions is not None else 1
    fig = Figure(figsize=(PANEL_INCHES * n, PANEL_INCHES * rows + 2.4))
    axes = fig.subplots(rows, n, squeeze=False)
    for i in range(n):
        axes[0, i].imshow(patches[i].reshape(patches.shape[-2:]), origin="lower", aspect="auto", vmin=0, vmax=1)
        axes[0, i].set_title(f"id {sound_ids[i]}", fontsize=TITLE_PT)
        if reconstructions is not None:
            axes[1, i].imshow(reconstructions[i].reshape(patches.shape[-2:]), origin="lower", aspect="auto", vmin=0, vmax=1)
        true = [vocabulary.get(int(j), f"#{int(j)}") for j in np.flatnonzero(tags[i] > 0)[:TOP_TAGS]]
        axes[-1, i].set_xlabel(_caption("true", true) + "\n" + _caption(f"top-{TOP_TAGS}", tag_names(tag_scores[i], vocabulary)),
                               fontsize=TEXT_PT, loc="left")
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("input (mel bands)", fontsize=TITLE_PT)
    if reconstructions is not None:
        axes[1, 0].set_ylabel("reconstruction", fontsize=TITLE_PT)
    save_figure(fig, path, DPI)


def save_loss_curves(path: Path, metrics: Sequence[Mapping[str, float]], terms: Sequence[str]) -> None:
    """One panel per loss term, the training sample and the validation set against the epoch."""
    epochs = [m["epoch"] for m in metrics]
    fig = Figure(figsize=(4.5 * len(terms), 4))
    axes = fig.subplots(1, len(terms), squeeze=False)
    for ax, term in zip(axes[0], terms):
        for split, label in (("train", "training sample"), ("val", "validation")):
            values = [m.get(f"{split}_{term}") for m in metrics]
            if all(v is not None for v in values):
                ax.plot(epochs, values, marker="o", markersize=3, label=label)
        ax.set_title(term, fontsize=TITLE_PT)
        ax.set_xlabel("epoch", fontsize=TEXT_PT)
        ax.tick_params(labelsize=TEXT_PT)
        ax.legend(fontsize=TEXT_PT)
    save_figure(fig, path, DPI)
