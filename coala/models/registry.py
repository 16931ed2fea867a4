"""Every network a checkpoint can hold, in one table: its class, how its keys look, its vocabulary width.

Adding a network is one entry in ``NETWORKS``; loading (``coala.models.checkpoints``), ``encode.py``'s
``--model-type``, ``fetch_assets.py``'s checks and the default checkpoints all read this table.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn

from coala.core.errors import CheckpointError
from coala.core.model import CNN, AudioDecoder, AudioEncoder, TagDecoder, TagEncoder


@dataclass(frozen=True)
class Network:
    """One checkpointable network.

    ``prefix`` begins every key of its ``state_dict`` (its first ``Sequential``), which is how a
    checkpoint tells what it holds; ``tag_width`` is the key and axis whose size is the vocabulary
    size, for networks sized by it; ``embeds_audio`` marks the networks that turn 96x96 patches into
    embeddings (what ``encode.py`` runs).
    """

    name: str
    model_class: type[nn.Module]
    prefix: str
    tag_width: tuple[str, int] | None = None
    embeds_audio: bool = False

    def build(self, state: dict[str, torch.Tensor] | None = None) -> nn.Module:
        """A fresh instance, sized by the vocabulary ``state`` implies when it takes one."""
        n_tags = vocabulary_size(state) if state is not None else None
        if n_tags is not None and "n_tags" in inspect.signature(self.model_class).parameters:
            return self.model_class(n_tags=n_tags)
        return self.model_class()


NETWORKS: dict[str, Network] = {n.name: n for n in (
    Network("audio_encoder", AudioEncoder, "audio_encoder.", embeds_audio=True),
    Network("cnn", CNN, "encoder.", ("fc.2.weight", 0), embeds_audio=True),
    Network("tag_encoder", TagEncoder, "tag_encoder.", ("tag_encoder.0.weight", 1)),
    Network("audio_decoder", AudioDecoder, "audio_decoder."),
    Network("tag_decoder", TagDecoder, "tag_decoder.", ("tag_decoder.7.weight", 0)),
)}


def vocabulary_size(state: dict[str, torch.Tensor]) -> int | None:
    """The vocabulary size a tag-sized checkpoint was trained with, or None for audio-only networks."""
    for network in NETWORKS.values():
        if network.tag_width is not None and network.tag_width[0] in state:
            return int(state[network.tag_width[0]].shape[network.tag_width[1]])
    return None


def network_of(model_class: type[nn.Module]) -> Network:
    """The table entry of a network class (subclasses included)."""
    for network in NETWORKS.values():
        if issubclass(model_class, network.model_class):
            return network
    raise TypeError(f"{model_class.__name__} is not one of the networks: {', '.join(NETWORKS)}")


def detect(state: dict[str, torch.Tensor], source: object, among: tuple[str, ...] | None = None) -> Network:
    """The network a ``state_dict`` holds, told by its key prefix, among ``among`` (default: all)."""
    names = among or tuple(NETWORKS)
    found = [n for n in names if any(key.startswith(NETWORKS[n].prefix) for key in state)]
    if len(found) != 1:
        modules = ", ".join(sorted({key.split(".")[0] for key in state})[:4]) or "no keys"
        raise CheckpointError(f"{source}: not a checkpoint of {' or '.join(names)} (its modules: {modules})")
    return NETWORKS[found[0]]


# The networks that turn 96x96 patches into embeddings: what encode.py can run.
AUDIO_NETWORKS = tuple(name for name, network in NETWORKS.items() if network.embeds_audio)
