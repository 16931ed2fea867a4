"""The audio front end and the notebook functions against the paper's own outputs."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from coala.core.frontend import PAD_SAMPLES, SAMPLE_RATE, compute_spectrogram, load_audio
from coala.core.frontend import chunk_spectrogram, max_energy_patch, scaled_chunks
from coala.core.errors import AudioError, VocabularyError
from conftest import CLIPS, PADDED_CLIPS
from encode import (extract_audio_embedding, extract_audio_embedding_chunks, extract_tag_embedding,
                    return_loaded_model)
from models_t1000 import CNN, AudioEncoder, TagEncoder


def cosine(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def relative_l2(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def assert_close_embedding(ours, expected, clip: str) -> None:
    min_cos, max_rel = (0.999, 0.03) if clip in PADDED_CLIPS else (0.9999, 0.01)
    assert ours.shape == expected.shape
    assert cosine(ours, expected).min() >= min_cos
    assert relative_l2(ours, expected) <= max_rel


@pytest.fixture(scope="module")
def encoder(reference):
    return return_loaded_model(AudioEncoder, reference / "checkpoints" / "audio_encoder.pt")


@pytest.fixture(scope="module")
def cnn(reference):
    return return_loaded_model(CNN, reference / "checkpoints" / "cnn.pt")


@pytest.mark.parametrize("clip", CLIPS)
def test_chunk_embeddings_match_the_papers(reference, paper_scaler, encoder, cnn, clip):
    expected = np.load(reference / "expected" / f"{clip.split('.')[0]}.npz")
    path = reference / "audio" / clip
    embedding, embedding_d = extract_audio_embedding_chunks(encoder, path, paper_scaler)
    assert isinstance(embedding, torch.Tensor) and embedding.dtype == torch.float32
    assert_close_embedding(embedding.numpy(), expected["embedding"], clip)
    assert_close_embedding(embedding_d.numpy(), expected["embedding_d"], clip)
    z, tags = extract_audio_embedding_chunks(cnn, path, paper_scaler)
    assert_close_embedding(z.numpy(), expected["cnn_embedding"], clip)
    assert_close_embedding(tags.numpy(), expected["cnn_tags"], clip)
    first, _ = extract_audio_embedding(encoder, path, paper_scaler)
    assert_close_embedding(first.numpy(), expected["first_patch_embedding"], clip)


@pytest.mark.parametrize("clip", CLIPS)
def test_spectrogram_chunks_and_patch(reference, paper_scaler, clip):
    expected = np.load(reference / "expected" / f"{clip.split('.')[0]}.npz")
    spec = compute_spectrogram(reference / "audio" / clip)
    assert spec.shape == expected["spectrogram"].shape and spec.dtype == np.float32
    # Resampling (soxr instead of kaiser_fast) moves a few near-Nyquist bins; the bulk must agree.
    assert np.median(np.abs(spec - expected["spectrogram"])) < 1e-2
    # The same window is chosen; compare below the top mel bands, where the resampler's roll-off differs.
    assert relative_l2(max_energy_patch(spec)[:88], expected["max_energy_patch"][:88]) < 0.02
    # Chunking and scaling alone, from the paper's own spectrogram: exact up to float32 rounding.
    np.testing.assert_allclose(scaled_chunks(expected["spectrogram"], paper_scaler), expected["chunks"],
                               rtol=0, atol=2e-6)
    np.testing.assert_allclose(max_energy_patch(expected["spectrogram"]), expected["max_energy_patch"], atol=0)


def test_unresampled_clip_matches_to_rounding(reference):
    """At exactly 22 kHz nothing is resampled: the log-mel arithmetic itself must be the paper's."""
    expected = np.load(reference / "expected" / "plucks_22000.npz")
    spec = compute_spectrogram(reference / "audio" / "plucks_22000.flac")
    np.testing.assert_allclose(spec, expected["spectrogram"], rtol=0, atol=1e-5)


