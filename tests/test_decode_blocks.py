"""Block-wise decoding against a whole-file read, for every format libsndfile reads and the common
encoders that write them: the blocks' samples are the whole read's, bit for bit, and ``iter_audio``
gives the whole read resampled at once.

soundfile seeks after every read of a seekable file; libsndfile's MP3 decoder (mpg123) drops its
state on a seek and decodes the frames after it again without their bit reservoir, so MP3s read in
blocks used to differ from the whole read after every block boundary (by as much as 0.7 in the 32 kbps clip below).
"""
from __future__ import annotations

import math
from pathlib import Path

import av
import librosa
import numpy as np
import pytest
import soundfile as sf

from coala.core.frontend import SAMPLE_RATE, _soundfile_blocks, iter_audio

BLOCK = 2048  # file frames per decoded block: a 3 s clip takes 65 to 71 blocks
SECONDS = 3.0


def music(sr: int, channels: int) -> np.ndarray:
    """Drum-like noise bursts over a chirp and a noise floor, (frames, channels) float32: transients
    make MP3 encoders lean on the bit reservoir, which a decoder restarted mid-file lacks."""
    rng = np.random.default_rng(channels)
    n = int(sr * SECONDS)
    t = np.arange(n) / sr
    y = 0.3 * np.sin(2 * np.pi * (200 * t + 3000 * t ** 2 / SECONDS)) + 0.05 * rng.standard_normal(n)
    burst = int(0.1 * sr)
    for start in range(0, n, int(0.37 * sr)):
        m = min(burst, n - start)
        y[start:start + m] += 0.8 * rng.standard_normal(m) * np.exp(-np.arange(m) / (0.01 * sr))
    y = np.stack([y, np.roll(y, 101)][:channels], axis=1)
    return np.clip(y, -1, 1).astype(np.float32)


def write_pyav(path: Path, codec: str, sr: int, channels: int, bit_rate: int | None = None) -> None:
    """FFmpeg's encoders through PyAV: libmp3lame writes a LAME Info (Xing) header, vorbis is
    FFmpeg's own (experimental) encoder, opus is libopus."""
    y = music(sr, channels)
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=sr, layout=layout, options={"strict": "experimental"})
        if bit_rate:
            stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(y.T), format="fltp", layout=layout)
        frame.sample_rate, frame.pts = sr, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def write_libsndfile(path: Path, fmt: str, subtype: str, sr: int, channels: int) -> None:
    sf.write(path, music(sr, channels), sr, format=fmt, subtype=subtype)


CASES = {  # name: (file name, writer, arguments)
    "pyav-mp3-128k-mono": ("clip.mp3", write_pyav, ("mp3", 44100, 1, 128_000)),
    "pyav-mp3-32k-stereo": ("clip.mp3", write_pyav, ("mp3", 48000, 2, 32_000)),
    "pyav-vorbis": ("clip.ogg", write_pyav, ("vorbis", 44100, 2)),
    "pyav-opus": ("clip.opus", write_pyav, ("libopus", 48000, 2)),
    "pyav-flac": ("clip.flac", write_pyav, ("flac", 44100, 1)),
    "libsndfile-wav": ("clip.wav", write_libsndfile, ("WAV", "PCM_16", 44100, 2)),
    "libsndfile-flac": ("clip.flac", write_libsndfile, ("FLAC", "PCM_24", 48000, 1)),
    "libsndfile-vorbis": ("clip.ogg", write_libsndfile, ("OGG", "VORBIS", 44100, 2)),
    "libsndfile-opus": ("clip.opus", write_libsndfile, ("OGG", "OPUS", 48000, 1)),
    "libsndfile-mp3": ("clip.mp3", write_libsndfile, ("MP3", "MPEG_LAYER_III", 44100, 1)),
}


@pytest.mark.parametrize("case", CASES)
def test_blocks_are_the_whole_file_read(tmp_path, case):
    name, writer, args = CASES[case]
    path = tmp_path / name
    writer(path, *args)
    if case.startswith("pyav-mp3"):
        assert b"Info" in path.read_bytes()[:2048]  # the LAME header of a constant-bitrate file
    whole, file_sr = sf.read(path, dtype="float32", always_2d=True)
    whole = whole.mean(axis=1)
    assert whole.size > 20 * BLOCK

    rate, blocks = _soundfile_blocks(path, BLOCK)
    blocks = list(blocks)
    assert rate == file_sr
    assert len(blocks) == math.ceil(whole.size / BLOCK) and all(b.size == BLOCK for b in blocks[:-1])
    decoded = np.concatenate(blocks)
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, whole)

    # iter_audio: the whole read resampled at once (librosa.load's soxr_hq), length included.
    expected = librosa.resample(whole, orig_sr=file_sr, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    np.testing.assert_array_equal(np.concatenate(list(iter_audio(path, block_samples=BLOCK))), expected)
