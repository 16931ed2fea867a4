"""Training: config validation, the one-backward step against the paper's, checkpoints, resuming."""
from __future__ import annotations

import copy
import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from coala import device as device_module
from coala.cli import setup_logging
from coala.device import resolve_amp, resolve_device
from coala.core.errors import ConfigError
from coala.models.checkpoints import load_checkpoint
from coala.models.fast_layers import accelerate
from coala.train.config import load_config, parse_config
from coala.train.loop import train
from coala.models.record import read_record, read_weights
from coala.train.step import DualAE, Objective, paper_step, sgd, train_step, validation_inputs
from models_t1000 import CNN, AudioDecoder, AudioEncoder, TagDecoder, TagEncoder
from tiny_release import paper_config, write_config, write_corpus

ROOT = Path(__file__).resolve().parents[1]
PARTS = {"audio_encoder": AudioEncoder, "audio_decoder": AudioDecoder, "tag_encoder": TagEncoder, "tag_decoder": TagDecoder}


# --- config ---------------------------------------------------------------------------------------

def test_shipped_configs_have_the_paper_values() -> None:
    ae_c = load_config(ROOT / "configs" / "dual_ae_c.json")
    assert (ae_c.audio_loss_weight, ae_c.tag_loss_weight, ae_c.contrastive_loss_weight) == (5, 5, 10)
    assert (ae_c.contrastive_temperature, ae_c.learning_rate, ae_c.batch_size) == (0.1, 5e-3, 128)
    assert (ae_c.epochs, ae_c.save_model_every, ae_c.model) == (200, 20, "dual_ae")
    assert ae_c.train_dataset_file == "hdf5_ds/spec_tags_top_1000"
    assert ae_c.validation_dataset_file == "hdf5_ds/spec_tags_top_1000_val"
    assert ae_c.id2tag_file == "json/id2token_top_1000.json"
    e_c = load_config(ROOT / "configs" / "dual_e_c.json")
    assert (e_c.audio_loss_weight, e_c.tag_loss_weight, e_c.contrastive_loss_weight) == (0, 0, 10)
    cnn = load_config(ROOT / "configs" / "cnn.json")
    assert (cnn.model, cnn.epochs) == ("cnn", 20)


@pytest.mark.parametrize("change, message", [
    ({"learning_rat": 0.1}, "unknown key 'learning_rat'"),
    ({"epochs": None}, "missing required key 'epochs'"),
    ({"epochs": "200"}, "key 'epochs' must be an integer, got \"200\""),
    ({"epochs": True}, "key 'epochs' must be an integer, got true"),
    ({"batch_size": 12.5}, "key 'batch_size' must be an integer"),
    ({"learning_rate": "fast"}, "key 'learning_rate' must be a finite number"),
    ({"amp": 1}, "key 'amp' must be true, false or \"auto\", got 1"),
    ({"amp": "bf16"}, "key 'amp' must be true, false or \"auto\", got \"bf16\""),
    ({"device": "gpu"}, "key 'device' must be one of"),
    ({"model": "resnet"}, "key 'model' must be \"dual_ae\" or \"cnn\""),
    ({"contrastive_temperature": 0}, "key 'contrastive_temperature' must be between 0.001 and 100, got 0"),
    ({"contrastive_temperature": 1e-300}, "key 'contrastive_temperature' must be between 0.001 and 100, got 1e-300"),
    ({"learning_rate": float("inf")}, "key 'learning_rate' must be a finite number, got Infinity"),
    ({"learning_rate": float("nan")}, "key 'learning_rate' must be a finite number, got NaN"),
    ({"learning_rate": 5}, "key 'learning_rate' must be > 0 and <= 1, got 5"),
    ({"tag_loss_weight": float("-inf")}, "key 'tag_loss_weight' must be a finite number, got -Infinity"),
    ({"audio_loss_weight": 1e6}, "key 'audio_loss_weight' must be between 0 and 1000, got 1000000.0"),
    ({"audio_loss_weight": 0, "tag_loss_weight": 0, "contrastive_loss_weight": 0}, "are all 0: nothing would be trained"),
    ({"tag_loss_weight": 10**400}, "key 'tag_loss_weight' must be a finite number, got 1000"),
    ({"experiment_name": "a\0b"}, "key 'experiment_name' must be a string without NUL"),
    ({"checkpoint_dir": "\ud800"}, "key 'checkpoint_dir' must be a string without NUL or unpaired surrogates"),
    ({"seed": 2**64}, "key 'seed' must be between 0 and"),
    ({"seed": -1}, "key 'seed' must be between 0 and"),
    ({"num_workers": 10**6}, "key 'num_workers' must be between 0 and 64, got 1000000"),
])
def test_bad_configs_are_refused_naming_the_key(tmp_path: Path, change: dict, message: str) -> None:
    raw = paper_config(tmp_path, "x")
    raw.update(change)
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "cfg.json")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_infinity_in_a_config_file_is_refused_naming_the_key(tmp_path: Path) -> None:
    """Python's json reads ``Infinity`` and ``NaN``; the file must still be refused before any work."""
    raw = json.dumps(paper_config(tmp_path, "x")).replace('"learning_rate": 0.005', '"learning_rate": Infinity')
    (tmp_path / "cfg.json").write_text(raw)
    with pytest.raises(ConfigError, match=r"cfg.json: key 'learning_rate' must be a finite number, got Infinity$"):
        load_config(tmp_path / "cfg.json")


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"epochs": ' + "9" * 5000 + "}", "Exceeds the limit (4300 digits)"),
])
def test_config_text_python_cannot_hold_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    """json raises RecursionError and a plain ValueError for these, not JSONDecodeError."""
    (tmp_path / "cfg.json").write_text(text)
    with pytest.raises(ConfigError, match=r"cfg.json: not valid JSON") as info:
        load_config(tmp_path / "cfg.json")
    assert message in str(info.value)


