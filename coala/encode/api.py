"""The paper's notebook functions, with its names and return types, and their batched counterpart.

    from encode import return_loaded_model, extract_audio_embedding_chunks
    from models_t1000 import AudioEncoder
    model = return_loaded_model(AudioEncoder, "saved_models/dual_ae_c/audio_encoder_epoch_200.pt")
    embedding, embedding_d = extract_audio_embedding_chunks(model, "clip.wav")   # (n_chunks, 1152) each

A model loaded from a run folder knows its record (``coala.models.record``): these functions then use
the scaler and vocabulary it was trained with; a bare checkpoint uses the paper's, and says so once.
Unlike the paper's, they raise an error naming the file when it cannot be used (the paper's printed the
exception and returned None), and default paths resolve under the asset root (``coala.assets``).
"""
from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from coala import assets
from coala.core.errors import AudioError
from coala.core.frontend import PATCH_FRAMES, MinMaxScaler, compute_spectrogram, file_chunks
from coala.core.model import default_batch_size, embed, model_device
from coala.data.tags import tag_index
from coala.encode.files import chunk_computer, iter_files
from coala.encode.stream import embed_stream
from coala.models.checkpoints import load_checkpoint
from coala.models.loading import scaler_for, vocabulary_for
from coala.models.record import read_record
from coala.models.registry import network_of

M = TypeVar("M", bound=nn.Module)
ScalerArg = "str | Path | MinMaxScaler | None"
# Where a network loaded by ``return_loaded_model`` came from, so that its record can be found.
SOURCE_ATTRIBUTE = "coala_source"


def return_loaded_model(Model: type[M], checkpoint: str | Path | None = None,
                        device: str | torch.device = "cpu") -> M:
    """Load a checkpoint in the paper's format (legacy or zip) into ``Model``, in eval mode.

    The vocabulary size of tag-sized models is read from the checkpoint; a checkpoint that does not fit
    raises ``CheckpointError`` naming the mismatching keys. Without ``checkpoint``, the paper's
    published one for ``Model`` (``dual_ae_c`` for the encoders, epoch 20 for the CNN).
    """
    model = load_checkpoint(checkpoint, Model, device)
    setattr(model, SOURCE_ATTRIBUTE, assets.locate(checkpoint) if checkpoint is not None else
            assets.default_path(assets.pretrained_checkpoint(network_of(Model).name)))
    return model


def _source_of(model: nn.Module) -> tuple[Path | str, object]:
    """The checkpoint a network was loaded from and its folder's record (None when bare or unknown)."""
    source = getattr(model, SOURCE_ATTRIBUTE, None)
    if source is None:
        return "the model (not loaded by return_loaded_model)", None
    return source, read_record(Path(source).parent)


def model_scaler(model: nn.Module, scaler: ScalerArg = None) -> MinMaxScaler:
    """The scaler for ``model``'s inputs: its record's, or the paper's for a bare checkpoint (``scaler_for``)."""
    source, record = _source_of(model)
    return scaler_for(record, scaler, source)


def extract_audio_embedding_chunks(model: nn.Module, filename: str | Path,
                                   scaler: ScalerArg = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of every non-overlapping 96-frame chunk of a file: ``(embedding, embedding_d)``.

    Both are ``(n_chunks, 1152)`` float32 tensors (for the CNN: ``(z, tag_probabilities)``). Raises
    ``AudioError`` naming the file when it cannot be decoded or holds no audio.
    """
    return embed(model, np.concatenate(list(file_chunks(filename, model_scaler(model, scaler)))))


def extract_audio_embedding(model: nn.Module, filename: str | Path,
                            scaler: ScalerArg = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's single-patch embedding: the file's first 96 frames, ``(1, 1152)`` each."""
    spec = compute_spectrogram(filename)[:, :PATCH_FRAMES]
    return embed(model, model_scaler(model, scaler).transform(spec[None]))


@torch.inference_mode()
def extract_tag_embedding(model: nn.Module, tag: str, id2tag: "str | Path | dict | None" = None) -> torch.Tensor:
    """The paper's tag embedding: ``z`` of the tag encoder for the tag as a one-hot vector, ``(1, 1152)``.

    ``VocabularyError`` when the tag is not in the vocabulary (the model's record's; for a bare
    checkpoint the paper's 1000 tags), or when the vocabulary does not index the model's inputs one to one.
    """
    width = model.dims.n_tags
    source, record = _source_of(model)
    vocabulary = vocabulary_for(record, id2tag, source, width)
    one_hot = np.zeros((1, width), dtype=np.float32)
    one_hot[0, tag_index(vocabulary, tag)] = 1.0
    return embed(model, one_hot)[0]


def encode_files(model: nn.Module, paths: "list[str | Path]", scaler: ScalerArg = None,
                 batch_size: int | None = None, workers: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``extract_audio_embedding_chunks`` for many files at once: one ``(embedding, embedding_d)`` per path.

    The chunks of consecutive files share forward passes of at most ``batch_size`` chunks (default: 16
    on the CPU, 256 on a GPU), on the model's device; ``workers`` DataLoader processes decode and
    compute spectrograms (0: in this process, the fastest on a 2-core CPU). Raises ``AudioError`` for
    the first file that fails.
    """
    paths = [Path(p) for p in paths]
    results = embed_stream(model, iter_files(paths, chunk_computer(model_scaler(model, scaler)), workers),
                           batch_size or default_batch_size(model_device(model)))
    embeddings = []
    for result in results:
        if result.error is not None:
            raise AudioError(paths[result.index], result.error)
        embeddings.append(result.value)
    return embeddings
