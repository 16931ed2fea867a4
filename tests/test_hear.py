"""coala.hear: what hear-validator checks, agreement with the project's clip embedding, bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import coala.hear as hear
from coala import assets
from coala.core.frontend import HOP_LENGTH, SAMPLE_RATE, signal_chunks
from coala.audio.scaler import MinMaxScaler, save_scaler
from coala.core.errors import AudioInputError, CheckpointError, CoalaError, ConfigError, UsageError
from coala.core.model import embed
from coala.models.loading import load_model
from encode import extract_audio_embedding_chunks, return_loaded_model
from models_t1000 import CNN, AudioEncoder, TagEncoder
from run_folder import run_scaler, write_run_folder
from test_encode_cli import save_random, write_clip

HOP_MS = 1000.0 * hear.DEFAULT_HOP_FRAMES * HOP_LENGTH / SAMPLE_RATE


@pytest.fixture(scope="module")
def scaler_file(tmp_path_factory) -> Path:
    patches = np.random.default_rng(1).uniform(-16.0, 4.0, size=(8, 96, 96))
    path = tmp_path_factory.mktemp("scaler") / "scaler.json"
    save_scaler(MinMaxScaler.fit(patches), path)
    return path


@pytest.fixture(scope="module")
def encoder_ckpt(tmp_path_factory) -> Path:
    return save_random(AudioEncoder, tmp_path_factory.mktemp("models") / "audio_encoder_epoch_200.pt")


@pytest.fixture(scope="module")
def model(encoder_ckpt, scaler_file) -> hear.CoalaHear:
    return hear.load_model(str(encoder_ckpt), scaler=str(scaler_file), device="cpu")


def noise(n_sounds: int, seconds: float, sample_rate: int = hear.HEAR_SAMPLE_RATE, seed: int = 0) -> torch.Tensor:
    """The validator's input: uniform noise in [-1, 1), ``int(seconds * rate)`` samples."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((n_sounds, int(seconds * sample_rate)), generator=generator) * 2 - 1


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_attributes_are_what_hear_reads(model):
    assert isinstance(model, torch.nn.Module)
    for name in ("sample_rate", "scene_embedding_size", "timestamp_embedding_size"):
        assert type(getattr(model, name)) is int
    assert model.sample_rate == 22050 and model.scene_embedding_size == model.timestamp_embedding_size == 1152


@pytest.mark.parametrize("seconds", [1.07, 1.98, 4.0])
def test_timestamp_embeddings_pass_the_validator_checks(model, seconds):
    embeddings, timestamps = hear.get_timestamp_embeddings(noise(2, seconds), model)
    assert embeddings.dtype == torch.float32 and embeddings.ndim == 3 and timestamps.ndim == 2
    assert embeddings.shape[0] == 2 and embeddings.shape[:2] == timestamps.shape
    assert embeddings.shape[2] == model.timestamp_embedding_size
    assert torch.isfinite(embeddings).all()
    steps = np.diff(timestamps.numpy())
    assert np.max(np.abs(steps - steps.mean())) <= 1.0 and steps.max() <= 50.0
    assert np.allclose(steps, HOP_MS, atol=1e-3)
    first, last = float(timestamps.min()), float(timestamps.max())
    assert first <= steps.mean()
    assert 1000 * seconds - HOP_MS < last <= 1000 * seconds  # inside the audio, within one hop of its end


def test_scene_embeddings_pass_the_validator_checks(model):
    embeddings = hear.get_scene_embeddings(noise(4, 2.74), model)
    assert embeddings.dtype == torch.float32 and embeddings.shape == (4, model.scene_embedding_size)
    assert torch.isfinite(embeddings).all()
    assert not torch.equal(embeddings[0], embeddings[1])


@pytest.mark.parametrize("seconds, subtype", [(3.0, "FLOAT"), (12.5, "FLOAT"), (2.0, "PCM_16")])
def test_scene_embedding_is_the_projects_clip_embedding(tmp_path, model, encoder_ckpt, scaler_file, seconds, subtype):
    """The same 22050 Hz audio through HEAR and through a WAV file into encode's function, averaged as
    classify.py averages: padded (3 s, 2 s) and unpadded (12.5 s) clips, float and 16-bit files."""
    path = tmp_path / "clip.wav"
    write_clip(path, hear.HEAR_SAMPLE_RATE, 1, seconds, subtype, seed=int(seconds))
    samples, sr = sf.read(path, dtype="float32")
    assert sr == hear.HEAR_SAMPLE_RATE
    ours = hear.get_scene_embeddings(torch.from_numpy(samples)[None], model)[0].numpy()
    chunks, _ = extract_audio_embedding_chunks(return_loaded_model(AudioEncoder, encoder_ckpt), path, scaler_file)
    project = chunks.numpy().mean(axis=0, dtype=np.float64)
    assert cosine(ours, project) >= 0.999
    np.testing.assert_allclose(ours, project, rtol=0, atol=1e-4 * np.abs(project).max())


