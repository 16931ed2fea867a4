"""A search index: clips' vectors in the shared space, on disk, searched exactly by a float32 product.

Layout of an index folder::

    clips.npy     (n_clips, 1152) float32: per clip the mean of its audio chunks' z_d, L2-normalised
    chunks.npy    (n_chunks, 1152) float32: each audio chunk's z_d, L2-normalised (where a match is)
    offsets.npy   (n_clips + 1,) int64: clip i's chunks are chunks[offsets[i]:offsets[i + 1]]
    samples.npy   (n_clips,) int64: each clip's length in samples at 22000 Hz
    files.json    the clips' audio files (absolute paths), in row order
    index.json    written last: format, counts and the model record (checkpoint hashes); its presence
                  means the index is complete
    chunks/       (``index`` only) the per-file z_d ``.npy`` of the extraction and its failures.tsv: a rerun
                  skips what is done, as encode.py does

Only the chunks that hold a clip's audio are indexed (``coala.core.frontend.audio_chunks``): a clip under
10 s is padded to 10 s before it is cut into chunks, and its chunks of padding alone would make short
clips alike, crowd the results and place matches after their clip's end.

The arrays are read memory-mapped, and a query runs over blocks of rows: memory stays that of one block
whatever the index size, and the operating system's page cache keeps a queried index in memory.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coala.atomic import atomic_path, atomic_write, atomic_write_text, require_writable_folder
from coala.core.frontend import CHUNK_SECONDS, SAMPLE_RATE, audio_chunks, audio_samples, chunk_count
from coala.encode.failures import FAILURES_FILE
from coala.cli import RunSummary
from coala.encode.files import chunk_computer
from coala.core.model import default_batch_size
from coala.encode.jobs import plan_inputs
from coala.encode.run import run_extraction
from coala.core.model import model_device
from coala.encode.shards import EmbeddingFolder, clip_name
from coala.core.errors import SearchError
from coala.jsonfile import read_json
from coala.npyfile import float32_problem, read_npy
from coala.core.model import LATENT_DIM
from coala.encode.provenance import FOLDER_RECORD, claim_folder, folder_record, read_folder_record
from coala.search.model import ModelPair, normalise

# 2: only audio chunks, and samples.npy. A format-1 index also ranked its clips' padding.
FORMAT_VERSION = 2
MANIFEST = "index.json"
CLIPS, CHUNKS, OFFSETS, SAMPLES, FILES = "clips.npy", "chunks.npy", "offsets.npy", "samples.npy", "files.json"
CHUNK_FOLDER = "chunks"
# Rows per block of a query: 65536 x 1152 float32 is 300 MB of the mapped index per product, and the
# scores of a block (256 KB) are all a query allocates.
SEARCH_BLOCK = 65536
log = logging.getLogger(__name__)

# Clips' chunk z_d, a block of whole clips at a time: (chunks, number of chunks of each clip).
ChunkBlocks = Iterable[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Hit:
    """One ranked clip: its row, audio file, cosine to the query, where in it the best chunk starts, and
    its length (seconds); ``best_seconds < duration`` always, the index holding no chunk past the end."""

    clip: int
    path: str
    score: float
    best_seconds: float
    duration: float


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first (ties: lower index first)."""
    if len(scores) > k:
        candidates = np.argpartition(-scores, k - 1)[:k]
    else:
        candidates = np.arange(len(scores))
    return candidates[np.lexsort((candidates, -scores[candidates]))]


