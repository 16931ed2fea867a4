"""Each rewritten layer equals the stock layer (forward and gradients, float64) and keeps its state_dict."""
from __future__ import annotations

import copy

import torch
from torch import nn

from coala.models.fast_layers import ByteMaskDropout, FoldConvTranspose2d, UnfoldConv2d, accelerate
from coala.train.step import sgd
from models_t1000 import AudioDecoder, AudioEncoder, CNN


def _compare(stock: nn.Module, fast_class: type[nn.Module], x: torch.Tensor) -> None:
    stock.zero_grad()
    fast = copy.deepcopy(stock)
    fast.__class__ = fast_class
    x_stock = x.clone().requires_grad_()
    x_fast = x.clone().requires_grad_()
    y_stock, y_fast = stock(x_stock), fast(x_fast)
    assert y_fast.shape == y_stock.shape
    torch.testing.assert_close(y_fast, y_stock, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(y_stock)
    (y_stock * upstream).sum().backward()
    (y_fast * upstream).sum().backward()
    torch.testing.assert_close(x_fast.grad, x_stock.grad, rtol=1e-12, atol=1e-12)
    for name, p in stock.named_parameters():
        torch.testing.assert_close(fast.get_parameter(name).grad, p.grad, rtol=1e-12, atol=1e-12)


def test_unfold_conv_equals_stock_conv() -> None:
    torch.manual_seed(0)
    stock = nn.Conv2d(1, 128, 4, stride=2, padding=1).double()
    _compare(stock, UnfoldConv2d, torch.randn(3, 1, 96, 96, dtype=torch.float64))
    no_bias = nn.Conv2d(1, 8, 4, stride=2, padding=1, bias=False).double()
    _compare(no_bias, UnfoldConv2d, torch.randn(2, 1, 10, 14, dtype=torch.float64))


def test_fold_deconv_equals_stock_deconv() -> None:
    torch.manual_seed(1)
    stock = nn.ConvTranspose2d(128, 1, 4, stride=2, padding=1).double()
    _compare(stock, FoldConvTranspose2d, torch.randn(3, 128, 48, 48, dtype=torch.float64))
    channels_last_input = torch.randn(2, 128, 6, 6, dtype=torch.float64).to(memory_format=torch.channels_last)
    _compare(stock, FoldConvTranspose2d, channels_last_input)


def test_byte_mask_dropout_is_dropout_with_the_same_keep_probability() -> None:
    torch.manual_seed(2)
    layer = nn.Dropout(0.25)
    layer.__class__ = ByteMaskDropout
    x = (torch.rand(64, 32, 24, 24, dtype=torch.float64) + 0.5).to(memory_format=torch.channels_last).requires_grad_()
    y = layer(x)
    keep = y != 0
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y[keep], x[keep] / 0.75, rtol=1e-15, atol=0)
    assert abs(keep.double().mean().item() - 0.75) < 0.005  # 1.2M draws: std 4e-4
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, keep.double() / 0.75, rtol=1e-15, atol=0)
    assert not torch.equal(layer(x) != 0, keep)  # a fresh mask per call
    layer.eval()
    assert torch.equal(layer(x), x)


def test_accelerate_keeps_state_dict_and_outputs_in_eval() -> None:
    torch.manual_seed(3)
    for build, inputs in ((AudioEncoder, (4, 1, 96, 96)), (CNN, (4, 1, 96, 96)), (AudioDecoder, (4, 1152))):
        stock = build().double().eval()
        fast = build().double().eval()
        fast.load_state_dict(stock.state_dict())
        accelerate(fast)
        assert list(fast.state_dict()) == list(stock.state_dict())
        assert any(isinstance(m, (UnfoldConv2d, FoldConvTranspose2d)) for m in fast.modules())
        fresh = build()
        fresh.load_state_dict(fast.state_dict(), strict=True)
        x = torch.rand(*inputs, dtype=torch.float64)
        for a, b in zip(torch.utils._pytree.tree_leaves(fast(x)), torch.utils._pytree.tree_leaves(stock(x))):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_sgd_is_plain_sgd() -> None:
    p = nn.Parameter(torch.tensor([1.0, -2.0]))
    p.grad = torch.tensor([0.5, 0.25])
    optimizer = sgd([p], lr=0.1)
    assert optimizer.defaults["momentum"] == 0 and optimizer.defaults["weight_decay"] == 0
    optimizer.step()
    torch.testing.assert_close(p.detach(), torch.tensor([0.95, -2.025]))


def test_byte_mask_dropout_in_bf16_scales_without_bias() -> None:
    torch.manual_seed(4)
    layer = nn.Dropout(0.25)
    layer.__class__ = ByteMaskDropout
    x = torch.full((4096,), 3.0, dtype=torch.bfloat16)
    y = layer(x)
    assert y.dtype == torch.bfloat16
    assert set(y.float().unique().tolist()) == {0.0, 4.0}  # 3 / 0.75 exactly, not 3 * bf16(4/3)
