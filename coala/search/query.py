"""Queries in the shared space: clips for tag words or for a sound, and tags for clips."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coala.encode.api import encode_files
from coala.search.index import Hit, SearchIndex, top_k
from coala.search.model import ModelPair, normalise

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TagScore:
    tag: str
    score: float


def clip_vectors(pair: ModelPair, paths: Sequence[str | Path]) -> np.ndarray:
    """``(n_files, 1152)`` unit vectors: per file the mean of its chunks' z_d, as the index holds them
    (batched extraction; ``AudioError`` names the first file that cannot be read)."""
    return normalise(np.stack([z_d.numpy().mean(axis=0) for _, z_d in encode_files(pair.audio_encoder, paths, pair.scaler)]))


def query_tags(index: SearchIndex, pair: ModelPair, text: str, top: int = 10) -> tuple[list[Hit], list[str]]:
    """The clips that best fit tag words ("dog bark"), and the words the model does not know."""
    index.check_model(pair)
    vector, known, unknown = pair.words_vector(text)
    if unknown:
        log.warning(f"unknown to the model (not in its vocabulary, or without a word vector), ignored: "
                    f"{', '.join(unknown)} (searching for {' '.join(known)})")
    return index.search(vector, top), unknown


def query_audio(index: SearchIndex, pair: ModelPair, path: str | Path, top: int = 10) -> list[Hit]:
    """The clips that sound most like an audio file."""
    index.check_model(pair)
    return index.search(clip_vectors(pair, [path])[0], top)


def tag_files(pair: ModelPair, paths: Sequence[str | Path], top: int = 10) -> list[list[TagScore]]:
    """For each file, the ``top`` vocabulary tags by cosine between its vector and each tag's z_d."""
    scores = clip_vectors(pair, paths) @ pair.vocabulary_vectors().T
    return [[TagScore(pair.vocabulary[int(i)], float(row[i])) for i in top_k(row, top)] for row in scores]
