"""The training objective and step for the dual autoencoder (AE_c / E_c) and the CNN baseline.

The paper back-propagated its three weighted losses one after the other with ``retain_graph`` and
then stepped two SGD optimizers. Gradients add, so one backward pass of the weighted sum gives the
same update while walking the shared encoders once instead of twice (``paper_step`` keeps the
paper's procedure as the yardstick for tests and the benchmark).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributed.nn import functional as distributed_functional

from coala.audio import PATCH_SHAPE
from losses import contrastive_loss, kullback_leibler
from models_t1000 import CNN, AudioDecoder, AudioEncoder, TagDecoder, TagEncoder

# Gathers a per-process batch into the global batch (None in a single process).
Gather = Callable[[torch.Tensor], torch.Tensor]
DUAL_AE_LOSSES = ("loss", "audio", "tag", "contrastive")
CNN_LOSSES = ("loss",)


class DualOutputs(NamedTuple):
    z_d_audio: torch.Tensor
    x_recon: torch.Tensor
    z_d_tags: torch.Tensor
    tags_recon: torch.Tensor


class DualAE(nn.Module):
    """The four networks of AE_c / E_c under one module, so that DDP and torch.compile see one forward.

    Attribute names are the checkpoint file prefixes (``audio_encoder_epoch_<N>.pt``, ...).
    """

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

    def parts(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in ("audio_encoder", "audio_decoder", "tag_encoder", "tag_decoder")}

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """The paper's two optimizer groups: audio encoder + decoder, tag encoder + decoder."""
        return [list(chain(self.audio_encoder.parameters(), self.audio_decoder.parameters())),
                list(chain(self.tag_encoder.parameters(), self.tag_decoder.parameters()))]


def model_parts(model: nn.Module) -> dict[str, nn.Module]:
    """Checkpoint name -> network. The CNN is saved as ``audio_encoder`` (the paper's file naming)."""
    return model.parts() if isinstance(model, DualAE) else {"audio_encoder": model}


def parameter_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    return model.parameter_groups() if isinstance(model, DualAE) else [list(model.parameters())]


def build_model(kind: str, n_tags: int) -> nn.Module:
    return DualAE(n_tags) if kind == "dual_ae" else CNN(n_tags=n_tags)


def all_gather_with_grad(z: torch.Tensor) -> torch.Tensor:
    """Every process's rows, in rank order, with gradients flowing back to the rows' owners."""
    return torch.cat(distributed_functional.all_gather(z), dim=0)


def _full_precision(t: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 outputs of an autocast forward go to float32 for the losses; float64 stays float64."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


@dataclass(frozen=True)
class Objective:
    """The paper's weighted objective: audio generalized KL, tag BCE, contrastive at temperature t."""

    audio_weight: float
    tag_weight: float
    contrastive_weight: float
    temperature: float

    def dual_ae(self, out: DualOutputs, x: torch.Tensor, tags: torch.Tensor,
                gather: Gather | None = None) -> dict[str, torch.Tensor]:
        """Losses in at least float32 (whatever precision the forward ran in); ``loss`` is the weighted sum.

        With ``gather`` the contrastive loss takes its negatives from the global batch; each process
        then holds the same contrastive value, and DDP's gradient averaging turns the per-process
        sums of its gradient back into the gradient of one process on the whole batch.
        """
        audio = kullback_leibler(_full_precision(out.x_recon), x)
        tag = F.binary_cross_entropy(_full_precision(out.tags_recon), tags)
        z_audio, z_tags = _full_precision(out.z_d_audio), _full_precision(out.z_d_tags)
        if gather is not None:
            z_audio, z_tags = gather(z_audio), gather(z_tags)
        contrastive = contrastive_loss(z_audio, z_tags, self.temperature)
        loss = self.audio_weight * audio + self.tag_weight * tag + self.contrastive_weight * contrastive
        return {"loss": loss, "audio": audio, "tag": tag, "contrastive": contrastive}

    @staticmethod
    def cnn(tag_probabilities: torch.Tensor, tags: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": F.binary_cross_entropy(_full_precision(tag_probabilities), tags)}


def as_patches(data: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    x = data.reshape(-1, 1, *PATCH_SHAPE).to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def forward(model: nn.Module, x: torch.Tensor, tags: torch.Tensor,
            autocast: contextlib.AbstractContextManager | None = None) -> DualOutputs | tuple[torch.Tensor, torch.Tensor]:
    """Either model kind's forward pass, under ``autocast`` when given (bf16)."""
    with autocast or contextlib.nullcontext():
        return model(x, tags) if isinstance(unwrap(model), DualAE) else model(x)


def losses_of(objective: Objective, out: DualOutputs | tuple[torch.Tensor, torch.Tensor], x: torch.Tensor,
              tags: torch.Tensor, gather: Gather | None = None) -> dict[str, torch.Tensor]:
    if isinstance(out, DualOutputs):
        return objective.dual_ae(out, x, tags, gather)
    return objective.cnn(out[1], tags)


def train_step(model: nn.Module, optimizers: Iterable[torch.optim.Optimizer], objective: Objective,
               x: torch.Tensor, tags: torch.Tensor, autocast: contextlib.AbstractContextManager | None = None,
               gather: Gather | None = None) -> dict[str, torch.Tensor]:
    """One optimisation step: one backward pass of the weighted sum, then every optimizer steps."""
    optimizers = list(optimizers)
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    losses = losses_of(objective, forward(model, x, tags, autocast), x, tags, gather)
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
    losses = objective.dual_ae(model(x, tags), x, tags)
    (objective.audio_weight * losses["audio"]).backward(retain_graph=True)
    (objective.tag_weight * losses["tag"]).backward(retain_graph=True)
    if objective.contrastive_weight:
        (objective.contrastive_weight * losses["contrastive"]).backward()
    for optimizer in optimizers:
        optimizer.step()


def unwrap(model: nn.Module) -> nn.Module:
    """The user module inside DDP and/or torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def validation_inputs(data: torch.Tensor, tags: torch.Tensor, device: torch.device,
                      channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation patches can dip below 0 (the scaler was fitted on training data): clamp, as the paper."""
    return as_patches(data, device, channels_last).clamp(min=0), tags.to(device).clamp(min=0)
