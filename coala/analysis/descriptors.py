"""Classic acoustic descriptors of the validation clips, by the recipe of the paper's analysis.

The paper compared its embeddings with descriptors computed by its own recipe, which differs from the
training front end (``coala.core.frontend``) on purpose: a dB power mel spectrogram with 128 bands
(librosa's default mel) rather than 96 log-magnitude bands, and the 96-frame window chosen by the sum
of STFT magnitudes rather than of log-mel values. Its constants below belong to that recipe alone.
Shared with training: the sample rate (22000 Hz), decoding and resampling (``load_audio``, soxr where
the paper had resampy's ``kaiser_fast``) and the 10 s noise padding of short clips (``pad_short_clip``).

Per clip: in the window, 20 MFCCs (from the dB mel), 12 chroma bins, spectral centroid, bandwidth and
rolloff (from the magnitude), each summarised over the window's frames by mean, variance and skewness:
15 sets under the paper's key names, misspelt ``spectral_bandwitdh`` included, so files written by the
paper's ``analyse_sounds.py`` (``sound_analysis_validation_set_librosa.json``) and by this module read
alike: ``{"<clip id>": {"mfcc_mean": [20 floats], ..., "spectral_rolloff_skew": [1 float]}}``. The
paper's script never wrote the three rolloff sets that its CCA script asked for; this module does.

A run is resumable: each finished clip is appended to ``<out>.partial`` as one JSON line, and a rerun
skips the clips found there or in ``<out>``; ``<out>`` itself is written once, atomically, at the end.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import librosa
import numpy as np
import scipy.stats

from coala.atomic import atomic_write_text
from coala.core.frontend import SAMPLE_RATE, load_audio, pad_short_clip
from coala.cli import check_coverage, progress_bar
from coala.data.builder import find_audio_files, init_worker
from coala.data.hdf5 import GROUP, inspect_hdf5
from coala.core.errors import AnalysisError, AudioError
from coala.jsonfile import read_json
from coala.npyfile import float32_problem

log = logging.getLogger(__name__)

# The paper's analysis recipe (its analyse_sounds.py), distinct from the training front end's constants.
N_FFT = 1024
HOP_LENGTH = 512
N_MELS = 128           # librosa's default mel: 128 bands on the power spectrogram
WINDOW_FRAMES = 96     # the analysed window, as long as a training patch
SEARCH_HOP = 12        # window starts 0, 12, 24, ...: the window with the largest magnitude sum wins
STFT_PAD_MODE = "reflect"  # what the paper's librosa 0.7.2 did for centred frames (librosa 0.10+ pads zeros)

# Per feature, the keys of its mean, variance and skewness over the window, as the paper named them.
FEATURE_KEYS: dict[str, tuple[str, str, str]] = {
    "mfcc": ("mfcc_mean", "mfcc_var", "mfcc_skew"),
    "chroma": ("chroma_mean", "chroma_var", "chroma_skew"),
    "spectral_centroid": ("spectral_centroid", "spectral_centroid_var", "spectral_centroid_skew"),
    "spectral_bandwidth": ("spectral_bandwitdh", "spectral_bandwitdh_var", "spectral_bandwitdh_skew"),
    "spectral_rolloff": ("spectral_rolloff", "spectral_rolloff_var", "spectral_rolloff_skew"),
}
DESCRIPTOR_KEYS = tuple(key for keys in FEATURE_KEYS.values() for key in keys)
MEAN_KEYS = tuple(keys[0] for keys in FEATURE_KEYS.values())

Descriptors = dict[str, list[float]]


def spectrograms(y: np.ndarray, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """``(magnitude, db_mel)`` of an already padded signal: the STFT magnitude ``(513, frames)`` and
    ``power_to_db`` of the 128-band mel of its square (what ``melspectrogram(y=...)`` computes)."""
    magnitude = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP_LENGTH, pad_mode=STFT_PAD_MODE))
    mel = librosa.feature.melspectrogram(S=magnitude ** 2, sr=sr, n_fft=N_FFT, n_mels=N_MELS)
    return magnitude, librosa.power_to_db(mel)


def max_energy_window(magnitude: np.ndarray) -> slice:
    """The ``WINDOW_FRAMES`` frames, starting at a multiple of ``SEARCH_HOP``, with the largest sum of
    STFT magnitudes (the first such window on ties)."""
    n_frames = magnitude.shape[1]
    if n_frames < WINDOW_FRAMES:
        raise ValueError(f"{n_frames} frames, fewer than the {WINDOW_FRAMES}-frame window")
    cumulative = np.concatenate([[0.0], np.cumsum(magnitude.sum(axis=0, dtype=np.float64))])
    starts = np.arange(0, n_frames - WINDOW_FRAMES + 1, SEARCH_HOP)
    best = int(starts[np.argmax(cumulative[starts + WINDOW_FRAMES] - cumulative[starts])])
    return slice(best, best + WINDOW_FRAMES)


def clip_descriptors(y: np.ndarray, sr: int = SAMPLE_RATE) -> Descriptors:
    """The 15 descriptor sets of one decoded clip (mono at ``sr``), padded as in training when short."""
    magnitude, db_mel = spectrograms(pad_short_clip(y, sr), sr)
    window = max_energy_window(magnitude)
    s, s_db = magnitude[:, window], db_mel[:, window]
    features = {
        "mfcc": librosa.feature.mfcc(S=s_db, sr=sr),
        "chroma": librosa.feature.chroma_stft(S=s, sr=sr),
        "spectral_centroid": librosa.feature.spectral_centroid(S=s, sr=sr),
        "spectral_bandwidth": librosa.feature.spectral_bandwidth(S=s, sr=sr),
        "spectral_rolloff": librosa.feature.spectral_rolloff(S=s, sr=sr),
    }
    out: Descriptors = {}
    for name, (mean_key, var_key, skew_key) in FEATURE_KEYS.items():
        values = features[name].astype(np.float64)
        out[mean_key] = np.mean(values, axis=1).tolist()
        out[var_key] = np.var(values, axis=1).tolist()
        out[skew_key] = scipy.stats.skew(values, axis=1).tolist()
    return out


def file_descriptors(path: Path) -> Descriptors:
    """``clip_descriptors`` of an audio file; ``AudioError`` naming it when it cannot be decoded."""
    return clip_descriptors(load_audio(path))


# --- which clips ------------------------------------------------------------------------------------

def validation_ids(path: Path) -> list[int]:
    """The clip ids of a validation set: the ``dataset/id`` column of its HDF5 file, or a JSON list of
    ids such as the paper's ``sound_ids_validation.json``; in file order, duplicates dropped."""
    if not path.is_file():
        raise AnalysisError(f"{path}: no such file (expected the validation HDF5 file or a JSON list of ids)")
    if h5py.is_hdf5(path):
        inspect_hdf5(path)
        with h5py.File(path, "r") as f:
            ids = f[GROUP]["id"][...].reshape(-1).tolist()
    else:
        try:
            ids = read_json(path)
        except ValueError as exc:
            raise AnalysisError(f"{path}: neither an HDF5 file nor JSON ({exc})") from None
        if not isinstance(ids, list) or not all(isinstance(i, int) or (isinstance(i, str) and i.isdigit()) for i in ids):
            raise AnalysisError(f"{path}: expected a JSON list of integer clip ids")
    return list(dict.fromkeys(int(i) for i in ids))


