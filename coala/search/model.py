"""The model pair search runs on: an audio encoder and a tag encoder of one training run, and their shared space.

The contrastive loss pulls an audio patch's projection ``z_d`` (``AudioEncoder.fc_audio``) toward the
projection ``z_d`` of its clip's multi-hot tags (``TagEncoder.fc_tag``), so cosine in that space says how
well tags fit a sound. A pair is read from a run folder (its record gives the scaler and vocabulary) or a folder of the
paper's checkpoints (``saved_models/dual_ae_c``: ``audio_encoder_epoch_N.pt``, ``tag_encoder_epoch_N.pt``).

Each encoder is identified by a fingerprint of its weights, sizes, scaler or vocabulary: an index records them, so that a query with
another model, whose space is another space, is refused instead of ranking at random.

The follow-up paper's contextual model (``coala.core.model.ContextualAE``) makes the same pair: the same
audio encoder and a tag encoder over word vectors, which also encodes words that were never tags.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from coala import assets
from coala.core.errors import SearchError, VocabularyError
from coala.core.frontend import MinMaxScaler
from coala.core.model import AudioEncoder, TagEncoder, WordTagEncoder, embed, embed_words
from coala.data.tags import words_multi_hot
from coala.data.words import WordVectors, query_vectors
from coala.models.loading import AUDIO, TAGS, LoadedModel, load_model

log = logging.getLogger(__name__)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero), float32: cosine becomes a dot product."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


@dataclass
class ModelPair:
    """A loaded audio/tag encoder pair with its vocabulary (``{index: tag}``) and identity."""

    folder: Path
    epoch: int
    audio_encoder: AudioEncoder
    tag_encoder: TagEncoder | WordTagEncoder
    vocabulary: dict[int, str]
    record: dict
    loaded: LoadedModel

    @property
    def scaler(self) -> MinMaxScaler:
        return self.loaded.scaler

    @property
    def name(self) -> str:
        return self.record["model"]

    def tag_vectors(self, multi_hot: np.ndarray) -> np.ndarray:
        """Unit-norm ``z_d`` of the tag encoder for ``(n, n_tags)`` multi-hot rows (eval mode: no dropout,
        BatchNorm from its running statistics, so a row's vector does not depend on the others)."""
        return normalise(embed(self.tag_encoder, multi_hot)[1].numpy())

    def vocabulary_vectors(self) -> np.ndarray:
        """``z_d`` of each vocabulary tag as a one-hot vector, row ``i`` for tag index ``i``."""
        return self.tag_vectors(np.eye(len(self.vocabulary), dtype=np.float32))

    @property
    def word_vectors(self) -> WordVectors | None:
        """The contextual model's word vectors (None for COALA's tag encoder, which knows only its vocabulary)."""
        return self.loaded.word_vectors

    def words_embedding(self, words: "str | Sequence[str]") -> tuple[tuple[np.ndarray, np.ndarray], list[str], list[str]]:
        """``(z, z_d)`` of the tag encoder for tag words, a phrase or a list, normalised as the dataset builder
        normalises tags, with ``(known words, unknown words)``.

        COALA's tag encoder reads the words of its vocabulary as one multi-hot row (``words_multi_hot``); the
        contextual model reads every word with a vector (``query_vectors``), words never seen as tags
        included, through its attention. No known word at all is a ``VocabularyError``.
        """
        if self.word_vectors is None:
            multi_hot, known, unknown = words_multi_hot(words, self.vocabulary)
            z, z_d = embed(self.tag_encoder, multi_hot[None])
        else:
            vectors, known, unknown = query_vectors(words, self.word_vectors)
            z, z_d = embed_words(self.tag_encoder.attention, [torch.from_numpy(vectors)])
        return (z[0].numpy(), z_d[0].numpy()), known, unknown

    def words_vector(self, text: str) -> tuple[np.ndarray, list[str], list[str]]:
        """A tag query as one unit vector: ``z_d`` of its known words (``words_embedding``).

        Returns ``(vector, known words, unknown words)``; the caller reports the unknown ones. No known
        word at all is a ``SearchError``: ranking by an empty vector would be meaningless.
        """
        try:
            (_, z_d), known, unknown = self.words_embedding(text)
        except VocabularyError as exc:
            raise SearchError(str(exc)) from None
        return normalise(z_d), known, unknown

    def each_word_vectors(self, words: Sequence[str]) -> np.ndarray:
        """Unit ``z_d`` of each word as a query of its own, row ``i`` for ``words[i]`` (words spelt as a dataset's
        vocabulary spells them): COALA's as the one-hot of a vocabulary tag, the contextual model's through its
        word vectors, for any word they give a vector. ``SearchError`` naming the words the model cannot encode."""
        if self.word_vectors is None:
            index = {tag: i for i, tag in self.vocabulary.items()}
            missing = [w for w in words if w not in index]
        else:
            missing = [w for w in words if not self.word_vectors.has_vector_of(w)]
        if missing:
            shown = ", ".join(repr(w) for w in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise SearchError(f"{self.name}: cannot encode {shown}: not in its vocabulary of {len(self.vocabulary)} tags"
                              + ("" if self.word_vectors is None else " and without a word vector"))
        if self.word_vectors is None:
            return self.vocabulary_vectors()[[index[w] for w in words]]
        clips = [torch.from_numpy(self.word_vectors.vector_of(w))[None] for w in words]
        return normalise(embed_words(self.tag_encoder.attention, clips)[1].numpy())


def pair_of(loaded: LoadedModel) -> ModelPair:
    """The pair of a model loaded with both encoders; its record is what an index keeps of it."""
    record = {"folder": str(loaded.folder), **loaded.identity((AUDIO, TAGS), with_scaler=False)}
    return ModelPair(loaded.folder, loaded.epoch, loaded.audio_encoder, loaded.tag_encoder, loaded.vocabulary,
                     record, loaded)


def load_pair(folder: str | Path, epoch: int | None = None, id2tag: "str | Path | dict | None" = None,
              device: str | torch.device = "cpu", scaler: "str | Path | MinMaxScaler | None" = None) -> ModelPair:
    """The pair in a model folder (its record's epoch, or the latest of a folder of the paper's checkpoints,
    unless ``epoch``), with the scaler and vocabulary of its record (``coala.models.loading``)."""
    path = assets.locate(folder)
    if not path.is_dir():
        raise SearchError(f"{path}: no such model folder (expected saved_models/<experiment>/ with its "
                          f"{AUDIO}_epoch_N.pt and {TAGS}_epoch_N.pt)")
    loaded = load_model(path, (AUDIO, TAGS), scaler=scaler, id2tag=id2tag, device=device, epoch=epoch)
    log.debug(f"loaded {loaded.folder} epoch {loaded.epoch}")
    return pair_of(loaded)
