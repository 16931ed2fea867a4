"""Reporting downstream results: the paper's table beside ours, and confusion matrices.

The results file keeps the shape of the paper's ``results/performances.json``
(``{"US8K": {"<embedding>": [score per run]}, "GTZAN": ..., "NSynth": ...}``), so tools written for
the paper's file read ours; everything else about the evaluation sits under the extra key ``"meta"``,
including each set's ``model.json`` (``meta.tasks.<task>.embeddings.<set>.model``): the table names
the model that made each row from it, and puts the paper's figures beside a row only when that record
says the paper's published model made it (or the paper's MFCC), never from the set's name; beside a row
a contextual model made, the follow-up paper's figures for its variant (docs/contextual.md).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from coala.atomic import atomic_write_text
from coala.evaluation.datasets import DOWNSTREAM
from coala.evaluation.protocol import LINEAR_SUFFIX, MODEL_KEY
from coala.figures import save_figure
from coala.jsonfile import read_json

TASK_ORDER = tuple(dataset.key for dataset in DOWNSTREAM.values())
META_KEY = "meta"

# The paper's results (its results/performances.json): mean and std over 10 runs, accuracy in %.
PAPER_RESULTS: dict[str, dict[str, tuple[float, float]]] = {
    "AE_c": {"US8K": (72.68, 0.23), "GTZAN": (60.73, 1.12), "NSynth": (73.13, 1.29)},
    "E_c": {"US8K": (72.55, 0.22), "GTZAN": (58.93, 1.52), "NSynth": (69.53, 1.24)},
    "MFCC": {"US8K": (65.83, 0.33), "GTZAN": (49.79, 1.21), "NSynth": (62.56, 1.12)},
    "CNN": {"US8K": (48.39, 0.40), "GTZAN": (46.96, 0.83), "NSynth": (56.41, 0.70)},
}
# The follow-up paper's results (Favory et al., ICASSP 2021: its repository's results/performances_self.json,
# docs/contextual.md), by word-vector width and heads. No checkpoint of the authors' model loads here, and this
# project's contextual model differs from it in documented details: beside a row a contextual model of the same
# sizes made, they say where the authors' own variant stood.
FOLLOW_UP_ROWS = {(128, 1): "follow-up 128-d, 1 head", (128, 4): "follow-up 128-d, 4 heads",
                  (1152, 1): "follow-up 1152-d, 1 head", (1152, 4): "follow-up 1152-d, 4 heads"}
FOLLOW_UP_RESULTS: dict[str, dict[str, tuple[float, float]]] = {
    FOLLOW_UP_ROWS[128, 1]: {"US8K": (71.51, 0.31), "GTZAN": (61.35, 1.16), "NSynth": (68.88, 0.82)},
    FOLLOW_UP_ROWS[128, 4]: {"US8K": (73.51, 0.30), "GTZAN": (59.62, 1.45), "NSynth": (69.73, 0.72)},
    FOLLOW_UP_ROWS[1152, 1]: {"US8K": (72.11, 0.25), "GTZAN": (61.52, 1.45), "NSynth": (68.57, 0.53)},
    FOLLOW_UP_ROWS[1152, 4]: {"US8K": (70.46, 0.24), "GTZAN": (63.39, 1.78), "NSynth": (69.91, 0.41)},
}
REPORTED_RESULTS = {**PAPER_RESULTS, **FOLLOW_UP_RESULTS}  # every row a result may stand beside
UNKNOWN_MAKER = "unknown (no model.json)"


def paper_row(result_name: str, record: dict | None) -> str | None:
    """The paper's row a result stands beside: an MLP result (the paper had no linear probe) of ``z`` made
    by one of the paper's published checkpoints (the record's ``paper_row``, ``coala.models.loading``),
    or of the MFCC baseline; for ``z`` made by a contextual model (the record's ``kind``), the follow-up
    paper's variant of its sizes. A set without a record has none: its name proves nothing."""
    if record is None or result_name.endswith(LINEAR_SUFFIX):
        return None
    if record.get("output") == "mfcc":
        return "MFCC"
    if record.get("kind") == "contextual":
        sizes = (record.get("word_dim"), record.get("attention_heads"))
        return FOLLOW_UP_ROWS.get(sizes) if record.get("output") == "z" else None
    row = record.get("paper_row") if record.get("output") == "z" else None
    return row if row in PAPER_RESULTS else None


def made_by(record: dict | None) -> str:
    """Which model and epoch made a set, for the table: ``<folder>, epoch <N>``, its output when not ``z``."""
    if record is None:
        return UNKNOWN_MAKER
    output, model, epoch = record.get("output"), str(record.get("model")), record.get("epoch")
    if output == "mfcc":
        return "MFCC"
    text = f"{model.removesuffix(f'_{epoch}')}, epoch {epoch}" if epoch is not None else model
    return text if output == "z" else f"{text} ({output})"


def _set_meta(results: dict[str, Any], task: str, result_name: str) -> dict:
    """What the results' meta keeps of the set a task's result was computed on (empty when unknown)."""
    tasks = results.get(META_KEY, {}).get("tasks", {})
    return tasks.get(task, {}).get("embeddings", {}).get(result_name.removesuffix(LINEAR_SUFFIX), {})


def results_record(results: dict[str, Any], task: str, result_name: str) -> dict | None:
    """The ``model.json`` a task's set was read with, as the results' meta keeps it (None when unknown)."""
    return _set_meta(results, task, result_name).get(MODEL_KEY)


def subset_note(results: dict[str, Any], task: str, result_name: str) -> str:
    """`` (subset: <present> of <listed> clips)`` for a result computed on fewer clips than its task lists
    (``classify.py --allow-subset``, or a few missing), else nothing: such a score is not the task's."""
    listed = results.get(META_KEY, {}).get("tasks", {}).get(task, {}).get("listed")
    present = _set_meta(results, task, result_name).get("present")
    return f" (subset: {present} of {listed} clips)" if listed and present is not None and present < listed else ""


def merge_previous(path: Path, results: dict[str, Any]) -> list[str]:
    """Keep the results of an earlier file at ``path`` that this evaluation did not produce again.

    Evaluating one task, or one embedding set, at a time must not erase the others' results: an
    earlier score is replaced only by a new score of the same task and embedding set. Returns what
    was kept, as "<task>: <set>, <set>" lines.
    """
    try:
        previous = read_json(path)
    except (OSError, ValueError):
        return []
    if not isinstance(previous, dict):
        return []
    previous_meta = previous.get(META_KEY, {}).get("tasks", {}) if isinstance(previous.get(META_KEY), dict) else {}
    kept = []
    for task in TASK_ORDER:
        earlier = previous.get(task)
        if not isinstance(earlier, dict):
            continue
        current = results.setdefault(task, {})
        names = [name for name in earlier if name not in current]
        if not names:
            continue
        current.update({name: earlier[name] for name in names})
        earlier_meta = previous_meta.get(task, {}) if isinstance(previous_meta.get(task), dict) else {}
        task_meta = results[META_KEY]["tasks"].setdefault(task, earlier_meta)
        if task_meta is not earlier_meta:
            for part in ("embeddings", "fits"):
                for name, value in earlier_meta.get(part, {}).items():
                    task_meta.setdefault(part, {}).setdefault(name, value)
        kept.append(f"{task}: {', '.join(names)}")
    return kept


def _cell(scores: list[float]) -> str:
    values = 100 * np.asarray(scores, dtype=float)
    return f"{values.mean():.2f} ± {values.std():.2f}" if len(values) > 1 else f"{values.mean():.2f}"


def markdown_table(results: dict[str, Any]) -> str:
    """Mean ± std over runs in %, one row per result name with the model that made it, and the paper's
    figures beside a task's result when its set's record says the paper's model made it (``paper_row``).

    The std is numpy's default (population, ddof=0); a result with a single run shows its mean only. A
    name whose folders of different tasks were made by different models lists each maker.
    """
    tasks = [t for t in TASK_ORDER if t in results]
    names = sorted({name for t in tasks for name in results[t]})
    header = ["embedding", "made by", "paper row"] + [c for t in tasks for c in (t, f"{t} (paper)")]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name in names:
        records = {t: results_record(results, t, name) for t in tasks if name in results[t]}
        papers = {t: paper_row(name, record) for t, record in records.items()}
        makers = dict.fromkeys(made_by(record) for record in records.values())
        rows = dict.fromkeys(paper for paper in papers.values() if paper)
        row = [name, "; ".join(makers), "; ".join(rows) or "—"]
        for t in tasks:
            row.append(_cell(results[t][name]) + subset_note(results, t, name) if name in results[t] else "—")
            row.append("{:.2f} ± {:.2f}".format(*REPORTED_RESULTS[papers[t]][t]) if papers.get(t) else "—")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def best_result(task_results: dict[str, list[float]]) -> str:
    return max(sorted(task_results), key=lambda name: float(np.mean(task_results[name])))


def plot_confusion(path: Path, confusion: np.ndarray, classes: list[str], title: str) -> None:
    """A row-normalized confusion matrix (each true class sums to 1) as a PNG, written atomically."""
    rows = confusion.sum(axis=1, keepdims=True)
    normalized = confusion / np.maximum(rows, 1)
    size = 2.5 + 0.5 * len(classes)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.add_subplot()
    image = ax.imshow(normalized, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for i, j in np.ndindex(normalized.shape):
        ax.text(j, i, f"{normalized[i, j]:.2f}", ha="center", va="center", fontsize=7,
                color="white" if normalized[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax)
    save_figure(fig, path, dpi=110)


def write_results(path: Path, results: dict[str, Any]) -> Path:
    """Write the results JSON and its markdown table beside it (``<stem>.md``); return the table's path."""
    ordered = {key: results[key] for key in (*TASK_ORDER, META_KEY) if key in results}
    atomic_write_text(path, json.dumps(ordered, indent=2) + "\n")
    table_path = path.with_suffix(".md")
    atomic_write_text(table_path, markdown_table(results))
    return table_path
