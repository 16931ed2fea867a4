"""The inference copy of an audio encoder: BatchNorm folded, dropout gone, the layout and precision that run fastest."""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from coala.core.model import model_device
from coala.models.fast_layers import tuned_for


def _fold_sequential(seq: nn.Sequential) -> nn.Sequential:
    kept: list[nn.Module] = []
    for layer in seq:
        if isinstance(layer, nn.BatchNorm2d) and kept and isinstance(kept[-1], nn.Conv2d):
            kept[-1] = fuse_conv_bn_eval(kept[-1], layer)
        elif isinstance(layer, nn.ReLU):
            kept.append(nn.ReLU(inplace=True))
        elif not isinstance(layer, nn.Dropout):
            kept.append(layer)
    return nn.Sequential(*kept)


class InferenceEncoder(nn.Module):
    """An encoder ready for extraction: BatchNorm folded, dropout gone, channels_last where measured
    faster (the CPU), optionally under bf16 autocast; outputs come back as float32.

    bf16 covers the model only: the front end (decoding, resampling, log-mel, scaling) stays in float.
    On a CPU with bf16 instructions (AVX-512 BF16, AMX) or a GPU the convolutions run about twice as
    fast, with per-chunk cosine to float32 above 0.9999; on a CPU without them bf16 is many times slower.
    """

    def __init__(self, folded: nn.Module, bf16: bool, channels_last: bool) -> None:
        super().__init__()
        self.model = folded.to(memory_format=torch.channels_last) if channels_last else folded
        self.bf16, self.channels_last = bf16, channels_last

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            outputs = self.model(x)
        return tuple(o.float() for o in outputs)


def inference_model(model: nn.Module, bf16: bool = False) -> InferenceEncoder:
    """An eval-only copy with each BatchNorm folded into the convolution before it and dropout removed.

    The encoders' BatchNorm and ReLU passes over the 48x48 activations cost about a fifth of a forward
    on the CPU; folded, outputs move by float32 rounding only (relative 2.5e-7). On the CPU the copy
    also runs channels_last, the layout in which oneDNN's convolutions were measured faster
    (docs/performance.md). The copy is for extraction alone: it has no BatchNorm buffers and another
    ``state_dict``.
    """
    folded = copy.deepcopy(model).eval()
    for name, child in list(folded.named_children()):
        if isinstance(child, nn.Sequential):
            setattr(folded, name, _fold_sequential(child))
    return InferenceEncoder(folded, bf16, channels_last=tuned_for(model_device(model)))
