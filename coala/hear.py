"""The HEAR 2021 API (``load_model``, ``get_scene_embeddings``, ``get_timestamp_embeddings``) over COALA.

hear-eval-kit and hear-validator import a module by name and call these three functions, so
``python -m heareval.embeddings.runner coala.hear --model PATH`` evaluates an encoder on the HEAR tasks
(docs/hear.md). PATH is a run folder, a checkpoint in one, or a bare checkpoint
(``coala.models.loading``): the scaler is the run's own, as the sizes are. HEAR feeds 16000, 22050, 32000, 44100 or 48000 Hz audio, never the
paper's 22000 Hz: the model declares 22050 and resamples to 22000 inside, with the resampler
``encode.py`` applies to a file.

- Scene embeddings are the paper's clip embedding: the front end of a signal in memory
  (``signal_chunks``: its 10 s padding, the non-overlapping scaled 96-frame chunks), the mean of their
  embeddings (what ``classify.py`` averages), so a HEAR score and the paper's table measure the same thing.
- Timestamp embeddings embed a 96-frame window starting every ``timestamp_hop_frames`` log-mel frames
  (default 2: 46.5 ms, under HEAR's 50 ms), each scaled and embedded like a chunk. The timestamp is the
  window's centre; the sound is set in silence carrying the front end's noise floor so that windows
  can be centred from the sound's first frame to its last.

A sound's windows go through the model in forwards of their own (never mixed with another sound's),
so its embeddings are the same bits whatever batch it arrives in.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from coala import assets
from coala.core.errors import AudioInputError, CheckpointError, UsageError
from coala.core.frontend import HOP_LENGTH, PATCH_FRAMES, SAMPLE_RATE, log_mel, padding_noise, resample, signal_chunks
from coala.core.model import default_batch_size, embed, model_device
from coala.device import resolve_device
from coala.encode.inference import inference_model
from coala.models import loading

HEAR_SAMPLE_RATE = 22050
# HEAR's rates, and the paper's own 22000 (for harnesses such as EVAR that resample to it themselves).
ACCEPTED_SAMPLE_RATES = (16000, 22000, 22050, 32000, 44100, 48000)
DEFAULT_HOP_FRAMES = 2
OPTIONS = ("scaler", "timestamp_hop_frames", "device", "sample_rate")
# Frames of silence before the sound: window j (frames j*hop .. j*hop+95 of the padded spectrogram)
# is then centred half a frame after the sound's frame j*hop, on (j*hop + 0.5) * 512 samples.
LEAD_FRAMES = PATCH_FRAMES // 2 - 1

log = logging.getLogger(__name__)


class CoalaHear(nn.Module):
    """The model HEAR's functions receive: the folded encoder, its scaler and the HEAR attributes.

    ``sample_rate``, ``scene_embedding_size`` and ``timestamp_embedding_size`` are what the harness
    reads (the sizes are the model's ``latent_dim``: 1152 for the paper's); ``.to(device)`` moves the
    encoder, and each call runs on wherever it is then.
    """

    def __init__(self, model: loading.LoadedModel, sample_rate: int = HEAR_SAMPLE_RATE,
                 timestamp_hop_frames: int = DEFAULT_HOP_FRAMES) -> None:
        super().__init__()
        self.encoder = inference_model(model.audio_encoder)
        self.scaler = model.scaler
        self.sample_rate = int(sample_rate)
        self.scene_embedding_size = model.dims.latent_dim
        self.timestamp_embedding_size = model.dims.latent_dim
        self.timestamp_hop_frames = int(timestamp_hop_frames)

    @property
    def timestamp_hop_ms(self) -> float:
        """The spacing of timestamp embeddings: ``timestamp_hop_frames`` frames of 512 samples at 22000 Hz."""
        return 1000.0 * self.timestamp_hop_frames * HOP_LENGTH / SAMPLE_RATE

    def embed(self, patches: np.ndarray) -> np.ndarray:
        """``(n, 96, 96)`` scaled patches to their ``z`` ``(n, latent_dim)`` (``coala.core.model.embed``)."""
        return embed(self.encoder, patches)[0].numpy()


def _option_int(options: dict[str, Any], name: str, default: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"option {name}={value!r}: expected an integer")
    return value


def load_model(model_file_path: str = "", **options: Any) -> CoalaHear:
    """The HEAR model: an audio encoder (AE_c, E_c, or the CNN baseline) and the scaler it was trained with.

    ``model_file_path`` is a run folder, a checkpoint in one, or a bare checkpoint
    (``coala.models.loading.load_model``); empty, the paper's ``dual_ae_c`` encoder where
    ``fetch_assets.py`` installs it. Options (heareval passes them as JSON through ``--model-options``):
    ``scaler`` (a path, for a bare checkpoint: default the installed ``json/scaler_top_1000.json``; a run
    folder's record holds its own, and another is refused), ``timestamp_hop_frames`` (default 2 =
    46.5 ms), ``device`` (``auto``, ``cpu``, ``cuda:N``; default ``auto``) and ``sample_rate`` (default
    22050; one of ``ACCEPTED_SAMPLE_RATES``). A checkpoint of another network, a missing file, a scaler
    that is not the model's or an unknown option is a ``CoalaError`` naming it.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UsageError(f"unknown option(s) {', '.join(unknown)}; the options are {', '.join(OPTIONS)}")
    hop = _option_int(options, "timestamp_hop_frames", DEFAULT_HOP_FRAMES)
    if hop < 1:
        raise UsageError(f"option timestamp_hop_frames={hop}: must be at least 1 frame")
    sample_rate = _option_int(options, "sample_rate", HEAR_SAMPLE_RATE)
    if sample_rate not in ACCEPTED_SAMPLE_RATES:
        raise UsageError(f"option sample_rate={sample_rate}: must be one of {', '.join(map(str, ACCEPTED_SAMPLE_RATES))}")
    scaler = options.get("scaler")
    if scaler is not None and not isinstance(scaler, (str, os.PathLike)):
        raise UsageError(f"option scaler={scaler!r}: expected a path")
    device = resolve_device(str(options.get("device", "auto")))
    if model_file_path:
        path = assets.locate(model_file_path)
    else:
        path = assets.default_path(assets.pretrained_checkpoint("audio_encoder"))
        if not path.is_file():
            raise CheckpointError(f"{path}: the paper's AE_c checkpoint is not installed (run `python fetch_assets.py`, "
                                  "or pass a checkpoint path)")
    loaded = loading.load_model(path, scaler=scaler, device=device)
    model = CoalaHear(loaded, sample_rate, hop)
    log.info(f"HEAR model: {path} ({loaded.kind}, {loaded.name}) on {device}, {sample_rate} Hz input, "
             f"timestamp hop {hop} frames ({model.timestamp_hop_ms:.1f} ms)")
    return model


