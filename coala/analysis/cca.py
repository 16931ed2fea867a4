"""Canonical correlation between audio embeddings and acoustic descriptors, as the paper measured it.

The paper called SVCCA's ``get_cca_similarity(embeddings.T, descriptors.T, epsilon=1e-20)`` (no SVD
reduction) and reported the mean of ``cca_coef1``: the singular values of
``Sxx^-1/2 Sxy Syy^-1/2`` over the dimensions with non-zero variance, ``min(dims_x, dims_y)`` of them.
Here the same numbers come from the QR/SVD formulation, which needs no covariance inverse: with
``Qx``, ``Qy`` orthonormal bases of the centred data's columns, the canonical correlations are the
singular values of ``Qx^T Qy``, padded with zeros to ``min(dims_x, dims_y)`` where a side's rank is
below its dimension (the covariance inverse's pseudo-inverse gives those zeros).

Plain CCA saturates when clips are few: once ``rank_x + rank_y`` exceeds ``n_clips - 1``, the two
column spaces must share directions and that many coefficients are 1 whatever the data (with
1152-d embeddings and fewer than 1153 clips, all of them). Such results are flagged ``saturated``.
SVCCA's remedy is optional here: ``svd_keep`` reduces the embeddings to the top singular directions
that keep that share of their variance (SVCCA's 0.99) before CCA. The descriptor sets (at most 20
dimensions in unlike units, where a variance share means little) are used whole.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from coala.analysis.descriptors import DESCRIPTOR_KEYS, Descriptors
from coala.atomic import atomic_write_text
from coala.core.errors import AnalysisError
from coala.figures import save_figure

log = logging.getLogger(__name__)

# Fewer clips than this and a canonical correlation estimates nothing; refused rather than tabled.
MIN_CLIPS = 10
# SVCCA's choice when reducing activations: the singular directions that keep 99% of the variance.
SVCCA_VARIANCE_KEPT = 0.99
# Directions of the centred data below this fraction of its largest singular value are rounding of the
# float32 embeddings, not signal (the paper's pseudo-inverse dropped them likewise).
RANK_RTOL = 1e-6
TABLE_JSON, TABLE_MARKDOWN, FIGURE = "cca.json", "cca.md", "cca.png"
FIGURE_DPI = 150


def _basis(x: np.ndarray) -> tuple[np.ndarray, int]:
    """An orthonormal basis ``(n, rank)`` of the centred columns of ``x``, and its count of non-constant columns."""
    centred = x - x.mean(axis=0)
    varying = int(np.count_nonzero(np.ptp(x, axis=0) > 0))
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    rank = int(np.count_nonzero(s > RANK_RTOL * s[0])) if s.size and s[0] > 0 else 0
    return u[:, :rank], varying


def _cca(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The coefficients, and the ranks of the centred ``x`` and ``y``."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{x.shape[0]} rows against {y.shape[0]}")
    (qx, dims_x), (qy, dims_y) = _basis(x), _basis(y)
    k = min(dims_x, dims_y)
    found = np.linalg.svd(qx.T @ qy, compute_uv=False) if qx.size and qy.size else np.zeros(0)
    coefficients = np.clip(np.concatenate([found, np.zeros(max(0, k - found.size))])[:k], 0.0, 1.0)
    return coefficients, qx.shape[1], qy.shape[1]


def canonical_correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The canonical correlation coefficients of ``x`` (n, dims_x) and ``y`` (n, dims_y), rows = clips,
    in decreasing order: ``min`` of their non-constant dimensions, each in [0, 1]."""
    return _cca(x, y)[0]


def svd_reduce(x: np.ndarray, keep: float) -> np.ndarray:
    """SVCCA's reduction: ``x`` (rows = clips) projected on its fewest top singular directions that hold
    ``keep`` of its variance."""
    u, s, _ = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    share = np.cumsum(s ** 2) / max(float(np.sum(s ** 2)), np.finfo(float).tiny)
    k = int(np.searchsorted(share, keep) + 1)
    return u[:, :k] * s[:k]


@dataclass(frozen=True)
class CcaResult:
    """One cell of the table: the mean coefficient and what it rests on."""

    mean_cca: float
    coefficients: int
    n_clips: int
    embedding_rank: int
    descriptor_rank: int
    saturated: bool


def mean_cca(embeddings: np.ndarray, descriptor_rows: np.ndarray, svd_keep: float | None = None) -> CcaResult:
    """The paper's number (mean of SVCCA's ``cca_coef1``) for one model and one descriptor set."""
    x = svd_reduce(embeddings, svd_keep) if svd_keep else embeddings
    coefficients, rank_x, rank_y = _cca(x, descriptor_rows)
    n = x.shape[0]
    return CcaResult(float(coefficients.mean()) if coefficients.size else 0.0, int(coefficients.size), n,
                     rank_x, rank_y, rank_x + rank_y > n - 1)


