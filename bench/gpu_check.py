"""One table of GPU figures: the training step in each layer / precision / layout / compile setting,
batched extraction in float32 and bf16, and the projected time of one epoch of the paper's training set.

No GPU figure existed when this was written (the project was developed on 2-core CPUs), so the
choices the code makes on a GPU are unmeasured: ``fast_layers.tuned_for`` keeps the CPU-tuned layers
off CUDA, ``"amp": "auto"`` (``coala.device.bf16_is_fast``) keeps CUDA in float32, ``"compile"`` is
off by default, and extraction runs channels_last only on the CPU. This check measures both sides of each
choice, on random inputs already on the device (what the model costs, not the data loading):

  paper     the paper's step: stock layers, three backward passes with retain_graph, default SGD
  step      our step (one backward of the weighted sum, fused SGD) with stock or fast layers,
            float32 or bf16 (the ``"amp": true`` policy), channels_last on or off,
            torch.compile on or off (compiled with channels_last on only: each compile takes a while)
  extract   the batched encoder (BatchNorm folded, as encode.py runs it) on random 96x96 chunks,
            float32 and bf16, numpy in and out as in encode.py

    bash bench/gpu_check.sh                       # on a CUDA machine, after the Makefile's install
    python bench/gpu_check.py --device cpu --quick --precisions float32 --no-compile   # smoke run
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.train_throughput import LEARNING_RATE, OBJECTIVE, synthetic_batches  # noqa: E402
from coala.core.frontend import PATCH_SHAPE  # noqa: E402
from coala.core.model import GPU_BATCH_SIZE# noqa: E402
from coala.core.model import embed# noqa: E402
from coala.encode.inference import inference_model# noqa: E402
from coala.models.fast_layers import accelerate  # noqa: E402
from coala.core.model import N_TAGS, AudioEncoder  # noqa: E402
from coala.train.step import DualAE, as_patches, paper_step, precision, sgd, train_step  # noqa: E402

# The paper's training set (about 170,000 patches, docs/performance.md) and batch size (configs/*.json).
PAPER_TRAINING_PATCHES = 170_000
PAPER_BATCH_SIZE = 128
PRECISIONS = ("float32", "bf16")
log = logging.getLogger("gpu_check")


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does: ``--quick`` shrinks everything to a smoke run."""

    batch_size: int
    warmup_steps: int
    timed_steps: int
    chunks: int
    extraction_batch: int


FULL = Sizes(batch_size=PAPER_BATCH_SIZE, warmup_steps=3, timed_steps=20, chunks=8192, extraction_batch=GPU_BATCH_SIZE)
QUICK = Sizes(batch_size=2, warmup_steps=1, timed_steps=1, chunks=8, extraction_batch=4)


@dataclass(frozen=True)
class StepCase:
    """One training-step setting; ``layers`` is ``"paper"`` (the paper's step), ``"stock"`` or ``"fast"``."""

    layers: str
    precision: str
    channels_last: bool
    compiled: bool


@dataclass(frozen=True)
class Row:
    what: str
    setting: str
    rate: float
    unit: str
    vs_paper: float | None = None
    epoch_minutes: float | None = None


def step_cases(precisions: Sequence[str], compile_models: bool) -> list[StepCase]:
    """The paper's step first, then every layers x precision x channels_last in eager mode, then compiled ones."""
    cases = [StepCase("paper", "float32", False, False)]
    for compiled in ([False, True] if compile_models else [False]):
        for layers in ("stock", "fast"):
            for name in precisions:
                for channels_last in ([False, True] if not compiled else [True]):
                    cases.append(StepCase(layers, name, channels_last, compiled))
    return cases


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_rate(run: Callable[[], None], device: torch.device, warmup: int, repeats: int, items: int) -> float:
    """``items`` per second over ``repeats`` calls of ``run`` after ``warmup`` untimed ones (compilation, autotuning)."""
    for _ in range(warmup):
        run()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    synchronize(device)
    return repeats * items / (time.perf_counter() - start)


