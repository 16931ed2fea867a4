"""The CUDA paths against the CPU (skipped without a CUDA device), and bench/gpu_check.py's table logic (CPU).

No GPU was available when these were written: the CUDA tests have not yet run on one.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from bench import gpu_check
from coala.encode.files import FileResult
from coala.encode.stream import embed_stream
from coala.core.model import N_TAGS, AudioEncoder
from coala.train.step import DualAE, Objective, precision, sgd, train_step

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
OBJECTIVE = Objective(5.0, 5.0, 10.0, temperature=0.1)
CPU = torch.device("cpu")


def _step(model: DualAE, device: torch.device, amp: bool, x: torch.Tensor,
          tags: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:
    """One training step of a copy of ``model`` on ``device``: its losses and the gradients it applied (CPU)."""
    model = copy.deepcopy(model).to(device)
    optimizers = [sgd(group, 5e-3) for group in model.parameter_groups()]
    losses = train_step(model, optimizers, OBJECTIVE, x.to(device), tags.to(device), precision(device, amp))
    return ({name: float(value) for name, value in losses.items()},
            torch.cat([p.grad.flatten() for p in model.parameters()]).cpu())


@needs_cuda
@pytest.mark.parametrize(("amp", "loss_rtol", "min_cosine", "max_rel_l2"),
                         [(False, 1e-4, 0.9999, 5e-3), (True, 1e-2, 0.98, 0.25)], ids=["float32", "bf16"])
def test_training_step_on_cuda_matches_cpu(monkeypatch: pytest.MonkeyPatch, amp: bool, loss_rtol: float,
                                           min_cosine: float, max_rel_l2: float) -> None:
    """float32 on CUDA (TF32 off, so both sides compute in float32) against float32 on the CPU; bf16 on CUDA
    against float32 on the CPU with room around what bf16 gives on the CPU for this very batch (cosine
    0.9930, relative L2 12.6%, losses within 1e-3). Dropout is off: the two devices draw their masks from
    different random streams."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    model = DualAE(N_TAGS).train()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 96, 96, generator=generator)
    tags = (torch.rand(8, N_TAGS, generator=generator) < 0.01).float()
    cpu_losses, cpu_grads = _step(model, CPU, False, x, tags)
    cuda_losses, cuda_grads = _step(model, torch.device("cuda"), amp, x, tags)
    for name, value in cpu_losses.items():
        assert cuda_losses[name] == pytest.approx(value, rel=loss_rtol), name
    assert float(nn.functional.cosine_similarity(cpu_grads, cuda_grads, dim=0)) >= min_cosine
    assert float((cuda_grads - cpu_grads).norm() / cpu_grads.norm()) <= max_rel_l2


def _embeddings(encoder: AudioEncoder, chunks: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Both embeddings of ``chunks`` through encode.py's batched path (BatchNorm folded) on ``device``."""
    (result,) = embed_stream(copy.deepcopy(encoder).to(device), [FileResult(0, chunks)], batch_size=16)
    return result.value


@needs_cuda
def test_extraction_on_cuda_matches_cpu_per_chunk() -> None:
    """With the library defaults encode.py runs under (TF32 convolutions on CUDA)."""
    torch.manual_seed(0)
    encoder = AudioEncoder()
    chunks = np.random.default_rng(0).random((40, 96, 96), dtype=np.float32)
    for cpu, cuda in zip(_embeddings(encoder, chunks, CPU), _embeddings(encoder, chunks, torch.device("cuda"))):
        assert cuda.device == CPU and cuda.shape == cpu.shape == (40, 1152)
        assert nn.functional.cosine_similarity(cpu, cuda, dim=1).min() >= 0.9999


def test_gpu_check_rows_give_ratios_and_epoch_times() -> None:
    fast_bf16 = gpu_check.StepCase("fast", "bf16", True, True)
    rows = [gpu_check.step_row(fast_bf16, 200.0, paper_rate=50.0, patches_per_epoch=120_000),
            gpu_check.extraction_row("float32", 1000.0)]
    assert [(r.what, r.rate, r.vs_paper, r.epoch_minutes) for r in rows] == [
        ("training step", 200.0, 4.0, 10.0), ("extraction", 1000.0, None, None)]
    assert gpu_check.format_table(rows).splitlines()[2:] == [
        "| training step | fast layers, bf16, channels_last on, compile on | 200.0 samples/s | 4.00x | 10.0 min |",
        "| extraction | batched encoder, float32 | 1000.0 chunks/s |  |  |"]


def test_gpu_check_measures_every_setting_once(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """Stock and fast layers x float32 and bf16 x channels_last on/off eager, compiled with channels_last on;
    extraction in both precisions. The measurements are stubbed: this checks the plan and the table."""
    measured: list[gpu_check.StepCase] = []

    def fake_step_rate(case: gpu_check.StepCase, device: torch.device, sizes: gpu_check.Sizes) -> float:
        measured.append(case)
        return 10.0 * len(measured)

    monkeypatch.setattr(gpu_check, "step_rate", fake_step_rate)
    monkeypatch.setattr(gpu_check, "extraction_rate", lambda name, device, sizes: 500.0)
    table = gpu_check.main(["--device", "cpu", "--quick"])
    assert len(measured) == len(set(measured)) == 1 + 8 + 4
    assert measured[0].layers == "paper"
    assert table.splitlines()[2] == "| training step | paper's step, stock layers, float32 | 10.0 samples/s | 1.00x | 283.3 min |"
    assert table.splitlines()[3].endswith("| 20.0 samples/s | 2.00x | 141.7 min |")
    assert {(c.layers, c.precision, c.channels_last) for c in measured if not c.compiled and c.layers != "paper"} == {
        (layers, name, last) for layers in ("stock", "fast") for name in ("float32", "bf16") for last in (False, True)}
    assert all(c.channels_last for c in measured if c.compiled)
    assert table.count("| extraction |") == 2
    assert capsys.readouterr().out.endswith(table + "\n")  # the header line, then the rows as they come


@pytest.mark.slow
def test_gpu_check_quick_run_on_cpu_measures_for_real() -> None:
    """One real quick measurement of each kind: the code paths the GPU run will take, at tiny sizes."""
    sizes = gpu_check.Sizes(batch_size=2, warmup_steps=0, timed_steps=1, chunks=2, extraction_batch=2)
    assert gpu_check.step_rate(gpu_check.StepCase("fast", "float32", True, False), CPU, sizes) > 0
    assert gpu_check.extraction_rate("float32", CPU, sizes) > 0