def _checked_audio(audio: object) -> np.ndarray:
    """HEAR's batch as a float32 ``(n_sounds, n_samples)`` array on the CPU, or an ``AudioInputError``.

    Checked up front because the front end would accept most mistakes silently: integer PCM scaled
    by 32768, a 1-D sound read as a batch, a batch that yields empty outputs.
    """
    if not isinstance(audio, torch.Tensor):
        raise AudioInputError(f"audio must be a torch.Tensor of shape (n_sounds, n_samples), not {type(audio).__name__}")
    if audio.ndim != 2:
        raise AudioInputError(f"audio must be 2-D (n_sounds, n_samples), got shape {tuple(audio.shape)}")
    if not audio.is_floating_point():
        raise AudioInputError(f"audio must be floating point samples in [-1, 1], got dtype {audio.dtype}")
    if audio.shape[0] == 0:
        raise AudioInputError("audio is an empty batch (0 sounds)")
    if audio.shape[1] == 0:
        raise AudioInputError(f"audio holds {audio.shape[0]} sounds of 0 samples")
    samples = audio.detach().to("cpu", torch.float32).numpy()
    if not np.all(np.isfinite(samples)):
        raise AudioInputError("audio holds NaN or infinite samples")
    peak = float(np.abs(samples).max())
    if peak > 1.0:
        raise AudioInputError(f"audio must lie in [-1, 1], its largest magnitude is {peak:.6g}")
    return samples