# --- descriptor files -------------------------------------------------------------------------------

def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_descriptors(value: object) -> Descriptors | None:
    """A clip's entry: each set a flat list of numbers (a bare number is a list of one), each a finite
    float32 value or NaN (a skewness over a constant window; the CCA leaves such clips out)."""
    if value is None:  # a clip the paper's script could not analyse
        return None
    if not isinstance(value, dict):
        raise ValueError("a clip's entry is not an object of descriptor lists")
    sets = {key: v if isinstance(v, list) else [v] for key, v in value.items()}
    for key, values in sets.items():
        if not all(_is_number(v) for v in values):
            raise ValueError(f"{key} is not a flat list of numbers")
        problem = float32_problem(np.array(values, dtype=object).astype(np.float64), allow_nan=True)
        if problem is not None:
            raise ValueError(f"{key} holds {problem}")
    return sets


def _same_lengths(parsed: dict[int, Descriptors]) -> None:
    """Every clip's set ``key`` has as many values as the first clip's: the CCA stacks them as rows."""
    lengths: dict[str, tuple[int, int]] = {}
    for clip_id, sets in parsed.items():
        for key, values in sets.items():
            first_id, n = lengths.setdefault(key, (clip_id, len(values)))
            if len(values) != n:
                raise ValueError(f"clip {clip_id} has {len(values)} values of {key}, clip {first_id} has {n}")


def read_descriptors(path: Path) -> dict[int, Descriptors]:
    """A descriptor file of this module or of the paper (``{"<id>": {key: list}}``), by integer clip id.

    Clips whose entry is null are left out; which descriptor sets a file holds is up to it (the paper's
    lacks the rolloff sets).
    """
    if not path.is_file():
        raise AnalysisError(f"{path}: descriptor file not found (write it with `analyse.py descriptors`)")
    try:
        raw = read_json(path)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        parsed = {}
        for clip_id, value in raw.items():
            try:
                parsed[int(clip_id)] = _as_descriptors(value)
            except OverflowError:  # an integer of hundreds of digits
                raise ValueError(f"clip {clip_id}: a value beyond float64") from None
            except ValueError as exc:
                raise ValueError(f"clip {clip_id}: {exc}") from None
        _same_lengths({clip_id: value for clip_id, value in parsed.items() if value is not None})
    except ValueError as exc:
        raise AnalysisError(f"{path}: not a descriptor file of {{clip id: {{descriptor: values}}}} ({exc})") from None
    return {clip_id: value for clip_id, value in parsed.items() if value is not None}


