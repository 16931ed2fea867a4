"""encode.py's command line and batch function: outputs, resumption, failures, dataset layouts, MFCC."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from coala.core.frontend import N_MELS, PATCH_FRAMES, SAMPLE_RATE
from coala.audio.scaler import MinMaxScaler, save_scaler
from coala.core.errors import AudioError
from coala.core.model import LATENT_DIM
from conftest import CLIPS
from encode import encode_files, extract_audio_embedding_chunks, main, return_loaded_model
from models_t1000 import CNN, AudioEncoder, TagEncoder
from test_audio_frontend import assert_close_embedding

# (relative path, sample rate, channels, seconds, soundfile subtype): formats, rates and lengths on
# both sides of the 10 s padding limit, in nested subfolders.
CLIP_SPECS = [
    ("street.wav", 44100, 2, 3.0, "PCM_16"),
    ("long_16k.flac", 16000, 1, 12.0, "PCM_16"),
    ("bird.ogg", 48000, 1, 5.0, "VORBIS"),
    ("sub/loop.wav", 22050, 1, 11.0, "FLOAT"),
    ("sub/deeper/exact.flac", SAMPLE_RATE, 1, 2.0, "PCM_24"),
]
BROKEN = "sub/broken.wav"


def write_clip(path: Path, sr: int, channels: int, seconds: float, subtype: str = "PCM_16", seed: int = 0) -> None:
    """A few decaying tones over noise: enough spectral structure for embeddings to differ between files."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    y = 0.02 * rng.standard_normal((t.size, channels))
    for f in rng.uniform(80, 4000, size=4):
        y += (0.2 * np.sin(2 * np.pi * f * t) * np.exp(-t % 1.0 * 3))[:, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(y, -1, 1), sr, subtype=subtype)