def test_paper_keys_alone_give_the_defaults(tmp_path: Path) -> None:
    cfg = parse_config(paper_config(tmp_path, "x"))
    assert (cfg.seed, cfg.num_workers, cfg.in_memory, cfg.amp, cfg.compile, cfg.model) == (0, 0, False, "auto", False, "dual_ae")
    assert cfg.checkpoint_folder == Path("saved_models/x") and cfg.log_folder == Path("runs/x")


def test_auto_device_picks_cuda_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module.torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="'cuda': CUDA is not available"):
        resolve_device("cuda")
    monkeypatch.setattr(device_module.torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


@pytest.mark.slow
def test_script_refuses_a_misspelt_key_in_one_line_before_reading_data(tmp_path: Path) -> None:
    raw = paper_config(tmp_path, "x", train_dataset_file=str(tmp_path / "absent"))
    raw["save_models_every"] = raw.pop("save_model_every")
    path = write_config(tmp_path / "cfg.json", raw)
    result = subprocess.run([sys.executable, str(ROOT / "train_dual_ae.py"), str(path)], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "unknown key 'save_models_every'" in result.stderr and "Traceback" not in result.stderr


# --- the step -------------------------------------------------------------------------------------

def _without_dropout(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model


@pytest.mark.parametrize("weights", [(5.0, 5.0, 10.0), (0.0, 0.0, 10.0)], ids=["AE_c", "E_c"])
@pytest.mark.slow
def test_one_backward_step_equals_the_papers_three_backward_passes(weights: tuple[float, float, float]) -> None:
    """Ours (fast layers, channels_last, fused SGD, one backward) against the paper's stock step, float64."""
    torch.manual_seed(0)
    paper = _without_dropout(DualAE(n_tags=1000).double())
    ours = copy.deepcopy(paper)
    accelerate(ours)
    objective = Objective(*weights, temperature=0.1)
    paper_optimizers = [torch.optim.SGD(group, lr=5e-3) for group in paper.parameter_groups()]
    our_optimizers = [sgd(group, 5e-3) for group in ours.parameter_groups()]
    decoder_before = copy.deepcopy(paper.audio_decoder.state_dict())
    x = torch.rand(4, 1, 96, 96, dtype=torch.float64)
    tags = (torch.rand(4, 1000, dtype=torch.float64) < 0.02).double()
    paper_step(paper, paper_optimizers, objective, x, tags)
    train_step(ours, our_optimizers, objective, x.contiguous(memory_format=torch.channels_last), tags)
    ours_state, paper_state = ours.state_dict(), paper.state_dict()
    assert list(ours_state) == list(paper_state)
    for name, value in paper_state.items():
        torch.testing.assert_close(ours_state[name], value, rtol=1e-10, atol=1e-12, msg=name)
    changed = [k for k, v in decoder_before.items() if k.endswith("weight") and not torch.equal(v, paper_state[f"audio_decoder.{k}"])]
    assert bool(changed) == (weights[0] > 0)  # E_c: the audio decoder gets no gradient


# --- whole runs -----------------------------------------------------------------------------------

def _digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.mark.slow
def test_paper_config_trains_checkpoints_load_and_rerun_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path, n_train=10, n_val=4)  # 2 batches of 4 per epoch, the partial one dropped
    train(parse_config(paper_config(tmp_path, "ae_c")))
    folder = tmp_path / "saved_models" / "ae_c"
    for epoch in (1, 2):
        for name, model_class in PARTS.items():
            load_checkpoint(folder / f"{name}_epoch_{epoch}.pt", model_class)  # strict load into the paper's classes
    runs = tmp_path / "runs" / "ae_c"
    lines = [json.loads(line) for line in (runs / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert {"train_loss", "train_audio", "train_tag", "train_contrastive", "val_loss", "val_contrastive"} <= set(lines[0])
    assert all((runs / f).stat().st_size > 0 for f in ("examples_epoch_1.png", "examples_epoch_2.png", "loss_curves.png"))

    finished = {p: _digest(p) for p in folder.glob("*_epoch_*.pt")}
    train(parse_config(paper_config(tmp_path, "ae_c", epochs=3)))
    assert {p: _digest(p) for p in finished} == finished  # finished epochs untouched
    lines = (runs / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]

    # An uninterrupted 3-epoch run ends with exactly the same weights.
    train(parse_config(paper_config(tmp_path, "straight", epochs=3, save_model_every=3)))
    for name in PARTS:
        resumed = torch.load(folder / f"{name}_epoch_3.pt", weights_only=True)
        straight = torch.load(tmp_path / "saved_models" / "straight" / f"{name}_epoch_3.pt", weights_only=True)
        assert resumed.keys() == straight.keys()
        assert all(torch.equal(resumed[k], straight[k]) for k in resumed), name
    assert sorted(p.name for p in (tmp_path / "saved_models" / "straight").iterdir()) == sorted(
        [f"{name}_epoch_3.pt" for name in PARTS] + ["training_state.pt", "config.json", "model.safetensors"])
    # The record describes the last saved epoch, and its safetensors weights are that epoch's checkpoints.
    record = read_record(folder)
    assert record.epoch == 3 and record.kind == "dual_ae" and record.dims.n_tags == 1000
    assert record.training["config"]["experiment_name"] == "ae_c" and set(record.training["data"]) == {"train", "validation"}
    weights = read_weights(folder, record)
    for name in PARTS:
        saved = torch.load(folder / f"{name}_epoch_3.pt", weights_only=True)
        assert all(torch.equal(weights[name][k], saved[k]) for k in saved), name


@pytest.mark.slow
def test_cnn_trains_in_bf16_on_a_300_tag_corpus_and_a_vocabulary_of_other_data_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path, n_train=8, n_val=4, n_tags=300)
    config = paper_config(tmp_path, "cnn", model="cnn", epochs=1, amp=True, in_memory=True, checkpoint_dir="ckpt",
                          log_dir="logs")
    (tmp_path / "id2token_tiny.json").write_text(json.dumps({str(i): f"tag{i}" for i in range(299)}))
    with pytest.raises(ConfigError, match="id2token_tiny.json: 299 tags, but .*spec_tags_tiny has 300"):
        train(parse_config(config))
    assert not (tmp_path / "ckpt" / "cnn").exists() or not any((tmp_path / "ckpt" / "cnn").iterdir())
    (tmp_path / "id2token_tiny.json").unlink()
    with pytest.raises(ConfigError, match="id2token_tiny.json.*not found"):
        train(parse_config(config))
    write_corpus(tmp_path, n_train=8, n_val=4, n_tags=300)
    train(parse_config(config))
    model = load_checkpoint(tmp_path / "ckpt" / "cnn" / "audio_encoder_epoch_1.pt", CNN)
    assert model.fc[2].out_features == 300
    assert read_record(tmp_path / "ckpt" / "cnn").vocabulary == [f"tag{i}" for i in range(300)]
    assert (tmp_path / "logs" / "cnn" / "examples_epoch_1.png").is_file()
    assert model.fc[2].weight.dtype == torch.float32  # autocast leaves the weights in float32


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.slow
def test_amp_auto_trains_in_bf16_exactly_where_the_cpu_has_bf16_instructions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, fast: bool) -> None:
    setup_logging()  # as the script: messages to stderr
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path, n_train=8, n_val=4, n_tags=20)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: fast)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    entered: list[bool] = []
    monkeypatch.setattr(torch.autocast, "__enter__", lambda self: entered.append(self.fast_dtype == torch.bfloat16))
    monkeypatch.setattr(torch.autocast, "__exit__", lambda self, *exc: None)
    cfg = parse_config(paper_config(tmp_path, "auto", epochs=1, batch_size=4, in_memory=True, checkpoint_dir="ckpt",
                                    log_dir="logs"))
    assert cfg.amp == "auto"  # the default
    train(cfg)
    assert ("1 process(es) on cpu, bf16 (amp auto)" if fast else "1 process(es) on cpu, float32 (amp auto)") in capsys.readouterr().err
    assert entered and all(entered) if fast else not entered
    assert resolve_amp(True, torch.device("cpu")) and not resolve_amp(False, torch.device("cpu"))
    assert not resolve_amp("auto", torch.device("meta"))  # no other device type was measured: float32


