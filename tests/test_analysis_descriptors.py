"""analyse.py descriptors: the paper's analysis recipe on generated clips, resuming, reporting.

The reference is the recipe written out here with librosa, numpy and scipy directly (as the paper's
analyse_sounds.py did it), not through coala.analysis.
"""
from __future__ import annotations

import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.stats
import soundfile as sf

import analyse
from coala.analysis import descriptors
from coala.cli import EXIT_FAILURES, EXIT_OK, EXIT_UNUSABLE
from coala.core.errors import AnalysisError

SR = 22000


def _paper_recipe(path: Path) -> dict[str, np.ndarray]:
    """The paper's analysis of one file: 22000 Hz, 10 s noise padding, max-magnitude 96-frame window."""
    y, _ = librosa.load(path, sr=SR)
    if y.size <= 10 * SR:
        x = np.zeros(10 * SR, dtype=np.float64)
        x[: y.size] = y
        x += 5e-4 * np.random.RandomState(0).rand(10 * SR)
    else:
        x = y
    s_db = librosa.power_to_db(librosa.feature.melspectrogram(y=x, sr=SR, n_fft=1024, hop_length=512, pad_mode="reflect"))
    s = np.abs(librosa.stft(y=x, n_fft=1024, hop_length=512, pad_mode="reflect"))
    frames = librosa.util.frame(np.asfortranarray(s), frame_length=96, hop_length=12)
    best = np.argmax(frames.sum(axis=(0, 1)))
    window = slice(best * 12, best * 12 + 96)
    s, s_db = s[:, window], s_db[:, window]
    features = {
        "mfcc": librosa.feature.mfcc(S=s_db, sr=SR),
        "chroma": librosa.feature.chroma_stft(S=s, sr=SR),
        "spectral_centroid": librosa.feature.spectral_centroid(S=s, sr=SR),
        "spectral_bandwitdh": librosa.feature.spectral_bandwidth(S=s, sr=SR),
        "spectral_rolloff": librosa.feature.spectral_rolloff(S=s, sr=SR),
    }
    out = {}
    for name, f in features.items():
        mean = name if name.startswith("spectral") else f"{name}_mean"
        out[mean], out[f"{name}_var"], out[f"{name}_skew"] = f.mean(axis=1), f.var(axis=1), scipy.stats.skew(f, axis=1)
    return out


