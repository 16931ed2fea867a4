"""A model folder that describes itself: ``config.json`` (the record) beside ``model.safetensors``.

A training run's folder (``saved_models/<experiment>/``) keeps the paper's per-epoch checkpoints, and
beside them one record of what made the model and what it needs to be used: its kind, its sizes
(``coala.core.model.ModelDims``), the front end's parameters, the scaler's statistics, the vocabulary,
the training config and the fingerprints of its training files, the epoch, the library versions, and
the SHA-256 of the weights; the weights of that epoch as safetensors (``<part>.<key>`` names). Nothing
in it needs unpickling. The layout is the Hugging Face convention, so a folder can be shared on a model
hub as it is. Every tool reads a model through ``coala.models.loading``, which reads this record.
docs/model-folder.md describes each field.
"""
from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coala.atomic import atomic_paths, finish_interrupted_commit
from coala.core.errors import CheckpointError, VocabularyError
from coala.core.frontend import MinMaxScaler, frontend_parameters
from coala.core.model import MODEL_KINDS, ModelDims
from coala.data.words import WordVectors
from coala.files import sha256_of
from coala.jsonfile import read_json

RECORD_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# The contextual model's word vectors with their n-grams (coala.data.words): written once when its run
# starts, named with their SHA-256 in the record's ``extra``.
WORD_VECTORS_FILE = "word_vectors.safetensors"
# Lists the two renames while they happen: a kill between them is completed by the next reader or writer.
COMMIT_JOURNAL = ".model-folder-commit.json"
FORMAT = "coala-model"
FORMAT_VERSION = 1
# The paper's experiments, as the rows of its table.
PAPER_ROWS = {"dual_ae_c": "AE_c", "dual_e_c": "E_c", "cnn": "CNN"}

State = dict[str, torch.Tensor]


