"""One object for notebooks: ``coala.load(path)`` and the model's three uses, in numpy.

    import coala
    model = coala.load("saved_models/my_run")          # a run folder, a checkpoint in one, or the paper's
    model.embed_audio("clip.wav")                       # (n_chunks, 1152): z of each 96-frame chunk
    model.embed_audio(y, sr=44100)                      # the same for a signal held in memory
    model.embed_tags("Dogs barking")                    # (1152,): z of the tag encoder for dog + bark
                                                        # (a contextual model also reads words never tags)
    model.tag("clip.wav", top=5)                        # [("dog", 0.61), ...]: the vocabulary ranked
    model.vocabulary, model.dims

Everything goes through the tools' own paths: ``coala.models.loading`` (the record's scaler, vocabulary
and sizes), the front end's one chain (``coala.core.frontend``), ``coala.core.model.embed`` (always in
eval mode) and the ranking of ``search.py tag``, so a notebook gets exactly what the command lines write.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from coala.core.errors import AudioInputError
from coala.core.frontend import file_chunks, signal_chunks
from coala.core.model import ModelDims, embed
from coala.device import resolve_device
from coala.encode.inference import inference_model
from coala.models.loading import AUDIO, TAGS, load_model
from coala.search.index import top_k
from coala.search.model import normalise, pair_of

Audio = "str | Path | np.ndarray"


class Coala:
    """A COALA model loaded with both encoders, its scaler and its vocabulary (``load``)."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        self._loaded = load_model(path, (AUDIO, TAGS), device=resolve_device(device))
        self._pair = pair_of(self._loaded)
        self._audio = inference_model(self._loaded.audio_encoder)

    def __repr__(self) -> str:
        return f"Coala({self._loaded.name!r}, {len(self.vocabulary)} tags, device={self.device})"

    @property
    def vocabulary(self) -> list[str]:
        """The tags the model was trained on, by index."""
        words = self._loaded.vocabulary
        return [words[i] for i in sorted(words)]

    @property
    def dims(self) -> ModelDims:
        return self._loaded.dims

    @property
    def device(self) -> torch.device:
        return next(self._loaded.audio_encoder.parameters()).device

    def _chunks(self, audio: Audio, sr: int | None) -> np.ndarray:
        if isinstance(audio, (str, Path)):
            if sr is not None:
                raise AudioInputError(f"{audio}: sr is for arrays; a file's rate is read from the file")
            chunks = list(file_chunks(audio, self._loaded.scaler))
            return np.concatenate(chunks)
        if sr is None:
            raise AudioInputError("an array of samples needs its sample rate: embed_audio(y, sr=...)")
        y = np.asarray(audio, dtype=np.float32)
        if y.ndim == 2:  # (channels, samples), librosa's layout: mixed to mono as files are
            y = y.mean(axis=0)
        if y.ndim != 1 or y.size == 0 or not np.isfinite(y).all():
            raise AudioInputError(f"expected a non-empty finite mono (n,) or (channels, n) signal, got shape {y.shape}")
        return signal_chunks(y, int(sr), self._loaded.scaler)

    def embed_audio(self, audio: Audio, sr: int | None = None, projection: bool = False) -> np.ndarray:
        """``(n_chunks, 1152)`` float32: ``z`` of each 96-frame chunk (``projection``: ``z_d``, the shared
        space), the numbers ``encode.py`` writes for the same audio."""
        return embed(self._audio, self._chunks(audio, sr))[int(projection)].numpy()

    def embed_tags(self, tags: str | list[str], projection: bool = False) -> np.ndarray:
        """``z`` of the tag encoder (``(1152,)``; the contextual model's is ``(word_dim,)``) or, with
        ``projection``, ``z_d`` (``(1152,)``, the shared space) for tag words, a phrase or a list, normalised as
        the dataset builder normalises tags. Words the model cannot read are ignored (outside COALA's
        vocabulary; for the contextual model only words without a word vector), none known is a ``VocabularyError``."""
        return self._pair.words_embedding(tags)[0][int(projection)]

    def tag(self, audio: Audio, sr: int | None = None, top: int = 10) -> list[tuple[str, float]]:
        """The ``top`` vocabulary tags for a clip, best first, by cosine in the shared space between the
        mean of its chunks' ``z_d`` and each tag's ``z_d`` (what ``search.py tag`` prints)."""
        clip = normalise(self.embed_audio(audio, sr, projection=True).mean(axis=0))
        scores = self._pair.vocabulary_vectors() @ clip
        return [(self._loaded.vocabulary[int(i)], float(scores[i])) for i in top_k(scores, top)]


def load(path: str | Path, device: str = "cpu") -> Coala:
    """The model at ``path`` (a run folder, a checkpoint inside one, or a folder of the paper's checkpoints),
    in eval mode on ``device`` (``"cuda"`` without CUDA is a ``CoalaError``)."""
    return Coala(path, device)