def step_rate(case: StepCase, device: torch.device, sizes: Sizes) -> float:
    """Training samples per second for ``case`` on random patches and tags already on ``device``."""
    if case.compiled:
        torch.compiler.reset()  # each compiled case starts from an empty cache, not the previous case's graphs
    torch.manual_seed(0)
    model = DualAE(N_TAGS).train()
    if case.layers == "fast":
        accelerate(model, channels_last=case.channels_last)
    elif case.channels_last:
        model.to(memory_format=torch.channels_last)
    model.to(device)
    ((patches, tags, _),) = synthetic_batches(1, sizes.batch_size)
    x, tags = as_patches(patches, device, case.channels_last), tags.to(device)
    if case.layers == "paper":
        optimizers = [torch.optim.SGD(group, lr=LEARNING_RATE) for group in model.parameter_groups()]

        def run() -> None:
            paper_step(model, optimizers, OBJECTIVE, x, tags)
    else:
        optimizers = [sgd(group, LEARNING_RATE) for group in model.parameter_groups()]
        step_model = torch.compile(model) if case.compiled else model
        context = precision(device, case.precision == "bf16")

        def run() -> None:
            train_step(step_model, optimizers, OBJECTIVE, x, tags, context)
    return timed_rate(run, device, sizes.warmup_steps, sizes.timed_steps, sizes.batch_size)


def extraction_rate(precision_name: str, device: torch.device, sizes: Sizes) -> float:
    """Chunks per second of the batched encoder as encode.py runs it (``inference_model``: BatchNorm folded,
    the device's layout, ``--bf16``'s autocast; numpy in and out)."""
    torch.manual_seed(0)
    encoder = inference_model(AudioEncoder().to(device), bf16=precision_name == "bf16")
    chunks = np.random.default_rng(0).random((sizes.chunks, *PATCH_SHAPE), dtype=np.float32)
    batches = range(0, sizes.chunks, sizes.extraction_batch)

    def run() -> None:
        for start in batches:
            embed(encoder, chunks[start:start + sizes.extraction_batch])
    return timed_rate(run, device, 1, 1, sizes.chunks)


def describe(case: StepCase) -> str:
    if case.layers == "paper":
        return "paper's step, stock layers, float32"
    return (f"{case.layers} layers, {case.precision}, channels_last {'on' if case.channels_last else 'off'}, "
            f"compile {'on' if case.compiled else 'off'}")


def step_row(case: StepCase, rate: float, paper_rate: float, patches_per_epoch: int = PAPER_TRAINING_PATCHES) -> Row:
    """A training row with its ratio to the paper's step and the projected time of one epoch."""
    return Row("training step", describe(case), rate, "samples/s", rate / paper_rate, patches_per_epoch / rate / 60)


def extraction_row(precision_name: str, rate: float) -> Row:
    return Row("extraction", f"batched encoder, {precision_name}", rate, "chunks/s")


TABLE_HEADER = ("| what | setting | rate | vs the paper's step | one epoch (170k patches) |",
                "| --- | --- | --- | --- | --- |")


def format_row(row: Row) -> str:
    """One markdown table line, ready for docs/performance.md."""
    ratio = "" if row.vs_paper is None else f"{row.vs_paper:.2f}x"
    epoch = "" if row.epoch_minutes is None else f"{row.epoch_minutes:.1f} min"
    return f"| {row.what} | {row.setting} | {row.rate:.1f} {row.unit} | {ratio} | {epoch} |"


def format_table(rows: Sequence[Row]) -> str:
    return "\n".join([*TABLE_HEADER, *map(format_row, rows)])


def header(device: torch.device, sizes: Sizes) -> str:
    if device.type == "cuda":
        name = (f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}, TF32 matmul "
                f"{torch.backends.cuda.matmul.allow_tf32}, TF32 cuDNN {torch.backends.cudnn.allow_tf32}")
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
    return (f"torch {torch.__version__} on {name}; training batch {sizes.batch_size}, {sizes.timed_steps} timed steps "
            f"after {sizes.warmup_steps}; extraction {sizes.chunks} chunks in batches of {sizes.extraction_batch}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="torch device (default cuda)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of the whole check")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> str:
    """Measures everything and returns the table; rows are printed as they are measured, so a run stopped
    by the time limit still shows what it got. The paper's step comes first: the ratios need it."""
    args = parse_args(argv)
    device = torch.device(args.device)
    sizes = QUICK if args.quick else FULL
    print(header(device, sizes), *TABLE_HEADER, sep="\n", flush=True)
    rows: list[Row] = []
    paper_rate = None
    for case in step_cases(args.precisions, compile_models=not args.no_compile):
        log.info("training step: %s", describe(case))
        rate = step_rate(case, device, sizes)
        paper_rate = paper_rate or rate
        rows.append(step_row(case, rate, paper_rate))
        print(format_row(rows[-1]), flush=True)
    for name in args.precisions:
        log.info("extraction: %s", name)
        rows.append(extraction_row(name, extraction_rate(name, device, sizes)))
        print(format_row(rows[-1]), flush=True)
    return format_table(rows)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    main()
