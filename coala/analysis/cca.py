"""Canonical correlation between audio embeddings and acoustic descriptors: the paper's number, and a fair
comparison of models.

The paper called SVCCA's ``get_cca_similarity(embeddings.T, descriptors.T, epsilon=1e-20)`` (no SVD
reduction) and reported the mean of ``cca_coef1``: the singular values of
``Sxx^-1/2 Sxy Syy^-1/2`` over the dimensions with non-zero variance, ``min(dims_x, dims_y)`` of them.
Here the same numbers come from the QR/SVD formulation, which needs no covariance inverse: with
``Qx``, ``Qy`` orthonormal bases of the centred data's columns, the canonical correlations are the
singular values of ``Qx^T Qy``, padded with zeros to ``min(dims_x, dims_y)`` where a side's rank is
below its dimension (the covariance inverse's pseudo-inverse gives those zeros).

That number is in-sample, and saturates when clips are few: once ``rank_x + rank_y`` exceeds
``n_clips - 1``, the two column spaces must share directions and that many coefficients are 1 whatever
the data (with 1152-d embeddings and fewer than 1153 clips, all of them). Reducing each embedding to a
share of its variance (SVCCA's remedy) keeps more directions of a model of higher rank, which then
looks worse than a degenerate one. So models are compared on held-out clips, on one footing:

- every embedding is reduced to the same number of principal components ``k``, and both covariances
  are shrunk toward a scaled identity by the same ``shrinkage`` (regularised CCA);
- the canonical directions are fitted on four fifths of the clips and the correlations measured on the
  fifth held out, for each fifth (``FOLDS``); a figure is the mean over the descriptor set's ``d``
  components of the correlations of the held-out projections of all clips (0 beyond ``k``);
- ``k`` and ``shrinkage`` are chosen once for all models of a run, as the pair with the best held-out
  mean over every model and descriptor set (or given);
- beside each figure, its chance level: the same procedure with the descriptor rows permuted among the
  clips (``permutations`` times), whose mean and 95th percentile say what an embedding unrelated to
  the descriptors scores.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from threadpoolctl import threadpool_limits

from coala.analysis.descriptors import DESCRIPTOR_KEYS, Descriptors
from coala.atomic import atomic_write_text
from coala.cli import check_coverage
from coala.core.errors import AnalysisError
from coala.figures import save_figure

log = logging.getLogger(__name__)

# Fewer clips than this and a canonical correlation estimates nothing; refused rather than tabled.
MIN_CLIPS = 10
# Held-out folds of the comparison; the candidate numbers of principal components and shrinkages.
FOLDS = 5
COMPONENTS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SHRINKAGES = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)
PERMUTATIONS = 20
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


@dataclass(frozen=True)
class PaperCca:
    """The paper's in-sample number for one model and descriptor set, and what it rests on."""

    mean_cca: float
    coefficients: int
    n_clips: int
    embedding_rank: int
    descriptor_rank: int
    saturated: bool


def mean_cca(embeddings: np.ndarray, descriptor_rows: np.ndarray) -> PaperCca:
    """The paper's number (mean of SVCCA's ``cca_coef1``) for one model and one descriptor set."""
    coefficients, rank_x, rank_y = _cca(embeddings, descriptor_rows)
    n = embeddings.shape[0]
    return PaperCca(float(coefficients.mean()) if coefficients.size else 0.0, int(coefficients.size), n,
                    rank_x, rank_y, rank_x + rank_y > n - 1)


@dataclass(frozen=True)
class Settings:
    """What every model of a comparison is measured with: ``components`` principal components of the
    embedding, and both covariances shrunk by ``shrinkage`` toward the identity scaled to their mean variance."""

    components: int
    shrinkage: float


@dataclass(frozen=True)
class CcaResult:
    """One cell of the comparison: the held-out mean canonical correlation, its chance level (descriptor
    rows permuted: mean and 95th percentile), and the paper's in-sample number beside them."""

    heldout: float
    chance: float
    chance_95: float
    paper: PaperCca


