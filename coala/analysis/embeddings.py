"""The validation set's embeddings, as the paper's analysis scripts took them, and the models that make them.

Each validation patch (the clip's max-energy log-mel window, already scaled, from the HDF5 release
layout) is clamped at 0, as the paper's validation did, and embedded by an audio encoder (or the CNN
baseline): ``z``, the embedding used downstream. A clip's tags enter the tag encoder as its multi-hot
label row, whose ``z`` is the clip's tag embedding. Every forward is ``coala.core.model.embed``.

Models come from ``coala.models.loading.load_model`` (a run folder, a checkpoint in one, or a bare
checkpoint), so the tag encoder comes with its record's vocabulary. The patches were scaled when the
file was made: a file that records its scaler or vocabulary (``create_dataset.py``) and a model whose
record holds others are refused, since the embeddings of patches scaled otherwise than in training are
wrong without any sign of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from coala.core.errors import AnalysisError, UsageError
from coala.core.frontend import MinMaxScaler
from coala.core.model import embed
from coala.data.checks import check_values
from coala.data.hdf5 import InMemoryDataset, read_provenance
from coala.models.loading import AUDIO, TAGS, LoadedModel, load_model


@dataclass(frozen=True)
class ValidationSet:
    """The patches of a validation HDF5 file: ``ids`` (n,), ``patches`` (n, 96, 96) clamped at 0, ``labels``
    (n, n_tags), and the scaler and vocabulary the file records (None where it records none: the paper's
    release)."""

    path: Path
    ids: np.ndarray
    patches: np.ndarray
    labels: np.ndarray
    scaler: MinMaxScaler | None = None
    vocabulary: list[str] | None = None


def read_validation_set(path: Path) -> ValidationSet:
    """The whole file, checked for the release layout and its values as training checks them (``DatasetError``
    naming it otherwise); the patches clamped at 0 in place, as the paper's validation did (no second copy
    of a large set)."""
    check_values(path)
    dataset = InMemoryDataset(path)
    np.maximum(dataset.data, 0.0, out=dataset.data)
    scaler, vocabulary = read_provenance(path)
    return ValidationSet(path, dataset.id.reshape(-1).astype(np.int64), dataset.data, dataset.label, scaler, vocabulary)


def check_made_alike(validation: ValidationSet, model: LoadedModel) -> None:
    """``AnalysisError`` when the file's recorded scaler, vocabulary or tag width is not the model's.

    Only what both sides state is compared: a bare checkpoint states no scaler (the paper's is a guess,
    not a fact about it), and the paper's release states neither.
    """
    record = model.record
    if validation.scaler is not None and record is not None and record.scaler is not None \
            and not validation.scaler.same_as(record.scaler):
        raise AnalysisError(f"{validation.path}: its patches were scaled with another scaler than {model.source} was "
                            "trained with (both record theirs); analyse the model on a file made with its scaler")
    if TAGS not in model.networks:
        return
    width = validation.labels.shape[1]
    if width != len(model.vocabulary):
        raise AnalysisError(f"{validation.path}: labels of {width} tags; the tag encoder of {model.source} takes "
                            f"{len(model.vocabulary)}")
    if validation.vocabulary is not None and validation.vocabulary != [model.vocabulary[i] for i in range(width)]:
        raise AnalysisError(f"{validation.path}: its labels are of another vocabulary than {model.source}'s "
                            "(both record theirs)")


def model_spec(spec: str) -> tuple[str | None, str]:
    """``LABEL=PATH`` split in two; a bare path has no label (None)."""
    label, sep, path = spec.partition("=")
    return (label, path) if sep and label and path else (None, spec)


def load_models(specs: list[str], parts: tuple[str, ...] = (AUDIO,), id2tag: str | Path | None = None,
                device: str | torch.device = "cpu") -> dict[str, LoadedModel]:
    """Every ``[LABEL=]PATH`` loaded before any work, by label (default ``LoadedModel.name``, e.g.
    ``dual_ae_c_200``): ``CheckpointError`` naming a file that holds another network, ``UsageError``
    for a label two models share (their columns would merge)."""
    models: dict[str, LoadedModel] = {}
    for spec in specs:
        label, path = model_spec(spec)
        model = load_model(path, parts, id2tag=id2tag, device=device)
        label = label or model.name
        if label in models:
            raise UsageError(f"--model: two models are labelled {label!r}; name them LABEL=PATH")
        models[label] = model
    return models


def provenance(models: dict[str, LoadedModel], validation: ValidationSet, parts: tuple[str, ...] = (AUDIO,)) -> dict:
    """What an analysis output records of its input: the validation file, and each model's identity by
    label (``LoadedModel.identity``), so that two outputs are compared only when the same models made
    them. Without the scaler: the analysis embeds the file's patches, scaled when the file was made, and
    ``check_made_alike`` compared what both state."""
    return {"dataset": str(validation.path),
            "identities": {label: model.identity(parts, with_scaler=False) for label, model in models.items()}}


def audio_embeddings(model: nn.Module, patches: np.ndarray, output: int = 0) -> np.ndarray:
    """``z`` of each patch (``output`` 1: ``z_d``): ``(n, latent_dim)`` float64."""
    return embed(model, patches)[output].numpy().astype(np.float64)


def tag_embeddings(tag_encoder: nn.Module, multi_hot: np.ndarray, output: int = 0) -> np.ndarray:
    """``z`` of the tag encoder (``output`` 1: ``z_d``) for each row of multi-hot tags (a one-hot row: one tag)."""
    return embed(tag_encoder, np.clip(multi_hot, 0, None))[output].numpy().astype(np.float64)


def per_clip(ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One row per clip, in order of first appearance: a clip with several patches gets their mean."""
    unique, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    sums = np.zeros((len(unique), rows.shape[1]))
    np.add.at(sums, inverse, rows)
    means = sums / np.bincount(inverse)[:, None]
    order = np.argsort(first)
    return unique[order], means[order]