def test_scene_embedding_matches_on_the_reference_clip_and_checkpoint(reference):
    """The paper-format checkpoint and the paper's scaler pickle, on the reference's 30 s 22050 Hz clip
    (no tuning was done on it) and, through the sample_rate option, its 16 kHz clip."""
    ckpt, scaler = reference / "checkpoints" / "audio_encoder.pt", reference / "original" / "scaler_top_1000.pkl"
    encoder = return_loaded_model(AudioEncoder, ckpt)
    for clip, rate in (("groove_22050.wav", 22050), ("pluck_16k.wav", 16000)):
        model = hear.load_model(str(ckpt), scaler=str(scaler), device="cpu", sample_rate=rate)
        samples, sr = sf.read(reference / "audio" / clip, dtype="float32")
        assert sr == rate
        ours = hear.get_scene_embeddings(torch.from_numpy(samples)[None], model)[0].numpy()
        chunks, _ = extract_audio_embedding_chunks(encoder, reference / "audio" / clip, scaler)
        assert cosine(ours, chunks.numpy().mean(axis=0, dtype=np.float64)) >= 0.999


def test_timestamp_window_is_scaled_like_the_chunk_it_covers(model, encoder_ckpt, scaler_file):
    """With a hop of 1 frame, window 143 spans the sound's frames 96-191: the second chunk, up to the
    noise floor's draw (the samples under it are offset by the 47 frames of lead-in)."""
    sound = noise(1, 5.0, seed=3)[0].numpy() * 0.3
    one = hear.load_model(str(encoder_ckpt), scaler=str(scaler_file), device="cpu", timestamp_hop_frames=1)
    count = hear.timestamp_count(sound.size, one.sample_rate, 1)
    window = np.concatenate(list(hear._window_groups(sound, one, count, 16)))[143]
    chunk = signal_chunks(sound, one.sample_rate, model.scaler)[1]
    np.testing.assert_allclose(window, chunk, rtol=0, atol=1e-3)
    assert cosine(model.embed(window[None])[0], model.embed(chunk[None])[0]) >= 0.9999


def test_a_sounds_embeddings_do_not_depend_on_its_batch(model):
    """The same bits alone and second in a batch: its windows never share a forward with another sound's."""
    sounds = noise(2, 0.6, seed=5)
    alone_e, alone_t = hear.get_timestamp_embeddings(sounds[1:], model)
    batch_e, batch_t = hear.get_timestamp_embeddings(sounds, model)
    assert torch.equal(alone_e[0], batch_e[1]) and torch.equal(alone_t[0], batch_t[1])
    assert torch.equal(hear.get_scene_embeddings(sounds[1:], model)[0], hear.get_scene_embeddings(sounds, model)[1])


def test_timestamp_count_is_exact_for_long_recordings():
    """Centres are computed from integers: an hour of 44.1 kHz audio gets its last centre inside it."""
    for rate in (16000, 22050, 44100, 48000):
        for n in (1, 255, 256, 22050 * 3600 + 7, 44100 * 3600 - 1, rate * 5):
            for hop in (1, 2, 3):
                count = hear.timestamp_count(n, rate, hop)
                frame_s = HOP_LENGTH / SAMPLE_RATE
                if count:
                    assert ((count - 1) * hop + 0.5) * frame_s <= n / rate + 1e-12
                assert (count * hop + 0.5) * frame_s > n / rate - 1e-12


def test_a_sound_shorter_than_half_a_frame_has_no_timestamps(model):
    embeddings, timestamps = hear.get_timestamp_embeddings(noise(2, 0.005), model)
    assert embeddings.shape == (2, 0, 1152) and timestamps.shape == (2, 0)


def test_options_as_heareval_passes_them(encoder_ckpt, scaler_file):
    options = json.loads(json.dumps({"scaler": str(scaler_file), "timestamp_hop_frames": 4, "device": "cpu"}))
    model = hear.load_model(str(encoder_ckpt), **options)
    _, timestamps = hear.get_timestamp_embeddings(noise(1, 1.0), model)
    assert np.allclose(np.diff(timestamps.numpy()), 4 * HOP_LENGTH / SAMPLE_RATE * 1000, atol=1e-3)


