"""What is trained: the model kinds, the paper's objective, and one optimisation step.

The paper back-propagated its three weighted losses one after the other with ``retain_graph`` and
then stepped two SGD optimizers. Gradients add, so one backward pass of the weighted sum gives the
same update while walking the shared encoders once instead of twice (``paper_step`` keeps the
paper's procedure as the yardstick for tests and the benchmark).

Each trainable kind is one class with the same small interface (``forward(x, tags)``, ``losses``,
``parts``, ``parameter_groups``, ``examples``); ``TRAINABLE`` maps the config's ``model`` key to it,
so adding a kind is one class and one entry.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributed.nn import functional as distributed_functional

from coala.audio.frontend import PATCH_SHAPE
from coala.models.losses import contrastive_loss, kullback_leibler
from coala.models.networks import CNN, AudioDecoder, AudioEncoder, TagDecoder, TagEncoder

# Gathers a per-process batch into the global batch (None in a single process).
Gather = Callable[[torch.Tensor], torch.Tensor]
Losses = dict[str, torch.Tensor]


def _full_precision(t: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 outputs of an autocast forward go to float32 for the losses; float64 stays float64."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def precision(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """The forward's precision: with ``amp`` (the config's ``"amp": true``) bf16 autocast, otherwise float32.

    Under autocast the convolutions and linear layers run in bf16 and their bf16 outputs flow through
    BatchNorm (whose kernels accumulate the batch statistics in float32), ReLU and dropout; the losses
    are computed in float32 outside the context (``forward_losses``). Taking every BatchNorm input back
    to float32 was tried and dropped: the gradients stayed as far from float32 ones, and the casts and
    float32 activations made the step much slower (docs/performance.md#bf16). The returned object is
    entered again for every step and validation batch.
    """
    return torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()


@dataclass(frozen=True)
class Objective:
    """The paper's weights and contrastive temperature (``configs/*.json``)."""

    audio_weight: float
    tag_weight: float
    contrastive_weight: float
    temperature: float


class DualOutputs(NamedTuple):
    z_d_audio: torch.Tensor
    x_recon: torch.Tensor
    z_d_tags: torch.Tensor
    tags_recon: torch.Tensor


class DualAE(nn.Module):
    """AE_c / E_c: the four networks under one module, so that DDP and torch.compile see one forward.

    Attribute names are the checkpoint file prefixes (``audio_encoder_epoch_<N>.pt``, ...).
    """

    loss_names = ("loss", "audio", "tag", "contrastive")

    def __init__(self, n_tags: int) -> None:
        super().__init__()
        self.audio_encoder = AudioEncoder()
        self.audio_decoder = AudioDecoder()
        self.tag_encoder = TagEncoder(n_tags=n_tags)
        self.tag_decoder = TagDecoder(n_tags=n_tags)

    def forward(self, x: torch.Tensor, tags: torch.Tensor) -> DualOutputs:
        z_audio, z_d_audio = self.audio_encoder(x)
        z_tags, z_d_tags = self.tag_encoder(tags)
        return DualOutputs(z_d_audio, self.audio_decoder(z_audio), z_d_tags, self.tag_decoder(z_tags))

    @staticmethod
    def losses(objective: Objective, out: DualOutputs, x: torch.Tensor, tags: torch.Tensor,
               gather: Gather | None = None) -> Losses:
        """Audio generalized KL, tag BCE and contrastive loss in at least float32; ``loss`` is the weighted sum.

        With ``gather`` the contrastive loss takes its negatives from the global batch; each process
        then holds the same contrastive value, and DDP's gradient averaging turns the per-process
        sums of its gradient back into the gradient of one process on the whole batch.
        """
        audio = kullback_leibler(_full_precision(out.x_recon), x)
        tag = F.binary_cross_entropy(_full_precision(out.tags_recon), tags)
        z_audio, z_tags = _full_precision(out.z_d_audio), _full_precision(out.z_d_tags)
        if gather is not None:
            z_audio, z_tags = gather(z_audio), gather(z_tags)
        contrastive = contrastive_loss(z_audio, z_tags, objective.temperature)
        loss = objective.audio_weight * audio + objective.tag_weight * tag + objective.contrastive_weight * contrastive
        return {"loss": loss, "audio": audio, "tag": tag, "contrastive": contrastive}

    @staticmethod
    def examples(out: DualOutputs, n: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The first ``n`` reconstructions and tag scores, for the examples picture."""
        return out.x_recon[:n], out.tags_recon[:n]

    def parts(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in ("audio_encoder", "audio_decoder", "tag_encoder", "tag_decoder")}

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """The paper's two optimizer groups: audio encoder + decoder, tag encoder + decoder."""
        return [list(chain(self.audio_encoder.parameters(), self.audio_decoder.parameters())),
                list(chain(self.tag_encoder.parameters(), self.tag_decoder.parameters()))]


class TagSupervisedCNN(nn.Module):
    """The CNN baseline under the same interface; saved as ``audio_encoder`` (the paper's file naming)."""

    loss_names = ("loss",)

    def __init__(self, n_tags: int) -> None:
        super().__init__()
        self.audio_encoder = CNN(n_tags=n_tags)

    def forward(self, x: torch.Tensor, tags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.audio_encoder(x)

    @staticmethod
    def losses(objective: Objective, out: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor, tags: torch.Tensor,
               gather: Gather | None = None) -> Losses:
        """BCE of the predicted tag probabilities (the paper's ``train_cnn.py``)."""
        return {"loss": F.binary_cross_entropy(_full_precision(out[1]), tags)}

    @staticmethod
    def examples(out: tuple[torch.Tensor, torch.Tensor], n: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        return None, out[1][:n]

    def parts(self) -> dict[str, nn.Module]:
        return {"audio_encoder": self.audio_encoder}

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        return [list(self.parameters())]


TRAINABLE: dict[str, type[DualAE] | type[TagSupervisedCNN]] = {"dual_ae": DualAE, "cnn": TagSupervisedCNN}


def sgd(params: Iterable[nn.Parameter], lr: float) -> torch.optim.SGD:
    """Plain SGD (no momentum, no weight decay, as the paper), fused into one kernel where supported."""
    params = list(params)
    try:
        return torch.optim.SGD(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.SGD(params, lr=lr, foreach=True)


def all_gather_with_grad(z: torch.Tensor) -> torch.Tensor:
    """Every process's rows, in rank order, with gradients flowing back to the rows' owners."""
    return torch.cat(distributed_functional.all_gather(z), dim=0)


def unwrap(model: nn.Module) -> nn.Module:
    """The user module inside DDP and/or torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def as_patches(data: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    x = data.reshape(-1, 1, *PATCH_SHAPE).to(device, torch.float32, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def forward_losses(model: nn.Module, objective: Objective, x: torch.Tensor, tags: torch.Tensor,
                   autocast: contextlib.AbstractContextManager | None = None,
                   gather: Gather | None = None) -> tuple[Any, Losses]:
    """A forward pass (under ``autocast`` when given: ``precision``) and the model kind's losses on it."""
    with autocast or contextlib.nullcontext():
        out = model(x, tags)
    return out, unwrap(model).losses(objective, out, x, tags, gather)


def train_step(model: nn.Module, optimizers: Iterable[torch.optim.Optimizer], objective: Objective,
               x: torch.Tensor, tags: torch.Tensor, autocast: contextlib.AbstractContextManager | None = None,
               gather: Gather | None = None) -> Losses:
    """One optimisation step: one backward pass of the weighted sum, then every optimizer steps."""
    optimizers = list(optimizers)
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    _, losses = forward_losses(model, objective, x, tags, autocast, gather)
    losses["loss"].backward()
    for optimizer in optimizers:
        optimizer.step()
    return {name: value.detach() for name, value in losses.items()}


def paper_step(model: DualAE, optimizers: Iterable[torch.optim.Optimizer], objective: Objective,
               x: torch.Tensor, tags: torch.Tensor) -> None:
    """The paper's step: three weighted backward passes with ``retain_graph``, then both optimizers."""
    optimizers = list(optimizers)
    for optimizer in optimizers:
        optimizer.zero_grad()
    losses = model.losses(objective, model(x, tags), x, tags)
    (objective.audio_weight * losses["audio"]).backward(retain_graph=True)
    (objective.tag_weight * losses["tag"]).backward(retain_graph=True)
    if objective.contrastive_weight:
        (objective.contrastive_weight * losses["contrastive"]).backward()
    for optimizer in optimizers:
        optimizer.step()


def validation_inputs(data: torch.Tensor, tags: torch.Tensor, device: torch.device,
                      channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation patches can dip below 0 (the scaler was fitted on training data): clamp, as the paper."""
    return as_patches(data, device, channels_last).clamp(min=0), tags.to(device, torch.float32).clamp(min=0)
