"""A model trained on your own data describes itself: every tool takes its scaler, vocabulary and sizes
from the run folder's record, refuses a scaler or vocabulary of other data, and the notebook object
gives what encode.py writes (issue 24's end-to-end check, from the builder's input layout onward)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import coala
from coala.audio.scaler import MinMaxScaler, load_scaler, save_scaler
from coala.core.frontend import SAMPLE_RATE, file_chunks
from coala.core.model import embed
from coala.models.loading import load_model
from coala.models.record import read_record
from coala.train.config import parse_config
from coala.train.loop import train
from create_dataset import main as build_main
from encode import main as encode_main
from search import main as search_main

pytestmark = pytest.mark.slow
WORDS = ["piano", "drum", "bird", "rain", "engine", "voice"]
N_CLIPS = 48


def _clip(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A quiet decaying tone: its log-mel level lies well below the paper's Freesound clips'."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    y = np.sin(2 * np.pi * rng.uniform(100, 3000) * t) * np.exp(-t * rng.uniform(0.5, 3))
    return (0.02 * y + 0.001 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("own")
    rng = np.random.default_rng(3)
    audio = root / "audio"
    audio.mkdir()
    lines = ["id,tags"]
    for i in range(N_CLIPS):
        sf.write(audio / f"{100 + i}.wav", _clip(rng, rng.uniform(1.0, 12.0)), SAMPLE_RATE)
        lines.append(f"{100 + i}," + " ".join(rng.choice(WORDS, size=2, replace=False)))
    (root / "tags.csv").write_text("\n".join(lines) + "\n")
    assert build_main(["--audio-dir", str(audio), "--tags-csv", str(root / "tags.csv"), "--name", "mine",
                       "--out-dir", str(root / "hdf5_ds"), "--json-dir", str(root / "json"), "--min-count", "3",
                       "--max-fraction", "0.9", "--workers", "1"]) == 0
    config = {"experiment_name": "mine", "train_dataset_file": str(root / "hdf5_ds" / "spec_tags_mine"),
              "validation_dataset_file": str(root / "hdf5_ds" / "spec_tags_mine_val"), "audio_loss_weight": 5,
              "tag_loss_weight": 5, "contrastive_loss_weight": 10, "contrastive_temperature": 0.1, "epochs": 1,
              "batch_size": 8, "learning_rate": 5e-3, "device": "cpu", "id2tag_file": str(root / "json" / "id2token_mine.json"),
              "log_interval": 1, "save_model_every": 1, "checkpoint_dir": str(root / "saved_models"),
              "log_dir": str(root / "runs"), "amp": False}
    train(parse_config(config))
    other = root / "other_scaler.json"  # a scaler of other data: the paper's level, not this corpus's
    save_scaler(MinMaxScaler.fit(np.random.default_rng(1).uniform(-16.0, 4.0, size=(8, 96, 96))), other)
    return {"root": root, "folder": root / "saved_models" / "mine", "audio": audio, "other_scaler": other,
            "scaler": root / "json" / "scaler_mine.json", "id2tag": root / "json" / "id2token_mine.json"}


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_the_run_folder_records_its_scaler_vocabulary_and_sizes(run):
    record = read_record(run["folder"])
    vocabulary = json.loads(run["id2tag"].read_text())
    assert record.vocabulary == [vocabulary[str(i)] for i in range(len(vocabulary))]
    assert record.dims.n_tags == len(vocabulary) and record.epoch == 1
    assert record.scaler.same_as(load_scaler(run["scaler"]))
    assert not record.scaler.same_as(load_scaler(run["other_scaler"]))


def test_encode_with_the_run_folder_uses_its_scaler_and_refuses_another(run, tmp_path, capsys):
    clips = sorted(run["audio"].glob("*.wav"))[:4]
    assert encode_main(["--model", str(run["folder"]), "--input", *map(str, clips), "--output", str(tmp_path / "out"),
                        "--quiet"]) == 0
    model = load_model(run["folder"]).audio_encoder
    right, wrong = load_scaler(run["scaler"]), load_scaler(run["other_scaler"])
    for clip in clips:
        written = np.load(tmp_path / "out" / f"{clip.stem}.npy")
        expected = embed(model, np.concatenate(list(file_chunks(clip, right))))[0].numpy()
        assert _cosines(written, expected).min() >= 0.9999
        misscaled = embed(model, np.concatenate(list(file_chunks(clip, wrong))))[0].numpy()
        assert _cosines(written, misscaled).min() < 0.999  # what the silent fallback gave
    capsys.readouterr()
    code = encode_main(["--model", str(run["folder"]), "--scaler", str(run["other_scaler"]), "--input",
                        str(clips[0]), "--output", str(tmp_path / "refused"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "other_scaler.json" in err and str(run["folder"]) in err
    assert not (tmp_path / "refused").exists()
    # A checkpoint inside the run folder is read with the same record.
    assert encode_main(["--model", str(run["folder"] / "audio_encoder_epoch_1.pt"), "--input", str(clips[0]),
                        "--output", str(tmp_path / "ckpt"), "--quiet"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "ckpt" / f"{clips[0].stem}.npy"),
                                  np.load(tmp_path / "out" / f"{clips[0].stem}.npy"))


def test_search_tag_ranks_the_runs_own_vocabulary_without_id2tag(run, capsys):
    clip = sorted(run["audio"].glob("*.wav"))[0]
    assert search_main(["tag", "--model", str(run["folder"]), str(clip), "--json", "--top", "3"]) == 0
    ranked = json.loads(capsys.readouterr().out)[str(clip)]
    vocabulary = set(json.loads(run["id2tag"].read_text()).values())
    assert len(ranked) == 3 and {t["tag"] for t in ranked} <= vocabulary


def test_the_notebook_object_equals_what_encode_wrote(run, tmp_path):
    clip = sorted(run["audio"].glob("*.wav"))[1]
    assert encode_main(["--model", str(run["folder"]), "--input", str(clip), "--output", str(tmp_path), "--quiet"]) == 0
    written = np.load(tmp_path / f"{clip.stem}.npy")
    model = coala.load(run["folder"])
    y, sr = sf.read(clip, dtype="float32")
    np.testing.assert_allclose(model.embed_audio(y, sr), written, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.embed_audio(clip), written, rtol=1e-4, atol=1e-5)
    assert model.vocabulary == read_record(run["folder"]).vocabulary and model.dims.n_tags == len(model.vocabulary)
    ranked = model.tag(clip, top=len(model.vocabulary))
    assert sorted(t for t, _ in ranked) == sorted(model.vocabulary)
    word = model.vocabulary[0]
    np.testing.assert_allclose(model.embed_tags(word.upper() + "s"), model.embed_tags([word]))
    with pytest.raises(coala.core.errors.VocabularyError, match="zebra"):
        model.embed_tags("zebra")
    with pytest.raises(coala.core.errors.CoalaError):
        coala.load(run["folder"], device="cuda:7")
