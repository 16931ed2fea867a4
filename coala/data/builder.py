"""Building the training files from a folder of audio and its tag CSV, as the paper built its Freesound set.

Stages, in order: read the ``id,tags`` CSV row by row (a bad row is reported, never fatal); leave out
excluded ids; preprocess tags (``coala.data.tags``); pair each row with its ``<id>.<ext>`` audio file; compute
every clip's max-energy 96x96 log-mel patch in worker processes, cached per clip so an interrupted build
resumes; choose the vocabulary on the clips whose audio is usable; drop clips left with no tag; split
train/validation with seeded iterative stratification; fit the MinMax scaler on training patches only;
write the two HDF5 files, the vocabulary, the scaler and a JSON report, each atomically.

Every clip that is left out is listed in the report with its reason; only a build with nothing usable
left (or unusable options and files) stops, with a :class:`DatasetError`.
"""
from __future__ import annotations

import csv
import logging
import multiprocessing
import os
import signal
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import h5py
import librosa
import numpy as np
import torch
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit
from threadpoolctl import threadpool_limits

from coala.atomic import (atomic_paths, atomic_write, atomic_write_text, finish_interrupted_commit,
                          remove_stale_temporaries, require_writable_folder)
from coala.core.frontend import DEFAULT_RESAMPLER, PATCH_SHAPE, SAMPLE_RATE, load_audio, log_mel, pad_short_clip
from coala.core.frontend import max_energy_patch
from coala.audio.scaler import MinMaxScaler, save_scaler
from coala.cli import SEED_LIMIT, RunSummary, is_plain_name, progress_bar
from coala.data.hdf5 import write_provenance
from coala.data.tags import build_vocabulary, preprocess_tags
from coala.device import MAX_WORKERS
from coala.distributed import Runtime, agree, balanced_shares, file_weight, from_main, gather, on_main, round_robin
from coala.core.errors import AudioError, DatasetError
from coala.files import file_identity, visible_files
from coala.jsonfile import json_text, read_json, read_json_as
from coala.text import BOM
from coala.npyfile import read_npy

log = logging.getLogger(__name__)

SILENCE_PEAK = 1e-5
"""A clip whose absolute peak is below this (-100 dBFS) is silent: its patch would be the noise floor only."""

COMMIT_PREFIX = "commit_"

# A build's validation file is its training file's name with this suffix (spec_tags_<name>_val).
VALIDATION_SUFFIX = "_val"

BLOCK = 1024
"""Patches read from the cache at a time when fitting the scaler and writing HDF5 (bounded memory)."""

INT32_MAX = np.iinfo(np.int32).max

PER_PROCESS_OPTIONS = {"workers", "progress"}
"""Options each process of a torchrun build may set for itself: they change its speed, not the files."""

# Reasons a clip is left out, as they appear in the report.
MALFORMED_ROW = "malformed row"
INVALID_UTF8 = "tags not valid UTF-8"
DUPLICATE_ID = "duplicate id"
EXCLUDED = "excluded id"
NO_USABLE_TAG = "no usable tag"
MISSING = "missing audio file"
AMBIGUOUS = "several audio files"
EMPTY = "empty audio file"
UNDECODABLE = "undecodable audio"
SILENT = "silent audio"
NO_VOCABULARY_TAG = "no tag in vocabulary"


class SilentAudio(AudioError):
    """A clip that decodes but holds only silence: its patch would be the padding noise floor alone."""


@dataclass
class Skipped:
    """One left-out clip or CSV row: what it was and why."""

    reason: str
    id: int | None = None
    line: int | None = None
    file: str | None = None
    detail: str | None = None