def partial_file(out: Path) -> Path:
    """Where a run appends each finished clip, so that an interrupted run resumes."""
    return out.with_name(out.name + ".partial")


def _read_partial(path: Path) -> dict[int, Descriptors]:
    """The clips of a partial file; a last line cut short by a kill is ignored (that clip is redone)."""
    done: dict[int, Descriptors] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            clip_id, value = json.loads(line)
            done[int(clip_id)] = _as_descriptors(value)
        except (json.JSONDecodeError, ValueError, TypeError):
            continue
    return done


# --- a run ------------------------------------------------------------------------------------------

@dataclass
class DescriptorRun:
    """What a run did: clips written in all, computed now, missing from the audio folder, failed."""

    written: int = 0
    computed: int = 0
    missing: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.written} clips described ({self.computed} computed now), "
                f"{len(self.missing)} missing from the audio folder, {len(self.failed)} failed")


def _describe_one(job: tuple[int, Path]) -> tuple[int, Descriptors | None, str | None]:
    """Worker: one clip's descriptors, or the reason it failed (one odd file must not end the run)."""
    clip_id, path = job
    try:
        return clip_id, file_descriptors(path), None
    except AudioError as exc:
        return clip_id, None, exc.reason
    except Exception as exc:  # noqa: BLE001 - a decoder or librosa bug on one file is reported, not fatal
        return clip_id, None, f"{type(exc).__name__}: {exc}"


def _results(jobs: list[tuple[int, Path]], workers: int) -> Iterator[tuple[int, Descriptors | None, str | None]]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_describe_one, jobs)
        return
    with multiprocessing.Pool(workers, initializer=init_worker) as pool:
        yield from pool.imap_unordered(_describe_one, jobs, chunksize=max(1, min(8, len(jobs) // (4 * workers))))


def compute_descriptors(ids: Sequence[int], audio_dir: Path, out: Path, workers: int = 1,
                        progress: bool = True, allow_subset: bool = False) -> DescriptorRun:
    """Describe every clip of ``ids`` found in ``audio_dir`` (``<id>.<ext>``) into ``out``.

    Clips already in ``out`` or its partial file are kept, not recomputed. ``out`` holds the clips of
    ``ids`` that were described, keyed by id in the order of ``ids``; the rest are in the returned run.
    More than a few ids without an audio file is an ``AnalysisError`` before any work, unless
    ``allow_subset`` (``coala.cli.check_coverage``).
    """
    if not audio_dir.is_dir():
        raise AnalysisError(f"{audio_dir}: audio folder not found")
    files = find_audio_files(audio_dir)
    previous = read_descriptors(out) if out.is_file() else {}
    journal = partial_file(out)
    previous.update(_read_partial(journal))
    run = DescriptorRun()
    jobs = []
    for clip_id in ids:
        if clip_id in previous:
            continue
        found = files.get(clip_id, [])
        if not found:
            run.missing.append(clip_id)
        elif len(found) > 1:
            run.failed.append((clip_id, "several audio files: " + ", ".join(str(p) for p in found)))
        else:
            jobs.append((clip_id, found[0]))
    check_coverage(str(audio_dir), len(run.missing), len(ids),
                   f"clips have no audio file (e.g. {run.missing[0] if run.missing else ''})", allow_subset, AnalysisError)
    if run.missing:
        shown = ", ".join(map(str, run.missing[:10])) + (" ..." if len(run.missing) > 10 else "")
        log.warning(f"{audio_dir}: {len(run.missing)} of {len(ids)} clips have no audio file ({shown})")
    log.info(f"{len(ids)} clips: {len(ids) - len(jobs) - len(run.missing) - len(run.failed)} already described, "
             f"{len(jobs)} to describe")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(journal, "a", encoding="utf-8") as partial:
        results = _results(jobs, workers)
        for clip_id, value, error in progress_bar(results, progress, total=len(jobs), desc="descriptors", unit="clip"):
            if error is not None:
                log.warning(f"{files[clip_id][0]}: {error}")
                run.failed.append((clip_id, error))
                continue
            previous[clip_id] = value
            partial.write(json.dumps([clip_id, value]) + "\n")
            partial.flush()
            run.computed += 1
    kept = {str(clip_id): previous[clip_id] for clip_id in ids if clip_id in previous}
    atomic_write_text(out, json.dumps(kept))
    journal.unlink(missing_ok=True)
    run.written = len(kept)
    return run

