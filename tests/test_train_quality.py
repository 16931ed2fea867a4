"""bench/train_quality.py's machinery: the same batches, weights and random streams for every procedure,
the procedures computing the same update, and a whole run on tiny data ending in its quality_delta line."""
from __future__ import annotations

import copy
from dataclasses import replace as dataclasses_replace
import json
import math
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from bench import train_quality
from bench.procedures import BF16, OURS, PAPER, procedures, same_weights
from coala.audio.scaler import MinMaxScaler, save_scaler
from coala.core.errors import DatasetError
from coala.data.hdf5 import open_dataset, write_provenance
from coala.demo.downstream import write_nsynth
from coala.distributed import Runtime
from coala.train.config import parse_config
from coala.train.loop import _loader
from coala.train.step import Objective
from tiny_release import paper_config, write_config, write_release_file

CPU = torch.device("cpu")
N_TAGS = 8
OBJECTIVE = Objective(5.0, 5.0, 10.0, temperature=0.1)


def _batches(n: int, size: int) -> list[tuple[torch.Tensor, torch.Tensor, None]]:
    generator = torch.Generator().manual_seed(3)
    return [(torch.rand(size, 96, 96, generator=generator),
             (torch.rand(size, N_TAGS, generator=generator) < 0.3).to(torch.int16), None) for _ in range(n)]


