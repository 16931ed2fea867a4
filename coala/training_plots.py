"""Pictures of a training run: validation reconstructions with their top tags, and loss curves.

Written with matplotlib's Agg backend (no display needed) through ``coala.atomic`` so a viewer never
sees a half-written PNG.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from coala.atomic import atomic_path  # noqa: E402

N_EXAMPLES = 8
TOP_TAGS = 6


def tag_names(row: np.ndarray, vocabulary: Mapping[int, str], top: int = TOP_TAGS) -> list[str]:
    """The ``top`` highest-scoring tags of ``row``, named through ``vocabulary`` (index when unnamed)."""
    order = np.argsort(-row, kind="stable")[:top]
    return [vocabulary.get(int(i), f"#{int(i)}") for i in order]


def _save(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def save_examples(path: Path, patches: np.ndarray, reconstructions: np.ndarray | None, sound_ids: Sequence[int],
                  tags: np.ndarray, tag_scores: np.ndarray, vocabulary: Mapping[int, str]) -> None:
    """Up to 8 validation patches (low frequencies at the bottom), their reconstructions when the model
    has a decoder, and for each clip its true tags and the top-6 reconstructed (or predicted) tags."""
    n = min(N_EXAMPLES, len(patches))
    rows = 2 if reconstructions is not None else 1
    fig, axes = plt.subplots(rows, n, figsize=(2.2 * n, 2.4 * rows + 1.6), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(patches[i].reshape(patches.shape[-2:]), origin="lower", aspect="auto", vmin=0, vmax=1)
        axes[0, i].set_title(f"id {sound_ids[i]}", fontsize=8)
        if reconstructions is not None:
            axes[1, i].imshow(reconstructions[i].reshape(patches.shape[-2:]), origin="lower", aspect="auto", vmin=0, vmax=1)
        true = [vocabulary.get(int(j), f"#{int(j)}") for j in np.flatnonzero(tags[i] > 0)[:TOP_TAGS]]
        axes[-1, i].set_xlabel("true: " + ", ".join(true) + "\ntop-6: " + ", ".join(tag_names(tag_scores[i], vocabulary)),
                               fontsize=6, wrap=True)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("input (mel bands)", fontsize=8)
    if reconstructions is not None:
        axes[1, 0].set_ylabel("reconstruction", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def save_loss_curves(path: Path, metrics: Sequence[Mapping[str, float]]) -> None:
    """One panel per loss term, training and validation against the epoch."""
    terms = [key[len("train_"):] for key in metrics[0] if key.startswith("train_")]
    epochs = [m["epoch"] for m in metrics]
    fig, axes = plt.subplots(1, len(terms), figsize=(4 * len(terms), 3.2), squeeze=False)
    for ax, term in zip(axes[0], terms):
        for split in ("train", "val"):
            values = [m.get(f"{split}_{term}") for m in metrics]
            if all(v is not None for v in values):
                ax.plot(epochs, values, marker="o", markersize=3, label=split)
        ax.set_title(term)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    _save(fig, path)