def default_workers() -> int:
    """The CPU count, shared by the processes torchrun starts on this node (one thread per worker), at most
    ``MAX_WORKERS`` (a machine with more cores would otherwise fail the default's own check)."""
    return min(MAX_WORKERS, max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


@dataclass
class BuildOptions:
    """Every choice of a build; ``create_dataset.py`` fills it from the command line."""

    audio_dir: Path
    tags_csv: Path
    name: str
    out_dir: Path = Path("hdf5_ds")
    json_dir: Path = Path("json")
    num_tags: int = 1000
    min_count: int = 10
    max_fraction: float = 0.7
    val_fraction: float = 0.1
    exclude_ids: Path | None = None
    workers: int = field(default_factory=default_workers)
    seed: int = 0
    progress: bool = True

    def validate(self) -> None:
        checks = [
            (self.num_tags >= 1, f"--num-tags must be at least 1, got {self.num_tags}"),
            (self.min_count >= 1, f"--min-count must be at least 1, got {self.min_count}"),
            (0.0 < self.max_fraction <= 1.0, f"--max-fraction must be in (0, 1], got {self.max_fraction}"),
            (0.0 < self.val_fraction < 1.0, f"--val-fraction must be in (0, 1), got {self.val_fraction}"),
            (1 <= self.workers <= MAX_WORKERS, f"--workers must be between 1 and {MAX_WORKERS}, got {self.workers}"),
            (0 <= self.seed < SEED_LIMIT, f"--seed must be between 0 and {SEED_LIMIT - 1}, got {self.seed}"),
            (is_plain_name(self.name),
             f"--name must be a plain file-name part, got {self.name!r}"),
            (self.audio_dir.is_dir(), f"{self.audio_dir}: audio folder not found"),
            (self.tags_csv.is_file(), f"{self.tags_csv}: tag CSV not found"),
        ]
        for ok, message in checks:
            if not ok:
                raise DatasetError(message)

    @property
    def train_file(self) -> Path:
        return self.out_dir / f"spec_tags_{self.name}"

    @property
    def validation_file(self) -> Path:
        return self.train_file.with_name(self.train_file.name + VALIDATION_SUFFIX)

    @property
    def vocabulary_file(self) -> Path:
        return self.json_dir / f"id2token_{self.name}.json"

    @property
    def scaler_file(self) -> Path:
        return self.json_dir / f"scaler_{self.name}.json"

    @property
    def report_file(self) -> Path:
        return self.json_dir / f"dataset_report_{self.name}.json"

    @property
    def cache_dir(self) -> Path:
        return self.out_dir / f".cache_{self.name}"

    @property
    def commit_journal(self) -> Path:
        """Lists the renames of the output set while they happen (see ``coala.atomic.atomic_paths``)."""
        return self.out_dir / f".{COMMIT_PREFIX}{self.name}.json"


# --- input files -------------------------------------------------------------------------------------

def _parse_id(text: str) -> int | None:
    """A clip id: a non-negative integer that fits the HDF5 ``id`` column (int32)."""
    text = text.strip()
    if not text.isdigit() or int(text) > INT32_MAX:
        return None
    return int(text)


def read_tags_csv(path: Path) -> tuple[dict[int, str], int, list[Skipped]]:
    """The CSV's ``{id: tag string}``, its number of data rows, and the rows left out.

    Read as bytes and parsed one line at a time, so that a row with broken quoting or bytes that are not
    UTF-8 costs only that row. A tag string never spans lines in Freesound's metadata.
    """
    lines = path.read_bytes().removeprefix(BOM.encode()).split(b"\n")
    numbered = [(n, line.rstrip(b"\r")) for n, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise DatasetError(f"{path}: the tag CSV is empty (expected a header line with the columns id,tags)")
    header_line, header = numbered[0]
    try:
        columns = [c.strip().lower() for c in next(csv.reader([header.decode("utf-8")], strict=True))]
        id_col, tags_col = columns.index("id"), columns.index("tags")
    except (UnicodeDecodeError, csv.Error, ValueError):
        raise DatasetError(f"{path}: line {header_line} must be a header naming the columns id and tags") from None
    rows: dict[int, str] = {}
    skipped: list[Skipped] = []
    for n, raw in numbered[1:]:
        text = raw.decode("utf-8", errors="surrogateescape")
        try:
            fields = next(csv.reader([text], strict=True))
        except csv.Error as exc:
            skipped.append(Skipped(MALFORMED_ROW, line=n, detail=str(exc)))
            continue
        if len(fields) != len(columns):
            skipped.append(Skipped(MALFORMED_ROW, line=n, detail=f"{len(fields)} fields, the header has {len(columns)}"))
            continue
        clip_id = _parse_id(fields[id_col])
        if clip_id is None:
            detail = f"id {fields[id_col]!r} is not a non-negative 32-bit integer".encode("utf-8", "backslashreplace")
            skipped.append(Skipped(MALFORMED_ROW, line=n, detail=detail.decode("utf-8")))
        elif clip_id in rows:
            skipped.append(Skipped(DUPLICATE_ID, id=clip_id, line=n, detail="the first row with this id is used"))
        elif not _is_utf8(fields[tags_col]):
            skipped.append(Skipped(INVALID_UTF8, id=clip_id, line=n))
        else:
            rows[clip_id] = fields[tags_col]
    return rows, len(numbered) - 1, skipped


def _is_utf8(text: str) -> bool:
    """False where decoding with ``surrogateescape`` met bytes that are not UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_exclude_ids(path: Path) -> set[int]:
    """The ``--exclude-ids`` file: a JSON list of clip ids (integers, or strings of digits)."""
    values = read_json_as(path, list, DatasetError, "the exclude list of ids")
    ids = set()
    for value in values:
        clip_id = _parse_id(str(value)) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
        if clip_id is None:
            raise DatasetError(f"{path}: {value!r} is not a clip id (a non-negative integer)")
        ids.add(clip_id)
    return ids


def find_audio_files(audio_dir: Path) -> dict[int, list[Path]]:
    """Every ``<id>.<ext>`` file under ``audio_dir`` (recursively; hidden names skipped, ``coala.files``)."""
    found: dict[int, list[Path]] = {}
    for path in visible_files(audio_dir):
        clip_id = _parse_id(path.stem)
        if clip_id is not None:
            found.setdefault(clip_id, []).append(path)
    return found


# --- the spectrogram stage ---------------------------------------------------------------------------

def clip_patch(path: Path) -> np.ndarray:
    """The paper's training patch of one clip: its max-energy 96x96 log-mel window, before scaling.

    The silence check runs on the decoded signal, before padding adds its noise floor.
    """
    y = load_audio(path)
    if float(np.abs(y).max()) < SILENCE_PEAK:
        raise SilentAudio(path, f"peak below {SILENCE_PEAK:g}")
    return max_energy_patch(log_mel(pad_short_clip(y)))


def cache_file(cache_dir: Path, clip_id: int, audio: Path) -> Path:
    """Where the patch of ``audio`` as it is now is cached: ``<id>.<file_identity>.npy``, so a replaced
    audio file (even one with an older date) names another entry and is computed again."""
    return cache_dir / f"{clip_id}.{file_identity(audio)}.npy"


def is_cached(cache_dir: Path, clip_id: int, audio: Path) -> bool:
    try:
        return cache_file(cache_dir, clip_id, audio).is_file()
    except OSError:  # gone since it was listed: computing it reports why
        return False


def _entries_by_clip(cache_dir: Path) -> dict[str, list[Path]]:
    """The cache's patch entries grouped by clip id (the name before its first dot), listed once per
    stage: a listing per clip would read the whole folder once for every clip computed."""
    entries: dict[str, list[Path]] = {}
    with os.scandir(cache_dir) as listing:
        for entry in listing:
            clip_id, dot, _ = entry.name.partition(".")
            if dot and entry.name.endswith("npy"):
                entries.setdefault(clip_id, []).append(Path(entry.path))
    return entries


def _classify(clip_id: int, path: Path, exc: AudioError) -> Skipped:
    """Report reason of a front-end failure: a 0-byte file or a container with no frames is "empty"
    (``load_audio`` words the latter "holds no audio samples"), any other failure "undecodable"."""
    if isinstance(exc, SilentAudio):
        reason = SILENT
    elif (path.is_file() and path.stat().st_size == 0) or "no audio samples" in exc.reason:
        reason = EMPTY
    else:
        reason = UNDECODABLE
    return Skipped(reason, id=clip_id, file=str(path), detail=exc.reason)


def _cache_one(job: tuple[int, Path, Path, list[Path]]) -> tuple[int, Skipped | None]:
    """Worker: compute and cache one clip's patch; a bad clip comes back as its :class:`Skipped` entry.

    ``earlier`` are the clip's entries in the cache when the stage began: once the patch is written, those
    for earlier versions of its audio (and of builds before identities, named ``<id>.npy``) are removed,
    so the cache holds one patch per clip."""
    clip_id, audio, cache_dir, earlier = job
    try:
        cached = cache_file(cache_dir, clip_id, audio)  # the identity read before the contents
        patch = clip_patch(audio)
    except AudioError as exc:
        return clip_id, _classify(clip_id, audio, exc)
    except Exception as exc:  # a decoder bug on one odd file must not end a build of thousands
        return clip_id, Skipped(UNDECODABLE, id=clip_id, file=str(audio), detail=f"{type(exc).__name__}: {exc}")
    atomic_write(cached, lambda f: np.save(f, patch.astype(np.float32)))
    for old in earlier:
        if old != cached:
            old.unlink(missing_ok=True)
    return clip_id, None


def _warm_up_front_end() -> None:
    """Run the front end once in the parent, before forking, on a generated one-second signal.

    The first call in a fresh process pays librosa's lazy imports behind ``resample`` (1-3 s measured
    here), the mel filter bank and torch's FFT set-up (about 0.1 s); forked workers inherit all of it
    instead of each paying it before its first clip.
    """
    tone = np.sin(np.linspace(0.0, 1000.0, 2 * SAMPLE_RATE, dtype=np.float32))
    y = librosa.resample(tone, orig_sr=2 * SAMPLE_RATE, target_sr=SAMPLE_RATE, res_type=DEFAULT_RESAMPLER)
    max_energy_patch(log_mel(pad_short_clip(y)))


def init_worker() -> None:
    """One thread per worker process: the processes are the parallelism, threads would only compete.

    Workers ignore Ctrl-C: the parent receives it, stops the pool and says how to resume.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    threadpool_limits(1)


def compute_patches(clips: dict[int, Path], cache_dir: Path, workers: int, progress: bool = True) -> list[Skipped]:
    """Cache the patch of every clip not cached yet, in ``workers`` processes; return the bad clips."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(cache_dir)  # left by a build killed mid-write
    entries = _entries_by_clip(cache_dir)
    jobs = [(clip_id, audio, cache_dir, entries.get(str(clip_id), [])) for clip_id, audio in clips.items()
            if not is_cached(cache_dir, clip_id, audio)]
    if not jobs:
        return []
    failures = []
    _warm_up_front_end()
    chunksize = max(1, min(16, len(jobs) // (4 * workers)))
    with multiprocessing.Pool(workers, initializer=init_worker) as pool:
        results = pool.imap_unordered(_cache_one, jobs, chunksize=chunksize)
        for _, skipped in progress_bar(results, progress, total=len(jobs), desc="spectrograms", unit="clip"):
            if skipped is not None:
                failures.append(skipped)
    return sorted(failures, key=lambda skipped: skipped.id)  # in id order, not in the order workers finished


def load_patches(files: Sequence[Path]) -> np.ndarray:
    """Cached patches ``(len(files), 96, 96)`` float32, in the order of ``files`` (``cache_file``)."""
    patches = np.empty((len(files), *PATCH_SHAPE), dtype=np.float32)
    for i, path in enumerate(files):
        try:
            patches[i] = read_npy(path)
        except (OSError, ValueError, EOFError) as exc:
            raise DatasetError(f"{path}: unreadable cached patch ({exc}); delete it and run the build again") from None
    return patches


def _blocks(files: Sequence[Path]) -> Iterator[tuple[int, Sequence[Path]]]:
    for start in range(0, len(files), BLOCK):
        yield start, files[start : start + BLOCK]


# --- vocabulary, split, scaler, files ----------------------------------------------------------------

def multi_hot(clip_tags: Iterable[Sequence[str]], vocabulary: Sequence[str]) -> np.ndarray:
    """Labels ``(n_clips, len(vocabulary))`` int16, the release's ``label`` layout."""
    index = {word: i for i, word in enumerate(vocabulary)}
    tag_lists = list(clip_tags)
    labels = np.zeros((len(tag_lists), len(vocabulary)), dtype=np.int16)
    for row, tags in enumerate(tag_lists):
        labels[row, [index[w] for w in tags if w in index]] = 1
    return labels


def split_train_validation(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (sorted) of the training and validation sets: iterative stratification, seeded."""
    too_few = DatasetError(f"{len(labels)} usable clips are too few to hold out a validation share of {val_fraction}")
    n_val = int(np.ceil(val_fraction * len(labels)))
    if n_val < 1 or n_val >= len(labels):
        raise too_few
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    train, val = next(splitter.split(np.zeros((len(labels), 1)), labels))
    if not len(train) or not len(val):
        raise too_few
    return np.sort(train), np.sort(val)


def fit_scaler(files: Sequence[Path]) -> MinMaxScaler:
    """MinMax over the training patches (mel rows as samples, frames as features), read block by block.

    The per-feature extremes of all rows are the extremes of the blocks' extremes, so fitting on those two
    rows gives the same scaler as fitting on every patch at once, without holding them all in memory.
    """
    lows, highs = [], []
    for _, block in _blocks(files):
        rows = load_patches(block).reshape(-1, PATCH_SHAPE[1])
        lows.append(rows.min(axis=0))
        highs.append(rows.max(axis=0))
    extremes = np.stack([np.min(lows, axis=0), np.max(highs, axis=0)])
    return replace(MinMaxScaler.fit(extremes), n_samples_seen=len(files) * PATCH_SHAPE[0])


def write_hdf5(path: Path, ids: Sequence[int], labels: np.ndarray, files: Sequence[Path], scaler: MinMaxScaler,
               vocabulary: Sequence[str]) -> None:
    """The release layout: group ``dataset`` with ``id`` (N,1) int32, scaled ``data`` (N,96,96) float32,
    ``label`` (N,n_tags) int16, and the scaler and vocabulary that made them as attributes of the group
    (``coala.data.hdf5.write_provenance``), so a model trained on the file records them. ``path`` is a
    temporary the caller renames (``atomic_paths``)."""
    with h5py.File(path, "w") as f:
        group = f.create_group("dataset")
        write_provenance(group, scaler, vocabulary)
        group.create_dataset("id", data=np.asarray(ids, dtype=np.int32).reshape(-1, 1))
        data = group.create_dataset("data", shape=(len(ids), *PATCH_SHAPE), dtype=np.float32)
        group.create_dataset("label", data=labels.astype(np.int16))
        for start, block in _blocks(files):
            data[start : start + len(block)] = scaler.transform(load_patches(block))


def _write_json(path: Path, value: object) -> None:
    atomic_write_text(path, json_text(value, indent=1) + "\n")


@dataclass
class _Inputs:
    """What the build reads before any spectrogram: the CSV's rows, the clips to use and those left out."""

    n_rows: int
    skipped: list[Skipped]
    clip_tags: dict[int, list[str]]
    clips: dict[int, Path]
    without_row: int


def _read_inputs(options: BuildOptions) -> _Inputs:
    """The checks and clean-up before any work (an interrupted commit finished, dead writers' temporaries
    swept), then the inputs read and paired."""
    options.validate()
    require_writable_folder(options.out_dir, "--out-dir")
    require_writable_folder(options.json_dir, "--json-dir")
    # Every build's interrupted renames are finished before any sweep, which would take their temporaries.
    for journal in options.out_dir.glob(f".{COMMIT_PREFIX}*.json"):
        finish_interrupted_commit(journal)
        log.info(f"{journal}: finished the renames of a build interrupted while replacing its output files")
    for folder in {options.out_dir, options.json_dir}:
        remove_stale_temporaries(folder)
    excluded = read_exclude_ids(options.exclude_ids) if options.exclude_ids else set()
    rows, n_rows, skipped = read_tags_csv(options.tags_csv)
    audio_files = find_audio_files(options.audio_dir)
    csv_ids = set(rows) | {s.id for s in skipped}
    without_row = sum(len(paths) for clip_id, paths in audio_files.items() if clip_id not in csv_ids)

    clip_tags: dict[int, list[str]] = {}
    clips: dict[int, Path] = {}
    for clip_id in sorted(rows):
        tags = preprocess_tags(rows[clip_id])
        files = audio_files.get(clip_id, [])
        if clip_id in excluded:
            skipped.append(Skipped(EXCLUDED, id=clip_id))
        elif not tags:
            skipped.append(Skipped(NO_USABLE_TAG, id=clip_id, detail=f"tags {rows[clip_id]!r}"))
        elif not files:
            skipped.append(Skipped(MISSING, id=clip_id, detail=f"no file {clip_id}.<ext> in {options.audio_dir}"))
        elif len(files) > 1:
            skipped.append(Skipped(AMBIGUOUS, id=clip_id, detail=", ".join(str(p) for p in files)))
        else:
            clip_tags[clip_id], clips[clip_id] = tags, files[0]
    return _Inputs(n_rows, skipped, clip_tags, clips, without_row)


def _shared_patches(clips: dict[int, Path] | None, options: BuildOptions,
                    runtime: Runtime) -> tuple[list[Skipped], RunSummary]:
    """The spectrogram stage split over torchrun's processes: rank 0 (which alone read ``clips``) lists the
    clips not cached yet with their file sizes, each process computes its ``balanced_shares`` of them
    into the shared cache, and every process learns all bad clips (in id order). The summary is this
    process's share; cached clips are counted, round robin, as skipped."""
    def plan() -> tuple[list[tuple[int, Path, int]], int]:
        todo = [(clip_id, audio, file_weight(audio)) for clip_id, audio in clips.items()
                if not is_cached(options.cache_dir, clip_id, audio)]
        return todo, len(clips) - len(todo)

    todo, cached = from_main(runtime, plan)
    share = balanced_shares([size for _, _, size in todo], runtime.world_size)[runtime.rank]
    mine = {todo[i][0]: todo[i][1] for i in share}
    bad = compute_patches(mine, options.cache_dir, options.workers, options.progress and runtime.main)
    summary = RunSummary(done=len(mine) - len(bad), skipped=len(round_robin(cached, runtime)), failed=len(bad))
    return sorted((s for part in gather(runtime, bad) for s in part), key=lambda skipped: skipped.id), summary


def build_dataset(options: BuildOptions, runtime: Runtime | None = None) -> dict | None:
    """Run every stage and write every file; return the report (also written as JSON).

    Under torchrun (``runtime.distributed``) the processes share the spectrogram stage; rank 0 alone
    reads the inputs and writes the files, exactly as one process would, and returns the report (the
    others return None and log their share's counts). Every process stops with a ``CoalaError`` any
    stage raised on rank 0, and all must have been given the same options (``--workers`` aside).
    """
    if runtime is None or not runtime.distributed:
        inputs = _read_inputs(options)
        bad = compute_patches(inputs.clips, options.cache_dir, options.workers, options.progress)
        return _finish(options, inputs, bad)
    agree(runtime, {f"--{key.replace('_', '-')}": str(value) for key, value in asdict(options).items()
                    if key not in PER_PROCESS_OPTIONS})
    inputs = on_main(runtime, lambda: _read_inputs(options))
    bad, summary = _shared_patches(inputs.clips if inputs else None, options, runtime)
    log.info(f"{runtime.label()}: {summary.counts()}")
    return on_main(runtime, lambda: _finish(options, inputs, bad))


def _finish(options: BuildOptions, inputs: _Inputs, bad: list[Skipped]) -> dict:
    """Vocabulary, split, scaler and the five files, from the cached patches of the clips not in ``bad``."""
    n_rows, skipped, clip_tags, without_row = inputs.n_rows, inputs.skipped, inputs.clip_tags, inputs.without_row
    for clip in bad:
        skipped.append(clip)
        del clip_tags[clip.id]

    vocabulary = build_vocabulary(clip_tags, options.num_tags, options.min_count, options.max_fraction)
    in_vocabulary = set(vocabulary)
    for clip_id in [c for c, tags in clip_tags.items() if in_vocabulary.isdisjoint(tags)]:
        skipped.append(Skipped(NO_VOCABULARY_TAG, id=clip_id))
        del clip_tags[clip_id]
    if not clip_tags:
        _write_json(options.report_file, _report(options, n_rows, [], [], [], skipped, without_row))
        raise DatasetError(f"nothing usable left: none of the {n_rows} CSV rows has readable audio and a tag found "
                           f"on at least {options.min_count} clips; reasons in {options.report_file}")

    ids = sorted(clip_tags)
    labels = multi_hot((clip_tags[c] for c in ids), vocabulary)
    train_rows, val_rows = split_train_validation(labels, options.val_fraction, options.seed)
    train_ids, val_ids = [ids[i] for i in train_rows], [ids[i] for i in val_rows]
    cached = {clip_id: cache_file(options.cache_dir, clip_id, inputs.clips[clip_id]) for clip_id in ids}
    scaler = fit_scaler([cached[c] for c in train_ids])

    report = _report(options, n_rows, vocabulary, train_ids, val_ids, skipped, without_row)
    # The five files replace an earlier build's together or not at all: a training run must never
    # meet a new training file beside an old vocabulary.
    outputs = [options.train_file, options.validation_file, options.vocabulary_file, options.scaler_file,
               options.report_file]
    with atomic_paths(outputs, options.commit_journal) as (train_tmp, val_tmp, vocabulary_tmp, scaler_tmp, report_tmp):
        write_hdf5(train_tmp, train_ids, labels[train_rows], [cached[c] for c in train_ids], scaler, vocabulary)
        write_hdf5(val_tmp, val_ids, labels[val_rows], [cached[c] for c in val_ids], scaler, vocabulary)
        _write_json(vocabulary_tmp, {str(i): word for i, word in enumerate(vocabulary)})
        save_scaler(scaler, scaler_tmp)
        _write_json(report_tmp, report)
    return report


def _report(options: BuildOptions, n_rows: int, vocabulary: Sequence[str], train_ids: Sequence[int],
            val_ids: Sequence[int], skipped: Sequence[Skipped], without_row: int) -> dict:
    """What the build read, kept and left out (with reasons), and where it wrote."""
    return {
        "name": options.name,
        "clips_read": n_rows,
        "clips_kept": len(train_ids) + len(val_ids),
        "clips_skipped": len(skipped),
        "skipped_by_reason": dict(Counter(s.reason for s in skipped).most_common()),
        "tags_kept": len(vocabulary),
        "train_size": len(train_ids),
        "validation_size": len(val_ids),
        "audio_files_without_row": without_row,
        "files": {k: str(getattr(options, k)) for k in
                  ("train_file", "validation_file", "vocabulary_file", "scaler_file", "report_file")},
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items() if k != "progress"},
        "skipped": [{k: v for k, v in asdict(s).items() if v is not None} for s in skipped],
    }
