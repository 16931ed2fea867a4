"""Faster drop-in versions of the paper's slow layers, keeping its parameters and ``state_dict``.

Measured on a 2-core CPU (see ../bench/train_throughput.py and the README): stock torch runs the
1->128 input convolution and, above all, the 128->1 output transposed convolution far below the
machine's matmul speed, and spends more time drawing dropout masks than applying them. Each class
here subclasses the stock layer and only overrides ``forward``, so parameters, buffers and
``state_dict`` names are unchanged and checkpoints stay in the paper's format. ``accelerate`` swaps
the class of matching modules in place and moves the model to ``channels_last``.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

# Dropout probabilities that a byte threshold represents exactly (p = k/256; the paper's 0.25 is 64/256).
_BYTE_LEVELS = 256
_INT64_MIN = torch.iinfo(torch.int64).min


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


class UnfoldConv2d(nn.Conv2d):
    """A convolution with few input channels as ``unfold`` + one matmul.

    With one input channel oneDNN gets almost no work per output pixel; as a matmul over
    (pixels, 16 taps) x (16 taps, 128 channels) it runs at the machine's matmul speed. The result is
    laid out channels_last, which is what the following layers want.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        kernel, stride, padding = _pair(self.kernel_size), _pair(self.stride), _pair(self.padding)
        out_h = (height + 2 * padding[0] - kernel[0]) // stride[0] + 1
        out_w = (width + 2 * padding[1] - kernel[1]) // stride[1] + 1
        columns = F.unfold(x, kernel, padding=padding, stride=stride).transpose(1, 2).reshape(n * out_h * out_w, -1)
        weight = self.weight.reshape(self.out_channels, -1).t()
        rows = torch.mm(columns, weight) if self.bias is None else torch.addmm(self.bias, columns, weight)
        return rows.view(n, out_h, out_w, self.out_channels).permute(0, 3, 1, 2)


class FoldConvTranspose2d(nn.ConvTranspose2d):
    """A transposed convolution with few output channels as one matmul + ``fold``.

    A transposed convolution scatters ``weight^T x`` columns back onto the output grid; ``fold`` is
    exactly that scatter-add. Stock torch runs the 128->1 case at a few GFLOP/s.
    """

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        n, _, height, width = x.shape
        kernel, stride, padding = _pair(self.kernel_size), _pair(self.stride), _pair(self.padding)
        out_h = (height - 1) * stride[0] - 2 * padding[0] + kernel[0]
        out_w = (width - 1) * stride[1] - 2 * padding[1] + kernel[1]
        rows = x.permute(0, 2, 3, 1).reshape(n * height * width, self.in_channels)
        columns = torch.mm(rows, self.weight.reshape(self.in_channels, -1))
        columns = columns.view(n, height * width, -1).transpose(1, 2)
        out = F.fold(columns, (out_h, out_w), kernel, padding=padding, stride=stride)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


def _byte_keep_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """Keep mask with P(keep) = 1 - p from 8 random bytes per 64-bit draw, laid out like ``x``."""
    n_words = -(-x.numel() // 8)
    random_bytes = torch.empty(n_words, dtype=torch.int64, device=x.device).random_(_INT64_MIN, None)
    random_bytes = random_bytes.view(torch.uint8)[: x.numel()].as_strided(x.shape, x.stride())
    return random_bytes >= round(p * _BYTE_LEVELS)


class _ScaledMask(torch.autograd.Function):
    """``x * m`` with ``m`` = keep / (1 - p) saved once: one pass forward, one pass backward.

    ``m`` is kept in at least float32 (1/0.75 is not a bf16 number) and the product is rounded once
    into ``x``'s dtype, so bf16 activations get no systematic scale error.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        scale = _byte_keep_mask(x, p).to(torch.promote_types(x.dtype, torch.float32)).mul_(1.0 / (1.0 - p))
        ctx.save_for_backward(scale)
        return torch.mul(x, scale, out=torch.empty_like(x))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (scale,) = ctx.saved_tensors
        return torch.mul(grad, scale, out=torch.empty_like(grad)), None


class ByteMaskDropout(nn.Dropout):
    """Dropout whose keep mask comes from random bytes: same keep probability, cheaper draw.

    Stock dropout draws one float per element (``bernoulli_``); here 64-bit random integers are viewed
    as 8 bytes each and compared with ``p * 256``, which is exact for p = k/256. The mask takes the
    input's memory layout so channels_last activations stay channels_last. Another random stream than
    stock dropout, hence not bit-identical in training mode; identical in eval mode.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return _ScaledMask.apply(x, self.p)


def _dense(module: nn.Module) -> bool:
    return _pair(module.dilation) == (1, 1) and module.groups == 1


def _replacement(module: nn.Module) -> type[nn.Module] | None:
    kind = type(module)
    if kind is nn.Conv2d and module.in_channels == 1 and _dense(module) and module.padding_mode == "zeros":
        return UnfoldConv2d
    if kind is nn.ConvTranspose2d and module.out_channels == 1 and _dense(module) and _pair(module.output_padding) == (0, 0):
        return FoldConvTranspose2d
    if kind is nn.Dropout and not module.inplace and float(module.p * _BYTE_LEVELS).is_integer():
        return ByteMaskDropout
    return None


def accelerate(models: nn.Module | Iterable[nn.Module], channels_last: bool = True) -> None:
    """Swap the slow layers of ``models`` for the classes above (in place) and go channels_last.

    Swapping ``__class__`` keeps every parameter object, so optimizers, ``state_dict`` and loading of
    the paper's checkpoints are unaffected.
    """
    for model in [models] if isinstance(models, nn.Module) else models:
        for module in model.modules():
            replacement = _replacement(module)
            if replacement is not None:
                module.__class__ = replacement
        if channels_last:
            model.to(memory_format=torch.channels_last)


def sgd(params: Iterable[nn.Parameter], lr: float) -> torch.optim.SGD:
    """Plain SGD (no momentum, no weight decay, as the paper), fused into one kernel where supported."""
    params = list(params)
    try:
        return torch.optim.SGD(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.SGD(params, lr=lr, foreach=True)