def _without_dropout(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


def test_epoch_batches_are_the_training_loops_own(tmp_path: Path) -> None:
    path = write_release_file(tmp_path / "train", 22, N_TAGS)
    dataset = open_dataset(path, in_memory=True)
    cfg = parse_config(paper_config(tmp_path, "x", batch_size=4, seed=7))
    loop_loader, sampler = _loader(dataset, cfg, Runtime(0, 1, CPU), shuffle=True, batch_size=cfg.batch_size)
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        ours = train_quality.epoch_batches(dataset, 4, seed=7, epoch=epoch)
        theirs = list(loop_loader)
        assert len(ours) == len(theirs) == 5  # 22 patches: the partial sixth batch dropped
        for (a, b, c), (x, y, z) in zip(ours, theirs):
            assert torch.equal(a, x) and torch.equal(b, y) and torch.equal(c, z)
    assert not torch.equal(train_quality.epoch_batches(dataset, 4, 7, 1)[0][2],
                           train_quality.epoch_batches(dataset, 4, 7, 2)[0][2])  # reshuffled each epoch


def test_procedures_start_equal_and_compute_the_same_update() -> None:
    """Same seed, same weights; without dropout one step of each computes the same losses and moves every
    weight by the same update, up to float32 rounding (channels_last BatchNorm on the CPU rounds more
    coarsely than the contiguous kernel: about 1% of an update after one step, where a missing or
    misweighted loss term changes it entirely)."""
    procs = procedures(N_TAGS, seed=5, learning_rate=5e-3, device=CPU)
    assert list(procs) == [PAPER, OURS]
    assert same_weights(procs[PAPER].model, procs[OURS].model)
    assert procs[OURS].channels_last and not procs[PAPER].channels_last
    initial = copy.deepcopy(procs[PAPER].model.state_dict())
    assert same_weights(procs[PAPER].model, procedures(N_TAGS, seed=5, learning_rate=5e-3, device=CPU)[PAPER].model)
    assert not same_weights(procedures(N_TAGS, seed=6, learning_rate=5e-3, device=CPU)[PAPER].model,
                            procs[PAPER].model)
    batches = _batches(1, 8)
    losses = {}
    for name, procedure in procs.items():
        _without_dropout(procedure.model)
        losses[name] = procedure.train_epoch(batches, OBJECTIVE)
    np.testing.assert_allclose(losses[OURS], losses[PAPER], rtol=1e-5)
    assert losses[PAPER][0] > 0
    paper, ours = procs[PAPER].model.state_dict(), procs[OURS].model.state_dict()
    for key, value in paper.items():
        if key.endswith("weight"):
            update = value - initial[key]
            assert update.norm() > 0, key
            assert (ours[key] - value).norm() < 0.05 * update.norm(), key


def test_each_procedure_draws_its_own_dropout_stream_whatever_runs_between() -> None:
    """Epochs taken in turn give each procedure what it would have drawn alone."""
    batches = _batches(1, 4)
    alone = procedures(N_TAGS, seed=1, learning_rate=5e-3, device=CPU)[OURS]
    with alone.random_stream():
        alone.train_epoch(batches, OBJECTIVE)
    procs = procedures(N_TAGS, seed=1, learning_rate=5e-3, device=CPU)
    with procs[PAPER].random_stream():
        procs[PAPER].train_epoch(batches, OBJECTIVE)
    torch.manual_seed(1234)  # whatever else draws in between does not matter either
    with procs[OURS].random_stream():
        procs[OURS].train_epoch(batches, OBJECTIVE)
    assert same_weights(alone.model, procs[OURS].model)
    stale = copy.deepcopy(procs[OURS])
    stale.rng = None  # no stream of its own: whatever the global one holds
    torch.manual_seed(99)
    with stale.random_stream():
        stale.train_epoch(batches, OBJECTIVE)
    with procs[OURS].random_stream():
        procs[OURS].train_epoch(batches, OBJECTIVE)
    assert not same_weights(stale.model, procs[OURS].model)


def test_the_bf16_procedure_trains_under_bf16_autocast() -> None:
    procs = procedures(N_TAGS, seed=0, learning_rate=5e-3, device=CPU, bf16=True)
    assert list(procs) == [PAPER, OURS, BF16] and same_weights(procs[OURS].model, procs[BF16].model)
    with procs[BF16].autocast:
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    with procs[OURS].autocast:
        assert not torch.is_autocast_enabled("cpu")
    assert all(math.isfinite(v) for v in procs[BF16].train_epoch(_batches(1, 2), OBJECTIVE))
    assert not same_weights(procs[OURS].model, procs[BF16].model)


def test_the_summary_pairs_the_seeds_and_returns_the_quality_delta(capsys: pytest.CaptureFixture) -> None:
    metrics = {PAPER: {"NSynth %": [50.0, 52.0, 48.0], "tag→audio mAP": [0.2, 0.21, 0.19]},
               OURS: {"NSynth %": [51.0, 51.0, 50.0], "tag→audio mAP": [0.2, 0.2, 0.2]},
               BF16: {"NSynth %": [52.0, 50.0, 50.0], "tag→audio mAP": [0.19, 0.2, 0.2]}}
    delta, std = train_quality.print_summary(metrics, "NSynth %")
    assert delta == pytest.approx(2 / 3) and std == pytest.approx(np.std([1, -1, 2], ddof=1))
    out = capsys.readouterr().out
    assert "| paper | 50.00 ± 2.00 | 0.2000 ± 0.0100 |" in out
    assert "ours - paper, NSynth %: +0.6667 ± 1.5" in out
    assert "bf16 - ours, tag→audio mAP: -0.003333 ± 0.0058" in out
    assert "bf16_delta: +0.00 ± 1.00" in out


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """An 8-patch corpus of 8 tags, a scaler, and an NSynth-like set of 2 training notes per family."""
    root = tmp_path_factory.mktemp("quality")
    scaler = MinMaxScaler.fit(np.random.default_rng(0).uniform(-16, 4, (4, 96, 96)))
    for name, n, seed in (("spec_tags_tiny", 8, 0), ("spec_tags_tiny_val", 4, 1)):  # 2 batches of 4 per epoch
        # As create_dataset.py writes them (the demo's files): recording their scaler and tag names.
        with h5py.File(write_release_file(root / name, n, N_TAGS, seed=seed), "a") as f:
            write_provenance(f["dataset"], scaler, [f"tag{i}" for i in range(N_TAGS)])
    config = write_config(root / "tiny.json", paper_config(root, "tiny", epochs=1, batch_size=4))
    save_scaler(scaler, root / "scaler.json")
    data = root / "data"
    write_nsynth(data, data / "json" / "nsynth_selected_sounds_per_class.json", seed=0, train_per_family=2,
                 test_per_family=1)
    args = ["--config", str(config), "--data-dir", str(data), "--scaler", str(root / "scaler.json"),
            "--runs", "1", "--jobs", "1", "--epochs", "1"]
    return root, args


@pytest.mark.slow
def test_a_whole_run_prints_both_procedures_and_ends_in_the_quality_delta(
        tiny_setup: tuple[Path, list[str]], capsys: pytest.CaptureFixture) -> None:
    root, args = tiny_setup
    out = root / "quality.json"
    assert train_quality.main([*args, "--seeds", "0", "1", "--bf16", "off", "--workers", "1", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    epochs = [line.split(":")[0].split() for line in lines if re.match(r"^ *(paper|ours) seed \d epoch", line)]
    assert epochs == [[name, "seed", seed, "epoch", "1/1"] for seed in "01" for name in (PAPER, OURS)]
    assert "epoch  1  paper " in "\n".join(lines)  # both procedures' curves side by side
    assert "| paper | " in "\n".join(lines) and "| ours | " in "\n".join(lines)
    assert re.fullmatch(r"quality_delta: [+-]\d+\.\d\d ± \d+\.\d\d", lines[-1]), lines[-1]
    record = json.loads(out.read_text())
    assert [(r["name"], r["seed"], r["epoch"]) for r in record["history"]] == [
        (PAPER, 0, 1), (OURS, 0, 1), (PAPER, 1, 1), (OURS, 1, 1)]
    for name in (PAPER, OURS):
        accuracy = record["metrics"][name]["NSynth %"]
        assert len(accuracy) == 2 and all(0 <= a <= 100 for a in accuracy)
        assert all(0 < m <= 1 for m in record["metrics"][name]["tag→audio mAP"])
    delta = [o - p for o, p in zip(record["metrics"][OURS]["NSynth %"], record["metrics"][PAPER]["NSynth %"])]
    assert lines[-1].startswith(f"quality_delta: {np.mean(delta):+.2f} ± {np.std(delta, ddof=1):.2f}")


@pytest.mark.slow
def test_jobs_in_worker_processes_train_exactly_as_in_this_one(tiny_setup: tuple[Path, list[str]],
                                                                tmp_path: Path) -> None:
    """Each job rebuilds its weights, batches and random stream from the seed: where it runs changes nothing."""
    root, _ = tiny_setup
    cfg = train_quality.load_config(root / "tiny.json")
    jobs = [(PAPER, 3), (OURS, 3)]
    common = dict(cfg=cfg, epochs=1, device=CPU, threads=1)
    here = train_quality.run_jobs(jobs, 1, folder=tmp_path / "here", **common)
    there = train_quality.run_jobs(jobs, 2, folder=tmp_path / "there", **common)
    assert [{**r, "seconds": 0} for r in here] == [{**r, "seconds": 0} for r in there]
    for name in ("paper_s3", "ours_s3"):
        saved = sorted(p.name for p in (tmp_path / "here" / name).iterdir())
        assert saved == sorted(p.name for p in (tmp_path / "there" / name).iterdir()) and saved
        for part in saved:
            a, b = (torch.load(tmp_path / where / name / part) for where in ("here", "there"))
            assert all(torch.equal(a[k], b[k]) for k in a)


def test_absent_downstream_data_stops_before_training_in_one_line(
        tiny_setup: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, args = tiny_setup
    args = [*args]
    args[args.index("--data-dir") + 1] = str(tmp_path / "nothing")
    assert train_quality.main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: --tasks nsynth: its data is absent") and captured.err.count("\n") == 1


def test_retrieval_names_the_tags_the_training_file_records(tiny_setup: tuple[Path, list[str]], tmp_path: Path) -> None:
    """The models rank the training file's tags by name (the validation file's must be the same ones,
    checked before any training); files without names (the paper's release) are ranked by column."""
    root, _ = tiny_setup
    cfg = train_quality.load_config(root / "tiny.json")
    assert train_quality.training_vocabulary(cfg, N_TAGS) == {i: f"tag{i}" for i in range(N_TAGS)}
    other = tmp_path / "val_other_tags"
    with h5py.File(write_release_file(other, 4, N_TAGS, seed=1), "a") as f:
        write_provenance(f["dataset"], MinMaxScaler.fit(np.zeros((2, 96))), [f"word{i}" for i in range(N_TAGS)])
    with pytest.raises(DatasetError, match="val_other_tags: its recorded vocabulary is not the training file's"):
        train_quality.training_vocabulary(dataclasses_replace(cfg, validation_dataset_file=str(other)), N_TAGS)
    bare = {name: write_release_file(tmp_path / name, 4, N_TAGS) for name in ("train", "val")}
    cfg = dataclasses_replace(cfg, train_dataset_file=str(bare["train"]), validation_dataset_file=str(bare["val"]))
    assert train_quality.training_vocabulary(cfg, N_TAGS) == {i: str(i) for i in range(N_TAGS)}