class SearchIndex:
    """An index folder opened for queries (``open_index``); the arrays are memory-mapped."""

    def __init__(self, folder: Path, manifest: dict, files: list[str], clips: np.ndarray, chunks: np.ndarray,
                 offsets: np.ndarray, samples: np.ndarray) -> None:
        self.folder = folder
        self.manifest = manifest
        self.files = files
        self.clips = clips
        self.chunks = chunks
        self.offsets = offsets
        self.samples = samples

    def __len__(self) -> int:
        return len(self.files)

    def check_model(self, pair: ModelPair) -> None:
        """Refuse a pair other than the one that built the index: its space is another space."""
        record = self.manifest["model"]
        keys = ("audio_encoder_fingerprint", "tag_encoder_fingerprint")
        if any(record.get(key) != pair.record[key] for key in keys):
            raise SearchError(f"{self.folder / MANIFEST}: built with the model {record.get('model')} "
                              f"({record.get('folder')}), not {pair.name} ({pair.folder}): another model's space; "
                              "query with the index's model or rebuild the index")

    def scores(self, vector: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, cosines)`` of each block of clips against a unit ``vector``.

        A row holding NaN or inf (a damaged index) gives a score that is no number, which would rank
        anywhere: it is an error naming the row, found at no cost since every row is scored anyway."""
        query = np.asarray(vector, dtype=np.float32)
        problem = float32_problem(query)
        if problem is not None:
            raise SearchError(f"the query vector holds {problem}: the model gives no usable vector for it")
        for start in range(0, len(self), SEARCH_BLOCK):
            block = self.clips[start:start + SEARCH_BLOCK] @ query
            self._check_finite(block, start, CLIPS)
            yield start, block

    def _check_finite(self, scores: np.ndarray, first: int, name: str) -> None:
        bad = np.flatnonzero(~np.isfinite(scores))
        if len(bad):
            raise SearchError(f"{self.folder / name}: row {first + int(bad[0])} holds values that are not finite "
                              "(a damaged index); rebuild it")

    def best_chunk(self, clip: int, vector: np.ndarray) -> int:
        first = int(self.offsets[clip])
        scores = self.chunks[first:self.offsets[clip + 1]] @ np.asarray(vector, dtype=np.float32)
        self._check_finite(scores, first, CHUNKS)
        return int(np.argmax(scores))

    def search(self, vector: np.ndarray, top: int = 10) -> list[Hit]:
        """The ``top`` clips by cosine to a unit ``vector``, best first: exact, block by block."""
        best_rows = np.empty(0, dtype=np.int64)
        best_scores = np.empty(0, dtype=np.float32)
        for start, block in self.scores(vector):
            keep = top_k(block, top)
            rows = np.concatenate([best_rows, keep + start])
            values = np.concatenate([best_scores, block[keep]])
            chosen = top_k(values, top)
            best_rows, best_scores = rows[chosen], values[chosen]
        return [Hit(int(r), self.files[r], float(s), self.best_chunk(int(r), vector) * CHUNK_SECONDS,
                    int(self.samples[r]) / SAMPLE_RATE) for r, s in zip(best_rows, best_scores)]


def _clip_means(chunks: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per clip the mean of its rows (clip ``i`` has ``counts[i]`` consecutive rows)."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return np.add.reduceat(chunks, starts, axis=0) / counts[:, None]


def _allocated_memmap(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A float32 ``.npy`` mapped for writing, its blocks reserved on disk first: a memory-mapped write into
    a sparse file that meets a full disk kills the process (SIGBUS), where the reservation fails at once
    with an ``OSError`` naming the file."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    with open(path, "r+b") as f:
        os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
    return array


def write_index(folder: Path, record: dict, files: Sequence[str], samples: np.ndarray, blocks: ChunkBlocks) -> Path:
    """Write an index of ``files`` (clip ``i`` is ``samples[i]`` samples long, and has ``audio_chunks`` of
    them) from their chunks' raw ``z_d``, audio chunks only.

    The previous manifest goes first and the new one comes last, so a folder is never taken for a
    complete index while its arrays are being replaced.
    """
    samples = np.asarray(samples, dtype=np.int64)
    counts = audio_chunks(samples).astype(np.int64)
    if len(files) == 0:
        raise SearchError(f"{folder}: no clip to index")
    require_writable_folder(folder, "--index")
    (folder / MANIFEST).unlink(missing_ok=True)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    with atomic_path(folder / CLIPS) as clips_tmp, atomic_path(folder / CHUNKS) as chunks_tmp:
        clips = _allocated_memmap(clips_tmp, (len(files), LATENT_DIM))
        chunks = _allocated_memmap(chunks_tmp, (int(offsets[-1]), LATENT_DIM))
        row = 0
        for block, block_counts in blocks:
            clips[row:row + len(block_counts)] = normalise(_clip_means(block, block_counts))
            chunks[offsets[row]:offsets[row] + len(block)] = normalise(block)
            row += len(block_counts)
        if row != len(files):
            raise ValueError(f"{row} clips written for {len(files)} files")
        clips.flush()
        chunks.flush()
        del clips, chunks
    atomic_write(folder / OFFSETS, lambda f: np.save(f, offsets))
    atomic_write(folder / SAMPLES, lambda f: np.save(f, samples))
    atomic_write_text(folder / FILES, json.dumps(list(files)))
    manifest = {"format": FORMAT_VERSION, "n_clips": len(files), "n_chunks": int(offsets[-1]), "dim": LATENT_DIM,
                "sample_rate": SAMPLE_RATE, "model": record}
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    log.info(f"indexed {len(files)} clips ({int(offsets[-1])} chunks holding audio) in {folder}")
    return folder


def _audio_chunk_array(embeddings: EmbeddingFolder, clip: str, audio: Path, samples: int) -> np.ndarray:
    """The clip's ``z_d`` of the chunks holding audio, after checking that its array is ``z_d`` of every
    chunk the front end makes of ``samples`` samples: embeddings of another file are refused."""
    array = embeddings[clip]
    if array.ndim != 2 or array.shape[1] != LATENT_DIM:
        raise SearchError(f"{embeddings.location(clip)}: shape {array.shape}, expected (n_chunks, {LATENT_DIM}) "
                          "z_d embeddings")
    problem = float32_problem(array)
    if problem is not None:
        raise SearchError(f"{embeddings.location(clip)}: holds {problem}, not a z_d embedding")
    if len(array) != chunk_count(samples):
        raise SearchError(f"{embeddings.location(clip)}: {len(array)} chunks, but {audio} ({samples} samples at "
                          f"{SAMPLE_RATE} Hz) makes {chunk_count(samples)}: not the embeddings of that file")
    return array[:audio_chunks(samples)]


def index_embeddings(folder: Path, record: dict, audio: Sequence[Path], embeddings: EmbeddingFolder,
                     clips: Sequence[str]) -> Path:
    """An index of encode.py's ``(n_chunks, 1152)`` z_d of ``clips`` (either layout), made of the audio
    files ``audio``, whose lengths say which chunks hold audio; one clip read at a time."""
    audio = [Path(p).absolute() for p in audio]
    samples = np.array([audio_samples(path) for path in audio], dtype=np.int64)
    blocks = ((_audio_chunk_array(embeddings, clip, path, int(n)), np.array([audio_chunks(n)]))
              for clip, path, n in zip(clips, audio, samples))
    return write_index(folder, record, [str(p) for p in audio], samples, blocks)


def build_index(pair: ModelPair, inputs: Sequence[str | Path], folder: str | Path, batch_size: int | None = None,
                workers: int = 0, progress: bool = True) -> RunSummary:
    """Embed audio files and folders (searched recursively) with the pair's audio encoder and index them.

    The extraction is encode.py's (batched, resumable, failures listed in ``chunks/failures.tsv``; every
    chunk, as ``encode.py --projection`` writes them); failed files are left out of the index. Returns
    the extraction's counts.
    """
    folder = Path(folder)
    chunk_folder = folder / CHUNK_FOLDER
    jobs = plan_inputs([Path(p) for p in inputs], chunk_folder)
    if not jobs:
        raise SearchError(f"no audio files in {', '.join(map(str, inputs))}")
    require_writable_folder(chunk_folder, "--index")
    claim_folder(chunk_folder, folder_record(pair.loaded.identity(), "z_d"))
    device = model_device(pair.audio_encoder)
    summary = run_extraction(jobs, chunk_computer(pair.scaler), chunk_folder / FAILURES_FILE,
                             pair.audio_encoder, batch_size or default_batch_size(device), workers,
                             progress=progress, output=1)
    done = [job for job in jobs if job.output.exists()]
    if not done:
        raise SearchError(f"{folder}: no file could be embedded (reasons in {chunk_folder / FAILURES_FILE})")
    index_embeddings(folder, pair.record, [job.source for job in done], EmbeddingFolder(chunk_folder),
                     [clip_name(job.output, chunk_folder) for job in done])
    return summary


def _audio_by_clip(audio_dir: Path, embeddings: Path) -> dict[str, list[Path]]:
    """The audio files under ``audio_dir`` by the clip name encode.py gave each one's embeddings
    (``plan_inputs``: a folder's relative paths kept), listed once for all clips."""
    sources: dict[str, list[Path]] = {}
    if audio_dir.is_dir():
        for job in plan_inputs([audio_dir], embeddings):
            sources.setdefault(clip_name(job.output, embeddings), []).append(job.source)
    return sources


def _audio_file(embeddings: EmbeddingFolder, clip: str, audio_dir: Path | None,
                sources: dict[str, list[Path]]) -> Path:
    """The audio file a clip's embeddings were made from: under ``audio_dir`` the one encode.py named the
    clip after (``sources``, from ``_audio_by_clip``); otherwise the source a shard recorded."""
    if audio_dir is None:
        source = embeddings.source_of(clip)
        if source is None:
            raise SearchError(f"{embeddings.location(clip)}: a per-file embedding does not record its audio file; "
                              "name the folder encode.py read with --audio-dir (the index reads each clip's length "
                              "from its audio, to leave the padding out)")
        return Path(source)
    found = sources.get(clip, [])
    if len(found) != 1:
        what = "no audio file" if not found else f"{len(found)} audio files ({', '.join(sorted(p.name for p in found))})"
        raise SearchError(f"--audio-dir {audio_dir}: {what} for the embeddings of {clip}")
    return found[0]


def build_index_from_embeddings(pair: ModelPair, embeddings: str | Path, folder: str | Path,
                                audio_dir: str | Path | None = None) -> Path:
    """An index of ``encode.py --projection`` outputs (either layout; per-clip ``.npy`` files are searched
    recursively), refused when they hold another audio encoder's z_d. Each clip's audio file is found under
    ``audio_dir`` (the folder encode.py read), or for shards where they recorded it."""
    embeddings = Path(embeddings)
    record = read_folder_record(embeddings)
    if record is None or record.get("output") != "z_d":
        raise SearchError(f"{embeddings / FOLDER_RECORD}: missing, unreadable or not of z_d; build the embeddings "
                          "with `encode.py --projection`, which records the encoder whose z_d they hold")
    if record.get("audio_encoder_fingerprint") != pair.record["audio_encoder_fingerprint"]:
        raise SearchError(f"{embeddings}: z_d of {record.get('model')} ({record.get('source')}), not of the audio "
                          f"encoder of {pair.name} ({pair.folder})")
    written = EmbeddingFolder(embeddings)
    clips = sorted(written)
    if not clips:
        raise SearchError(f"{embeddings}: no embeddings")
    audio_dir = Path(audio_dir) if audio_dir is not None else None
    sources = _audio_by_clip(audio_dir, embeddings) if audio_dir is not None else {}
    return index_embeddings(Path(folder), pair.record, [_audio_file(written, c, audio_dir, sources) for c in clips],
                            written, clips)


def _load_array(path: Path, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = read_npy(path, "r")
    except FileNotFoundError:
        raise SearchError(f"{path}: missing from the index") from None
    except (OSError, ValueError, EOFError) as exc:
        raise SearchError(f"{path}: damaged index file ({exc})") from None
    if array.dtype != dtype or array.shape != shape:
        raise SearchError(f"{path}: damaged index file ({array.dtype} {array.shape}, expected "
                          f"{np.dtype(dtype)} {shape})")
    return array


def open_index(folder: str | Path, pair: ModelPair | None = None) -> SearchIndex:
    """Open an index for queries, checking every file against its manifest (and the model, when given)."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        what = "no such folder" if not folder.is_dir() else f"no {MANIFEST} (not an index, or its build did not finish)"
        raise SearchError(f"{folder}: {what}")
    try:
        manifest = read_json(manifest_path)
        n_clips, n_chunks, dim = (int(manifest[key]) for key in ("n_clips", "n_chunks", "dim"))
        manifest["model"]["audio_encoder_fingerprint"]
    except (KeyError, TypeError, ValueError) as exc:
        raise SearchError(f"{manifest_path}: damaged index manifest ({type(exc).__name__}: {exc})") from None
    if manifest.get("format") != FORMAT_VERSION:
        raise SearchError(f"{manifest_path}: index format {manifest.get('format')}, this version reads {FORMAT_VERSION}; "
                          "rerun `search.py index` into the same folder (its chunks/ spare the extraction)")
    if n_clips == 0:
        raise SearchError(f"{manifest_path}: the index holds no clips")
    try:
        files = read_json(folder / FILES)
    except (OSError, ValueError) as exc:
        raise SearchError(f"{folder / FILES}: damaged index file ({exc})") from None
    if not isinstance(files, list) or len(files) != n_clips or not all(isinstance(f, str) for f in files):
        raise SearchError(f"{folder / FILES}: damaged index file (expected a list of {n_clips} paths)")
    clips = _load_array(folder / CLIPS, np.float32, (n_clips, dim))
    chunks = _load_array(folder / CHUNKS, np.float32, (n_chunks, dim))
    offsets = np.asarray(_load_array(folder / OFFSETS, np.int64, (n_clips + 1,)))
    samples = np.asarray(_load_array(folder / SAMPLES, np.int64, (n_clips,)))
    if offsets[0] != 0 or offsets[-1] != n_chunks or np.any(np.diff(offsets) < 1):
        raise SearchError(f"{folder / OFFSETS}: damaged index file (offsets do not cover the {n_chunks} chunks)")
    if np.any(samples < 1) or not np.array_equal(np.diff(offsets), audio_chunks(samples)):
        raise SearchError(f"{folder / SAMPLES}: damaged index file (the clips' lengths do not give their chunks)")
    index = SearchIndex(folder, manifest, files, clips, chunks, offsets, samples)
    if pair is not None:
        index.check_model(pair)
    return index