def test_the_default_model_is_the_installed_ae_c(tmp_path, monkeypatch, encoder_ckpt, scaler_file):
    monkeypatch.setenv("COALA_HOME", str(tmp_path))
    with pytest.raises(CheckpointError, match="fetch_assets.py"):
        hear.load_model()
    installed = tmp_path / assets.pretrained_checkpoint("audio_encoder")
    installed.parent.mkdir(parents=True)
    shutil.copy(encoder_ckpt, installed)
    (tmp_path / assets.SCALER).parent.mkdir(parents=True)
    shutil.copy(scaler_file, tmp_path / assets.SCALER)
    model = hear.load_model("", device="cpu")
    reference = hear.load_model(str(encoder_ckpt), scaler=str(scaler_file), device="cpu")
    sound = noise(1, 1.5)
    assert torch.equal(hear.get_scene_embeddings(sound, model), hear.get_scene_embeddings(sound, reference))


def test_the_cnn_baseline_loads_too(tmp_path, scaler_file):
    model = hear.load_model(str(save_random(CNN, tmp_path / "cnn.pt")), scaler=str(scaler_file), device="cpu")
    assert hear.get_scene_embeddings(noise(1, 1.0), model).shape == (1, model.scene_embedding_size)


@pytest.mark.parametrize("audio, message", [
    (torch.zeros(22050), "2-D"),
    (torch.zeros(1, 1, 22050), "2-D"),
    (torch.zeros(2, 22050, dtype=torch.int16), "floating point"),
    (torch.zeros(0, 22050), "empty batch"),
    (torch.zeros(2, 0), "0 samples"),
    (torch.full((1, 22050), 1.5), "largest magnitude is 1.5"),
    (torch.full((1, 22050), float("nan")), "NaN"),
    (np.zeros((1, 22050), np.float32), "torch.Tensor"),
])
def test_bad_audio_is_one_clear_error(model, audio, message):
    for function in (hear.get_scene_embeddings, hear.get_timestamp_embeddings):
        with pytest.raises(AudioInputError, match=message):
            function(audio, model)


def test_bad_checkpoints_and_options_are_one_clear_error(tmp_path, encoder_ckpt, scaler_file):
    tag_ckpt = save_random(TagEncoder, tmp_path / "tag_encoder.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint of audio_encoder or cnn"):
        hear.load_model(str(tag_ckpt), scaler=str(scaler_file))
    with pytest.raises(CheckpointError, match="no such model folder or checkpoint"):
        hear.load_model(str(tmp_path / "missing.pt"), scaler=str(scaler_file))
    for options, error, message in [({"hop": 2}, UsageError, "unknown option"),
                                    ({"timestamp_hop_frames": 0}, UsageError, "at least 1"),
                                    ({"timestamp_hop_frames": "2"}, UsageError, "integer"),
                                    ({"sample_rate": 22001}, UsageError, "must be one of"),
                                    ({"device": "tpu"}, ConfigError, "not a device name")]:
        with pytest.raises(error, match=message):
            hear.load_model(str(encoder_ckpt), scaler=str(scaler_file), **options)
        assert issubclass(error, CoalaError)


def test_a_run_folder_brings_its_scaler_and_sizes(tmp_path, scaler_file):
    """No scaler option: the record's (fitted at another level than the paper's) scales the patches; the
    sizes are the record's (64 channels: 576-d embeddings); another scaler is refused, naming it."""
    run = tmp_path / "my_run"
    record = write_run_folder(run, channels=64)
    sound = noise(2, 1.5, seed=7)
    for path in (run, run / "audio_encoder_epoch_3.pt"):
        model = hear.load_model(str(path), device="cpu")
        assert model.scaler.same_as(run_scaler())
        assert model.scene_embedding_size == model.timestamp_embedding_size == record.dims.latent_dim == 576
        scenes = hear.get_scene_embeddings(sound, model)
        frames, _ = hear.get_timestamp_embeddings(sound[:, :4000], model)
        assert scenes.shape == (2, 576) and frames.shape[2] == 576
    encoder = load_model(run).audio_encoder
    expected = embed(encoder, signal_chunks(sound[1].numpy(), hear.HEAR_SAMPLE_RATE, run_scaler()))[0]
    np.testing.assert_allclose(scenes[1].numpy(), expected.numpy().mean(axis=0, dtype=np.float64),
                               rtol=0, atol=1e-4 * expected.abs().max().item())
    same = tmp_path / "same.json"
    save_scaler(run_scaler(), same)
    assert hear.load_model(str(run), scaler=str(same), device="cpu").scaler.same_as(run_scaler())
    with pytest.raises(UsageError, match=rf"^--scaler {scaler_file}: not the scaler {run} was trained with") as refused:
        hear.load_model(str(run), scaler=str(scaler_file), device="cpu")
    assert "\n" not in str(refused.value)
