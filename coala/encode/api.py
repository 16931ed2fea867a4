"""The paper's notebook functions, with its names and return types, and their batched counterpart.

    from encode import return_loaded_model, extract_audio_embedding_chunks
    from models_t1000 import AudioEncoder
    model = return_loaded_model(AudioEncoder, "saved_models/dual_ae_c/audio_encoder_epoch_200.pt")
    embedding, embedding_d = extract_audio_embedding_chunks(model, "clip.wav")   # (n_chunks, 1152) each

Unlike the paper's, these raise an error naming the file when it cannot be used (the paper's printed
the exception and returned None), and default paths resolve under the asset root (``coala.assets``).
"""
from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from coala import assets
from coala.core.frontend import PATCH_FRAMES, compute_spectrogram
from coala.core.frontend import scaled_chunks
from coala.audio.scaler import MinMaxScaler, load_scaler
from coala.data.tags import load_id2tag, tag_index
from coala.encode.files import chunk_computer, iter_files
from coala.core.model import default_batch_size
from coala.encode.stream import embed_stream
from coala.core.model import embed, model_device
from coala.core.errors import AudioError, VocabularyError
from coala.models.checkpoints import load_checkpoint
from coala.models.registry import AUDIO_NETWORKS, NETWORKS

M = TypeVar("M", bound=nn.Module)
ScalerArg = "str | Path | MinMaxScaler | None"


def return_loaded_model(Model: type[M], checkpoint: str | Path | None = None,
                        device: str | torch.device = "cpu") -> M:
    """Load a checkpoint in the paper's format (legacy or zip) into ``Model``, in eval mode.

    The vocabulary size of tag-sized models is read from the checkpoint; a checkpoint that does not fit
    raises ``CheckpointError`` naming the mismatching keys. Without ``checkpoint``, the paper's
    published one for ``Model`` (``dual_ae_c`` for the encoders, epoch 20 for the CNN).
    """
    return load_checkpoint(checkpoint, Model, device)


def load_audio_model(checkpoint: str | Path, model_type: str = "auto", device: str | torch.device = "cpu") -> nn.Module:
    """The audio encoder or the tag-supervised CNN in a checkpoint (``auto``: told apart by its keys)."""
    return load_checkpoint(checkpoint, AUDIO_NETWORKS if model_type == "auto" else NETWORKS[model_type], device)


def extract_audio_embedding_chunks(model: nn.Module, filename: str | Path,
                                   scaler: ScalerArg = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of every non-overlapping 96-frame chunk of a file: ``(embedding, embedding_d)``.

    Both are ``(n_chunks, 1152)`` float32 tensors (for the CNN: ``(z, tag_probabilities)``). Raises
    ``AudioError`` naming the file when it cannot be decoded or holds no audio.
    """
    return embed(model, scaled_chunks(compute_spectrogram(filename), load_scaler(scaler)))


def extract_audio_embedding(model: nn.Module, filename: str | Path,
                            scaler: ScalerArg = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's single-patch embedding: the file's first 96 frames, ``(1, 1152)`` each."""
    spec = compute_spectrogram(filename)[:, :PATCH_FRAMES]
    return embed(model, load_scaler(scaler).transform(spec[None]))


def check_vocabulary_fits(vocabulary: dict[int, str], width: int, source: object) -> None:
    """``VocabularyError`` unless the vocabulary indexes exactly the tag encoder's ``width`` inputs.

    A vocabulary of another size, or one with an index outside ``0 .. width-1``, would put the one-hot
    at the wrong input, or at the end for -1 (negative indices wrap): a wrong embedding, silently.
    """
    if len(vocabulary) != width:
        raise VocabularyError(f"{source}: a vocabulary of {len(vocabulary)} tags does not fit the model, "
                              f"whose tag encoder takes {width}")
    outside = next((i for i in vocabulary if not 0 <= i < width), None)
    if outside is not None:
        raise VocabularyError(f"{source}: tag index {outside} ({vocabulary[outside]!r}) is outside the "
                              f"model's inputs 0..{width - 1}")


def vocabulary_source(id2tag: "str | Path | dict | None") -> object:
    """What to name in an error about a vocabulary: the file it came from, or the dict given."""
    return "the vocabulary given" if isinstance(id2tag, dict) else (
        assets.locate(id2tag) if id2tag is not None else assets.default_path(assets.ID2TAG))


@torch.inference_mode()
def extract_tag_embedding(model: nn.Module, tag: str, id2tag: "str | Path | dict | None" = None) -> torch.Tensor:
    """The paper's tag embedding: ``z`` of the tag encoder for the tag as a one-hot vector, ``(1, 1152)``.

    ``VocabularyError`` when the tag is not in the vocabulary (default: the paper's 1000 tags), or when
    the vocabulary does not index the model's inputs one to one.
    """
    width = model.tag_encoder[0].in_features
    vocabulary = load_id2tag(id2tag)
    check_vocabulary_fits(vocabulary, width, vocabulary_source(id2tag))
    index = tag_index(vocabulary, tag)
    one_hot = torch.zeros(1, width, device=model_device(model))
    one_hot[0, index] = 1.0
    z, _ = model(one_hot)
    return z.float().cpu()


def encode_files(model: nn.Module, paths: "list[str | Path]", scaler: ScalerArg = None,
                 batch_size: int | None = None, workers: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``extract_audio_embedding_chunks`` for many files at once: one ``(embedding, embedding_d)`` per path.

    The chunks of consecutive files share forward passes of at most ``batch_size`` chunks (default: 16
    on the CPU, 256 on a GPU), on the model's device; ``workers`` DataLoader processes decode and
    compute spectrograms (0: in this process, the fastest on a 2-core CPU). Raises ``AudioError`` for
    the first file that fails.
    """
    paths = [Path(p) for p in paths]
    results = embed_stream(model, iter_files(paths, chunk_computer(load_scaler(scaler)), workers),
                           batch_size or default_batch_size(model_device(model)))
    embeddings = []
    for result in results:
        if result.error is not None:
            raise AudioError(paths[result.index], result.error)
        embeddings.append(result.value)
    return embeddings