def _inverse_sqrt(covariance: np.ndarray, shrinkage: float) -> np.ndarray:
    """``C^-1/2`` of ``C`` shrunk toward ``mean(diag C) * I``; directions without variance left out (zero)."""
    target = float(np.mean(np.diag(covariance))) if covariance.size else 0.0
    shrunk = (1 - shrinkage) * covariance + shrinkage * target * np.eye(len(covariance))
    values, vectors = np.linalg.eigh(shrunk)
    floor = RANK_RTOL * max(float(values.max(initial=0.0)), np.finfo(float).tiny)
    scale = np.where(values > floor, 1.0 / np.sqrt(np.maximum(values, floor)), 0.0)
    return (vectors * scale) @ vectors.T


@dataclass(frozen=True)
class EmbeddingFold:
    """One held-out fold of one embedding matrix: its training and held-out clips (row indices), and their
    principal-component scores on the components of the training clips alone."""

    train: np.ndarray
    test: np.ndarray
    x_train: np.ndarray
    x_test: np.ndarray


def held_out_sets(n: int, seed: int) -> list[np.ndarray]:
    """``FOLDS`` disjoint sets of row indices covering ``n`` clips, in a seeded random order."""
    return np.array_split(np.random.default_rng(seed).permutation(n), FOLDS)


def embedding_folds(x: np.ndarray, test_sets: list[np.ndarray], max_components: int) -> list[EmbeddingFold]:
    """Each fold's principal-component scores of ``x`` (rows = clips), up to ``max_components``."""
    folds = []
    for test in test_sets:
        train = np.setdiff1d(np.arange(len(x)), test)
        mean = x[train].mean(axis=0)
        basis = np.linalg.svd(x[train] - mean, full_matrices=False)[2][:max_components].T
        folds.append(EmbeddingFold(train, test, (x[train] - mean) @ basis, (x[test] - mean) @ basis))
    return folds


