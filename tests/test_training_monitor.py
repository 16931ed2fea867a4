"""Watching a training run: scalars every log_interval steps in TensorBoard event files and a CSV in the
run folder, the console log beside them, train and validation losses of one definition, readable pictures."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.text import Text
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

from coala.cli import setup_logging
from coala.train import monitor, plots
from coala.train.config import parse_config
from coala.train.loop import train
from tiny_release import paper_config, write_corpus


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / monitor.SCALARS_CSV).open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_run_folder_holds_event_files_a_csv_row_per_log_interval_and_the_console_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    setup_logging()  # as the script: INFO messages reach the handlers
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path, n_train=10, n_val=4)  # 2 steps of 4 per epoch
    train(parse_config(paper_config(tmp_path, "watched", epochs=2, log_interval=3)))
    train(parse_config(paper_config(tmp_path, "watched", epochs=3, log_interval=3)))  # resumed: steps 5 and 6
    folder = tmp_path / "saved_models" / "watched"

    rows = _rows(folder)
    assert [(r["epoch"], r["step"]) for r in rows] == [("2", "3"), ("3", "6")]  # 6 steps, one row per 3
    assert list(rows[0]) == ["epoch", "step", "loss", "audio", "tag", "contrastive", *monitor.STEP_COLUMNS]
    for row in rows:
        assert float(row["learning_rate"]) == 5e-3 and float(row["grad_norm"]) > 0
        assert float(row["samples_per_second"]) > 0 and float(row["run_seconds_left"]) >= float(row["epoch_seconds_left"]) >= 0
        assert all(np.isfinite(float(row[k])) for k in ("loss", "audio", "tag", "contrastive"))

    runs = EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "saved_models"))
    assert list(runs.Runs()) == ["watched"]  # what `tensorboard --logdir saved_models` lists
    events = EventAccumulator(str(folder))
    events.Reload()
    assert {"step/loss", "step/contrastive", "step/learning_rate", "step/grad_norm", "step/samples_per_second",
            "loss/train", "loss/val", "audio/val", "contrastive/train"} <= set(events.Tags()["scalars"])
    assert [s.step for s in events.Scalars("step/loss")] == [3, 6]
    assert [s.step for s in events.Scalars("loss/val")] == [2, 4, 6]  # each epoch at its last step
    metrics = [json.loads(line) for line in (tmp_path / "runs" / "watched" / "metrics.jsonl").read_text().splitlines()]
    assert [s.value for s in events.Scalars("loss/val")] == pytest.approx([m["val_loss"] for m in metrics], rel=1e-6)

    log = (folder / monitor.LOG_FILE).read_text()
    assert log.count("watched: dual_ae, 10 training / 4 validation patches") == 2  # appended by the resumed run
    assert "resuming after epoch 2" in log and "epoch 3/3 train_loss" in log and "left" in log.split("epoch 1/2")[1]


def test_a_run_that_stops_on_an_error_keeps_the_error_in_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    setup_logging()
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path, n_train=3, n_val=4)
    with pytest.raises(Exception, match="3 patches, fewer than one batch of 4"):
        train(parse_config(paper_config(tmp_path, "short")))
    last = (tmp_path / "saved_models" / "short" / monitor.LOG_FILE).read_text().splitlines()[-1]
    assert "error: " in last and "spec_tags_tiny: 3 patches, fewer than one batch of 4" in last


def test_an_interrupted_epochs_rows_are_dropped_when_the_run_resumes(tmp_path: Path) -> None:
    scalars = monitor.ScalarLog(tmp_path, ["loss"], last_step=0)
    for step in (1, 2, 3, 4, 5):
        scalars.step(1 + (step > 2), step, {"loss": 1.0 / step, **dict.fromkeys(monitor.STEP_COLUMNS, 0.5)})
    scalars.close()
    with (tmp_path / monitor.SCALARS_CSV).open("a") as f:
        f.write("3,6,0.1")  # a row a kill tore
    monitor.ScalarLog(tmp_path, ["loss"], last_step=4).close()  # the state holds 2 epochs of 2 steps
    assert [r["step"] for r in _rows(tmp_path)] == ["1", "2", "3", "4"]


@pytest.mark.slow
def test_train_and_validation_losses_are_one_definition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validated on its own training file (one batch), a run's training and validation losses are equal:
    both are eval-mode means over full shuffled batches with the same inputs, whatever split they read."""
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path, n_train=4, n_val=4)
    same = str(tmp_path / "spec_tags_tiny")
    train(parse_config(paper_config(tmp_path, "same", epochs=1, validation_dataset_file=same)))
    (record,) = [json.loads(line) for line in (tmp_path / "runs" / "same" / "metrics.jsonl").read_text().splitlines()]
    for term in ("loss", "audio", "tag", "contrastive"):
        assert record[f"train_{term}"] == pytest.approx(record[f"val_{term}"], rel=1e-5), term
    # What the optimiser minimised (train mode: dropout, batch statistics) is kept apart.
    assert record["step_loss"] != pytest.approx(record["train_loss"], rel=1e-3)


def test_pictures_are_readable_at_their_saved_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi: saved.append((fig, dpi)))
    rng = np.random.default_rng(0)
    vocabulary = {i: f"field-recording-{i}" for i in range(40)}
    plots.save_examples(tmp_path / "e.png", rng.random((8, 1, 96, 96)), rng.random((8, 1, 96, 96)), list(range(8)),
                        (rng.random((8, 40)) < 0.3).astype(float), rng.random((8, 40)), vocabulary)
    plots.save_loss_curves(tmp_path / "c.png", [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2}], ["loss"])
    for fig, dpi in saved:
        texts = [t for t in fig.findobj(Text) if t.get_text().strip()]
        assert texts and min(t.get_fontsize() * dpi / 72 for t in texts) >= 13  # pixels of the smallest text
