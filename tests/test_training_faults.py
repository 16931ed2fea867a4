"""Training on bad input and after faults: every case stops before work with one line, or recovers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from coala.atomic import _host
from coala.cli import setup_logging
from coala.core.errors import ConfigError, DatasetError, DivergenceError, StateError
from coala.train import loop, plots
from coala.train.config import parse_config
from coala.train.loop import train, write_metrics
from tiny_release import paper_config, write_corpus, write_release_file
from train_dual_ae import main as train_script

N_TAGS = 20


def _strict_lines(path: Path) -> list[dict]:
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")
    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


@pytest.fixture()
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path, n_train=8, n_val=4, n_tags=N_TAGS)
    return tmp_path


def _config(tmp: Path, **overrides):
    return parse_config(paper_config(tmp, "x", **overrides))


# --- point 3: data values, divergence, strict metrics ---------------------------------------------

@pytest.mark.parametrize("file, name, index, value, message", [
    ("spec_tags_tiny", "data", (5, 3, 3), np.nan, "holds nan in dataset/data"),
    ("spec_tags_tiny", "label", (5, 2), 3, "holds label value 3 for tag 2 in dataset/label"),
    ("spec_tags_tiny_val", "data", (5, 0, 9), np.inf, "holds inf in dataset/data"),
])
def test_bad_values_stop_the_run_before_training_naming_the_patch(corpus: Path, file: str, name: str, index: tuple,
                                                                   value: float, message: str) -> None:
    if file.endswith("_val"):
        write_release_file(corpus / file, n=8, n_tags=N_TAGS, seed=1)
    with h5py.File(corpus / file, "a") as f:
        f["dataset"][name][index] = value
        sound_id = int(f["dataset/id"][5, 0])
    with pytest.raises(DatasetError) as info:
        train(_config(corpus))
    assert str(info.value).startswith(f"{corpus / file}: patch 5 (sound id {sound_id}) {message}")
    assert not list((corpus / "saved_models" / "x").iterdir())


@pytest.mark.parametrize("poison, what", [("weights", "the weights"), ("losses", "train_loss, train_audio, train_tag, train_contrastive")])
@pytest.mark.slow
def test_diverged_run_stops_naming_the_epoch_and_keeps_the_last_good_state(corpus: Path, monkeypatch: pytest.MonkeyPatch,
                                                                           poison: str, what: str) -> None:
    """NaN weights make the tag BCE fail mid-epoch; NaN losses with finite weights reach the epoch's end."""
    train(_config(corpus, epochs=1))
    real_step = loop.train_step

    def diverging_step(model, *args, **kwargs):
        losses = real_step(model, *args, **kwargs)
        if poison == "losses":
            return {name: value * float("nan") for name, value in losses.items()}
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(float("nan"))
        return losses
    monkeypatch.setattr(loop, "train_step", diverging_step)
    with pytest.raises(DivergenceError, match=rf"^x: epoch 2: {what} became non-finite; stopped without saving the "
                                              r"epoch, saved_models/x keeps epoch 1; try a lower learning_rate$"):
        train(_config(corpus, epochs=2))
    folder = corpus / "saved_models" / "x"
    assert torch.load(folder / "training_state.pt", weights_only=True)["epoch"] == 1
    assert not list(folder.glob("*_epoch_2.pt")) and not (corpus / "runs" / "x" / "examples_epoch_2.png").exists()
    assert [m["epoch"] for m in _strict_lines(corpus / "runs" / "x" / "metrics.jsonl")] == [1]


def test_metrics_file_is_strict_json(tmp_path: Path) -> None:
    """Metrics of an older state may hold NaN: written as null, never as the bare token ``NaN``."""
    write_metrics(tmp_path, [{"epoch": 1, "train_loss": float("nan"), "val_loss": float("inf"), "seconds": 1.5}])
    assert _strict_lines(tmp_path / loop.METRICS_FILE) == [{"epoch": 1, "train_loss": None, "val_loss": None, "seconds": 1.5}]


# --- point 4: output folders ----------------------------------------------------------------------

@pytest.mark.parametrize("key", ["checkpoint_dir", "log_dir"])
def test_unwritable_output_folder_stops_before_data_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            key: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blocker").write_text("a file where a folder should be")
    cfg = _config(tmp_path, train_dataset_file=str(tmp_path / "absent"), **{key: str(tmp_path / "blocker")})
    with pytest.raises(ConfigError, match=rf"^{key}: cannot write into {tmp_path / 'blocker' / 'x'} \("):
        train(cfg)


# --- point 9: the data of a resumed run -----------------------------------------------------------

@pytest.mark.slow
def test_resume_refuses_a_training_file_with_other_contents(corpus: Path) -> None:
    train(_config(corpus, epochs=1))
    write_release_file(corpus / "spec_tags_tiny", n=8, n_tags=N_TAGS, seed=5)  # same path and shapes
    with pytest.raises(StateError, match=r"training_state.pt: the training file .*spec_tags_tiny is not the one this "
                                         r"run started on \(its contents changed\)"):
        train(_config(corpus, epochs=2))
    write_corpus(corpus, n_train=8, n_val=4, n_tags=N_TAGS + 1)
    with pytest.raises(StateError, match=r"\(dataset/label had shape \(8, 20\), now \(8, 21\)\)"):
        train(_config(corpus, epochs=2))


