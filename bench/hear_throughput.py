"""Speed of ``coala.hear`` in seconds of audio embedded per second, and its agreement with ``encode``.

Makes a randomly initialised audio encoder (weights do not change speed) and a scaler fitted on
random patches, unless ``--checkpoint``/``--scaler`` name real ones, and a batch of 22050 Hz sounds
(decaying tones over noise), then times, with interleaved repetitions (medians):

- scene: ``get_scene_embeddings`` on ``--sounds`` sounds of ``--seconds`` s (each padded to 10 s
  when shorter, so short sounds cost as much as 10 s ones);
- timestamps: ``get_timestamp_embeddings`` on the same batch (one 96-frame window every
  ``--hop-frames`` frames: 21.5 windows per second of audio at the default 2).

Then, on ``--clips`` 16-bit WAV files at 22050 Hz of lengths from 1 to 25 s (other sounds than the
tests use), the cosine between the HEAR scene embedding of the decoded samples and the mean of
``extract_audio_embedding_chunks`` on the file (what ``classify.py`` averages). Its last lines are
``scene_audio_s_per_s: X``, ``timestamp_audio_s_per_s: X`` and ``min_cosine_vs_encode: X``.

    python bench/hear_throughput.py                    # the figures in docs/hear.md
    python bench/hear_throughput.py --device cuda --sounds 64
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import coala.hear as hear  # noqa: E402
from coala.core.frontend import N_MELS, PATCH_FRAMES  # noqa: E402
from coala.audio.scaler import MinMaxScaler, save_scaler  # noqa: E402
from coala.device import resolve_device  # noqa: E402
from encode import extract_audio_embedding_chunks, return_loaded_model  # noqa: E402
from models_t1000 import AudioEncoder  # noqa: E402


def tones(seconds: float, rng: np.random.Generator, sr: int = hear.HEAR_SAMPLE_RATE) -> np.ndarray:
    """Five decaying tones over noise, peak under 1: spectral structure like a recorded event."""
    t = np.arange(int(seconds * sr)) / sr
    y = 0.05 * rng.standard_normal(t.size)
    for f in rng.uniform(60, 6000, size=5):
        y += 0.15 * np.sin(2 * np.pi * f * t) * np.exp(-(t % rng.uniform(0.3, 2.0)) * 4)
    return np.clip(y, -1, 1).astype(np.float32)


def timed(function: Callable[[], object], device: torch.device) -> float:
    start = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="an audio encoder checkpoint (default: random weights)")
    parser.add_argument("--scaler", type=Path, help="its scaler (default: fitted on random patches)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hop-frames", type=int, default=hear.DEFAULT_HOP_FRAMES)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        checkpoint, scaler = args.checkpoint, args.scaler
        if checkpoint is None:
            torch.manual_seed(0)
            checkpoint = tmp_path / "audio_encoder.pt"
            torch.save(AudioEncoder().state_dict(), checkpoint)
        if scaler is None:
            scaler = tmp_path / "scaler.json"
            save_scaler(MinMaxScaler.fit(np.random.default_rng(1).uniform(-16, 4, (8, N_MELS, PATCH_FRAMES))), scaler)
        model = hear.load_model(str(checkpoint), scaler=str(scaler), device=str(device),
                                timestamp_hop_frames=args.hop_frames)
        rng = np.random.default_rng(0)
        audio = torch.from_numpy(np.stack([tones(args.seconds, rng) for _ in range(args.sounds)])).to(device)
        audio_seconds = args.sounds * audio.shape[1] / model.sample_rate
        hear.get_scene_embeddings(audio[:1], model)  # warm-up: first forwards allocate
        runs: dict[str, list[float]] = {"scene": [], "timestamp": []}
        for _ in range(args.reps):
            runs["scene"].append(timed(lambda: hear.get_scene_embeddings(audio, model), device))
            runs["timestamp"].append(timed(lambda: hear.get_timestamp_embeddings(audio, model), device))
        print(f"device {device}, torch threads {torch.get_num_threads()}, {args.sounds} sounds of {args.seconds} s, "
              f"timestamp hop {args.hop_frames} frames ({model.timestamp_hop_ms:.1f} ms), {args.reps} reps")
        rates = {}
        for name, seconds in runs.items():
            rates[name] = audio_seconds / statistics.median(seconds)
            print(f"{name}: median {statistics.median(seconds):.3f} s per batch, {rates[name]:.2f} s of audio per s")

        encoder = return_loaded_model(AudioEncoder, checkpoint)
        cosines = []
        for i, seconds in enumerate(np.linspace(1.0, 25.0, args.clips)):
            path = tmp_path / f"clip_{i}.wav"
            sf.write(path, tones(float(seconds), rng), hear.HEAR_SAMPLE_RATE, subtype="PCM_16")
            samples, _ = sf.read(path, dtype="float32")
            ours = hear.get_scene_embeddings(torch.from_numpy(samples)[None].to(device), model)[0].cpu().numpy()
            project = extract_audio_embedding_chunks(encoder, path, scaler)[0].numpy().mean(axis=0, dtype=np.float64)
            cosines.append(float(ours @ project / (np.linalg.norm(ours) * np.linalg.norm(project))))
        print(f"cosine vs encode's clip embedding over {args.clips} clips of 1-25 s: min {min(cosines):.7f}, "
              f"max {max(cosines):.7f}")
        print(f"scene_audio_s_per_s: {rates['scene']:.2f}")
        print(f"timestamp_audio_s_per_s: {rates['timestamp']:.2f}")
        print(f"min_cosine_vs_encode: {min(cosines):.7f}")


if __name__ == "__main__":
    main()