def test_validation_clamps_patches_and_tags_at_zero() -> None:
    data = torch.tensor([[-0.5, 0.25], [1.5, -1e-3]]).repeat(1, 96 * 48).reshape(2, 96, 96)
    tags = torch.tensor([[-1.0, 1.0]])
    x, clamped_tags = validation_inputs(data, tags, torch.device("cpu"), channels_last=True)
    assert x.shape == (2, 1, 96, 96) and x.min() == 0 and x.max() == 1.5
    assert torch.equal(clamped_tags, torch.tensor([[0.0, 1.0]]))


@pytest.mark.slow
def test_kill_9_loses_at_most_the_epoch_in_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path, n_train=8, n_val=4)
    path = write_config(tmp_path / "cfg.json", paper_config(tmp_path, "killed", epochs=3))
    state_file = tmp_path / "saved_models" / "killed" / "training_state.pt"
    process = subprocess.Popen([sys.executable, str(ROOT / "train_dual_ae.py"), str(path)], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not state_file.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert state_file.exists()
    finished = torch.load(state_file, weights_only=True)["epoch"]
    assert 1 <= finished <= 3
    for checkpoint in state_file.parent.glob("*_epoch_*.pt"):
        torch.load(checkpoint, weights_only=True)  # every visible file is complete
    train(parse_config(paper_config(tmp_path, "killed", epochs=3)))
    lines = (tmp_path / "runs" / "killed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


@pytest.mark.slow
def test_changed_trajectory_settings_are_refused_on_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path, n_train=8, n_val=4)
    train(parse_config(paper_config(tmp_path, "x", epochs=1, num_workers=2)))  # HDF5 opened in each worker
    from coala.core.errors import StateError
    with pytest.raises(StateError, match="learning_rate = 0.005 but the config says 0.1"):
        train(parse_config(paper_config(tmp_path, "x", epochs=2, learning_rate=0.1)))


@pytest.mark.slow
def test_checkpoints_without_a_state_are_continued_not_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    setup_logging()  # as the script: warnings to stderr
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path, n_train=8, n_val=4)
    train(parse_config(paper_config(tmp_path, "paper_run", epochs=1)))
    folder = tmp_path / "saved_models" / "paper_run"
    (folder / "training_state.pt").unlink()  # as the paper's code leaves a folder: checkpoints only
    finished = {p: _digest(p) for p in folder.glob("*_epoch_1.pt")}
    train(parse_config(paper_config(tmp_path, "paper_run", epochs=2)))
    assert "continuing from the epoch-1 checkpoints" in capsys.readouterr().err
    assert {p: _digest(p) for p in finished} == finished
    epoch_2 = torch.load(folder / "tag_encoder_epoch_2.pt", weights_only=True)
    epoch_1 = torch.load(folder / "tag_encoder_epoch_1.pt", weights_only=True)
    assert not torch.equal(epoch_1["tag_encoder.0.weight"], epoch_2["tag_encoder.0.weight"])
