"""t-SNE maps of the shared embedding space, as the paper drew them.

``audio_tag_map``: validation clips' audio embeddings and their tag embeddings (the tag encoder's ``z``
of each clip's multi-hot tags; ``z_d`` for the contextual model, ``shared_output``) in one t-SNE, each clip's two points joined by a line: how close the
contrastive loss brought the two modalities. ``vocabulary_map``: every tag of the vocabulary as a
one-hot input, in one t-SNE; only the words nearest the centres of k-means clusters of the map are
written, so that a 1000-word vocabulary stays readable at full size. ``maps.json`` beside the pictures
records which model drew them, from which file, and the words written.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sklearn.cluster import KMeans
from sklearn.manifold import TSNE
from torch import nn

from coala.analysis.embeddings import ValidationSet, audio_embeddings, tag_embeddings
from coala.atomic import atomic_write_text
from coala.core.errors import AnalysisError
from coala.core.model import ModelDims
from coala.figures import save_figure
from coala.jsonfile import json_text, read_json_as

AUDIO_TAG_MAP, VOCABULARY_MAP, MAPS_JSON = "map_audio_tags.png", "map_vocabulary.png", "maps.json"
DEFAULT_CLIPS = 800      # the paper's N
PERPLEXITY = 30.0        # scikit-learn's default, lowered for small sets (it must stay below the points)
LABELLED_WORDS = 60      # k-means clusters of the vocabulary map, one written word each
FIGURE_DPI = 150
# Below this many points exact t-SNE is the faster (Barnes-Hut's set-up took 15 s for 24 points on a
# loaded 2-core machine, exact 0.5 s); above it exact's quadratic cost wins.
EXACT_TSNE_BELOW = 500


def tsne(points: np.ndarray, seed: int) -> np.ndarray:
    """2-D t-SNE of ``points`` (rows), seeded, PCA-initialised; perplexity at most a third of the points."""
    perplexity = min(PERPLEXITY, max(1.0, (len(points) - 1) / 3))
    method = "exact" if len(points) < EXACT_TSNE_BELOW else "barnes_hut"
    return TSNE(n_components=2, perplexity=perplexity, init="pca", method=method, random_state=seed).fit_transform(points)


def shared_output(dims: ModelDims) -> int:
    """The encoders' output the maps draw: ``z`` (0), where audio and tags share the 1152-d latent, as in
    the paper; ``z_d`` (1) for the contextual model, whose tag ``z`` has the width of its word vectors."""
    return 1 if dims.reads_words else 0


OTHER = "other"
# Groups a map tells apart by colour, beyond which they would look alike (tab10's colours, "other" grey).
MAX_GROUPS = 9


def tag_groups(labels: np.ndarray, vocabulary: dict[int, str], tags: list[str]) -> np.ndarray:
    """Each clip's group for the map's colours: the first of ``tags`` (vocabulary words) the clip carries,
    or ``OTHER``. An unknown word is an ``AnalysisError`` naming it."""
    index = {word: i for i, word in vocabulary.items()}
    unknown = [tag for tag in tags if tag not in index]
    if unknown:
        raise AnalysisError(f"--colour-by: {', '.join(unknown)} not in the model's vocabulary")
    groups = np.full(len(labels), OTHER, dtype=object)
    for tag in reversed(tags):  # the first listed wins where a clip has several
        groups[labels[:, index[tag]] > 0] = tag
    return groups


def label_groups(ids: np.ndarray, path: Path) -> np.ndarray:
    """Each clip's label from a JSON object ``{"<clip id>": "<label>"}`` of the user's (``OTHER`` where none)."""
    labels = read_json_as(path, dict, AnalysisError, "the labels (clip id to label)")
    groups = np.array([str(labels.get(str(i), OTHER)) for i in ids.tolist()], dtype=object)
    if len(set(groups) - {OTHER}) > MAX_GROUPS:
        raise AnalysisError(f"--labels {path}: {len(set(groups) - {OTHER})} labels; a map tells at most {MAX_GROUPS} apart")
    return groups


def _colours(groups: np.ndarray) -> dict[str, str]:
    named = [g for g in dict.fromkeys(groups.tolist()) if g != OTHER]
    return {**{g: f"tab:{c}" for g, c in zip(named, ("blue", "orange", "green", "red", "purple", "brown", "pink",
                                                      "olive", "cyan"))}, OTHER: "lightgray"}


def audio_tag_map(audio_encoder: nn.Module, tag_encoder: nn.Module, validation: ValidationSet, n_clips: int,
                  seed: int, path: Path, groups: np.ndarray | None = None, output: int = 0) -> int:
    """Draw the joint map of the first ``n_clips`` validation clips into ``path``; returns the clips drawn.

    Without ``groups`` the colour says the modality (audio red, tags blue); with them (one per validation
    clip: ``tag_groups``, ``label_groups``) it says the clip's group and the marker the modality. ``output``
    is the encoders' output drawn (``shared_output``)."""
    n = min(n_clips, len(validation.ids))
    z_audio = audio_embeddings(audio_encoder, validation.patches[:n], output)
    z_tags = tag_embeddings(tag_encoder, validation.labels[:n], output)
    points = tsne(np.concatenate([z_audio, z_tags]), seed)
    audio, tags = points[:n], points[n:]
    fig = Figure(figsize=(10, 10))
    ax = fig.add_subplot()
    for (x0, y0), (x1, y1) in zip(audio, tags):
        ax.plot((x0, x1), (y0, y1), linewidth=0.3, color="black", alpha=0.5)
    if groups is None:
        ax.scatter(audio[:, 0], audio[:, 1], s=10, c="tab:red", alpha=0.8, edgecolors="none")
        ax.scatter(tags[:, 0], tags[:, 1], s=10, c="tab:blue", alpha=0.8, edgecolors="none")
        handles = [Line2D([0], [0], marker="o", color="w", markerfacecolor=c, label=label)
                   for c, label in (("tab:red", "audio"), ("tab:blue", "tags"))]
    else:
        colours = _colours(groups[:n])
        shown = np.array([colours[g] for g in groups[:n]])
        ax.scatter(audio[:, 0], audio[:, 1], s=14, c=shown, marker="o", alpha=0.85, edgecolors="none")
        ax.scatter(tags[:, 0], tags[:, 1], s=16, c=shown, marker="^", alpha=0.85, edgecolors="none")
        handles = [Line2D([0], [0], marker="s", color="w", markerfacecolor=c, label=f"{g} ({int(np.sum(groups[:n] == g))})")
                   for g, c in colours.items() if np.any(groups[:n] == g)]
        handles += [Line2D([0], [0], marker=m, color="w", markerfacecolor="black", label=label)
                    for m, label in (("o", "audio"), ("^", "tags"))]
    ax.set_title(f"Audio and tag embeddings of {n} validation clips (t-SNE; lines join a clip's two)")
    ax.legend(handles=handles, loc="upper left")
    ax.set_xticks([])
    ax.set_yticks([])
    save_figure(fig, path, FIGURE_DPI)
    return n