def state_sha256(parts: dict[str, State]) -> str:
    """One SHA-256 over every tensor's name, dtype, shape and bytes: the weights' identity, whatever
    file format (legacy, zip or safetensors) they were read from."""
    digest = hashlib.sha256()
    for part in sorted(parts):
        for key in sorted(parts[part]):
            tensor = parts[part][key].detach().cpu().contiguous().reshape(-1)
            digest.update(f"{part}.{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    import coala
    return {"coala": coala.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


@dataclass
class ModelRecord:
    """What ``config.json`` holds (docs/model-folder.md). ``scaler`` and ``vocabulary`` are None only
    for a model trained on files that did not say theirs: the tools then ask for ``--scaler``/``--id2tag``."""

    kind: str
    dims: ModelDims
    parts: list[str]
    epoch: int | None
    scaler: MinMaxScaler | None
    vocabulary: list[str] | None
    weights_sha256: str | None = None
    origin: str = "trained"
    paper_row: str | None = None
    training: dict[str, Any] | None = None
    frontend: dict[str, Any] = field(default_factory=frontend_parameters)
    versions: dict[str, str] = field(default_factory=library_versions)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "model_type": f"coala-{self.kind}",
            "kind": self.kind, "origin": self.origin, "paper_row": self.paper_row, "epoch": self.epoch,
            "parts": list(self.parts), "dims": self.dims.to_dict(), "frontend": self.frontend,
            "scaler": None if self.scaler is None else self.scaler.to_dict(), "vocabulary": self.vocabulary,
            "weights": {"file": WEIGHTS_FILE, "sha256": self.weights_sha256}, "training": self.training,
            "versions": self.versions, **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_json(cls, data: Any, source: Path) -> "ModelRecord":
        """A record read back, checked field by field: one ``CheckpointError`` naming the file and field."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CheckpointError(f"{source}: not a model record of this project (no \"format\": \"{FORMAT}\")")
        if data.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{source}: record format_version {data.get('format_version')!r}; this version "
                                  f"reads {FORMAT_VERSION}")
        kind = data.get("kind")
        if kind not in MODEL_KINDS:
            raise CheckpointError(f"{source}: kind {kind!r} is not one of {', '.join(MODEL_KINDS)}")
        if data.get("frontend") != frontend_parameters():
            raise CheckpointError(f"{source}: made with another front end ({data.get('frontend')!r}); this code "
                                  f"computes {frontend_parameters()}")
        vocabulary = data.get("vocabulary")
        if vocabulary is not None and not (isinstance(vocabulary, list) and all(isinstance(t, str) for t in vocabulary)):
            raise CheckpointError(f"{source}: vocabulary must be a list of tags")
        dims = ModelDims.from_dict(data.get("dims"), source)
        if dims.reads_words != MODEL_KINDS[kind].reads_words:
            raise CheckpointError(f"{source}: dims.word_dim and dims.attention_heads size the contextual model's tag "
                                  f"encoder; a {kind} record {'needs' if MODEL_KINDS[kind].reads_words else 'has no'} them")
        if vocabulary is not None and len(vocabulary) != dims.n_tags:
            raise CheckpointError(f"{source}: {len(vocabulary)} tags in the vocabulary, but dims.n_tags is {dims.n_tags}")
        epoch, parts, weights = data.get("epoch"), data.get("parts"), data.get("weights")
        if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
            raise CheckpointError(f"{source}: epoch must be a whole number >= 0, got {epoch!r}")
        if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
            raise CheckpointError(f"{source}: parts must be a list of network names")
        if not isinstance(weights, dict):
            raise CheckpointError(f"{source}: weights must be an object with the weights' sha256")
        scaler = data.get("scaler")
        return cls(kind=kind, dims=dims, parts=parts, epoch=epoch,
                   scaler=None if scaler is None else MinMaxScaler.from_dict(scaler, f"{source} (scaler)"),
                   vocabulary=vocabulary, weights_sha256=weights.get("sha256"), origin=str(data.get("origin")),
                   paper_row=data.get("paper_row"), training=data.get("training"), frontend=data["frontend"],
                   versions=data.get("versions") or {}, extra=data.get("extra") or {})

    @property
    def id2tag(self) -> dict[int, str] | None:
        return None if self.vocabulary is None else dict(enumerate(self.vocabulary))


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


def write_model_folder(folder: Path, record: ModelRecord, parts: dict[str, State]) -> None:
    """``config.json`` and ``model.safetensors`` for ``parts``, replaced together atomically: a reader
    sees the old pair or the new pair, never a record of other weights."""
    from safetensors.torch import save_file

    flat = {f"{part}.{key}": tensor.detach().cpu().contiguous() for part, state in parts.items()
            for key, tensor in state.items()}
    record.weights_sha256 = state_sha256(parts)
    record.parts = list(parts)
    folder.mkdir(parents=True, exist_ok=True)
    finish_interrupted_commit(folder / COMMIT_JOURNAL)
    with atomic_paths([folder / WEIGHTS_FILE, folder / RECORD_FILE], folder / COMMIT_JOURNAL) as (weights_tmp, record_tmp):
        save_file(flat, str(weights_tmp), metadata={"format": FORMAT, "record": RECORD_FILE})
        record_tmp.write_text(json.dumps(record.to_json(), indent=1) + "\n", encoding="utf-8")


def read_record(folder: Path) -> ModelRecord | None:
    """The folder's record, or None when it has no ``config.json``; a damaged one is a ``CheckpointError``."""
    path = folder / RECORD_FILE
    finish_interrupted_commit(folder / COMMIT_JOURNAL)
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable model record ({exc})") from None
    return ModelRecord.from_json(data, path)


def read_weights(folder: Path, record: ModelRecord) -> dict[str, State]:
    """The record's weights per part, checked against the record's SHA-256 (a folder whose two files
    came from different runs, or a damaged file, is refused by name)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: not found; the record {folder / RECORD_FILE} describes weights kept there")
    try:
        flat = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from None
    parts: dict[str, State] = {part: {} for part in record.parts}
    for name, tensor in flat.items():
        part, _, key = name.partition(".")
        if part not in parts:
            raise CheckpointError(f"{path}: tensor {name} belongs to no part of the record ({', '.join(record.parts)})")
        parts[part][key] = tensor
    if state_sha256(parts) != record.weights_sha256:
        raise CheckpointError(f"{path}: the weights are not the ones {folder / RECORD_FILE} records (sha256 differs)")
    return parts


def word_vectors_entry(folder: Path) -> dict[str, str]:
    """What a contextual model's record says of its word vectors (``extra["word_vectors"]``): the file and
    its SHA-256, which ``read_word_vectors`` checks and the tag encoder's fingerprint includes."""
    return {"file": WORD_VECTORS_FILE, "sha256": sha256_of(folder / WORD_VECTORS_FILE)}


def read_word_vectors(folder: Path, record: ModelRecord) -> WordVectors:
    """The word vectors a contextual model's record names, checked against its SHA-256: another run's file
    would give unseen words other vectors without any sign."""
    entry = record.extra.get("word_vectors")
    if not isinstance(entry, dict) or entry.get("file") != WORD_VECTORS_FILE:
        raise CheckpointError(f"{folder / RECORD_FILE}: a {record.kind} record must name its word vectors "
                              f"(extra.word_vectors.file {WORD_VECTORS_FILE!r})")
    path = folder / WORD_VECTORS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: not found; the record {folder / RECORD_FILE} describes word vectors kept there")
    if sha256_of(path) != entry.get("sha256"):
        raise CheckpointError(f"{path}: not the word vectors {folder / RECORD_FILE} records (sha256 differs)")
    return WordVectors.load(path)