def _standardised(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Descriptor columns in units of their training spread: the sets mix units (Hz, dB, ratios)."""
    mean, spread = train.mean(axis=0), train.std(axis=0)
    spread = np.where(spread > 0, spread, 1.0)
    return (train - mean) / spread, (test - mean) / spread


def heldout_cca(folds: list[EmbeddingFold], y: np.ndarray, settings: Settings) -> float:
    """The mean over the descriptor set's ``d`` components of the correlations between the held-out clips'
    projections on the canonical directions fitted without them (every fold's held-out clips pooled); with
    ``k < d`` components the others count 0, as the paper's padding does, so figures of different ``k``
    compare and a choice of ``k`` weighs what more components find against what they overfit."""
    projected_x, projected_y = [], []
    for fold in folds:
        x_train, x_test = fold.x_train[:, :settings.components], fold.x_test[:, :settings.components]
        y_train, y_test = _standardised(y[fold.train], y[fold.test])
        n = len(x_train)
        wx = _inverse_sqrt(x_train.T @ x_train / (n - 1), settings.shrinkage)
        wy = _inverse_sqrt(y_train.T @ y_train / (n - 1), settings.shrinkage)
        u, _, vt = np.linalg.svd(wx @ (x_train.T @ y_train / (n - 1)) @ wy)
        m = min(x_train.shape[1], y_train.shape[1])
        projected_x.append(x_test @ wx @ u[:, :m])
        projected_y.append(y_test @ wy @ vt.T[:, :m])
    a, b = np.concatenate(projected_x), np.concatenate(projected_y)
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    norms = np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0)
    correlations = np.divide((a * b).sum(axis=0), norms, out=np.zeros(a.shape[1]), where=norms > 0)
    return float(correlations.sum() / y.shape[1])


def chance_levels(folds: list[EmbeddingFold], y: np.ndarray, settings: Settings, permutations: int,
                  seed: int) -> np.ndarray:
    """``heldout_cca`` with the descriptor rows permuted among the clips, ``permutations`` seeded draws: what
    an embedding that says nothing of the descriptors scores under the same procedure."""
    rng = np.random.default_rng(seed)
    return np.array([heldout_cca(folds, y[rng.permutation(len(y))], settings) for _ in range(permutations)])


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


def check_clips(ids: np.ndarray, descriptors: dict[int, Descriptors], descriptors_path: Path, dataset: Path,
                allow_subset: bool = False) -> int:
    """How many validation clips have descriptors; ``AnalysisError`` when fewer than ``MIN_CLIPS``, or when
    more than a few lack them unless ``allow_subset`` (``coala.cli.check_coverage``)."""
    n = sum(1 for clip_id in ids.tolist() if clip_id in descriptors)
    if n < MIN_CLIPS:
        raise AnalysisError(f"{descriptors_path}: descriptors for {n} of the {len(ids)} clips of {dataset}; "
                            f"a canonical correlation needs at least {MIN_CLIPS}")
    absent = next((clip_id for clip_id in ids.tolist() if clip_id not in descriptors), "")
    check_coverage(str(descriptors_path), len(ids) - n, len(ids),
                   f"clips of {dataset} have no descriptors (e.g. {absent})", allow_subset, AnalysisError)
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


def candidates(max_components: int) -> list[Settings]:
    """The settings a comparison chooses from, fewest components first: each ``COMPONENTS`` count that the
    smallest training fold can fit, with each shrinkage."""
    return [Settings(k, shrinkage) for k in COMPONENTS if k <= max_components for shrinkage in SHRINKAGES]


def cca_table(embeddings: dict[str, np.ndarray], ids: np.ndarray, descriptors: dict[int, Descriptors], keys: list[str],
              settings: Settings | None = None, permutations: int = PERMUTATIONS,
              seed: int = 0) -> tuple[dict[str, dict[str, CcaResult]], Settings]:
    """``{model: {descriptor set: CcaResult}}`` over the clips of ``ids`` (rows of each embedding matrix),
    every model measured with the same ``settings``: those given, or the candidate with the best held-out
    mean over all models and sets. Returns the table and the settings used."""
    sets = {key: aligned_descriptors(ids, descriptors, key) for key in keys}
    smallest_train = min(len(rows) - max(map(len, held_out_sets(len(rows), seed))) for rows, _ in sets.values())
    limit = min(smallest_train - 2, *(z.shape[1] for z in embeddings.values()))
    if limit < 1:
        raise AnalysisError(f"{smallest_train} training clips per fold: too few to fit a canonical direction")
    if settings is not None and settings.components > limit:
        raise AnalysisError(f"--components {settings.components}: at most {limit} with {smallest_train} training clips "
                            "per fold and these embeddings")
    with threadpool_limits(limits=1, user_api="blas"):  # thousands of small products: threads only wait
        return _compare(embeddings, sets, limit, settings, permutations, seed)


def _compare(embeddings: dict[str, np.ndarray], sets: dict[str, tuple[np.ndarray, np.ndarray]], limit: int,
             settings: Settings | None, permutations: int, seed: int) -> tuple[dict[str, dict[str, CcaResult]], Settings]:
    """``cca_table`` within its limits: the folds, the choice of settings, then every cell and its chance."""
    folds: dict[tuple[str, bytes], list[EmbeddingFold]] = {}  # one PCA per model and set of clips
    for key, (rows, _) in sets.items():
        for model, z in embeddings.items():
            if (model, rows.tobytes()) not in folds:
                folds[model, rows.tobytes()] = embedding_folds(z[rows], held_out_sets(len(rows), seed), limit)
    cells = [(key, model, folds[model, rows.tobytes()], matrix) for key, (rows, matrix) in sets.items()
             for model in embeddings]
    if settings is None:
        scores = {c: np.mean([heldout_cca(f, y, c) for _, _, f, y in cells]) for c in candidates(limit)}
        settings = max(scores, key=scores.get)
        log.info(f"every model measured with {settings.components} principal components and shrinkage "
                 f"{settings.shrinkage:g}: the best held-out mean ({scores[settings]:.3f}) of {len(scores)} candidates")
    table: dict[str, dict[str, CcaResult]] = {model: {} for model in embeddings}
    for key, model, model_folds, y in cells:
        chance = chance_levels(model_folds, y, settings, permutations, seed + 1)
        rows = sets[key][0]
        table[model][key] = CcaResult(heldout_cca(model_folds, y, settings), float(chance.mean()),
                                      float(np.percentile(chance, 95)), mean_cca(embeddings[model][rows], y))
    return table, settings


def summary(table: dict[str, dict[str, CcaResult]]) -> list[dict]:
    """One row per model over all descriptor sets: the mean held-out figure and chance level, the sets
    whose figure lies above their chance's 95th percentile, and the paper's in-sample mean."""
    rows = []
    for model, cells in table.items():
        results = list(cells.values())
        rows.append({"model": model, "heldout_cca": float(np.mean([r.heldout for r in results])),
                     "chance": float(np.mean([r.chance for r in results])),
                     "sets_above_chance": sum(r.heldout > r.chance_95 for r in results), "sets": len(results),
                     "paper_mean_cca": float(np.mean([r.paper.mean_cca for r in results])),
                     "paper_saturated": sum(r.paper.saturated for r in results)})
    return rows


def summary_markdown(rows: list[dict], settings: Settings) -> str:
    lines = [f"Across descriptor sets ({settings.components} principal components, shrinkage {settings.shrinkage:g} "
             "for every model):", "",
             "| model | held-out mean CCA | chance | sets above chance (95th pct.) | paper's plain CCA |",
             "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['model']} | {r['heldout_cca']:.3f} | {r['chance']:.3f} | {r['sets_above_chance']} of {r['sets']} | "
              f"{r['paper_mean_cca']:.3f}{'*' if r['paper_saturated'] else ''} |" for r in rows]
    return "\n".join(lines) + "\n"


def _markdown(table: dict[str, dict[str, CcaResult]], keys: list[str], settings: Settings, permutations: int) -> str:
    lines = [f"Held-out mean canonical correlation between audio embeddings and descriptors, every model with "
             f"{settings.components} principal components and shrinkage {settings.shrinkage:g}; in brackets its "
             f"chance level (descriptor rows permuted, mean of {permutations}); after the slash the paper's "
             "in-sample plain CCA, * where saturated by too few clips for the dimension.", "",
             "| descriptors | " + " | ".join(table) + " |", "| --- |" + " ---: |" * len(table)]
    for key in keys:
        cells = (table[m][key] for m in table)
        lines.append(f"| {key} | " + " | ".join(f"{c.heldout:.3f} ({c.chance:.3f}) / {c.paper.mean_cca:.3f}"
                                                f"{'*' if c.paper.saturated else ''}" for c in cells) + " |")
    return "\n".join(lines) + "\n\n" + summary_markdown(summary(table), settings)


def _figure(table: dict[str, dict[str, CcaResult]], keys: list[str], settings: Settings) -> Figure:
    fig = Figure(figsize=(max(8.0, 0.75 * len(keys) + 2), 4.8))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(table))
    positions = np.arange(len(keys))
    handles = []
    for i, (model, cells) in enumerate(table.items()):
        x = positions + (i - (len(table) - 1) / 2) * width
        bars = ax.bar(x, [cells[key].heldout for key in keys], width)
        handles.append(Patch(facecolor=bars[0].get_facecolor(), label=model))
        ax.hlines([cells[key].chance for key in keys], x - width / 2, x + width / 2, colors="black", linewidth=1.5)
    handles.append(Line2D([0], [0], color="black", linewidth=1.5, label="chance (permuted)"))
    low = min(0.0, *(c.heldout for cells in table.values() for c in cells.values()))
    ax.set_xticks(positions, keys, rotation=45, ha="right")
    ax.set_ylim(low - 0.05 if low < 0 else 0, 1.15)  # room above the bars for the legend
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("held-out mean canonical correlation")
    ax.set_title(f"Audio embeddings against acoustic descriptors ({settings.components} components, "
                 f"shrinkage {settings.shrinkage:g}, every model)")
    ax.legend(handles=handles, loc="upper left", ncol=len(handles), fontsize="small")
    return fig


def write_table(out: Path, table: dict[str, dict[str, CcaResult]], keys: list[str], settings: Settings,
                chosen: bool, permutations: int, provenance: dict) -> list[Path]:
    """``cca.json`` (with ``provenance``: the dataset and the models' identities,
    ``coala.analysis.embeddings.provenance``), ``cca.md`` and ``cca.png`` in ``out``; returns the paths written
    (the picture's only when it could be drawn: ``save_figure`` warns otherwise)."""
    paths = [out / TABLE_JSON, out / TABLE_MARKDOWN, out / FIGURE]
    document = {**provenance, "settings": {**asdict(settings), "chosen_on_held_out_folds": chosen, "folds": FOLDS,
                                           "permutations": permutations},
                "descriptors": keys, "summary": summary(table),
                "models": {model: {key: asdict(cells[key]) for key in keys} for model, cells in table.items()}}
    atomic_write_text(paths[0], json.dumps(document, indent=1))
    atomic_write_text(paths[1], _markdown(table, keys, settings, permutations))
    return paths if save_figure(_figure(table, keys, settings), paths[2], FIGURE_DPI) else paths[:2]
