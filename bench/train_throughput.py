"""Training throughput: the paper's step against this project's float32 and bf16 steps.

All three run in one process on the same synthetic batches, interleaved over repetitions (medians),
from the same initial weights (``bench/procedures.py`` builds them, as for ``bench/train_quality.py``):
  paper  stock models, three weighted backward passes with retain_graph, two default SGD optimizers
  ours   fast layers + channels_last, one backward of the weighted sum, fused SGD (the default step)
  bf16   ours under the ``"amp": true`` policy (``precision``: bf16 autocast, losses in float32)
It also prints the FLOPs per sample, a large matmul's GFLOP/s on this machine and the fraction of it
our float32 step reaches, and how close the bf16 step's gradients are to float32 ones. Last lines:
``speedup_vs_paper: X.XX`` (ours float32 / paper), ``bf16_speedup_vs_paper``, ``bf16_grad_cosine`` and
``bf16_grad_rel_l2``.

    python bench/train_throughput.py                  # batch 128, 3 repetitions of 2 steps
    python bench/train_throughput.py --reps 1 --steps 1 --batch-size 32   # quick look
    python bench/train_throughput.py --threads 1      # on a machine shared with other jobs
    python bench/train_throughput.py --agreement-only --batch-size 8      # bf16 gradients only, no timing
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procedures import BF16, OURS, PAPER, procedures  # noqa: E402
from coala.core.frontend import PATCH_SHAPE  # noqa: E402
from coala.core.model import N_TAGS  # noqa: E402
from coala.train.step import DualAE, Objective, forward_losses, precision  # noqa: E402

OBJECTIVE = Objective(5.0, 5.0, 10.0, temperature=0.1)
LEARNING_RATE = 5e-3


def synthetic_batches(n: int, batch_size: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, None]]:
    """Random patches and sparse tags, shaped as the training loader's batches (no sound ids)."""
    generator = torch.Generator().manual_seed(seed)
    return [(torch.rand(batch_size, 1, *PATCH_SHAPE, generator=generator),
             (torch.rand(batch_size, N_TAGS, generator=generator) < 0.01).float(), None) for _ in range(n)]


def matmul_gflops(dtype: torch.dtype, size: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def flops_per_sample(model: DualAE, batch: tuple[torch.Tensor, torch.Tensor, None]) -> float:
    """Forward and one backward of the weighted objective (what our step computes), per sample."""
    x, tags, _ = batch
    with FlopCounterMode(display=False) as counter:
        forward_losses(model, OBJECTIVE, x, tags)[1]["loss"].backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(x)


def gradients(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor],
              policy: contextlib.AbstractContextManager | None = None) -> torch.Tensor:
    """All parameter gradients of the objective on ``(x, tags)``, flattened; dropout masks from seed 1 each time."""
    x, tags = batch
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    forward_losses(model, OBJECTIVE, x, tags, policy)[1]["loss"].backward()
    flat = torch.cat([p.grad.flatten() for p in model.parameters()])
    model.zero_grad(set_to_none=True)
    return flat


def agreement(reference: torch.Tensor, other: torch.Tensor) -> tuple[float, float]:
    """Cosine and relative L2 distance of ``other`` to ``reference``."""
    return (float(torch.nn.functional.cosine_similarity(reference, other, dim=0)),
            float((other - reference).norm() / reference.norm()))


def report_agreement(model: DualAE, batch: tuple[torch.Tensor, torch.Tensor, None]) -> tuple[float, float]:
    """Prints and returns how far the ``"amp": true`` gradients are from float32 ones on ``batch``."""
    x, tags, _ = batch
    batch = (x.contiguous(memory_format=torch.channels_last), tags)
    cosine, rel_l2 = agreement(gradients(model, batch), gradients(model, batch, precision(x.device, amp=True)))
    print(f"bf16 vs float32 gradients on one batch of {len(x)}: cosine {cosine:.5f}, relative L2 {rel_l2:.2%}")
    return cosine, rel_l2


def print_agreement(figures: tuple[float, float]) -> None:
    cosine, rel_l2 = figures
    print(f"bf16_grad_cosine: {cosine:.5f}")
    print(f"bf16_grad_rel_l2: {rel_l2:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=128, help="samples per step (the paper's 128)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions; medians are reported")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per variant per repetition")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 variant")
    parser.add_argument("--agreement-only", action="store_true",
                        help="only the bf16 gradient agreement on one batch of --batch-size (no timing): on a CPU "
                             "without bf16 instructions the timed bf16 steps take many minutes")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for every variant (default: torch's own choice); on a CPU shared with "
                             "other jobs, 1 avoids the stalls of multi-threaded kernels waiting for a busy core")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    procs = procedures(N_TAGS, 0, LEARNING_RATE, torch.device("cpu"), bf16=not (args.no_bf16 or args.agreement_only))
    if args.agreement_only:
        print_agreement(report_agreement(procs[OURS].model, synthetic_batches(1, args.batch_size)[0]))
        return
    batches = synthetic_batches(args.steps, args.batch_size)

    def run(name: str, steps: list[tuple[torch.Tensor, torch.Tensor, None]]) -> float:
        start = time.perf_counter()
        procs[name].train_epoch(steps, OBJECTIVE)
        return len(steps) * args.batch_size / (time.perf_counter() - start)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"{args.reps} repetitions x {args.steps} steps", flush=True)
    for name in procs:  # warm-up: oneDNN primitive creation, allocator
        run(name, batches[:1])
    rates: dict[str, list[float]] = {name: [] for name in procs}
    for rep in range(args.reps):
        for name in procs:
            rates[name].append(run(name, batches))
        print(f"repetition {rep + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()) + " samples/s", flush=True)
    median = {name: statistics.median(values) for name, values in rates.items()}

    flops = flops_per_sample(copy.deepcopy(procs[PAPER].model), synthetic_batches(1, 8, seed=1)[0])
    peak32, peak16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    print(f"FLOPs per sample (forward + backward): {flops / 1e9:.3f} GFLOP")
    print(f"matmul peak: float32 {peak32:.1f} GFLOP/s, bfloat16 {peak16:.1f} GFLOP/s")
    for name, rate in median.items():
        peak = peak16 if name == BF16 else peak32
        print(f"{name:>5}: {rate:7.2f} samples/s  {rate * flops / 1e9:6.1f} GFLOP/s  "
              f"({rate * flops / 1e9 / peak:.0%} of the {'bf16' if name == 'bf16' else 'fp32'} matmul peak)  "
              f"{rate / median['paper']:.2f}x the paper")
    agreement_figures = None if args.no_bf16 else report_agreement(copy.deepcopy(procs[OURS].model), batches[0])
    print(f"speedup_vs_paper: {median[OURS] / median[PAPER]:.2f}")
    if agreement_figures is not None:
        print(f"bf16_speedup_vs_paper: {median[BF16] / median[PAPER]:.2f}")
        print_agreement(agreement_figures)


if __name__ == "__main__":
    main()