def run_cli(capsys, *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv] + ["--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def scaler_file(tmp_path_factory) -> Path:
    patches = np.random.default_rng(1).uniform(-16.0, 4.0, size=(8, N_MELS, PATCH_FRAMES))
    path = tmp_path_factory.mktemp("scaler") / "scaler.json"
    save_scaler(MinMaxScaler.fit(patches), path)
    return path


def save_random(model_class, path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model_class().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def encoder_ckpt(tmp_path_factory) -> Path:
    return save_random(AudioEncoder, tmp_path_factory.mktemp("models") / "dual_ae_c" / "audio_encoder_epoch_200.pt")


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    for seed, (name, sr, channels, seconds, subtype) in enumerate(CLIP_SPECS):
        write_clip(root / name, sr, channels, seconds, subtype, seed)
    (root / BROKEN).write_bytes(b"RIFF\x00\x10\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    (root / "notes.txt").write_text("not audio, not encoded")
    return root


@pytest.mark.slow
def test_folder_outputs_mirror_the_tree_match_the_notebook_and_resume(capsys, tmp_path, clip_folder, encoder_ckpt,
                                                                       scaler_file):
    out = tmp_path / "out"
    argv = ["--model", encoder_ckpt, "--scaler", scaler_file, "--input", clip_folder, "--output", out]
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 1, err
    assert stdout.strip() == f"done {len(CLIP_SPECS)}, skipped 0, failed 1 (reasons in {out / 'failures.tsv'})"
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.npy"))
    assert written == sorted(str(Path(name).with_suffix(".npy")) for name, *_ in CLIP_SPECS)
    assert not [p for p in out.rglob(".*")], "temporary files left behind"
    rows = (out / "failures.tsv").read_text().splitlines()
    assert rows[0] == "path\treason" and len(rows) == 2
    assert rows[1].startswith(f"{clip_folder / BROKEN}\t") and len(rows[1].split("\t")) == 2

    model = return_loaded_model(AudioEncoder, encoder_ckpt)
    for name, *_ in CLIP_SPECS:
        saved = np.load(out / Path(name).with_suffix(".npy"))
        expected, _ = extract_audio_embedding_chunks(model, clip_folder / name, scaler_file)
        assert saved.dtype == np.float32 and saved.shape == (expected.shape[0], LATENT_DIM)
        np.testing.assert_allclose(saved, expected.numpy(), rtol=0, atol=1e-5)

    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")}
    code, stdout, _ = run_cli(capsys, *argv)
    assert code == 1 and stdout.startswith(f"done 0, skipped {len(CLIP_SPECS)}, failed 1")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")} == mtimes

    broken_bytes = (clip_folder / BROKEN).read_bytes()
    write_clip(clip_folder / BROKEN, 16000, 1, 1.0)  # fixed by the user: the next run encodes it
    try:
        code, stdout, _ = run_cli(capsys, *argv)
    finally:
        (clip_folder / BROKEN).write_bytes(broken_bytes)
    assert code == 0 and stdout.strip() == f"done 1, skipped {len(CLIP_SPECS)}, failed 0"
    assert not (out / "failures.tsv").exists(), "a failure list must go once its files are encoded"


@pytest.mark.slow
def test_failures_stay_listed_until_their_files_are_encoded(capsys, tmp_path, clip_folder, encoder_ckpt, scaler_file):
    """Run A fails on a file; run B, on other files into the same folder, keeps A's entry and adds its own;
    once A's file is fixed and encoded, its entry goes and B's stays."""
    out, broken = tmp_path / "out", tmp_path / "a" / "broken.wav"
    broken.parent.mkdir()
    broken.write_bytes((clip_folder / BROKEN).read_bytes())
    other_broken = tmp_path / "b" / "also_broken.wav"
    other_broken.parent.mkdir()
    other_broken.write_bytes(b"not audio at all")
    base = ["--model", encoder_ckpt, "--scaler", scaler_file, "--output", out]
    code, _, _ = run_cli(capsys, *base, "--input", broken)
    assert code == 1
    code, _, _ = run_cli(capsys, *base, "--input", clip_folder / CLIP_SPECS[0][0], other_broken)
    assert code == 1
    listed = (out / "failures.tsv").read_text().splitlines()
    assert listed[0] == "path\treason"
    assert sorted(line.split("\t")[0] for line in listed[1:]) == sorted([str(broken), str(other_broken)])
    write_clip(broken, 16000, 1, 1.0)
    code, stdout, _ = run_cli(capsys, *base, "--input", broken)
    assert code == 0 and stdout.startswith("done 1,")
    assert [line.split("\t")[0] for line in (out / "failures.tsv").read_text().splitlines()[1:]] == [str(other_broken)]


def test_concurrent_failure_updates_lose_no_entry(tmp_path):
    """Each update reads, merges and rewrites the list under the lock: none overwrites another's entries."""
    from concurrent.futures import ThreadPoolExecutor

    from coala.encode.jobs import FileJob

    from coala.encode.failures import update_failures

    path = tmp_path / "failures.tsv"

    def fail(i: int) -> None:
        source = tmp_path / f"clip_{i}.wav"
        update_failures(path, [FileJob(source, tmp_path / f"clip_{i}.npy")], [(source, f"reason {i}")],
                         lambda job: job.output.exists())
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fail, range(40)))
    rows = path.read_text().splitlines()
    assert rows[0] == "path\treason"
    assert sorted(rows[1:]) == sorted(f"{tmp_path / f'clip_{i}.wav'}\treason {i}" for i in range(40))


@pytest.mark.slow
def test_encode_files_equals_the_single_file_function(clip_folder, encoder_ckpt, scaler_file):
    model = return_loaded_model(AudioEncoder, encoder_ckpt)
    paths = [clip_folder / name for name, *_ in CLIP_SPECS]
    # batch_size 3 cuts files across forwards and runs the 5-chunk files in several.
    for (embedding, embedding_d), path in zip(encode_files(model, paths, scaler_file, batch_size=3), paths, strict=True):
        expected, expected_d = extract_audio_embedding_chunks(model, path, scaler_file)
        torch.testing.assert_close(embedding, expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(embedding_d, expected_d, rtol=0, atol=1e-5)
    with pytest.raises(AudioError, match="broken.wav"):
        encode_files(model, [paths[0], clip_folder / BROKEN], scaler_file)


def test_cnn_is_detected_from_its_keys(capsys, tmp_path, clip_folder, scaler_file):
    ckpt = save_random(CNN, tmp_path / "cnn" / "audio_encoder_epoch_20.pt")
    clip = clip_folder / CLIP_SPECS[0][0]
    code, _, err = run_cli(capsys, "--model", ckpt, "--scaler", scaler_file, "--input", clip, "--output", tmp_path / "o")
    assert code == 0, err
    expected, _ = extract_audio_embedding_chunks(return_loaded_model(CNN, ckpt), clip, scaler_file)
    np.testing.assert_allclose(np.load(tmp_path / "o" / f"{clip.stem}.npy"), expected.numpy(), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_reference_clips_match_the_papers_code(capsys, tmp_path, reference):
    scaler = reference / "original" / "scaler_top_1000.pkl"
    for checkpoint, key in (("audio_encoder.pt", "embedding"), ("cnn.pt", "cnn_embedding")):
        out = tmp_path / key
        code, _, err = run_cli(capsys, "--model", reference / "checkpoints" / checkpoint, "--scaler", scaler,
                               "--input", reference / "audio", "--output", out)
        assert code == 0, err
        for clip in CLIPS:
            stem = clip.split(".")[0]
            expected = np.load(reference / "expected" / f"{stem}.npz")[key]
            assert_close_embedding(np.load(out / f"{stem}.npy"), expected, clip)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Tiny UrbanSound8K, GTZAN and NSynth trees in the paper's layout (short clips, real naming)."""
    data = tmp_path_factory.mktemp("data")
    us8k = data / "UrbanSound8K"
    (us8k / "metadata").mkdir(parents=True)
    (us8k / "metadata" / "UrbanSound8K.csv").write_text(
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
        "100032-3-0-0.wav,100032,0.0,0.317,1,5,3,dog_bark\n"
        "100263-2-0-117.wav,100263,58.5,62.5,1,5,2,children_playing\n"
        "101415-3-0-2.wav,101415,1.0,2.0,1,1,3,dog_bark\n")
    write_clip(us8k / "audio" / "fold5" / "100032-3-0-0.wav", 44100, 2, 0.317, seed=1)
    write_clip(us8k / "audio" / "fold5" / "100263-2-0-117.wav", 48000, 1, 4.0, "PCM_24", seed=2)
    write_clip(us8k / "audio" / "fold1" / "101415-3-0-2.wav", 22050, 2, 1.0, seed=3)
    for seed, name in enumerate(["blues/blues.00000.wav", "rock/rock.00042.au"]):  # GTZAN ships as .au
        write_clip(data / "GTZAN" / "genres" / name, 22050, 1, 3.0, seed=10 + seed)
    (data / "GTZAN" / "train_filtered.txt").write_text("blues/blues.00000.wav\n")
    (data / "GTZAN" / "test_filtered.txt").write_text("rock/rock.00042.wav\n")
    nsynth = data / "nsynth"
    write_clip(nsynth / "nsynth-train" / "audio_selected" / "guitar_electronic_000-076-025.wav", 16000, 1, 1.0, seed=20)
    write_clip(nsynth / "nsynth-test" / "audio" / "bass_synthetic_033-050-100.wav", 16000, 1, 1.0, seed=21)
    return data


DATASET_STEMS = {
    "us8k": ["100032-3-0-0", "100263-2-0-117", "101415-3-0-2"],
    "gtzan": ["blues.00000", "rock.00042"],
    "nsynth/train": ["guitar_electronic_000-076-025"],
    "nsynth/test": ["bass_synthetic_033-050-100"],
}


@pytest.mark.slow
def test_dataset_mode_writes_where_classify_looks(capsys, data_dir, encoder_ckpt, scaler_file):
    code, stdout, err = run_cli(capsys, "--model", encoder_ckpt, "--scaler", scaler_file, "--dataset", "all",
                                "--data-dir", data_dir, "--workers", "2")  # worker processes decode
    assert code == 0, err
    assert stdout.strip() == "done 7, skipped 0, failed 0"
    model = return_loaded_model(AudioEncoder, encoder_ckpt)
    for key, stems in DATASET_STEMS.items():
        folder = data_dir / "embeddings" / key / "embeddings_dual_ae_c_200"
        assert sorted(p.stem for p in folder.glob("*.npy")) == stems
    saved = np.load(data_dir / "embeddings" / "us8k" / "embeddings_dual_ae_c_200" / "100032-3-0-0.npy")
    expected, _ = extract_audio_embedding_chunks(model, data_dir / "UrbanSound8K" / "audio" / "fold5" / "100032-3-0-0.wav",
                                                 scaler_file)
    np.testing.assert_allclose(saved, expected.numpy(), rtol=0, atol=1e-5)


def test_nsynth_training_notes_are_read_through_the_selection_without_audio_selected(capsys, tmp_path, encoder_ckpt,
                                                                                      scaler_file):
    """Without nsynth-train/audio_selected/ the selected notes come from nsynth-train/audio/ via the JSON;
    a selected note that is not there is a reported failure, not a silent gap."""
    data = tmp_path / "data"
    train_audio = data / "nsynth" / "nsynth-train" / "audio"
    for seed, name in enumerate(["guitar_electronic_000-076-025", "bass_synthetic_033-050-100", "reed_acoustic_011-060-050"]):
        write_clip(train_audio / f"{name}.wav", 16000, 1, 1.0, seed=30 + seed)
    write_clip(data / "nsynth" / "nsynth-test" / "audio" / "flute_acoustic_002-077-100.wav", 16000, 1, 1.0, seed=40)
    selection = tmp_path / "selection.json"
    selection.write_text(json.dumps({"guitar": ["guitar_electronic_000-076-025.wav"],
                                     "bass": ["bass_synthetic_033-050-100.wav", "bass_electronic_018-022-100.wav"]}))
    code, stdout, err = run_cli(capsys, "--model", encoder_ckpt, "--scaler", scaler_file, "--dataset", "nsynth",
                                "--data-dir", data, "--nsynth-selection", selection)
    assert code == 1 and stdout.startswith("done 3, skipped 0, failed 1"), (stdout, err)
    train = data / "embeddings" / "nsynth" / "train" / "embeddings_dual_ae_c_200"
    assert sorted(p.stem for p in train.glob("*.npy")) == ["bass_synthetic_033-050-100", "guitar_electronic_000-076-025"]
    assert "bass_electronic_018-022-100.wav\tno such file" in (train / "failures.tsv").read_text()
    assert (data / "embeddings" / "nsynth" / "test" / "embeddings_dual_ae_c_200" / "flute_acoustic_002-077-100.npy").is_file()


def test_a_named_selection_that_is_not_there_stops_before_any_work(capsys, tmp_path, encoder_ckpt, scaler_file):
    code, stdout, err = run_cli(capsys, "--model", encoder_ckpt, "--scaler", scaler_file, "--dataset", "nsynth",
                                "--data-dir", tmp_path, "--nsynth-selection", tmp_path / "nope.json")
    assert code == 2 and stdout == "" and err == f"error: --nsynth-selection: no such file {tmp_path / 'nope.json'}\n"


def paper_mfcc(path: Path) -> np.ndarray:
    """The paper's extract_mfcc recipe, written out with librosa calls (reflect STFT padding of librosa 0.7.2)."""
    y, sr = librosa.load(path, sr=SAMPLE_RATE, res_type="kaiser_fast")
    mfcc = librosa.feature.mfcc(y=y, sr=sr, pad_mode="reflect")
    d1 = librosa.feature.delta(mfcc, width=5, mode="nearest")
    d2 = librosa.feature.delta(mfcc, order=2, width=5, mode="nearest")
    return np.concatenate([mfcc.mean(1), mfcc.var(1), d1.mean(1), d1.var(1), d2.mean(1), d2.var(1)])


@pytest.mark.slow
def test_mfcc_baseline_vectors(capsys, data_dir):
    code, stdout, err = run_cli(capsys, "--features", "mfcc", "--dataset", "gtzan", "--data-dir", data_dir)
    assert code == 0 and stdout.startswith("done 2,"), err
    for stem in DATASET_STEMS["gtzan"]:
        vector = np.load(data_dir / "embeddings" / "gtzan" / "mfcc" / f"{stem}.npy")
        assert vector.dtype == np.float32 and vector.shape == (120,)  # mean and variance of 20 MFCCs and their two deltas
        [source] = (data_dir / "GTZAN" / "genres" / stem.split(".")[0]).glob(f"{stem}.*")
        np.testing.assert_allclose(vector, paper_mfcc(source), rtol=1e-4, atol=1e-4)


def test_missing_dataset_folders(capsys, tmp_path, data_dir, encoder_ckpt, scaler_file):
    only_us8k = tmp_path / "data"
    only_us8k.mkdir()
    (only_us8k / "UrbanSound8K").symlink_to(data_dir / "UrbanSound8K")
    base = ["--model", encoder_ckpt, "--scaler", scaler_file, "--data-dir", only_us8k]
    code, _, err = run_cli(capsys, *base, "--dataset", "gtzan")
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "GTZAN" in err
    code, stdout, err = run_cli(capsys, *base, "--dataset", "all")
    assert code == 0 and stdout.startswith("done 3,")
    notes = err.strip().splitlines()
    assert len(notes) == 3 and all(line.startswith("note: ") and line.endswith("skipped") for line in notes)


@pytest.mark.parametrize("case", ["missing checkpoint", "tag encoder checkpoint", "cnn as audio_encoder", "no audio files",
                                  "no model"])
def test_bad_command_lines_get_one_line_errors(capsys, tmp_path, clip_folder, encoder_ckpt, scaler_file, case):
    models = {"missing checkpoint": tmp_path / "nope.pt",
              "tag encoder checkpoint": save_random(TagEncoder, tmp_path / "tag_encoder_epoch_1.pt"),
              "cnn as audio_encoder": save_random(CNN, tmp_path / "cnn.pt")}
    inputs = tmp_path / "empty" if case == "no audio files" else clip_folder
    inputs.mkdir(exist_ok=True)
    argv = ["--scaler", scaler_file, "--input", inputs, "--output", tmp_path / "out"]
    if case != "no model":
        argv = ["--model", models.get(case, encoder_ckpt), "--model-type", "audio_encoder" if case == "cnn as audio_encoder" else "auto", *argv]
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 2 and stdout == ""
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    expected_word = {"missing checkpoint": "nope.pt", "tag encoder checkpoint": "tag_encoder",
                     "cnn as audio_encoder": "not a checkpoint of audio_encoder", "no audio files": "no audio files", "no model": "--model"}[case]
    assert expected_word in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_an_interrupted_run_leaves_complete_files_and_resumes(tmp_path, clip_folder):
    from coala.audio.mfcc import mfcc_features
    from coala.encode.jobs import plan_inputs
    from coala.encode.run import run_extraction

    calls = []

    def interrupted_on_the_third_file(path: Path) -> np.ndarray:
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return mfcc_features(path)

    tasks = [t for t in plan_inputs([clip_folder], tmp_path / "out") if t.source.name != "broken.wav"]
    with pytest.raises(KeyboardInterrupt):
        run_extraction(tasks, interrupted_on_the_third_file, tmp_path / "out" / "failures.tsv", progress=False)
    written = sorted((tmp_path / "out").rglob("*"))
    assert [p for p in written if p.is_file()] == sorted(t.output for t in tasks[:2])
    summary = run_extraction(tasks, mfcc_features, tmp_path / "out" / "failures.tsv", progress=False)
    assert (summary.done, summary.skipped, summary.failed) == (len(tasks) - 2, 2, 0)
    for task in tasks:  # the run holds numpy's BLAS to one thread: the same numbers up to summation order
        np.testing.assert_allclose(np.load(task.output), mfcc_features(task.source), rtol=1e-4, atol=1e-4)


def test_inference_model_folds_batchnorm_without_changing_outputs():
    from coala.encode.inference import inference_model
    for model in (AudioEncoder(), CNN()):
        for module in model.modules():  # non-trivial statistics, as a trained model has
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
                module.weight.data.uniform_(0.5, 2.0)
        model.eval()
        folded = inference_model(model)
        assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout)) for m in folded.modules())
        x = torch.rand(5, 1, 96, 96)
        with torch.inference_mode():
            for ours, stock in zip(folded(x), model(x)):
                assert float((ours - stock).norm() / stock.norm()) < 1e-5
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched


