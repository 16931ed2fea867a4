"""The training procedures the benches put side by side, built from one seed with the same initial weights.

  paper  the paper's procedure: the stock networks, three weighted backward passes with retain_graph
         (``paper_step``), two default SGD optimizers, float32, contiguous layout
  ours   this project's default step as ``coala.train.loop`` runs it: one backward of the weighted sum,
         fused SGD, and where ``fast_layers.tuned_for`` the device, the fast layers and channels_last
  bf16   ours under ``"amp": true`` (``precision``: bf16 autocast, losses in float32)

``bench/train_throughput.py`` times their epochs; ``bench/train_quality.py`` trains them and compares
what they learn. Keeping both on one construction is what makes "the same model, the same weights,
another procedure" true of both benches.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coala.distributed import Runtime  # noqa: E402
from coala.models.fast_layers import accelerate, tuned_for  # noqa: E402
from coala.train.state import rng_state, set_rng_state  # noqa: E402
from coala.train.step import (DualAE, Losses, Objective, as_patches, forward_losses, paper_step,  # noqa: E402
                              precision, sgd, train_step, validation_inputs)

PAPER, OURS, BF16 = "paper", "ours", "bf16"
# A batch as the training loader yields it: patches, multi-hot tags, sound ids.
Batch = tuple[torch.Tensor, torch.Tensor, Any]


@dataclass
class Procedure:
    """One way of training a model: its model, optimizers, precision and layout, and one epoch of it."""

    name: str
    model: DualAE
    optimizers: list[torch.optim.Optimizer]
    runtime: Runtime
    bf16: bool = False
    channels_last: bool = False
    rng: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    @contextlib.contextmanager
    def random_stream(self) -> Iterator[None]:
        """Run with this procedure's own random stream (its dropout masks), resumed where it was left: the
        procedures can then take turns epoch by epoch and each draws what it would have drawn alone."""
        if self.rng is not None:
            set_rng_state(self.rng)
        try:
            yield
        finally:
            self.rng = rng_state()

    @property
    def autocast(self) -> contextlib.AbstractContextManager:
        return precision(self.runtime.device, self.bf16)

    def _mean_losses(self, batches: Iterable[Batch], losses_of: Callable[[Batch], Losses]) -> list[float]:
        """The mean of each of ``DualAE.loss_names`` over ``batches``, weighted by their samples."""
        sums = torch.zeros(len(DualAE.loss_names), dtype=torch.float64, device=self.runtime.device)
        count = 0
        for batch in batches:
            losses = losses_of(batch)
            sums += torch.stack([losses[k] for k in DualAE.loss_names]).double() * len(batch[0])
            count += len(batch[0])
        return (sums / max(count, 1)).tolist()

    def train_epoch(self, batches: Iterable[Batch], objective: Objective) -> list[float]:
        """One pass over ``batches`` with this procedure's step; the mean of each loss over its steps."""
        device = self.runtime.device
        if self.name == PAPER:
            def step(batch: Batch) -> Losses:
                return paper_step(self.model, self.optimizers, objective, as_patches(batch[0], device),
                                  batch[1].to(device, torch.float32))
        else:
            def step(batch: Batch) -> Losses:
                return train_step(self.model, self.optimizers, objective,
                                  as_patches(batch[0], device, self.channels_last),
                                  batch[1].to(device, torch.float32), self.autocast)
        return self._mean_losses(batches, step)

    @torch.no_grad()
    def validate(self, batches: Iterable[Batch], objective: Objective) -> list[float]:
        """Sample-weighted mean validation losses in eval mode, inputs clamped at 0 as the paper's validation."""
        def losses_of(batch: Batch) -> Losses:
            x, tags = validation_inputs(batch[0], batch[1], self.runtime.device, self.channels_last)
            return forward_losses(self.model, objective, x, tags, self.autocast)[1]
        self.model.eval()
        try:
            return self._mean_losses(batches, losses_of)
        finally:
            self.model.train()


def procedures(n_tags: int, seed: int, learning_rate: float, device: torch.device,
               bf16: bool = False) -> dict[str, Procedure]:
    """``paper`` and ``ours`` (and ``bf16`` when asked) from ``torch.manual_seed(seed)``, as the training
    loop builds its model: the same initial weights in each, each in training mode on ``device``. Each
    random stream (dropout) starts from ``seed + 1``, the loop's seed for its first process."""
    runtime = Runtime(0, 1, device)
    torch.manual_seed(seed)
    paper = DualAE(n_tags).to(device).train()
    built = {PAPER: Procedure(PAPER, paper, [torch.optim.SGD(g, lr=learning_rate) for g in paper.parameter_groups()],
                              runtime)}
    tuned = tuned_for(device)
    for name in (OURS, BF16) if bf16 else (OURS,):
        model = DualAE(n_tags)
        model.load_state_dict(paper.state_dict())
        if tuned:
            accelerate(model, channels_last=True)
        model.to(device).train()
        built[name] = Procedure(name, model, [sgd(g, learning_rate) for g in model.parameter_groups()], runtime,
                                bf16=name == BF16, channels_last=tuned)
    torch.manual_seed(seed + 1)
    for procedure in built.values():
        procedure.rng = rng_state()
    return built


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    """Whether two models hold equal parameters and buffers under the same names."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
