"""The training run: data, models, the epoch loop, resuming, logging and distributed execution.

One code path serves one process and ``torchrun``: with ``WORLD_SIZE`` > 1 it joins a process group
(NCCL on GPUs, gloo on CPU), shards the shuffled data with a ``DistributedSampler`` and gathers the
contrastive projections of all processes, and only rank 0 writes files. Shuffling is seeded per
epoch and the RNG states are saved with each epoch, so a resumed run draws what an uninterrupted one
would have drawn.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

from coala import assets
from coala.assets import latest_checkpoint_epoch
from coala.audio.scaler import load_scaler
from coala.core.frontend import MinMaxScaler
from coala.atomic import atomic_write_text, remove_stale_temporaries, require_writable_folder
from coala.cli import log_copy, progress_bar
from coala.data.checks import check_values, fingerprint
from coala.data.hdf5 import open_dataset, read_provenance
from coala.data.tags import load_id2tag
from coala.device import AUTO, resolve_amp
from coala.distributed import Runtime, gather, joined, on_main
from coala.core.errors import CheckpointError, ConfigError, DatasetError, DivergenceError, VocabularyError
from coala.models.fast_layers import accelerate, tuned_for
from coala.train import monitor, plots, state as training_state
from coala.train.config import TrainConfig
from coala.core.model import MODEL_KINDS, Objective
from coala.models.record import word_vectors_entry
from coala.train.words import check_resumed_table, run_word_vectors
from coala.train.step import (all_gather_with_grad, as_patches, forward_losses, precision, sgd, train_step,
                              validation_inputs)

METRICS_FILE = "metrics.jsonl"
log = logging.getLogger(__name__)


def model_provenance(cfg: TrainConfig, n_tags: int) -> tuple[MinMaxScaler | None, list[str]]:
    """The scaler and vocabulary the run's record keeps: what the training file says made it (files of
    ``create_dataset.py``), the config's ``id2tag_file`` and ``scaler_file``; where two say, they must agree.

    A vocabulary that does not fit the data is an error, not a warning: the record would otherwise name
    the tags of other data, and every tool would search and tag with them. A run whose data say no
    scaler (the paper's release) and whose config names none is trained with a warning; its tools then
    ask for ``--scaler``.
    """
    file_scaler, file_vocabulary = read_provenance(cfg.train_dataset_file)
    vocabulary = file_vocabulary
    if cfg.id2tag_file and (file_vocabulary is None or assets.locate(cfg.id2tag_file).is_file()):
        try:
            id2tag = load_id2tag(cfg.id2tag_file)
        except VocabularyError as exc:
            raise ConfigError(f"id2tag_file: {exc}") from None
        if sorted(id2tag) != list(range(len(id2tag))):
            raise ConfigError(f"id2tag_file {cfg.id2tag_file}: indices must be 0..{len(id2tag) - 1}")
        vocabulary = [id2tag[i] for i in range(len(id2tag))]
        if file_vocabulary is not None and vocabulary != file_vocabulary:
            raise ConfigError(f"id2tag_file {cfg.id2tag_file}: not the vocabulary {cfg.train_dataset_file} was made "
                              "with (the file records its own); name the vocabulary built with the data")
    if vocabulary is None:
        raise ConfigError(f"id2tag_file {cfg.id2tag_file!r}: not found, and {cfg.train_dataset_file} does not record "
                          "its vocabulary")
    if len(vocabulary) != n_tags:
        raise ConfigError(f"id2tag_file {cfg.id2tag_file}: {len(vocabulary)} tags, but {cfg.train_dataset_file} has "
                          f"{n_tags}: the vocabulary of other data")
    scaler = file_scaler
    if cfg.scaler_file:
        named = load_scaler(cfg.scaler_file)
        if file_scaler is not None and not named.same_as(file_scaler):
            raise ConfigError(f"scaler_file {cfg.scaler_file}: not the scaler {cfg.train_dataset_file} was scaled with "
                              "(the file records its own)")
        scaler = named
    if scaler is None:
        log.warning(f"{cfg.train_dataset_file} does not record its scaler and the config names no scaler_file: the "
                    "run's record will hold none, and its tools will ask for --scaler")
    return scaler, vocabulary


def _reduce_mean(sums: torch.Tensor, count: torch.Tensor, runtime: Runtime) -> list[float]:
    if runtime.distributed:
        dist.all_reduce(sums)
        dist.all_reduce(count)
    return (sums / count).tolist()


# The training patches evaluated each epoch beside the validation set: as many as it has, at most this many.
MAX_TRAIN_SAMPLE = 65536


def _loader(dataset, cfg: TrainConfig, runtime: Runtime, shuffle: bool,
            batch_size: int) -> tuple[DataLoader, DistributedSampler]:
    """Full batches of ``batch_size`` per process (the partial last one dropped), reshuffled each epoch
    when ``shuffle``."""
    sampler = DistributedSampler(dataset, num_replicas=runtime.world_size, rank=runtime.rank, shuffle=shuffle,
                                 seed=cfg.seed, drop_last=True)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True,
                        num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0,
                        pin_memory=runtime.device.type == "cuda")
    return loader, sampler


def _evaluation_loader(dataset, size: int, cfg: TrainConfig, runtime: Runtime, stream: int,
                       batch_size: int) -> DataLoader:
    """``size`` patches of ``dataset`` drawn once (seeded: the same patches in the same batches every
    epoch and on resume), in full batches of ``batch_size`` per process. Shuffled like training batches:
    in file order a batch would hold neighbouring patches of one clip, harder negatives for the
    contrastive loss."""
    generator = torch.Generator().manual_seed(cfg.seed + stream)
    chosen = torch.randperm(len(dataset), generator=generator)[:size].tolist()
    return _loader(Subset(dataset, chosen), cfg, runtime, False, batch_size)[0]


def _gather_rng(runtime: Runtime) -> list[dict[str, torch.Tensor]]:
    return gather(runtime, training_state.rng_state())


def _strict(record: dict[str, float]) -> dict[str, float | None]:
    """A non-finite number as null: ``NaN`` is no JSON token, and strict readers reject the line."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}


def write_metrics(folder: Path, metrics: list[dict[str, float]]) -> None:
    """The whole JSONL file from the metrics of the state to be saved, in strict JSON."""
    atomic_write_text(folder / METRICS_FILE, "".join(json.dumps(_strict(m), allow_nan=False) + "\n" for m in metrics))


def check_output_folders(cfg: TrainConfig) -> None:
    """Every folder a run writes must take a file now, not when the first epoch ends; then the
    temporaries a killed run left there are removed."""
    for key, folder in (("checkpoint_dir", cfg.checkpoint_folder), ("log_dir", cfg.log_folder)):
        require_writable_folder(folder, key, ConfigError)
        remove_stale_temporaries(folder)


def _diverged(cfg: TrainConfig, epoch: int, what: str) -> DivergenceError:
    """The error that stops a diverged run before its epoch is saved: the previous epoch stays the latest."""
    kept = f"{cfg.checkpoint_folder} keeps epoch {epoch - 1}" if epoch > 1 else "nothing was saved"
    return DivergenceError(f"{cfg.experiment_name}: epoch {epoch}: {what} became non-finite; "
                           f"stopped without saving the epoch, {kept}; try a lower learning_rate")


def _weights_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _run_epoch(cfg: TrainConfig, epoch: int, model: nn.Module, run: Callable[[], Any]) -> Any:
    """``run()``, with a failure caused by diverged weights reported as divergence. Non-finite weights make
    the tag BCE refuse its input mid-epoch; DDP averages gradients, so every process sees the same weights."""
    try:
        return run()
    except RuntimeError:
        if _weights_finite(model):
            raise
        raise _diverged(cfg, epoch, "the weights") from None


@dataclass
class _Steps:
    """What a training epoch needs besides its batches; built once per run."""

    step_model: nn.Module
    model: nn.Module
    optimizers: list[torch.optim.Optimizer]
    objective: Objective
    names: tuple[str, ...]
    runtime: Runtime
    autocast: contextlib.AbstractContextManager
    gather: Any
    channels_last: bool
    log_interval: int
    samples_per_step: int
    clock: monitor.Clock
    scalars: monitor.ScalarLog | None  # rank 0 only


def train_epoch(run: _Steps, batches, epoch: int, first_step: int) -> list[float]:
    """One pass over the shuffled training batches; mean losses over all processes' steps.

    Every ``log_interval`` steps (counted over the run, ``first_step`` being the steps before this
    epoch) the interval's mean losses, the learning rate, the gradient norm, the throughput and the time
    left are logged (``monitor``); the losses stay on the device in between, so steps do not wait.
    """
    runtime = run.runtime
    sums = torch.zeros(len(run.names), dtype=torch.float64, device=runtime.device)
    interval = monitor.Interval(len(run.names), runtime.device)
    steps = 0
    for steps, (data, tags, _) in enumerate(batches, 1):
        x = as_patches(data, runtime.device, run.channels_last)
        losses = train_step(run.step_model, run.optimizers, run.objective, x,
                            tags.to(runtime.device, torch.float32, non_blocking=True), run.autocast, run.gather)
        losses = torch.stack([losses[k] for k in run.names]).double()
        sums += losses
        interval.add(losses)
        if (first_step + steps) % run.log_interval == 0:
            _log_interval(run, batches, interval, epoch, steps, first_step + steps)
            interval = monitor.Interval(len(run.names), runtime.device)
    return _reduce_mean(sums, torch.tensor(float(steps * runtime.world_size), dtype=torch.float64,
                                           device=runtime.device), runtime)


@torch.no_grad()
def evaluate(run: _Steps, loader: DataLoader, keep_example: bool) -> tuple[list[float], dict[str, Any]]:
    """The epoch's losses of one split, defined alike for the training sample and the validation set, so
    their curves compare: eval mode (no dropout, BatchNorm's running statistics), inputs clamped at 0
    (``validation_inputs``), full batches per process in a fixed shuffled order with the contrastive
    negatives gathered from all processes, as a training step takes them; the mean over batches. With
    ``keep_example``, also the first batch's outputs for the examples picture (else an empty dict)."""
    model, runtime = run.model, run.runtime
    model.eval()
    sums = torch.zeros(len(run.names), dtype=torch.float64, device=runtime.device)
    batches = 0
    example: dict[str, Any] = {}
    for data, tags, sound_ids in loader:
        x, tags = validation_inputs(data, tags, runtime.device, run.channels_last)
        out, losses = forward_losses(model, run.objective, x, tags, run.autocast, run.gather)
        sums += torch.stack([losses[k] for k in run.names]).double()
        batches += 1
        if keep_example and not example:
            n = plots.N_EXAMPLES
            reconstructions, scores = model.examples(out, n)
            example = {"ids": sound_ids.reshape(-1)[:n].tolist(), "patches": x[:n].float().cpu().numpy(),
                       "reconstructions": None if reconstructions is None else reconstructions.float().cpu().numpy(),
                       "tags": tags[:n].cpu().numpy(), "scores": scores.float().cpu().numpy()}
    model.train()
    return _reduce_mean(sums, torch.tensor(float(batches * runtime.world_size), dtype=torch.float64,
                                           device=runtime.device), runtime), example


def _log_interval(run: _Steps, bar, interval: monitor.Interval, epoch: int, step_in_epoch: int, step: int) -> None:
    means = _reduce_mean(interval.sums, torch.tensor(float(interval.steps * run.runtime.world_size),
                                                     dtype=torch.float64, device=run.runtime.device), run.runtime)
    seconds = interval.seconds()  # after the reduction, which waited for the interval's last step
    run.clock.stepped(interval.steps, seconds)
    if run.scalars is None:
        return
    epoch_left, run_left = run.clock.left(epoch, step_in_epoch)
    values = {**dict(zip(run.names, means)), "learning_rate": run.optimizers[0].param_groups[0]["lr"],
              "grad_norm": monitor.gradient_norm(run.model.parameters()),
              "samples_per_second": interval.steps * run.samples_per_step / seconds,
              "epoch_seconds_left": epoch_left, "run_seconds_left": run_left}
    run.scalars.step(epoch, step, values)
    bar.set_postfix({**{k: f"{v:.4f}" for k, v in zip(run.names, means)}, "run left": monitor.duration(run_left)},
                    refresh=False)


def _log_epoch(cfg: TrainConfig, names: tuple[str, ...], metrics: list[dict[str, float]], example: dict[str, Any],
               vocabulary: dict[int, str], scalars: monitor.ScalarLog) -> None:
    """Metrics file, the epoch's scalars, the examples PNG (the loss curves after the last epoch): all
    written before the state, so every epoch the state holds has its files and a kill redoes the rest."""
    record = metrics[-1]
    epoch = record["epoch"]
    write_metrics(cfg.log_folder, metrics)
    scalars.epoch(record["step"], names, record)
    plots.save_examples(cfg.log_folder / f"examples_epoch_{epoch}.png", example["patches"], example["reconstructions"],
                        example["ids"], example["tags"], example["scores"], vocabulary)
    if epoch == cfg.epochs:
        plots.save_loss_curves(cfg.log_folder / "loss_curves.png", metrics, names)


def train(cfg: TrainConfig) -> None:
    """Run (or resume) the training ``cfg`` describes, to ``cfg.epochs`` epochs; rank 0's console log is
    also appended to the run folder's ``train.log``."""
    with joined(cfg.device) as runtime:
        if not runtime.main:
            _train(cfg, runtime)
            return
        require_writable_folder(cfg.checkpoint_folder, "checkpoint_dir", ConfigError)
        with log_copy(cfg.checkpoint_folder / monitor.LOG_FILE):
            _train(cfg, runtime)


def _check_data(cfg: TrainConfig) -> None:
    """Both files, before any model is built: a bad value would otherwise fail mid-epoch or give NaN losses."""
    for path in (cfg.train_dataset_file, cfg.validation_dataset_file):
        check_values(path)


def _word_vectors(cfg: TrainConfig, model: nn.Module, vocabulary: list[str], runtime: Runtime,
                  start_epoch: int) -> dict[str, Any]:
    """The contextual model's word vectors into its tag encoder (a fresh run) or checked against the weights
    it resumes from; returns what the record says of them (``extra``), on rank 0."""
    table = run_word_vectors(cfg, vocabulary, runtime, resuming=start_epoch > 0)
    if start_epoch:
        check_resumed_table(cfg, model.tag_encoder.words, table)
    else:
        model.tag_encoder.set_words(torch.from_numpy(table))
    return {"word_vectors": word_vectors_entry(cfg.checkpoint_folder)} if runtime.main else {}


def _train(cfg: TrainConfig, runtime: Runtime) -> None:
    on_main(runtime, lambda: check_output_folders(cfg))
    on_main(runtime, lambda: _check_data(cfg))
    data_fingerprint = fingerprint(cfg.train_dataset_file)
    train_set = open_dataset(cfg.train_dataset_file, cfg.in_memory)
    val_set = open_dataset(cfg.validation_dataset_file, cfg.in_memory)
    if val_set.n_tags != train_set.n_tags:
        raise DatasetError(f"{cfg.validation_dataset_file}: {val_set.n_tags} tags, but the training file has {train_set.n_tags}")
    global_batch = cfg.batch_size * runtime.world_size
    if len(train_set) < global_batch:
        raise DatasetError(f"{cfg.train_dataset_file}: {len(train_set)} patches, fewer than one batch of {global_batch}")
    evaluation_batch = min(cfg.batch_size, len(val_set) // runtime.world_size)
    if evaluation_batch < 2:  # the contrastive loss needs a negative
        raise DatasetError(f"{cfg.validation_dataset_file}: {len(val_set)} patches, fewer than 2 per process")
    if evaluation_batch < cfg.batch_size and runtime.main:
        log.warning(f"{cfg.validation_dataset_file}: {len(val_set)} patches, fewer than one batch of {global_batch}: "
                    f"the epoch's training and validation losses use batches of {evaluation_batch} per process, "
                    "whose contrastive term has fewer negatives than the steps'")
    scaler, tags = model_provenance(cfg, train_set.n_tags)
    val_fingerprint = fingerprint(cfg.validation_dataset_file)

    torch.manual_seed(cfg.seed)
    model = MODEL_KINDS[cfg.model](dims=cfg.model_dims(train_set.n_tags))
    tuned = tuned_for(runtime.device)  # the CPU-tuned layers where they were measured faster, stock elsewhere
    if tuned:
        accelerate(model, channels_last=True)
    model.to(runtime.device)
    torch.manual_seed(cfg.seed + 1 + runtime.rank)  # a distinct dropout stream per process
    parts = model.parts()
    optimizers = [sgd(group, cfg.learning_rate) for group in model.parameter_groups()]
    objective = Objective(cfg.audio_loss_weight, cfg.tag_loss_weight, cfg.contrastive_loss_weight, cfg.contrastive_temperature)
    names = model.loss_names

    state = training_state.load_state(cfg.checkpoint_folder, cfg, data_fingerprint)
    start_epoch, metrics = 0, []
    if state is None:
        # Checkpoints without a state (the paper's own runs, or a deleted state file): continue from
        # them rather than overwrite them. Plain SGD has no optimizer state; only the RNG streams differ.
        start_epoch = latest_checkpoint_epoch(cfg.checkpoint_folder, list(parts)) or 0
        if start_epoch:
            try:
                training_state.load_checkpoints(cfg.checkpoint_folder, parts, start_epoch)
            except CheckpointError as exc:
                raise CheckpointError(f"{exc} (no {training_state.STATE_FILE}: continuing from these checkpoints needs "
                                      f"data like theirs; {cfg.train_dataset_file} has {train_set.n_tags} tags)") from None
            if runtime.main:
                log.warning(f"{cfg.checkpoint_folder}: no {training_state.STATE_FILE}; continuing from the "
                            f"epoch-{start_epoch} checkpoints with fresh random streams (earlier metrics unknown)")
    else:
        training_state.restore(cfg.checkpoint_folder / training_state.STATE_FILE, state, parts, optimizers)
        start_epoch, metrics = state["epoch"], state["metrics"]
        if len(state["rng"]) == runtime.world_size:
            training_state.set_rng_state(state["rng"][runtime.rank])
        elif runtime.main:
            log.warning(f"state saved by {len(state['rng'])} processes, resumed by {runtime.world_size}: new random streams")
    bf16 = resolve_amp(cfg.amp, runtime.device)
    if runtime.main:
        log.info(f"{cfg.experiment_name}: {cfg.model}, {len(train_set)} training / {len(val_set)} validation patches, "
                 f"{train_set.n_tags} tags, {runtime.world_size} process(es) on {runtime.device}, "
                 f"{'bf16' if bf16 else 'float32'}" + (f" (amp {AUTO})" if cfg.amp == AUTO else "")
                 + (f", resuming after epoch {start_epoch}" if start_epoch else ""))
    if runtime.main:
        write_metrics(cfg.log_folder, metrics)  # drops an epoch a kill interrupted before its state was saved
    if start_epoch >= cfg.epochs:
        if runtime.main:
            log.info(f"{cfg.experiment_name}: already trained {start_epoch} epochs; nothing to do")
        return
    extra = _word_vectors(cfg, model, tags, runtime, start_epoch) if model.reads_words else {}

    step_model: nn.Module = model
    if runtime.distributed:
        step_model = DistributedDataParallel(model, device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None)
    if cfg.compile:
        step_model = torch.compile(step_model)
    gather = all_gather_with_grad if runtime.distributed else None
    autocast = precision(runtime.device, bf16)
    train_loader, train_sampler = _loader(train_set, cfg, runtime, True, cfg.batch_size)
    evaluations = {"train": _evaluation_loader(train_set, min(len(val_set), MAX_TRAIN_SAMPLE), cfg, runtime, 1,
                                               evaluation_batch),
                   "val": _evaluation_loader(val_set, len(val_set), cfg, runtime, 2, evaluation_batch)}
    steps_per_epoch = len(train_loader)
    first_step = start_epoch * steps_per_epoch
    scalars = monitor.ScalarLog(cfg.checkpoint_folder, names, first_step) if runtime.main else None
    run = _Steps(step_model, model, optimizers, objective, names, runtime, autocast, gather, tuned, cfg.log_interval,
                 global_batch, monitor.Clock(steps_per_epoch, cfg.epochs), scalars)
    try:
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            _epoch(cfg, run, epoch, train_loader, train_sampler, evaluations, metrics, scaler, tags,
                   {"train": data_fingerprint, "validation": val_fingerprint}, extra)
    finally:
        if scalars is not None:
            scalars.close()


def _epoch(cfg: TrainConfig, run: _Steps, epoch: int, train_loader: DataLoader, train_sampler: DistributedSampler,
           evaluations: dict[str, DataLoader], metrics: list[dict[str, float]], scaler: MinMaxScaler | None,
           tags: list[str], data: dict[str, Any], extra: dict[str, Any]) -> None:
    """One epoch: its steps, the evaluation of both splits, then (rank 0) its files and the state."""
    started = time.perf_counter()
    steps_per_epoch = len(train_loader)
    train_sampler.set_epoch(epoch)
    bar = progress_bar(train_loader, run.runtime.main, desc=f"epoch {epoch}/{cfg.epochs}", leave=False)
    step_means = _run_epoch(cfg, epoch, run.model,
                            lambda: train_epoch(run, bar, epoch, (epoch - 1) * steps_per_epoch))
    training_seconds = time.perf_counter() - started
    means, examples = {}, {}
    for split, loader in evaluations.items():
        # Only rank 0 draws the examples picture, of the validation set.
        keep_example = split == "val" and run.runtime.main
        means[split], examples[split] = _run_epoch(cfg, epoch, run.model, lambda: evaluate(run, loader, keep_example))
    seconds = time.perf_counter() - started
    run.clock.evaluation_seconds = seconds - training_seconds
    record = {"epoch": epoch, "step": epoch * steps_per_epoch,
              **{f"{split}_{k}": v for split in ("train", "val") for k, v in zip(run.names, means[split])},
              **{f"step_{k}": v for k, v in zip(run.names, step_means)}, "seconds": round(seconds, 3),
              "samples_per_second": round(steps_per_epoch * run.samples_per_step / training_seconds, 2)}
    bad = [k for k, v in record.items() if k.startswith(("train_", "val_", "step_")) and not math.isfinite(v)]
    if bad:
        raise _diverged(cfg, epoch, ", ".join(bad))
    rng = _gather_rng(run.runtime)
    if not run.runtime.main:
        return
    metrics.append(record)
    if epoch % cfg.save_model_every == 0 or epoch == cfg.epochs:
        training_state.save_checkpoints(cfg.checkpoint_folder, run.model.parts(), epoch)
        training_state.save_model_folder(cfg, run.model.dims, run.model.parts(), epoch, scaler, tags, data, extra)
    _log_epoch(cfg, run.names, metrics, examples["val"], dict(enumerate(tags)), run.scalars)
    # The commit point: a kill before it redoes this epoch, after it the epoch is finished.
    training_state.save_state(cfg.checkpoint_folder, cfg, data["train"], run.model.parts(), run.optimizers, epoch,
                              metrics, rng)
    _, run_left = run.clock.left(epoch, steps_per_epoch)
    log.info(f"epoch {epoch}/{cfg.epochs} " + " ".join(f"{k} {v:.4f}" for k, v in record.items()
                                                       if k not in ("epoch", "step"))
             + (f"; about {monitor.duration(run_left)} left" if epoch < cfg.epochs else ""))