@pytest.mark.slow
def test_state_without_a_fingerprint_resumes_with_a_warning(corpus: Path, capsys: pytest.CaptureFixture) -> None:
    setup_logging()  # as the script: warnings to stderr
    train(_config(corpus, epochs=1))
    path = corpus / "saved_models" / "x" / "training_state.pt"
    state = torch.load(path, weights_only=True)
    del state["data_fingerprint"]
    torch.save(state, path)
    train(_config(corpus, epochs=2))
    assert "written before states recorded their data" in capsys.readouterr().err
    assert torch.load(path, weights_only=True)["epoch"] == 2


@pytest.mark.slow
def test_paper_checkpoints_with_another_tag_width_are_one_line(corpus: Path, capsys: pytest.CaptureFixture) -> None:
    train(_config(corpus, epochs=1))
    (corpus / "saved_models" / "x" / "training_state.pt").unlink()
    write_corpus(corpus, n_train=8, n_val=4, n_tags=N_TAGS + 10)
    config = corpus / "cfg.json"
    config.write_text(json.dumps(paper_config(corpus, "x", epochs=2)))
    capsys.readouterr()
    assert train_script([str(config)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith("error: saved_models/x/tag_encoder_epoch_1.pt: does not fit TagEncoder: shape mismatch")
    assert errors[0].endswith(f"spec_tags_tiny has {N_TAGS + 10} tags)")


# --- point 10: malformed states --------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    ([], "not a training state (holds list)"),
    ({}, "not a training state (no 'epoch')"),
    ("models", "not a training state (no 'models')"),
    ("weights", "(tag_encoder): does not fit TagEncoder"),
])
@pytest.mark.slow
def test_malformed_state_is_one_line_naming_the_file(corpus: Path, content, message: str) -> None:
    train(_config(corpus, epochs=1))
    path = corpus / "saved_models" / "x" / "training_state.pt"
    state = torch.load(path, weights_only=True)
    if content == "models":
        del state["models"]
    elif content == "weights":
        state["models"]["tag_encoder"] = {"tag_encoder.0.weight": torch.zeros(3)}
    else:
        state = content
    torch.save(state, path)
    with pytest.raises(StateError) as info:
        train(_config(corpus, epochs=2))
    assert str(info.value).startswith(str(path.relative_to(corpus))) and message in str(info.value)
    assert "\n" not in str(info.value)


# --- point 11: after kill -9 -----------------------------------------------------------------------

@pytest.mark.slow
def test_a_starting_run_removes_temporaries_of_dead_writers(corpus: Path) -> None:
    writer = subprocess.Popen([sys.executable, "-c", "pass"])
    writer.wait()  # as a killed run: its PID belongs to no live process now
    names = [f".training_state.pt.{_host()}.{writer.pid}.0123abcd.tmp", f".metrics.jsonl.{_host()}.{writer.pid}.0123abcd.tmp"]
    for folder, name in zip(("saved_models/x", "runs/x"), names):
        (corpus / folder).mkdir(parents=True)
        (corpus / folder / name).write_bytes(b"half")
    train(_config(corpus, epochs=1))
    assert not list((corpus / "saved_models" / "x").glob(".*.tmp")) and not list((corpus / "runs" / "x").glob(".*.tmp"))


@pytest.mark.slow
def test_an_epoch_interrupted_before_its_state_is_redone_with_its_pictures(corpus: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill after the epoch's metrics but before its examples and state: the state is the commit point."""
    real_save = plots.save_examples

    def killed_at_epoch_2(path: Path, *args) -> None:
        if path.name == "examples_epoch_2.png":
            raise KeyboardInterrupt
        real_save(path, *args)
    with monkeypatch.context() as patch:
        patch.setattr(plots, "save_examples", killed_at_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            train(_config(corpus, epochs=2))
    runs = corpus / "runs" / "x"
    assert torch.load(corpus / "saved_models" / "x" / "training_state.pt", weights_only=True)["epoch"] == 1
    train(_config(corpus, epochs=1))  # nothing to train: the metrics file is rewritten from the state
    assert [m["epoch"] for m in _strict_lines(runs / "metrics.jsonl")] == [1]
    train(_config(corpus, epochs=2))
    assert [m["epoch"] for m in _strict_lines(runs / "metrics.jsonl")] == [1, 2]
    assert (runs / "examples_epoch_2.png").is_file() and (runs / "loss_curves.png").is_file()


def test_a_state_path_that_is_a_folder_is_refused_before_training(tmp_path: Path) -> None:
    from coala.train.state import STATE_FILE, load_state
    folder = tmp_path / "ckpt"
    (folder / STATE_FILE).mkdir(parents=True)
    with pytest.raises(StateError, match="not a file"):
        load_state(folder, None, {})  # type: ignore[arg-type]