def labelled_points(points: np.ndarray, n_labels: int, seed: int) -> list[int]:
    """The indices of the points nearest the centres of ``n_labels`` k-means clusters: spread over the map."""
    if len(points) <= n_labels:
        return list(range(len(points)))
    centres = KMeans(n_clusters=n_labels, n_init=4, random_state=seed).fit(points).cluster_centers_
    nearest = np.argmin(((points[None, :, :] - centres[:, None, :]) ** 2).sum(axis=2), axis=1)
    return sorted(set(nearest.tolist()))


def vocabulary_map(tag_encoder: nn.Module, vocabulary: dict[int, str], seed: int, path: Path,
                   output: int = 0) -> list[str]:
    """Draw every tag's embedding (its ``output``), a spread sample of them named, into ``path``; returns the
    words written.

    ``vocabulary`` indexes the tag encoder's inputs one to one (``coala.models.loading`` checks it)."""
    width = len(vocabulary)
    points = tsne(tag_embeddings(tag_encoder, np.eye(width, dtype=np.float32), output), seed)
    named = labelled_points(points, LABELLED_WORDS, seed)
    fig = Figure(figsize=(12, 12))
    ax = fig.add_subplot()
    ax.scatter(points[:, 0], points[:, 1], s=8, c="tab:gray", alpha=0.6, edgecolors="none")
    ax.scatter(points[named, 0], points[named, 1], s=14, c="tab:red", edgecolors="none")
    for i in named:
        ax.annotate(vocabulary[i], points[i], xytext=(3, 3), textcoords="offset points", fontsize=9)
    ax.set_title(f"Tag embeddings of the {width}-word vocabulary (t-SNE; {len(named)} words named, "
                 "each nearest a cluster centre)")
    ax.set_xticks([])
    ax.set_yticks([])
    save_figure(fig, path, FIGURE_DPI)
    return [vocabulary[i] for i in named]


def write_record(out: Path, provenance: dict, clips: int, seed: int, words: list[str], colour_by: dict | None,
                 output: int = 0) -> Path:
    """``maps.json`` in ``out``: ``provenance`` (``coala.analysis.embeddings.provenance``), the clips of the
    joint map, the seed, the words written on the vocabulary map, what the colours say and the output
    drawn (``z`` or ``z_d``)."""
    path = out / MAPS_JSON
    document = {**provenance, "clips": clips, "seed": seed, "named_words": words, "colour_by": colour_by,
                "output": ("z", "z_d")[output]}
    atomic_write_text(path, json_text(document, indent=1) + "\n")
    return path
