"""Losses: the paper's values, finite values and gradients where the paper's formula overflows, and the
``"amp": true`` precision policy (bf16 autocast over the forward, BatchNorm statistics and losses in float32)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from coala.train.step import DualAE, Objective, forward_losses, precision
from losses import contrastive_loss, kullback_leibler


def paper_contrastive(z_audio: torch.Tensor, z_tag: torch.Tensor, t: float) -> torch.Tensor:
    """The paper's formula written out directly (exp of similarities), for comparison where it is finite."""
    out = torch.cat([z_audio, z_tag])
    n = z_audio.shape[0]
    sim = torch.exp(torch.nn.functional.cosine_similarity(out[:, None], out[None], dim=-1) / t)
    sim = sim * (1 - torch.eye(2 * n, dtype=sim.dtype))
    pos = torch.cat([torch.diag(sim, n), torch.diag(sim, -n)])
    return -torch.log(pos / sim.sum(1) + 1e-5).mean()


def test_values_match_the_papers(reference):
    data = np.load(reference / "expected" / "losses.npz")
    t = {k: torch.from_numpy(data[k]) for k in ("x", "x_hat", "z_audio", "z_tag")}
    assert kullback_leibler(t["x_hat"], t["x"]).item() == pytest.approx(float(data["kl"]), rel=1e-5)
    for temperature in ("1.0", "0.5", "0.1"):
        value = contrastive_loss(t["z_audio"], t["z_tag"], float(temperature)).item()
        assert value == pytest.approx(float(data[f"contrastive_t{temperature}"]), rel=1e-5)


@pytest.mark.parametrize("t", [1.0, 0.3, 0.1])
def test_equals_the_direct_formula(t):
    g = torch.Generator().manual_seed(0)
    z_audio, z_tag = torch.randn(12, 32, generator=g, dtype=torch.float64), torch.randn(12, 32, generator=g,
                                                                                       dtype=torch.float64)
    assert contrastive_loss(z_audio, z_tag, t).item() == pytest.approx(paper_contrastive(z_audio, z_tag, t).item(),
                                                                        rel=1e-10)


@pytest.mark.parametrize("t", [0.1, 0.05, 0.01])
@pytest.mark.parametrize("norm", [1.0, 1e2, 1e4])
def test_finite_values_and_gradients_at_low_temperature(t, norm):
    g = torch.Generator().manual_seed(1)
    z_audio = (torch.randn(16, 1152, generator=g) * norm).requires_grad_()
    z_tag = (torch.randn(16, 1152, generator=g) * norm).requires_grad_()
    loss = contrastive_loss(z_audio, z_tag, t)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(z_audio.grad).all() and torch.isfinite(z_tag.grad).all()
    assert torch.isfinite(paper_contrastive(z_audio.detach(), z_tag.detach(), t)).item() is (1 / t < 88)


def test_aligned_pairs_score_lower_than_shuffled():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(16, 64, generator=g)
    aligned = contrastive_loss(z, z + 0.01 * torch.randn(16, 64, generator=g), 0.1)
    shuffled = contrastive_loss(z, z[torch.randperm(16, generator=g)], 0.1)
    assert aligned < shuffled


def test_kl_is_zero_for_a_perfect_reconstruction_and_positive_otherwise():
    y = torch.rand(4, 1, 96, 96)
    assert kullback_leibler(y, y).item() == pytest.approx(0.0, abs=1e-6)
    assert kullback_leibler(torch.rand(4, 1, 96, 96), y).item() > 0


def _output_dtypes(model: nn.Module, x: torch.Tensor, policy: object) -> dict[str, torch.dtype]:
    """Each layer's output dtype in one forward under the ``precision`` context ``policy``."""
    dtypes: dict[str, torch.dtype] = {}

    def record(layer: nn.Module, args: tuple, out: torch.Tensor) -> None:
        dtypes[type(layer).__name__] = out.dtype

    handles = [layer.register_forward_hook(record) for layer in model]
    with policy:
        model(x)
    for handle in handles:
        handle.remove()
    return dtypes


def test_bf16_policy_runs_the_layers_in_bf16_with_float32_batchnorm_statistics() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 4, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Sigmoid())
    expected = {name: torch.bfloat16 for name in ("Conv2d", "BatchNorm2d", "ReLU", "Flatten", "Linear",
                                                  "BatchNorm1d", "Sigmoid")}
    x = torch.rand(6, 1, 8, 8)
    policy = precision(torch.device("cpu"), amp=True)
    assert _output_dtypes(model, x, policy) == expected
    assert _output_dtypes(model, x, policy) == expected  # the loop enters the same object for every batch
    assert not torch.is_autocast_enabled("cpu")
    assert model(x).dtype == torch.float32
    assert _output_dtypes(model, x, precision(torch.device("cpu"), amp=False)) == dict.fromkeys(expected, torch.float32)

    # The running statistics stay float32 and are the float32 mean of the bf16 convolution outputs: no
    # bf16 accumulation (which would be off by about 1e-2 relative over these 6 * 16 values).
    batchnorm = model[1]
    batchnorm.reset_running_stats()
    with policy:
        conv_out = model[0](x)
        batchnorm(conv_out)
    assert batchnorm.running_mean.dtype == torch.float32
    expected_mean = batchnorm.momentum * conv_out.double().mean(dim=(0, 2, 3))
    assert torch.allclose(batchnorm.running_mean.double(), expected_mean, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_losses_under_the_bf16_policy_are_float32_and_near_the_float32_ones() -> None:
    torch.manual_seed(0)
    model = DualAE(n_tags=20).eval()
    objective = Objective(5.0, 5.0, 10.0, temperature=0.1)
    x, tags = torch.rand(8, 1, 96, 96), (torch.rand(8, 20) < 0.2).float()
    _, fp32 = forward_losses(model, objective, x, tags)
    _, bf16 = forward_losses(model, objective, x, tags, precision(torch.device("cpu"), amp=True))
    for name in model.loss_names:
        assert bf16[name].dtype == torch.float32
        assert bf16[name].item() == pytest.approx(fp32[name].item(), rel=0.02)
