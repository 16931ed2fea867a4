"""Faster drop-in versions of the paper's slow layers, keeping its parameters and ``state_dict``.

Measured on a 2-core CPU (see bench/train_throughput.py and docs/performance.md): stock torch runs the
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
# Device types these layers were measured faster on; elsewhere the stock layers run until a benchmark
# on that device says otherwise.
MEASURED_FASTER_ON = ("cpu",)


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def _patches(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
             out_hw: tuple[int, int]) -> torch.Tensor:
    """(N, C, out_h, out_w, kh, kw) view of the zero-padded ``x``: every kernel window, without copying.

    ``Tensor.unfold`` views are used instead of ``F.unfold`` (im2col), whose two-thread CPU kernel was
    measured taking up to a second per call when the other core is busy, against milliseconds here.
    """
    padded = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    windows = padded.unfold(2, kernel[0], stride[0]).unfold(3, kernel[1], stride[1])
    return windows[:, :, : out_hw[0], : out_hw[1]]


class _StridedFold(torch.autograd.Function):
    """Scatter-add of kernel windows onto the output grid (``F.fold``), as kh * kw strided adds.

    Input (N, C, h, w, kh, kw); output (N, C, H, W). The backward pass is ``_patches`` of the
    gradient, the exact adjoint.
    """

    @staticmethod
    def forward(ctx, windows: torch.Tensor, out_hw: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int]) -> torch.Tensor:
        n, channels, height, width, kh, kw = windows.shape
        padded_h = max(out_hw[0] + 2 * padding[0], (height - 1) * stride[0] + kh)
        padded_w = max(out_hw[1] + 2 * padding[1], (width - 1) * stride[1] + kw)
        out = windows.new_zeros(n, channels, padded_h, padded_w)
        for i in range(kh):
            for j in range(kw):
                out[:, :, i: i + stride[0] * (height - 1) + 1: stride[0],
                    j: j + stride[1] * (width - 1) + 1: stride[1]] += windows[..., i, j]
        ctx.meta = ((kh, kw), stride, padding, (height, width))
        return out[:, :, padding[0]: padding[0] + out_hw[0], padding[1]: padding[1] + out_hw[1]]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        kernel, stride, padding, in_hw = ctx.meta
        return _patches(grad, kernel, stride, padding, in_hw), None, None, None


class UnfoldConv2d(nn.Conv2d):
    """A convolution with few input channels as a window view + one matmul.

    With one input channel oneDNN gets almost no work per output pixel; as a matmul over
    (pixels, 16 taps) x (16 taps, 128 channels) it runs at the machine's matmul speed. The result is
    laid out channels_last, which is what the following layers want.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        kernel, stride, padding = _pair(self.kernel_size), _pair(self.stride), _pair(self.padding)
        out_h = (height + 2 * padding[0] - kernel[0]) // stride[0] + 1
        out_w = (width + 2 * padding[1] - kernel[1]) // stride[1] + 1
        windows = _patches(x, kernel, stride, padding, (out_h, out_w))  # (N, C, out_h, out_w, kh, kw)
        columns = windows.permute(0, 2, 3, 1, 4, 5).reshape(n * out_h * out_w, -1)
        weight = self.weight.reshape(self.out_channels, -1).t()
        rows = torch.mm(columns, weight) if self.bias is None else torch.addmm(self.bias, columns, weight)
        return rows.view(n, out_h, out_w, self.out_channels).permute(0, 3, 1, 2)


class FoldConvTranspose2d(nn.ConvTranspose2d):
    """A transposed convolution with few output channels as one matmul + a strided scatter-add.

    A transposed convolution scatters ``weight^T x`` windows back onto the output grid; stock torch
    runs the 128->1 case at a few GFLOP/s.
    """

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        n, _, height, width = x.shape
        kernel, stride, padding = _pair(self.kernel_size), _pair(self.stride), _pair(self.padding)
        out_h = (height - 1) * stride[0] - 2 * padding[0] + kernel[0]
        out_w = (width - 1) * stride[1] - 2 * padding[1] + kernel[1]
        rows = x.permute(0, 2, 3, 1).reshape(n * height * width, self.in_channels)
        windows = torch.mm(rows, self.weight.reshape(self.in_channels, -1))
        windows = windows.view(n, height, width, self.out_channels, *kernel).permute(0, 3, 1, 2, 4, 5)
        out = _StridedFold.apply(windows, (out_h, out_w), stride, padding)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


def _byte_keep_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """Keep mask with P(keep) = 1 - p from 8 random bytes per 64-bit draw, laid out like ``x``."""
    n_words = -(-x.numel() // 8)
    random_bytes = torch.empty(n_words, dtype=torch.int64, device=x.device).random_(_INT64_MIN, None)
    random_bytes = random_bytes.view(torch.uint8)[: x.numel()].as_strided(x.shape, x.stride())
    return random_bytes >= round(p * _BYTE_LEVELS)


class _ScaledMask(torch.autograd.Function):
    """``x * keep / (1 - p)`` with the 0/1 ``keep`` mask saved in ``x``'s dtype: two passes each way.

    Multiplying by the exact 0/1 mask and then by the scalar rounds once, like one multiplication by a
    float32 scale mask, so bf16 activations get no systematic scale error; and every operand has the
    input's dtype, which keeps the multiplications on torch's vectorized paths (a bf16 tensor times a
    float32 mask was measured 10x slower than two bf16 passes on a 2-core CPU).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep = _byte_keep_mask(x, p).to(x.dtype)
        ctx.save_for_backward(keep)
        ctx.scale = 1.0 / (1.0 - p)
        return torch.mul(x, keep, out=torch.empty_like(x)).mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (keep,) = ctx.saved_tensors
        return torch.mul(grad, keep.to(grad.dtype), out=torch.empty_like(grad)).mul_(ctx.scale), None


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


def tuned_for(device: torch.device) -> bool:
    """Whether ``accelerate`` was measured to pay off on ``device`` (see ``MEASURED_FASTER_ON``)."""
    return device.type in MEASURED_FASTER_ON