def aligned_descriptors(ids: np.ndarray, descriptors: dict[int, Descriptors], key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, matrix)``: the positions in ``ids`` of the clips whose set ``key`` is present and finite
    (a skewness over a constant window is NaN), and their descriptor vectors."""
    rows, vectors = [], []
    for i, clip_id in enumerate(ids.tolist()):
        value = descriptors.get(clip_id, {}).get(key)
        if value is not None and np.all(np.isfinite(value)):
            rows.append(i)
            vectors.append(value)
    return np.asarray(rows, dtype=np.int64), np.asarray(vectors, dtype=np.float64).reshape(len(rows), -1)


def check_clips(ids: np.ndarray, descriptors: dict[int, Descriptors], descriptors_path: Path, dataset: Path) -> int:
    """How many validation clips have descriptors; ``AnalysisError`` when fewer than ``MIN_CLIPS``."""
    n = sum(1 for clip_id in ids.tolist() if clip_id in descriptors)
    if n < MIN_CLIPS:
        raise AnalysisError(f"{descriptors_path}: descriptors for {n} of the {len(ids)} clips of {dataset}; "
                            f"a canonical correlation needs at least {MIN_CLIPS}")
    if n < len(ids):
        log.warning(f"{descriptors_path}: {len(ids) - n} of the {len(ids)} validation clips have no descriptors and are left out")
    return n


def descriptor_keys(descriptors: dict[int, Descriptors]) -> list[str]:
    """The paper's 15 sets in its order, those the file holds (the paper's own file lacks the rolloff ones)."""
    held = set().union(*(d.keys() for d in descriptors.values())) if descriptors else set()
    absent = [key for key in DESCRIPTOR_KEYS if key not in held]
    if absent:
        log.warning(f"the descriptor file holds no {', '.join(absent)}: left out of the table")
    return [key for key in DESCRIPTOR_KEYS if key in held]


def cca_table(embeddings: dict[str, np.ndarray], ids: np.ndarray, descriptors: dict[int, Descriptors],
              keys: list[str], svd_keep: float | None = None) -> dict[str, dict[str, CcaResult]]:
    """``{model: {descriptor set: CcaResult}}`` over the clips of ``ids`` (rows of each embedding matrix)."""
    table: dict[str, dict[str, CcaResult]] = {}
    for key in keys:
        rows, matrix = aligned_descriptors(ids, descriptors, key)
        for model, z in embeddings.items():
            table.setdefault(model, {})[key] = mean_cca(z[rows], matrix, svd_keep)
    saturated = sum(r.saturated for cells in table.values() for r in cells.values())
    if saturated:
        example = next(r for cells in table.values() for r in cells.values() if r.saturated)
        remedy = "a smaller --svd-keep" if svd_keep else f"--svd-keep {SVCCA_VARIANCE_KEPT}"
        log.warning(f"{saturated} of the {len(table) * len(keys)} coefficients rest on too few clips for the "
                    f"dimension ({example.n_clips} clips, embeddings of rank {example.embedding_rank}): CCA makes "
                    f"them near 1 whatever the embedding; more clips, or {remedy}, give comparable numbers")
    return table


def _markdown(table: dict[str, dict[str, CcaResult]], keys: list[str], svd_keep: float | None) -> str:
    lines = [f"Mean canonical correlation between audio embeddings and descriptors "
             f"({'SVD-reduced to ' + format(svd_keep, 'g') + ' of the variance' if svd_keep else 'plain CCA, as the paper'}). "
             "A * marks a coefficient saturated by too few clips for the dimension.", "",
             "| descriptors | " + " | ".join(table) + " |", "| --- |" + " ---: |" * len(table)]
    for key in keys:
        cells = (f"{table[m][key].mean_cca:.3f}{'*' if table[m][key].saturated else ''}" for m in table)
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _figure(table: dict[str, dict[str, CcaResult]], keys: list[str]) -> Figure:
    fig = Figure(figsize=(max(8.0, 0.75 * len(keys) + 2), 4.5))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(table))
    positions = np.arange(len(keys))
    handles = []
    for i, (model, cells) in enumerate(table.items()):
        values = [cells[key].mean_cca for key in keys]
        bars = ax.bar(positions + (i - (len(table) - 1) / 2) * width, values, width)
        handles.append(Patch(facecolor=bars[0].get_facecolor(), label=model))
        for bar, key in zip(bars, keys):
            if cells[key].saturated:
                bar.set_hatch("//")
    ax.set_xticks(positions, keys, rotation=45, ha="right")
    ax.set_ylim(0, 1.15)  # room above the bars for the legend
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("mean canonical correlation")
    ax.set_title("Audio embeddings against acoustic descriptors (hatched: saturated, too few clips)")
    ax.legend(handles=handles, loc="upper left", ncol=len(table), fontsize="small")
    return fig


def write_table(out: Path, table: dict[str, dict[str, CcaResult]], keys: list[str], svd_keep: float | None,
                provenance: dict) -> list[Path]:
    """``cca.json`` (with ``provenance``: the dataset and the models' identities,
    ``coala.analysis.embeddings.provenance``), ``cca.md`` and ``cca.png`` in ``out``; returns their paths."""
    paths = [out / TABLE_JSON, out / TABLE_MARKDOWN, out / FIGURE]
    document = {**provenance, "svd_keep": svd_keep, "descriptors": keys,
                "models": {model: {key: asdict(cells[key]) for key in keys} for model, cells in table.items()}}
    atomic_write_text(paths[0], json.dumps(document, indent=1))
    atomic_write_text(paths[1], _markdown(table, keys, svd_keep))
    save_figure(_figure(table, keys), paths[2], FIGURE_DPI)
    return paths
