"""The model pair search runs on: an audio encoder and a tag encoder of one training run, and their shared space.

The contrastive loss pulls an audio patch's projection ``z_d`` (``AudioEncoder.fc_audio``) toward the
projection ``z_d`` of its clip's multi-hot tags (``TagEncoder.fc_tag``), so cosine in that space says how
well tags fit a sound. A pair is read from a folder in the paper's layout (``saved_models/dual_ae_c``:
``audio_encoder_epoch_N.pt``, ``tag_encoder_epoch_N.pt``).

Each checkpoint is identified by the SHA-256 of its file: an index records them, so that a query with
another model, whose space is another space, is refused instead of ranking at random.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from coala import assets
from coala.data.tags import load_id2tag, preprocess_tags
from coala.models.loading import check_vocabulary_fits
from coala.core.model import model_device
from coala.core.errors import SearchError
from coala.fetch import sha256_of
from coala.models.checkpoints import load_checkpoint
from coala.core.model import AudioEncoder, TagEncoder

AUDIO_PREFIX = "audio_encoder"
TAG_PREFIX = "tag_encoder"
log = logging.getLogger(__name__)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero), float32: cosine becomes a dot product."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


def latest_epoch(folder: Path, prefix: str = AUDIO_PREFIX) -> int:
    """The highest epoch of ``<prefix>_epoch_N.pt`` in ``folder``; ``SearchError`` when there is none."""
    epoch = assets.latest_checkpoint_epoch(folder, [prefix])
    if epoch is None:
        raise SearchError(f"{folder}: no {prefix}_epoch_N.pt in the model folder")
    return epoch


@dataclass
class ModelPair:
    """A loaded audio/tag encoder pair with its vocabulary (``{index: tag}``) and identity."""

    folder: Path
    epoch: int
    audio_encoder: AudioEncoder
    tag_encoder: TagEncoder
    vocabulary: dict[int, str]
    record: dict

    @property
    def audio_path(self) -> Path:
        return self.folder / assets.checkpoint_name(AUDIO_PREFIX, self.epoch)

    @property
    def name(self) -> str:
        return f"{self.folder.name}_{self.epoch}"

    @torch.inference_mode()
    def tag_vectors(self, multi_hot: np.ndarray) -> np.ndarray:
        """Unit-norm ``z_d`` of the tag encoder for ``(n, n_tags)`` multi-hot rows (eval mode: no dropout,
        BatchNorm from its running statistics, so a row's vector does not depend on the others)."""
        x = torch.as_tensor(np.asarray(multi_hot, dtype=np.float32), device=model_device(self.tag_encoder))
        _, z_d = self.tag_encoder(x)
        return normalise(z_d.float().cpu().numpy())

    def vocabulary_vectors(self) -> np.ndarray:
        """``z_d`` of each vocabulary tag as a one-hot vector, row ``i`` for tag index ``i``."""
        return self.tag_vectors(np.eye(len(self.vocabulary), dtype=np.float32))

    def words_vector(self, text: str) -> tuple[np.ndarray, list[str], list[str]]:
        """A tag query as one unit vector: the paper's tag preprocessing ("Dogs" -> "dog"), then the known
        words as one multi-hot vector through the tag encoder.

        Returns ``(vector, known words, unknown words)``; the caller reports the unknown ones: words
        outside the vocabulary, and tokens the preprocessing drops (stop words, "440hz"). No known word
        at all is a ``SearchError``: ranking by an empty vector would be meaningless.
        """
        index = {tag: i for i, tag in self.vocabulary.items()}
        words = preprocess_tags(text)
        known = [w for w in words if w in index]
        dropped = [token for token in text.split(" ") if token and not preprocess_tags(token)]
        unknown = [w for w in words if w not in index] + dropped
        if not known:
            shown = ", ".join(repr(w) for w in unknown) or repr(text)
            raise SearchError(f"no word of the query is in the model's vocabulary of {len(self.vocabulary)} tags "
                              f"(unknown after preprocessing: {shown})")
        multi_hot = np.zeros((1, len(self.vocabulary)), dtype=np.float32)
        multi_hot[0, [index[w] for w in known]] = 1.0
        return self.tag_vectors(multi_hot)[0], known, unknown


def pair_record(folder: Path, epoch: int, audio_path: Path, tag_path: Path) -> dict:
    return {"folder": str(folder), "epoch": epoch,
            "audio_encoder_sha256": sha256_of(audio_path), "tag_encoder_sha256": sha256_of(tag_path)}


def load_pair(folder: str | Path, epoch: int | None = None, id2tag: "str | Path | dict | None" = None,
              device: str | torch.device = "cpu") -> ModelPair:
    """The pair in a model folder (latest epoch unless ``epoch``), its vocabulary checked against the tag
    encoder's width (default vocabulary: the installed ``json/id2token_top_1000.json``)."""
    folder = assets.locate(folder)
    if not folder.is_dir():
        raise SearchError(f"{folder}: no such model folder (expected saved_models/<experiment>/ with "
                          f"{AUDIO_PREFIX}_epoch_N.pt and {TAG_PREFIX}_epoch_N.pt)")
    epoch = latest_epoch(folder) if epoch is None else epoch
    audio_path = folder / assets.checkpoint_name(AUDIO_PREFIX, epoch)
    tag_path = folder / assets.checkpoint_name(TAG_PREFIX, epoch)
    for path in (audio_path, tag_path):
        if not path.is_file():
            raise SearchError(f"{path}: not found; search needs both encoders of epoch {epoch} in {folder}")
    audio_encoder = load_checkpoint(audio_path, AudioEncoder, device)
    tag_encoder = load_checkpoint(tag_path, TagEncoder, device)
    vocabulary = load_id2tag(id2tag)
    check_vocabulary_fits(vocabulary, tag_encoder.tag_encoder[0].in_features, "the vocabulary given" if isinstance(id2tag, dict) else (
        assets.locate(id2tag) if id2tag is not None else assets.default_path(assets.ID2TAG)))
    record = pair_record(folder, epoch, audio_path, tag_path)
    log.debug(f"loaded {folder} epoch {epoch}")
    return ModelPair(folder, epoch, audio_encoder, tag_encoder, vocabulary, record)
