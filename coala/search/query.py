"""Queries in the shared space: clips for tag words or for a sound, and tags for clips."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coala.core.frontend import audio_chunks, audio_samples
from coala.encode.api import encode_files
from coala.search.index import Hit, SearchIndex, top_k
from coala.search.model import ModelPair, normalise

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TagScore:
    tag: str
    score: float


def clip_vectors(pair: ModelPair, paths: Sequence[str | Path]) -> np.ndarray:
    """``(n_files, 1152)`` unit vectors: per file the mean of the z_d of its chunks that hold audio, as the
    index holds them (batched extraction; ``AudioError`` names the first file that cannot be read)."""
    embedded = encode_files(pair.audio_encoder, paths, pair.scaler)
    return normalise(np.stack([z_d.numpy()[:audio_chunks(audio_samples(path))].mean(axis=0)
                               for path, (_, z_d) in zip(paths, embedded)]))


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


def top_tags(pair: ModelPair, vectors: np.ndarray, top: int = 10) -> list[list[TagScore]]:
    """For each clip vector, the ``top`` vocabulary tags by cosine between it and each tag's z_d."""
    scores = np.asarray(vectors, dtype=np.float32) @ pair.vocabulary_vectors().T
    return [[TagScore(pair.vocabulary[int(i)], float(row[i])) for i in top_k(row, top)] for row in scores]


def tag_files(pair: ModelPair, paths: Sequence[str | Path], top: int = 10) -> list[list[TagScore]]:
    """For each file, the ``top`` vocabulary tags (``top_tags`` of its clip vector)."""
    return top_tags(pair, clip_vectors(pair, paths), top)


def hit_tags(index: SearchIndex, pair: ModelPair, hits: Sequence[Hit], top: int = 5) -> list[list[TagScore]]:
    """For each ranked clip, the ``top`` tags of its indexed vector: what the model hears in it."""
    return top_tags(pair, index.clips[[hit.clip for hit in hits]], top) if hits else []
