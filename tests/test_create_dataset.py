"""The dataset builder end to end, on a generated corpus of short tagged clips with every kind of bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch

import create_dataset
from coala.core.frontend import N_MELS, PATCH_FRAMES, SAMPLE_RATE, compute_spectrogram
from coala.core.frontend import max_energy_patch
from coala.core.errors import DatasetError
from coala.data.builder import (BuildOptions, build_dataset, cache_file, compute_patches, find_audio_files,
                                  load_patches, split_train_validation)
from coala.audio.scaler import MinMaxScaler, load_scaler
from conftest import ROOT

N_CLIPS = 300
WORDS = ("piano guitar drum bird rain wind voice engine door bell water metal click synth loop kick snare crowd "
         "street forest thunder whistle motor train siren organ violin flute ambience percussion").split()
PLURAL = {"bird": "Birds", "drum": "drums", "bell": "BELLS", "door": "doors"}  # written plural in some rows
NOISE_TAGS = ["the", "and", "of", "x", "b", "808", "440", "mp3", "lo-fi"]  # stop words, one letter, numeric
EVERYWHERE = "sound"  # on every clip: above --max-fraction
VAL_FRACTION = 0.15

# Bad inputs: id -> the reason the report must give.
BROKEN, EMPTY, SILENT, MISSING, BAD_UTF8, NO_TAG, EXCLUDED, NO_FRAMES = range(900001, 900009)
EXPECTED_SKIPS = {BROKEN: "undecodable audio", EMPTY: "empty audio file", NO_FRAMES: "empty audio file",
                  SILENT: "silent audio",
                  MISSING: "missing audio file", BAD_UTF8: "tags not valid UTF-8", NO_TAG: "no usable tag",
                  EXCLUDED: "excluded id"}
MALFORMED_LINES = ("abc,piano drum", '12,"piano drum', "13,piano,drum")


def tone(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """A decaying tone over a little noise: some energy in a few mel bands, like a short field clip."""
    t = np.arange(int(seconds * sr)) / sr
    y = np.sin(2 * np.pi * rng.uniform(100, 4000) * t) * np.exp(-t * rng.uniform(0.5, 4))
    return (0.5 * y + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def write_corpus(root: Path) -> tuple[Path, Path, Path, dict[int, list[str]]]:
    """Audio folder, tag CSV and exclude list in the builder's input layout; returns each clip's raw tags."""
    rng = np.random.default_rng(7)
    audio = root / "audio"
    (audio / "sub").mkdir(parents=True)
    raw: dict[int, list[str]] = {}
    for i in range(N_CLIPS):
        clip_id = 1000 + i
        words = list(rng.choice(WORDS, size=rng.integers(2, 5), replace=False))
        tags = [PLURAL.get(w, w) if i % 2 else w for w in words] + [EVERYWHERE]
        tags += list(rng.choice(NOISE_TAGS, size=2, replace=False))
        raw[clip_id] = tags
        sr, ext = ((16000, "flac") if i % 25 == 0 else (SAMPLE_RATE, "wav"))
        folder = audio / "sub" if i % 10 == 0 else audio
        sf.write(folder / f"{clip_id}.{ext}", tone(rng, rng.uniform(1, 2), sr), sr)
    for clip_id in (BROKEN, EMPTY, NO_FRAMES, SILENT, BAD_UTF8, NO_TAG, EXCLUDED):
        raw[clip_id] = ["piano", "drum", EVERYWHERE]
        sf.write(audio / f"{clip_id}.wav", tone(rng, 1.0, SAMPLE_RATE), SAMPLE_RATE)
    raw[MISSING] = ["piano", "drum", EVERYWHERE]
    raw[NO_TAG] = ["the", "808", "x"]
    (audio / f"{BROKEN}.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio" + bytes(range(256)))
    (audio / f"{EMPTY}.wav").write_bytes(b"")
    sf.write(audio / f"{NO_FRAMES}.wav", np.zeros(0, dtype=np.float32), SAMPLE_RATE)  # a header, no samples
    sf.write(audio / f"{SILENT}.wav", np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    sf.write(audio / "777777.wav", tone(rng, 1.0, SAMPLE_RATE), SAMPLE_RATE)  # audio with no CSV row

    lines = [b"id,tags"]
    for clip_id, tags in raw.items():
        text = " ".join(tags).encode()
        lines.append(f"{clip_id},".encode() + (text + b" caf\xe9" if clip_id == BAD_UTF8 else text))
    lines[5:5] = [line.encode() for line in MALFORMED_LINES]
    (root / "tags.csv").write_bytes(b"\r\n".join(lines) + b"\r\n")
    (root / "exclude.json").write_text(json.dumps([EXCLUDED, str(123456789)]))
    return audio, root / "tags.csv", root / "exclude.json", raw


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path, Path, dict[int, list[str]]]:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def options_for(corpus, out: Path, **overrides) -> BuildOptions:
    audio, tags_csv, exclude, _ = corpus
    settings = dict(audio_dir=audio, tags_csv=tags_csv, name="test", out_dir=out / "hdf5_ds", json_dir=out / "json",
                    num_tags=1000, min_count=5, max_fraction=0.7, val_fraction=VAL_FRACTION, exclude_ids=exclude,
                    workers=2, seed=0, progress=False)
    return BuildOptions(**{**settings, **overrides})


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory) -> tuple[BuildOptions, dict]:
    options = options_for(corpus, tmp_path_factory.mktemp("out"))
    return options, build_dataset(options)


def read_hdf5(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        assert list(f) == ["dataset"]
        assert sorted(f["dataset"]) == ["data", "id", "label"]
        return {k: f["dataset"][k][()] for k in ("id", "data", "label")}


@pytest.mark.slow
def test_hdf5_pair_has_the_release_layout_with_the_vocabulary_width(built):
    options, report = built
    vocabulary = json.loads(options.vocabulary_file.read_text())
    assert list(vocabulary) == [str(i) for i in range(len(vocabulary))]
    n_tags = len(vocabulary)
    assert n_tags == report["tags_kept"] == len(WORDS)
    for path, size in ((options.train_file, report["train_size"]), (options.validation_file, report["validation_size"])):
        d = read_hdf5(path)
        assert d["id"].shape == (size, 1) and d["id"].dtype == np.int32
        assert d["data"].shape == (size, N_MELS, PATCH_FRAMES) and d["data"].dtype == np.float32
        assert d["label"].shape == (size, n_tags) and d["label"].dtype == np.int16
        assert set(np.unique(d["label"])) == {0, 1} and (d["label"].sum(axis=1) >= 1).all()
    train = read_hdf5(options.train_file)["data"]
    assert train.min() == pytest.approx(0.0, abs=1e-6) and train.max() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.slow
def test_vocabulary_has_no_stop_words_one_letter_numeric_plural_or_everywhere_tags(built):
    options, _ = built
    vocabulary = set(json.loads(options.vocabulary_file.read_text()).values())
    assert vocabulary == set(WORDS)  # so: "the", "of", "x", "808", "mp3", "birds" and "sound" are all out
    assert EVERYWHERE not in vocabulary


@pytest.mark.slow
def test_labels_are_the_clips_singular_tags(built, corpus):
    options, _ = built
    raw = corpus[3]
    vocabulary = list(json.loads(options.vocabulary_file.read_text()).values())
    d = read_hdf5(options.train_file)
    for clip_id, label in zip(d["id"][:, 0], d["label"]):
        words = {w.lower() for w in raw[int(clip_id)]}
        expected = {w for w in WORDS if w in words or PLURAL.get(w, "").lower() in words}
        assert {vocabulary[i] for i in np.flatnonzero(label)} == expected


@pytest.mark.slow
def test_validation_share_is_near_the_fraction_and_disjoint(built):
    options, report = built
    train_ids = set(read_hdf5(options.train_file)["id"][:, 0])
    val_ids = set(read_hdf5(options.validation_file)["id"][:, 0])
    assert not train_ids & val_ids
    assert len(train_ids) + len(val_ids) == report["clips_kept"] == N_CLIPS
    assert abs(len(val_ids) / report["clips_kept"] - VAL_FRACTION) < 0.02


@pytest.mark.slow
def test_every_bad_input_is_named_in_the_report(built):
    options, report = built
    assert json.loads(options.report_file.read_text()) == report
    by_id = {s["id"]: s["reason"] for s in report["skipped"] if "id" in s}
    assert {clip_id: by_id.get(clip_id) for clip_id in EXPECTED_SKIPS} == EXPECTED_SKIPS
    malformed = [s for s in report["skipped"] if s["reason"] == "malformed row"]
    assert sorted(s["line"] for s in malformed) == [6, 7, 8]  # header is line 1
    assert report["clips_read"] == N_CLIPS + len(EXPECTED_SKIPS) + len(MALFORMED_LINES)
    assert report["clips_skipped"] == len(EXPECTED_SKIPS) + len(MALFORMED_LINES)
    assert report["audio_files_without_row"] == 1


@pytest.mark.slow
def test_data_is_the_max_energy_patch_scaled_by_a_scaler_fitted_on_training_clips_only(built, corpus):
    options, _ = built
    train, val = read_hdf5(options.train_file), read_hdf5(options.validation_file)
    audio_files = {clip_id: paths[0] for clip_id, paths in find_audio_files(corpus[0]).items()}
    raw_train = load_patches([cache_file(options.cache_dir, i, audio_files[i]) for i in train["id"][:, 0]])
    scaler = load_scaler(options.scaler_file)
    expected = MinMaxScaler.fit(raw_train)
    np.testing.assert_allclose(scaler.data_min, expected.data_min)
    np.testing.assert_allclose(scaler.data_max, expected.data_max)
    assert scaler.n_samples_seen == expected.n_samples_seen
    clip_id = int(val["id"][0, 0])
    audio = next(corpus[0].rglob(f"{clip_id}.*"))
    np.testing.assert_allclose(val["data"][0], scaler.transform(max_energy_patch(compute_spectrogram(audio))), atol=1e-6)


@pytest.mark.slow
def test_an_interrupted_build_resumes_from_the_cache(built, corpus, tmp_path):
    options, report = built
    cached = sorted(options.cache_dir.glob("*.npy"))
    assert len(cached) == N_CLIPS and not list(options.cache_dir.glob("*.tmp"))
    kept_mtimes = {p: p.stat().st_mtime_ns for p in cached[::2]}
    for p in cached[1::2]:  # as if the first build had been killed half way
        p.unlink()
    again = build_dataset(options)
    assert {p: p.stat().st_mtime_ns for p in kept_mtimes} == kept_mtimes
    assert len(list(options.cache_dir.glob("*.npy"))) == N_CLIPS
    assert again == report
    # a clip whose audio changed after it was cached is computed again, and its old entry goes
    clip_id = int(cached[0].name.split(".")[0])
    audio = next(corpus[0].rglob(f"{clip_id}.*"))
    os.utime(audio, ns=(cached[0].stat().st_mtime_ns + 10**9,) * 2)
    assert compute_patches({clip_id: audio}, options.cache_dir, workers=1, progress=False) == []
    assert cache_file(options.cache_dir, clip_id, audio).is_file() and not cached[0].exists()


def test_nothing_usable_is_one_clear_error(corpus, tmp_path, capsys):
    audio = corpus[0]
    (tmp_path / "bad.csv").write_bytes(b"id,tags\n900001,piano\n900004,piano\nnot a row\n")
    code = create_dataset.main(["--audio-dir", str(audio), "--tags-csv", str(tmp_path / "bad.csv"), "--name", "x",
                                "--out-dir", str(tmp_path / "h"), "--json-dir", str(tmp_path / "j"), "--workers", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert err[-1].startswith("error: nothing usable left") and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "h" / "spec_tags_x").exists()


def test_bad_options_and_files_are_one_line_errors(corpus, tmp_path, capsys):
    audio, tags_csv = corpus[0], corpus[1]
    (tmp_path / "exclude.json").write_text('{"ids": [1]}')
    (tmp_path / "noheader.csv").write_text("1,piano\n")
    cases = [(["--tags-csv", str(tmp_path / "nope.csv")], "nope.csv: tag CSV not found"),
             (["--tags-csv", str(tags_csv), "--val-fraction", "1.5"], "--val-fraction"),
             (["--tags-csv", str(tags_csv), "--exclude-ids", str(tmp_path / "exclude.json")], "exclude.json"),
             (["--tags-csv", str(tmp_path / "noheader.csv")], "noheader.csv: line 1 must be a header")]
    for extra, expected in cases:
        code = create_dataset.main(["--audio-dir", str(audio), "--name", "x", "--out-dir", str(tmp_path / "h"),
                                    "--json-dir", str(tmp_path / "j"), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code != 0 and len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err


def test_an_unwritable_output_folder_stops_before_any_spectrogram(corpus, tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    for option in ("--json-dir", "--out-dir"):
        out = {"--out-dir": str(tmp_path / "h"), "--json-dir": str(tmp_path / "j"), option: str(tmp_path / "a_file" / "x")}
        code = create_dataset.main(["--audio-dir", str(corpus[0]), "--tags-csv", str(corpus[1]), "--name", "x",
                                    "--workers", "1", *[item for pair in out.items() for item in pair]])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {option}: cannot write into"), err
        assert not list(tmp_path.rglob("*.npy"))


@pytest.mark.slow
def test_a_failed_rebuild_leaves_the_earlier_set_whole(built, monkeypatch):
    """The five outputs change together: a rebuild failing at its second file changes none of them."""
    options, _ = built
    outputs = [options.train_file, options.validation_file, options.vocabulary_file, options.scaler_file,
               options.report_file]
    before = {path: path.read_bytes() for path in outputs}
    from coala.data import builder
    real_write, calls = builder.write_hdf5, []

    def write_then_fail(path, *args):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(path))
        real_write(path, *args)

    monkeypatch.setattr(builder, "write_hdf5", write_then_fail)
    with pytest.raises(OSError):
        build_dataset(replace(options, seed=1))  # another split: every file would differ
    assert {path: path.read_bytes() for path in outputs} == before
    leftovers = [p.name for folder in (options.out_dir, options.json_dir) for p in folder.iterdir() if p.name.startswith(".")
                 and p != options.cache_dir]
    assert leftovers == []


def test_split_needs_a_clip_on_each_side():
    labels = np.ones((2, 3), dtype=np.int16)
    assert [list(part) for part in split_train_validation(labels, 0.1, seed=0)] in ([[0], [1]], [[1], [0]])
    with pytest.raises(DatasetError, match="1 usable clips are too few"):
        split_train_validation(labels[:1], 0.1, seed=0)


@pytest.mark.slow
def test_a_training_run_on_the_result_works(corpus, tmp_path):
    # 80 of the clips (one epoch of four models on CPU stays a few seconds): about 30 tags, not 1000
    tags_csv = tmp_path / "tags.csv"
    tags_csv.write_bytes(b"\n".join(corpus[1].read_bytes().splitlines()[:81]))
    options = options_for(corpus, tmp_path, tags_csv=tags_csv, min_count=3, exclude_ids=None, name="small")
    report = build_dataset(options)
    assert 20 <= report["tags_kept"] <= len(WORDS) and report["train_size"] >= 16
    config = {"experiment_name": "built", "train_dataset_file": str(options.train_file),
              "validation_dataset_file": str(options.validation_file), "audio_loss_weight": 5, "tag_loss_weight": 5,
              "contrastive_loss_weight": 10, "contrastive_temperature": 0.1, "epochs": 1, "batch_size": 16,
              "learning_rate": 0.005, "device": "cpu", "id2tag_file": str(options.vocabulary_file),
              "log_interval": 1, "save_model_every": 1, "checkpoint_dir": str(tmp_path / "saved_models"),
              "log_dir": str(tmp_path / "runs")}
    (tmp_path / "config.json").write_text(json.dumps(config))
    run = subprocess.run([sys.executable, "train_dual_ae.py", str(tmp_path / "config.json")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    folder = tmp_path / "saved_models" / "built"
    for part in ("audio_encoder", "audio_decoder", "tag_encoder", "tag_decoder"):
        assert (folder / f"{part}_epoch_1.pt").is_file()
    tag_encoder = torch.load(folder / "tag_encoder_epoch_1.pt", map_location="cpu", weights_only=True)
    assert tag_encoder["tag_encoder.0.weight"].shape == (512, report["tags_kept"])


def test_workers_beyond_the_bound_are_refused(corpus, tmp_path):
    with pytest.raises(DatasetError, match="--workers must be between 1 and"):
        build_dataset(options_for(corpus, tmp_path, workers=100_000))
