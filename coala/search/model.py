"""The model pair search runs on: an audio encoder and a tag encoder of one training run, and their shared space.

The contrastive loss pulls an audio patch's projection ``z_d`` (``AudioEncoder.fc_audio``) toward the
projection ``z_d`` of its clip's multi-hot tags (``TagEncoder.fc_tag``), so cosine in that space says how
well tags fit a sound. A pair is read from a run folder (its record gives the scaler and vocabulary) or a folder of the
paper's checkpoints (``saved_models/dual_ae_c``: ``audio_encoder_epoch_N.pt``, ``tag_encoder_epoch_N.pt``).

Each encoder is identified by a fingerprint of its weights, sizes, scaler or vocabulary: an index records them, so that a query with
another model, whose space is another space, is refused instead of ranking at random.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from coala import assets
from coala.core.errors import SearchError, VocabularyError
from coala.core.frontend import MinMaxScaler
from coala.core.model import AudioEncoder, TagEncoder, embed
from coala.data.tags import words_multi_hot
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
    tag_encoder: TagEncoder
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

    def words_vector(self, text: str) -> tuple[np.ndarray, list[str], list[str]]:
        """A tag query as one unit vector: the known words (``words_multi_hot``) through the tag encoder.

        Returns ``(vector, known words, unknown words)``; the caller reports the unknown ones. No known
        word at all is a ``SearchError``: ranking by an empty vector would be meaningless.
        """
        try:
            multi_hot, known, unknown = words_multi_hot(text, self.vocabulary)
        except VocabularyError as exc:
            raise SearchError(str(exc)) from None
        return self.tag_vectors(multi_hot[None])[0], known, unknown


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