def _write_clips(folder: Path) -> dict[int, Path]:
    """Three clips unlike each other: short (padded) at 22000 Hz, long stereo at 44.1 kHz, short at 16 kHz."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    t = np.arange(int(2.5 * SR)) / SR
    chirp = 0.3 * np.sin(2 * np.pi * (200 + 900 * t) * t) * np.exp(-t) + 0.02 * rng.standard_normal(t.size)
    t44 = np.arange(12 * 44100) / 44100
    bursts = (rng.standard_normal(t44.size) * (np.sin(2 * np.pi * 0.7 * t44) > 0.6))[:, None] * [0.2, 0.1]
    tone44 = 0.2 * np.sin(2 * np.pi * 330 * t44)[:, None] + bursts
    t16 = np.arange(int(1.2 * 16000)) / 16000
    pluck = sum(0.2 / k * np.sin(2 * np.pi * 220 * k * t16) for k in range(1, 6)) * np.exp(-4 * t16)
    clips = {11: (chirp, SR), 22: (tone44, 44100), 33: (pluck, 16000)}
    paths = {}
    for clip_id, (y, rate) in clips.items():
        paths[clip_id] = folder / f"{clip_id}.wav"
        sf.write(paths[clip_id], y.astype(np.float32), rate, subtype="FLOAT")
    return paths


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[int, Path]:
    return _write_clips(tmp_path_factory.mktemp("analysis_audio"))


@pytest.mark.slow
def test_descriptors_follow_the_papers_recipe(clips):
    for clip_id, path in clips.items():
        ours, paper = descriptors.file_descriptors(path), _paper_recipe(path)
        assert set(ours) == set(descriptors.DESCRIPTOR_KEYS) == set(paper)
        for key in descriptors.DESCRIPTOR_KEYS:
            got, want = np.asarray(ours[key]), paper[key]
            assert got.shape == want.shape, key
            scale = np.abs(want).max()
            tolerance = 0.05 if key in descriptors.MEAN_KEYS else 1e-3  # the bar; the rest is checked tighter
            assert np.all(np.abs(got - want) <= tolerance * scale), (clip_id, key, got, want)


def test_the_window_is_the_first_with_the_largest_magnitude_sum():
    magnitude = np.ones((4, 200))
    magnitude[:, 30:40] = 5.0  # inside windows starting 0, 12 and 24 alike: the first wins
    assert descriptors.max_energy_window(magnitude) == slice(0, 96)
    magnitude[:, 150:160] = 9.0  # only windows starting at 72, 84, ... reach it; 72 holds 30:40 too
    assert descriptors.max_energy_window(magnitude) == slice(72, 168)


def test_run_resumes_counts_missing_clips_and_reports_failures(tmp_path, clips, monkeypatch):
    audio = tmp_path / "audio"
    audio.mkdir()
    for clip_id, path in clips.items():
        (audio / path.name).write_bytes(path.read_bytes())
    (audio / "44.wav").write_bytes(b"not audio")
    out = tmp_path / "descriptors.json"
    done = descriptors.file_descriptors(clips[11])
    # A run killed after clip 11, while writing its next line.
    descriptors.partial_file(out).write_text(json.dumps([11, done]) + "\n[22, {\"mfcc_me")
    calls = []
    real = descriptors.file_descriptors
    monkeypatch.setattr(descriptors, "file_descriptors", lambda p: calls.append(p.name) or real(p))

    run = descriptors.compute_descriptors([11, 22, 33, 44, 55], audio, out, workers=1, progress=False)

    assert sorted(calls) == ["22.wav", "33.wav", "44.wav"]
    assert (run.written, run.computed, run.missing) == (3, 2, [55])
    assert [clip_id for clip_id, _ in run.failed] == [44]
    written = json.loads(out.read_text())
    assert list(written) == ["11", "22", "33"] and written["11"] == done
    assert not descriptors.partial_file(out).exists()


def test_cli_reads_ids_from_a_json_list_and_exits_1_on_missing_clips(tmp_path, clips):
    ids = tmp_path / "sound_ids_validation.json"
    ids.write_text(json.dumps([33, 99]))
    out = tmp_path / "d.json"
    status = analyse.main(["descriptors", "--audio-dir", str(clips[33].parent), "--dataset", str(ids),
                           "--out", str(out), "--workers", "1", "--quiet"])
    assert status == EXIT_FAILURES
    assert list(json.loads(out.read_text())) == ["33"]
    ids.write_text(json.dumps([33]))
    assert analyse.main(["descriptors", "--audio-dir", str(clips[33].parent), "--dataset", str(ids),
                         "--out", str(out), "--quiet"]) == EXIT_OK


def test_the_papers_file_layout_is_read(tmp_path):
    path = tmp_path / "sound_analysis_validation_set_librosa.json"
    path.write_text(json.dumps({"5": {"mfcc_mean": [1.0, 2.0], "spectral_centroid": [300.0]}, "6": None}))
    assert descriptors.read_descriptors(path) == {5: {"mfcc_mean": [1.0, 2.0], "spectral_centroid": [300.0]}}


@pytest.mark.parametrize("text", ["[1, 2]", "{\"5\": [1, 2]}", "{\"x\": {}}", "not json"])
def test_unusable_descriptor_files_are_refused_naming_them(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(AnalysisError, match=str(path)):
        descriptors.read_descriptors(path)


def test_an_unusable_id_list_is_refused(tmp_path, capsys):
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"a": 1}))
    status = analyse.main(["descriptors", "--audio-dir", str(tmp_path), "--dataset", str(ids), "--out", str(tmp_path / "o.json")])
    assert status == EXIT_UNUSABLE
    assert f"{ids}: expected a JSON list" in capsys.readouterr().err


def test_worker_processes_give_the_same_file(tmp_path, clips):
    folder = next(iter(clips.values())).parent
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    descriptors.compute_descriptors(list(clips), folder, one, workers=1, progress=False)
    run = descriptors.compute_descriptors(list(clips), folder, two, workers=2, progress=False)
    assert run.computed == len(clips)
    serial, parallel = json.loads(one.read_text()), json.loads(two.read_text())
    assert list(parallel) == list(serial)
    for clip_id, sets in serial.items():  # one BLAS thread per worker: float32 sums rounded in another order
        for key, values in sets.items():
            np.testing.assert_allclose(parallel[clip_id][key], values, rtol=0, atol=1e-6 * np.abs(values).max())
