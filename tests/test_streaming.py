"""The streamed front end and pipeline against the whole-file computation: same frames, same chunks,
same embeddings, with a block size small enough that every clip takes many blocks."""
from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from coala.core.frontend import (HOP_LENGTH, LOG_EPS, N_FFT, N_MELS, PATCH_FRAMES, SAMPLE_RATE, LogMelStream,
                                  iter_audio, iter_spectrogram, log_mel, pad_short_clip)
from coala.core.frontend import chunk_spectrogram, iter_chunks, scaled_chunks
from coala.audio.scaler import MinMaxScaler
from coala.encode.files import chunk_computer, iter_files
from coala.encode.stream import embed_stream
from coala.core.model import embed
from coala.encode.inference import inference_model
from coala.core.errors import AudioError
from models_t1000 import AudioEncoder
from test_audio_frontend import cosine
from test_encode_cli import write_clip

BLOCK = 3000  # file samples per decoded block: a 13 s clip at 44.1 kHz takes about 190 blocks


def whole_file_spectrogram(path: Path) -> np.ndarray:
    """The paper's spectrogram of the whole file at once, with librosa's own calls (float64)."""
    y, file_sr = sf.read(path, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    if file_sr != SAMPLE_RATE:
        y = librosa.resample(y, orig_sr=file_sr, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    y = pad_short_clip(y).astype(np.float64)
    mel = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS,
                                         power=1, pad_mode="reflect")
    return np.log(mel + LOG_EPS).astype(np.float32)


@pytest.mark.parametrize("sr, channels, seconds", [(44100, 2, 13.0), (SAMPLE_RATE, 1, 12.0), (16000, 1, 4.0),
                                                   (48000, 1, 10.0)])
def test_streamed_spectrogram_equals_the_whole_file(tmp_path, sr, channels, seconds):
    """Long clips (resampled or not), a padded one and one that is exactly 10 s after resampling."""
    path = tmp_path / "clip.wav"
    write_clip(path, sr, channels, seconds, "FLOAT")
    blocks = list(iter_spectrogram(path, block_samples=BLOCK))
    assert len(blocks) > 10 if seconds > 10 else len(blocks) == 2  # a padded clip: all of it, then the end
    spec = np.concatenate(blocks, axis=1)
    expected = whole_file_spectrogram(path)
    assert spec.shape == expected.shape and spec.dtype == np.float32
    np.testing.assert_allclose(spec, expected, rtol=0, atol=1e-5)
    # iter_audio's blocks are librosa.resample of the whole signal, length included, to the last bit.
    y, file_sr = sf.read(path, dtype="float32", always_2d=True)
    whole = librosa.resample(y.mean(axis=1), orig_sr=file_sr, target_sr=SAMPLE_RATE) if file_sr != SAMPLE_RATE else y[:, 0]
    np.testing.assert_allclose(np.concatenate(list(iter_audio(path, block_samples=BLOCK))), whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize("n", [1, 300, 512, 513, 1025, 20_000])
def test_log_mel_stream_at_the_edges_of_the_reflect_padding(n):
    """Signals shorter than, equal to and just over half a frame, pushed one sample to a few at a time."""
    y = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    expected = log_mel(y)
    assert expected.shape == (N_MELS, 1 + n // HOP_LENGTH)
    for step in (1, 7, 700):
        stream = LogMelStream()
        spec = np.concatenate([stream.push(y[i:i + step]) for i in range(0, n, step)] + [stream.finish()], axis=1)
        np.testing.assert_allclose(spec, expected, rtol=0, atol=1e-6)


def test_streamed_chunks_are_the_whole_spectrograms_chunks():
    spec = np.random.default_rng(0).standard_normal((N_MELS, 1000)).astype(np.float32)
    blocks = np.split(spec, [1, 95, 96, 300, 301, 999], axis=1)
    chunks = np.concatenate(list(iter_chunks(blocks)))
    np.testing.assert_array_equal(chunks, chunk_spectrogram(spec))
    assert chunks.shape == (1000 // PATCH_FRAMES, N_MELS, PATCH_FRAMES)


@pytest.fixture(scope="module")
def model() -> AudioEncoder:
    torch.manual_seed(0)
    return AudioEncoder().eval()


@pytest.fixture(scope="module")
def scaler() -> MinMaxScaler:
    return MinMaxScaler.fit(np.random.default_rng(1).uniform(-16.0, 4.0, size=(8, N_MELS, PATCH_FRAMES)))


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.slow
def test_streamed_embeddings_equal_the_whole_file_path(tmp_path, model, scaler, workers):
    """Files cut into pieces of a few chunks, pieces of files interleaved by worker processes: every file
    gets its own chunks' embeddings, in file order, as the whole-file computation gives them."""
    paths = []
    for i, (sr, seconds) in enumerate([(44100, 25.0), (16000, 3.0), (22050, 14.0)]):
        paths.append(tmp_path / f"clip_{i}.wav")
        write_clip(paths[-1], sr, 1 + i % 2, seconds, seed=i)
    results = list(embed_stream(model, iter_files(paths, chunk_computer(scaler, block_samples=4096), workers), 5))
    assert [r.index for r in results] == [0, 1, 2] and all(r.error is None for r in results)
    for result, path in zip(results, paths):
        expected, expected_d = embed(model, scaled_chunks(whole_file_spectrogram(path), scaler))
        embedding, embedding_d = result.value
        assert embedding.shape == expected.shape
        assert cosine(embedding, expected).min() >= 0.9999 and cosine(embedding_d, expected_d).min() >= 0.9999


def test_a_file_failing_mid_stream_loses_its_pieces_and_only_them(model):
    """Pieces embedded before a file's error are dropped; the files around it are whole and in order."""
    rng = np.random.default_rng(2)
    pieces = {name: [rng.uniform(0, 1, (k, N_MELS, PATCH_FRAMES)).astype(np.float32) for k in (3, 2)]
              for name in ("a", "bad", "c")}

    def compute(path: Path):
        yield pieces[path.name][0]
        if path.name == "bad":
            raise AudioError(path, "cannot decode audio (broken in the middle)")
        yield pieces[path.name][1]

    results = list(embed_stream(model, iter_files([Path("a"), Path("bad"), Path("c")], compute), batch_size=4))
    assert [(r.index, r.error) for r in results] == [(0, None), (1, "cannot decode audio (broken in the middle)"),
                                                     (2, None)]
    for result, name in zip((results[0], results[2]), ("a", "c")):
        expected, _ = embed(model, np.concatenate(pieces[name]))
        torch.testing.assert_close(result.value[0], expected, rtol=0, atol=1e-5)


def test_bf16_autocast_of_the_model_is_close_to_float32(model):
    x = torch.rand(2, 1, PATCH_FRAMES, N_MELS)
    with torch.inference_mode():
        z32, zd32 = inference_model(model)(x)
        z16, zd16 = inference_model(model, bf16=True)(x)
    assert z16.dtype == torch.float32 and z16.shape == z32.shape
    assert cosine(z16, z32).min() >= 0.999 and cosine(zd16, zd32).min() >= 0.999
    assert not torch.equal(z16, z32)  # bf16 did run