def get_scene_embeddings(audio: torch.Tensor, model: CoalaHear) -> torch.Tensor:
    """``(n_sounds, scene_embedding_size)`` float32: each sound's paper clip embedding, on the audio's device.

    ``signal_chunks``: resampled to 22000 Hz, padded to 10 s when at most 10 s long, log-mel,
    non-overlapping scaled 96-frame chunks, as ``encode.py`` makes a file's; the mean of their ``z`` taken
    in float64 as ``classify.py`` takes it. Padding gives every sound at least four chunks.
    """
    samples = _checked_audio(audio)
    scenes = np.empty((len(samples), model.scene_embedding_size), np.float32)
    for i, sound in enumerate(samples):
        chunks = signal_chunks(sound, model.sample_rate, model.scaler)
        scenes[i] = model.embed(chunks).mean(axis=0, dtype=np.float64)
    return torch.from_numpy(scenes).to(audio.device)


def timestamp_count(n_samples: int, sample_rate: int, hop_frames: int) -> int:
    """How many windows are centred inside a sound: centre ``j`` lies at ``(j*hop + 0.5) * 512 / 22000`` s.

    Exact integer arithmetic: centre ``j`` is inside when ``(2*j*hop + 1) * 256 * sample_rate <=
    n_samples * 22000``, so no rounding drifts over long recordings.
    """
    half_frames = n_samples * SAMPLE_RATE // (HOP_LENGTH // 2 * sample_rate)
    return 0 if half_frames < 1 else (half_frames - 1) // (2 * hop_frames) + 1


def _window_groups(sound: np.ndarray, model: CoalaHear, count: int, size: int) -> Iterator[np.ndarray]:
    """The scaled 96-frame windows of one sound, ``size`` at a time (a long sound's never all held)."""
    if count == 0:  # shorter than half a frame: its spectrogram would not hold one window
        return
    hop = model.timestamp_hop_frames
    y = resample(sound, model.sample_rate)
    lead = LEAD_FRAMES * HOP_LENGTH
    # Enough samples after the sound for the last window's frames (the spectrogram has n // 512 + 1).
    total = max(lead + y.size, ((count - 1) * hop + PATCH_FRAMES - 1) * HOP_LENGTH)
    padded = np.zeros(total, np.float32)
    padded[lead:lead + y.size] = y
    spec = log_mel(padded + padding_noise(total))
    windows = np.lib.stride_tricks.sliding_window_view(spec, PATCH_FRAMES, axis=1)[:, ::hop]
    for start in range(0, count, size):
        group = windows[:, start:min(start + size, count)].transpose(1, 0, 2)
        yield model.scaler.transform(group)


def get_timestamp_embeddings(audio: torch.Tensor, model: CoalaHear) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n_sounds, n_timestamps, timestamp_embedding_size)`` float32 embeddings and their ``(n_sounds, n_timestamps)`` times in ms.

    Window ``j`` covers 96 log-mel frames centred ``(j*hop + 0.5)`` frames into the sound; every centre
    inside the sound gets one, so the first is at 11.6 ms and the last within one hop of the end.
    """
    samples = _checked_audio(audio)
    hop = model.timestamp_hop_frames
    count = timestamp_count(samples.shape[1], model.sample_rate, hop)
    size = default_batch_size(model_device(model.encoder))
    embeddings = np.empty((len(samples), count, model.timestamp_embedding_size), np.float32)
    for i, sound in enumerate(samples):
        done = 0
        for group in _window_groups(sound, model, count, size):
            embeddings[i, done:done + len(group)] = model.embed(group)
            done += len(group)
    centres = (np.arange(count) * hop + 0.5) * (1000.0 * HOP_LENGTH / SAMPLE_RATE)
    timestamps = np.broadcast_to(centres.astype(np.float32), (len(samples), count)).copy()
    return torch.from_numpy(embeddings).to(audio.device), torch.from_numpy(timestamps).to(audio.device)