def test_bf16_option_runs_the_model_in_bfloat16(capsys, tmp_path, clip_folder, encoder_ckpt, scaler_file):
    """--bf16 autocasts the model only: outputs stay float32 and close to the float32 run's; the MFCC
    baseline has no model, so the option is refused there."""
    from test_audio_frontend import cosine

    clip = clip_folder / CLIP_SPECS[0][0]
    base = ["--model", encoder_ckpt, "--scaler", scaler_file, "--input", clip]
    assert run_cli(capsys, *base, "--output", tmp_path / "f32")[0] == 0
    code, _, err = run_cli(capsys, *base, "--output", tmp_path / "bf16", "--bf16")
    assert code == 0, err
    f32, bf16 = (np.load(tmp_path / d / f"{clip.stem}.npy") for d in ("f32", "bf16"))
    assert bf16.dtype == np.float32 and bf16.shape == f32.shape
    assert cosine(bf16, f32).min() >= 0.999 and not np.array_equal(bf16, f32)
    code, _, err = run_cli(capsys, "--features", "mfcc", "--bf16", "--input", clip, "--output", tmp_path / "m")
    assert code == 2 and err.startswith("error: ") and "--bf16" in err


def test_a_run_sweeps_killed_writers_temporaries_and_checks_its_output_first(tmp_path, clip_folder):
    from coala.audio.mfcc import mfcc_features
    from coala.encode.jobs import plan_inputs
    from coala.encode.run import run_extraction
    from coala.core.errors import UsageError

    out = tmp_path / "out"
    tasks = [t for t in plan_inputs([clip_folder], out) if t.source.name != "broken.wav"]
    code = ("import sys, pathlib; from coala.atomic import _create_temporary; "
            "print(_create_temporary(pathlib.Path(sys.argv[1]), 'clip.npy'))")
    deep = tasks[-1].output.parent
    deep.mkdir(parents=True, exist_ok=True)
    left = Path(subprocess.run([sys.executable, "-c", code, str(deep)], capture_output=True, text=True,
                               check=True).stdout.strip())
    assert left.exists()
    run_extraction(tasks[:1], mfcc_features, out / "failures.tsv", progress=False)
    assert not left.exists()

    (tmp_path / "a_file").write_text("")
    calls = []
    with pytest.raises(UsageError, match="cannot write into"):
        run_extraction(tasks, lambda path: calls.append(path), tmp_path / "a_file" / "failures.tsv", progress=False)
    assert calls == []


