"""One optimisation step of a model kind of ``coala.core.model``, and the paper's step beside it.

The paper back-propagated its three weighted losses one after the other with ``retain_graph`` and
then stepped two SGD optimizers. Gradients add, so one backward pass of the weighted sum gives the
same update while walking the shared encoders once instead of twice (``paper_step`` keeps the
paper's procedure as the yardstick for tests and the benchmark).

Each trainable kind (``coala.core.model.MODEL_KINDS``) has the same small interface (``forward(x, tags)``,
``losses``, ``parts``, ``parameter_groups``, ``examples``), which is all this step needs.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.distributed.nn import functional as distributed_functional

from coala.core.frontend import PATCH_SHAPE, clamp_held_out
from coala.core.model import DualAE, Losses, Objective

# Gathers a per-process batch into the global batch (None in a single process).
Gather = Callable[[torch.Tensor], torch.Tensor]


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
               x: torch.Tensor, tags: torch.Tensor) -> Losses:
    """The paper's step: three weighted backward passes with ``retain_graph``, then both optimizers; returns
    the step's losses, detached, as ``train_step`` does (the paper's loop discarded them)."""
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
    return {name: value.detach() for name, value in losses.items()}


def validation_inputs(data: torch.Tensor, tags: torch.Tensor, device: torch.device,
                      channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation patches and tags, clamped at 0 as the paper's validation did (``clamp_held_out``)."""
    return clamp_held_out(as_patches(data, device, channels_last)), clamp_held_out(tags.to(device, torch.float32))
