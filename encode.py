"""Extract COALA embeddings: the paper's notebook functions.

    from encode import return_loaded_model, extract_audio_embedding_chunks
    from models_t1000 import AudioEncoder
    model = return_loaded_model(AudioEncoder, "saved_models/dual_ae_c/audio_encoder_epoch_200.pt")
    embedding, embedding_d = extract_audio_embedding_chunks(model, "clip.wav")   # (n_chunks, 1152) each
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from coala.audio import compute_spectrogram, PATCH_FRAMES
from coala.checkpoints import load_model
from coala.embedding import embed_patches, model_device, scaled_chunks
from coala.scaler import MinMaxScaler, load_scaler

M = TypeVar("M", bound=nn.Module)
DEFAULT_ID2TAG = Path("json/id2token_top_1000.json")
ScalerArg = "str | Path | MinMaxScaler | None"


def return_loaded_model(Model: type[M], checkpoint: str | Path, device: str | torch.device = "cpu") -> M:
    """Load a checkpoint in the paper's format (legacy or zip) into ``Model``, in eval mode.

    The vocabulary size of tag-sized models is read from the checkpoint; a checkpoint that does not fit
    raises ``CheckpointError`` naming the mismatching keys.
    """
    return load_model(Model, checkpoint, device)


def extract_audio_embedding_chunks(model: nn.Module, filename: str | Path,
                                   scaler: ScalerArg = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of every non-overlapping 96-frame chunk of a file: ``(embedding, embedding_d)``.

    Both are ``(n_chunks, 1152)`` float32 tensors (for the CNN: ``(z, tag_probabilities)``). Raises
    ``AudioError`` naming the file when it cannot be decoded or holds no audio.
    """
    return embed_patches(model, scaled_chunks(compute_spectrogram(filename), load_scaler(scaler)))


def extract_audio_embedding(model: nn.Module, filename: str | Path,
                            scaler: ScalerArg = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's single-patch embedding: the file's first 96 frames, ``(1, 1152)`` each."""
    spec = compute_spectrogram(filename)[:, :PATCH_FRAMES]
    return embed_patches(model, load_scaler(scaler).transform(spec[None]))


def load_id2tag(id2tag: "str | Path | dict | None" = None) -> dict[int, str]:
    """The vocabulary as ``{index: tag}`` from a dict or the paper's ``id2token_*.json``."""
    if isinstance(id2tag, dict):
        return {int(k): str(v) for k, v in id2tag.items()}
    path = Path(id2tag) if id2tag is not None else DEFAULT_ID2TAG
    if not path.is_file():
        raise FileNotFoundError(f"{path}: vocabulary file not found (get it with `python fetch_assets.py`)")
    try:
        return {int(k): str(v) for k, v in json.loads(path.read_text()).items()}
    except (json.JSONDecodeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: not an id-to-tag JSON object ({exc})") from None


@torch.inference_mode()
def extract_tag_embedding(model: nn.Module, tag: str,
                          id2tag: "str | Path | dict | None" = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Embed one tag through the tag encoder as a one-hot vector: ``(embedding, embedding_d)``, ``(1, 1152)``."""
    vocabulary = load_id2tag(id2tag)
    index = next((i for i, t in vocabulary.items() if t == tag), None)
    if index is None:
        raise KeyError(f"tag {tag!r} is not in the vocabulary ({len(vocabulary)} tags)")
    n_tags = model.tag_encoder[0].in_features
    one_hot = torch.zeros(1, n_tags, device=model_device(model))
    one_hot[0, index] = 1.0
    z, z_d = model(one_hot)
    return z.float().cpu(), z_d.float().cpu()