def test_thousands_of_workers_are_refused_before_any_process_starts(capsys, tmp_path, clip_folder, encoder_ckpt,
                                                                   scaler_file):
    """Each DataLoader worker is a forked copy of the process: --workers 100000 would swamp the machine."""
    code, stdout, err = run_cli(capsys, "--model", encoder_ckpt, "--scaler", scaler_file, "--input", clip_folder,
                                "--output", tmp_path / "out", "--workers", "100000")
    assert code == 2 and stdout == "" and err.strip() == "error: --batch-size must be at least 1 and --workers between 0 and 64"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["../../elsewhere", ".hidden", "a/b"])
def test_a_name_that_is_no_plain_folder_name_is_refused(capsys, tmp_path, data_dir, name):
    """--name is a folder inside each dataset's embedding folder: '../..' wrote outside it."""
    code, stdout, err = run_cli(capsys, "--features", "mfcc", "--dataset", "gtzan", "--data-dir", data_dir, "--name", name)
    assert code == 2 and err.strip() == f"error: --name must be a plain folder name, got {name!r}"


def test_non_finite_embeddings_are_listed_failures_not_files(capsys, tmp_path, clip_folder, encoder_ckpt, scaler_file):
    """A finite scaler whose scale overflows float32 makes Inf/NaN outputs: listed, never written, exit 1."""
    extreme = json.loads(scaler_file.read_text())
    extreme["scale"] = [1e308] * len(extreme["scale"])
    (tmp_path / "extreme.json").write_text(json.dumps(extreme))
    out = tmp_path / "out"
    code, _, _ = run_cli(capsys, "--model", encoder_ckpt, "--scaler", tmp_path / "extreme.json", "--output", out,
                         "--input", clip_folder / CLIP_SPECS[0][0])
    assert code == 1
    assert not list(out.rglob("*.npy"))
    assert "non-finite values" in (out / "failures.tsv").read_text()