def test_tag_embeddings_match(reference):
    model = return_loaded_model(TagEncoder, reference / "checkpoints" / "tag_encoder.pt")
    expected = np.load(reference / "expected" / "tag_embeddings.npz")
    vocabulary = reference / "original" / "id2token_top_1000.json"
    for tag, embedding in zip(expected["tags"], expected["embedding"]):
        z = extract_tag_embedding(model, str(tag), vocabulary)  # the paper's return: z alone
        assert isinstance(z, torch.Tensor) and z.shape == (1, 1152)
        np.testing.assert_allclose(z[0].numpy(), embedding, rtol=0, atol=1e-5)
    with pytest.raises(VocabularyError, match="not-a-tag"):
        extract_tag_embedding(model, "not-a-tag", vocabulary)


def test_same_file_twice_gives_identical_numbers(reference, paper_scaler, encoder):
    path = reference / "audio" / "pluck_16k.wav"  # padded: the noise floor must be the same each time
    first = extract_audio_embedding_chunks(encoder, path, paper_scaler)[0]
    second = extract_audio_embedding_chunks(encoder, path, paper_scaler)[0]
    assert torch.equal(first, second)


def test_corrupt_empty_and_missing_files_name_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage" * 10)
    with pytest.raises(AudioError, match="corrupt.wav: cannot decode audio"):
        compute_spectrogram(corrupt)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav: holds no audio samples"):
        compute_spectrogram(empty)
    with pytest.raises(AudioError, match="missing.flac: no such file"):
        compute_spectrogram(tmp_path / "missing.flac")


@pytest.mark.parametrize("fmt, subtype", [("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_formats_channels_and_rates(tmp_path, fmt, subtype):
    rate, seconds = 48000, 3
    t = np.arange(rate * seconds) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    channels = 2 if fmt == "MP3" else 4  # MPEG audio holds at most two channels
    multichannel = np.stack([tone] * channels, axis=1).astype(np.float32)
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, multichannel, rate, format=fmt, subtype=subtype)
    y = load_audio(path)
    assert y.ndim == 1 and abs(len(y) - seconds * SAMPLE_RATE) < 0.05 * SAMPLE_RATE
    spec = compute_spectrogram(path)
    assert spec.shape == (96, PAD_SAMPLES // 512 + 1)
    peak_band = spec[:, 10:100].mean(axis=1).argmax()
    reference_peak = compute_spectrogram_of(tone, rate, tmp_path)[:, 10:100].mean(axis=1).argmax()
    assert peak_band == reference_peak
    assert chunk_spectrogram(spec).shape == (4, 96, 96)


def compute_spectrogram_of(signal: np.ndarray, rate: int, folder) -> np.ndarray:
    path = folder / "reference.wav"
    sf.write(path, signal.astype(np.float32), rate, subtype="FLOAT")
    return compute_spectrogram(path)


@pytest.mark.parametrize("n", [1, 49151, 49152, 49153, 98305, PAD_SAMPLES - 1, PAD_SAMPLES, PAD_SAMPLES + 1, 266200])
def test_chunk_counts_follow_the_front_end_and_audio_chunks_start_before_the_end(n: int) -> None:
    """``chunk_count`` is what the streamed front end makes of n samples (padded or not), and the chunks
    ``audio_chunks`` keeps are exactly those starting before the clip's last sample."""
    from coala.core.frontend import CHUNK_SAMPLES, audio_chunks, chunk_count, iter_chunks, spectrogram_blocks
    signal = np.random.default_rng(n).uniform(-0.5, 0.5, n).astype(np.float32)
    made = sum(len(c) for c in iter_chunks(spectrogram_blocks(iter(np.array_split(signal, 3)))))
    assert chunk_count(n) == made
    kept = int(audio_chunks(n))
    assert 1 <= kept <= made and all(k * CHUNK_SAMPLES < n for k in range(kept))
    assert kept == made or kept * CHUNK_SAMPLES >= n
    assert list(audio_chunks(np.array([n, n]))) == [kept, kept]  # arrays of lengths, as an index holds them


@pytest.mark.parametrize("suffix, sr", [(".wav", 44100), (".flac", 16000), (".ogg", 48000), (".wav", SAMPLE_RATE),
                                        (".mp3", 44100)])
def test_audio_samples_counts_what_decoding_gives(tmp_path, suffix: str, sr: int) -> None:
    from coala.core.frontend import audio_samples
    path = tmp_path / f"clip{suffix}"
    sf.write(path, np.random.default_rng(0).uniform(-0.3, 0.3, int(2.7 * sr)).astype(np.float32), sr)
    assert audio_samples(path) == load_audio(path).size
