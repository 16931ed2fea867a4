"""Every tool's one way to a model: a run folder, a checkpoint inside one, or a bare paper checkpoint.

``load_model`` returns the networks a tool needs with the scaler, vocabulary and sizes that belong to
them, taken from the folder's record (``coala.models.record``). A bare checkpoint (no ``config.json``
beside it) gets the paper's scaler and vocabulary and says so once on stderr. ``--scaler``/``--id2tag``
are for bare checkpoints: given with a model whose record holds another scaler or vocabulary, they are
refused, since embeddings scaled otherwise than in training are wrong without any sign of it.

``LoadedModel.identity`` is what outputs record of the model that made them (an embeddings folder, a
search index, an analysis): a fingerprint of the kind, sizes, front end, scaler and weights, and the
epoch; two models' outputs are never mixed, and the paper's figures stand beside the paper's models only.
A contextual model loaded with its tag encoder brings its word vectors (``LoadedModel.word_vectors``,
from the run folder, checked against the record's SHA-256): they encode words that were never tags.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from torch import nn

from coala import assets
from coala.audio.scaler import load_scaler
from coala.core.errors import CheckpointError, UsageError
from coala.core.frontend import MinMaxScaler, frontend_parameters
from coala.core.model import MODEL_KINDS, ModelDims
from coala.data.tags import load_id2tag
from coala.data.words import WordVectors
from coala.models.checkpoints import load_into, read_state_dict
from coala.fetch import PAPER_CHECKPOINT_BLOBS
from coala.files import git_blob_of
from coala.models.record import (PAPER_ROWS, RECORD_FILE, ModelRecord, check_vocabulary_fits, read_record,
                                 read_weights, read_word_vectors, state_sha256)
from coala.models.registry import AUDIO_NETWORKS, NETWORKS, detect

AUDIO = "audio_encoder"
TAGS = "tag_encoder"
log = logging.getLogger(__name__)
_noted: set[str] = set()


@dataclass
class LoadedModel:
    """Networks of one model (``networks[AUDIO]``, ``networks[TAGS]``) and what belongs to them."""

    source: Path
    folder: Path
    record: ModelRecord | None
    kind: str
    epoch: int | None
    networks: dict[str, nn.Module]
    vocabulary: dict[int, str] | None
    part_sha256: dict[str, str]
    paper_row: str | None
    given_scaler: "str | Path | MinMaxScaler | None" = None
    word_vectors: WordVectors | None = None

    @cached_property
    def scaler(self) -> MinMaxScaler:
        """The scaler of the model's inputs (``scaler_for``), resolved when first asked for: a tool that embeds
        only tags never needs one."""
        return scaler_for(self.record, self.given_scaler, self.source)

    @property
    def name(self) -> str:
        """``<folder>_<epoch>``: the paper's embedding folder name without ``embeddings_``; the folder's own
        name even when the path was given relative to it (``audio_encoder_epoch_200.pt`` run inside it)."""
        folder = self.folder.resolve().name
        if self.source.is_file() and assets.checkpoint_epoch(self.source) is None:
            return f"{folder}_{self.source.stem}"
        return f"{folder}_{self.epoch}"

    @property
    def dims(self) -> ModelDims:
        return next(iter(self.networks.values())).dims

    @property
    def audio_encoder(self) -> nn.Module:
        return self.networks[AUDIO]

    @property
    def tag_encoder(self) -> nn.Module:
        return self.networks[TAGS]

    def fingerprint(self, part: str = AUDIO) -> str:
        """What decides ``part``'s outputs for a given input: kind, sizes, front end, weights, and for the
        tag encoder the vocabulary and, for the contextual model, the word vectors (they give words outside
        the vocabulary their vectors). Equal fingerprints give equal outputs for the same input."""
        words = self.vocabulary if part == TAGS else None
        content = {"kind": self.kind, "dims": self.dims.to_dict(), "frontend": frontend_parameters(),
                   "weights": self.part_sha256[part],
                   "vocabulary": None if words is None else [words[i] for i in sorted(words)]}
        if part == TAGS and self.word_vectors is not None:
            content["word_vectors"] = self.record.extra["word_vectors"]["sha256"]
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

    def identity(self, parts: tuple[str, ...] = (AUDIO,), with_scaler: bool = True) -> dict:
        """The model as outputs record it: name, epoch, the paper's row if it is the paper's, for the contextual
        model its word width and heads (which of the follow-up paper's variants it is), the parts' fingerprints
        and, for outputs of audio (``with_scaler``), the scaler's."""
        scaler = {"scaler_sha256": hashlib.sha256(json.dumps(self.scaler.to_dict()).encode()).hexdigest()} \
            if with_scaler and AUDIO in parts else {}
        sizes = {"word_dim": self.dims.word_dim, "attention_heads": self.dims.attention_heads} \
            if self.dims.reads_words else {}
        return {"model": self.name, "source": str(self.source), "epoch": self.epoch, "kind": self.kind,
                "paper_row": self.paper_row, **sizes, **{f"{part}_fingerprint": self.fingerprint(part) for part in parts},
                **scaler}


def note_once(key: str, message: str) -> None:
    """A note on stderr, once per process (a notebook loading the same checkpoint twice hears it once)."""
    if key not in _noted:
        _noted.add(key)
        log.warning(message)


def _paper_row_of(path: Path) -> str | None:
    """The paper's table row of one of its published checkpoints, told by the file's git blob id."""
    blob = git_blob_of(path)
    return next((PAPER_ROWS[experiment] for (experiment, _, _), pinned in PAPER_CHECKPOINT_BLOBS.items()
                 if pinned == blob), None)


def _part_file(folder: Path, part: str, epoch: int) -> Path:
    path = folder / assets.checkpoint_name(part, epoch)
    if not path.is_file():
        raise CheckpointError(f"{path}: not found; the model needs its {part} of epoch {epoch}")
    return path


def _from_record(folder: Path, record: ModelRecord, parts: tuple[str, ...], epoch: int | None,
                 device: torch.device | str) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """``parts`` built from the record's sizes; weights from ``model.safetensors``, or from the paper-named
    checkpoints of ``epoch`` when another epoch than the record's is asked for."""
    missing = [p for p in parts if p not in record.parts]
    if missing:
        raise CheckpointError(f"{folder}: a {record.kind} model has no {', '.join(missing)} "
                              f"(its parts: {', '.join(record.parts)})")
    if epoch is None or epoch == record.epoch:
        states = read_weights(folder, record)
    else:
        states = {p: read_state_dict(_part_file(folder, p, epoch)) for p in parts}
    built = MODEL_KINDS[record.kind](dims=record.dims).parts()
    networks = {}
    for part in parts:
        load_into(built[part], states[part], folder / assets.checkpoint_name(part, epoch or record.epoch or 0))
        networks[part] = built[part].to(device).eval()
    return networks, {p: state_sha256({p: states[p]}) for p in parts}


def _bare(path: Path, parts: tuple[str, ...], epoch: int, among: tuple[str, ...],
          device: torch.device | str) -> tuple[dict[str, nn.Module], dict[str, str], str]:
    """Networks of paper-format checkpoints without a record, sized from the checkpoints themselves."""
    networks, sha, kind = {}, {}, "dual_ae"
    for part in parts:
        file = path if path.is_file() and (part == AUDIO or assets.checkpoint_epoch(path, part) is not None) \
            else _part_file(path if path.is_dir() else path.parent, part, epoch)
        state = read_state_dict(file)
        network = detect(state, file, among if part == AUDIO else (part,))
        if network.name == "cnn":
            kind = "cnn"
        model = network.build(state)
        load_into(model, state, file)
        networks[part] = model.to(device).eval()
        sha[part] = state_sha256({part: state})
    return networks, sha, kind


def scaler_for(record: ModelRecord | None, given: "str | Path | MinMaxScaler | None", source: Path) -> MinMaxScaler:
    if record is None:
        if given is None:
            note_once(f"scaler:{source}", f"{source}: no model record beside it: using the paper's scaler "
                                          f"({assets.default_path(assets.SCALER)}); pass --scaler for another")
        return load_scaler(given)
    if record.scaler is None:
        if given is None:
            raise UsageError(f"{source}: its record holds no scaler (its training files did not say theirs); "
                             "pass --scaler with the scaler the training data were scaled with")
        return load_scaler(given)
    if given is not None and not load_scaler(given).same_as(record.scaler):
        raise UsageError(f"--scaler {given}: not the scaler {source} was trained with (its record holds another); "
                         "leave --scaler out: the model's own is used")
    return record.scaler


def vocabulary_for(record: ModelRecord | None, given: "str | Path | dict | None", source: Path,
                    width: int) -> dict[int, str]:
    if record is not None and record.vocabulary is not None:
        if given is not None and load_id2tag(given) != record.id2tag:
            raise UsageError(f"--id2tag {given if not isinstance(given, dict) else 'given'}: not the vocabulary of "
                             f"{source} (its record holds another of {len(record.vocabulary)} tags); leave --id2tag out")
        return record.id2tag
    if record is None and given is None:
        note_once(f"id2tag:{source}", f"{source}: no model record beside it: using the paper's vocabulary "
                                      f"({assets.default_path(assets.ID2TAG)}); pass --id2tag for another")
    if record is not None and given is None:
        raise UsageError(f"{source}: its record holds no vocabulary; pass --id2tag")
    vocabulary = load_id2tag(given)
    check_vocabulary_fits(vocabulary, width, "the vocabulary given" if isinstance(given, dict) else
                          (assets.locate(given) if given is not None else assets.default_path(assets.ID2TAG)))
    return vocabulary


def load_model(path: str | Path, parts: tuple[str, ...] = (AUDIO,), scaler: "str | Path | MinMaxScaler | None" = None,
               id2tag: "str | Path | dict | None" = None, device: torch.device | str = "cpu",
               model_type: str = "auto", epoch: int | None = None) -> LoadedModel:
    """The model at ``path`` with ``parts`` loaded (eval mode, on ``device``), its scaler when it embeds
    audio and its vocabulary when it embeds tags.

    ``path`` is a run folder (its record's epoch, or ``epoch``), a checkpoint file (inside a run folder:
    the record gives scaler, vocabulary and sizes; the other parts come from the same epoch), or a folder
    of the paper's checkpoints (its latest complete epoch). ``model_type`` picks the audio network of a
    bare checkpoint (``auto``: told by its keys).
    """
    source = assets.locate(path)
    if not source.exists():
        raise CheckpointError(f"{source}: no such model folder or checkpoint")
    folder = source if source.is_dir() else source.parent
    record = read_record(folder)
    if source.is_file():
        epoch = assets.checkpoint_epoch(source)
        if record is not None and epoch is None:
            raise CheckpointError(f"{source}: a checkpoint in a run folder must be named <part>_epoch_<N>.pt")
        named = next((p for p in NETWORKS if assets.checkpoint_epoch(source, p) is not None), None)
        wanted = parts[0]
        if record is not None and named is not None and named != wanted:
            raise CheckpointError(f"{source}: a {named} checkpoint, but an {wanted} is needed here")
    among = AUDIO_NETWORKS if model_type == "auto" else (model_type,)
    if record is not None:
        networks, sha = _from_record(folder, record, parts, epoch, device)
        kind, paper_row = record.kind, record.paper_row
        epoch = record.epoch if epoch is None else epoch
    else:
        if source.is_dir() and epoch is None:
            epoch = assets.latest_checkpoint_epoch(folder, [parts[0]])
            if epoch is None:
                raise CheckpointError(f"{folder}: no {RECORD_FILE} and no {parts[0]}_epoch_N.pt in the model folder")
        networks, sha, kind = _bare(source, parts, epoch or 0, among, device)
        audio_file = source if source.is_file() else folder / assets.checkpoint_name(parts[0], epoch)
        paper_row = _paper_row_of(audio_file) if parts[0] == AUDIO else None
    width = networks[TAGS].dims.n_tags if TAGS in networks else None
    words = read_word_vectors(folder, record) if TAGS in networks and record is not None and record.dims.reads_words \
        else None
    return LoadedModel(
        source=source, folder=folder, record=record, kind=kind, epoch=epoch, networks=networks,
        given_scaler=scaler, vocabulary=vocabulary_for(record, id2tag, source, width) if width is not None else None,
        part_sha256=sha, paper_row=paper_row, word_vectors=words)
