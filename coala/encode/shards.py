"""encode.py's two output layouts, and one reader for both.

``files`` (the default): one ``.npy`` per clip, at the clip's relative path under the output folder.
``shards``: a few large files, for collections where millions of clips must not mean millions of files.
Each shard is a pair in the output folder::

    shard-<time ns>-r<rank>-<random>.npy   float32 rows: the clips' arrays one after the other
                                           ((n_chunks, d) each, or one row per (d,) vector)
    shard-<...>.json                       its index: format, array name, rows, whether clips are
                                           vectors, and per clip {clip, source, offset, chunks}

The array is written atomically first, then its index, atomically: an index means a complete shard,
and a kill loses only the shard being filled (an array without its index is ignored). Each process
writes its own shards (the rank is in the name), so no file has two writers. A clip found in several
shards (``--overwrite``, or two runs into one folder) is read from the newest (names sort by time).

A clip is named by its output path relative to the folder, without ``.npy`` (``sub/loop`` for
``sub/loop.npy``): the same name in both layouts, which is what lets classify.py and search.py read
either through ``EmbeddingFolder``.
"""
from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from coala.atomic import atomic_write, atomic_write_text
from coala.core.errors import EmbeddingsError
from coala.files import visible_files
from coala.jsonfile import read_json
from coala.npyfile import read_npy

SHARD_FORMAT = 1
SHARD_PREFIX = "shard-"
_SHARD_NAME = re.compile(r"^shard-\d{20}-r\d+-[0-9a-f]+\.(npy|json)$")
# Default shard size: a kill loses at most this much work (about 55,000 chunks of 1152 floats), and a
# million clips of a few chunks make a few dozen shards.
SHARD_BYTES = 256 * 2**20


def clip_name(output: Path, folder: Path) -> str:
    """The clip name of a per-file output path under ``folder``: ``folder/sub/a.npy`` -> ``sub/a``."""
    relative = output.relative_to(folder).as_posix()
    return relative[:-len(".npy")] if relative.endswith(".npy") else relative


@dataclass(frozen=True)
class _Entry:
    """Where a clip lies in a shard: rows ``offset`` to ``offset + chunks`` of ``array``."""

    array: Path
    source: str
    offset: int
    chunks: int
    vector: bool


def _read_shard_index(path: Path) -> tuple[Path, int, list[tuple[str, _Entry]]]:
    """``(array path, rows, [(clip, entry), ...])`` of one shard index; a damaged one is an error naming it."""
    try:
        index = read_json(path)
        if index["format"] != SHARD_FORMAT:
            raise ValueError(f"format {index['format']}, this version reads {SHARD_FORMAT}")
        if index["array"] != path.with_suffix(".npy").name:  # a shard's rows are its own array's, nowhere else
            raise ValueError(f"its array is {index['array']!r}, not {path.with_suffix('.npy').name!r}")
        array, rows, vector = path.with_suffix(".npy"), int(index["rows"]), bool(index["vectors"])
        entries = [(str(c["clip"]), _Entry(array, str(c["source"]), int(c["offset"]), int(c["chunks"]), vector))
                   for c in index["clips"]]
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise EmbeddingsError(f"{path}: damaged shard index ({type(exc).__name__}: {exc})") from None
    if any(e.offset < 0 or e.chunks < 1 or e.offset + e.chunks > rows for _, e in entries):
        raise EmbeddingsError(f"{path}: damaged shard index (a clip's rows lie outside the shard's {rows})")
    return array, rows, entries


class EmbeddingFolder(Mapping[str, np.ndarray]):
    """The clips' arrays in an encode.py output folder, whichever the layout: ``folder["sub/a"]`` is what
    ``folder/sub/a.npy`` holds, or would hold, ``(n_chunks, d)`` or ``(d,)`` float32.

    Shard indexes are read when the folder is opened (a damaged one is an ``EmbeddingsError`` naming it);
    shard arrays are memory-mapped on first use, so a clip costs a read of its own rows. A folder that
    does not exist is empty.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._entries: dict[str, _Entry] = {}
        self._rows: dict[Path, int] = {}
        self._arrays: dict[Path, np.ndarray] = {}
        for path in sorted(self.folder.glob(f"{SHARD_PREFIX}*.json")):
            if _SHARD_NAME.match(path.name):
                array, rows, entries = _read_shard_index(path)
                self._rows[array] = rows
                self._entries.update(entries)  # sorted by time: the newest shard's copy of a clip wins

    @cached_property
    def _files(self) -> list[str]:
        """Clips with a ``.npy`` of their own (hidden names, temporaries among them, and shard arrays aside)."""
        return [clip_name(p, self.folder) for p in visible_files(self.folder, "**/*.npy")
                if not (p.parent == self.folder and _SHARD_NAME.match(p.name))]

    def _file(self, clip: str) -> Path:
        return self.folder / f"{clip}.npy"

    def __contains__(self, clip: object) -> bool:
        return isinstance(clip, str) and (clip in self._entries or self._file(clip).is_file())

    def __iter__(self) -> Iterator[str]:
        yield from self._entries
        yield from (clip for clip in self._files if clip not in self._entries)

    def __len__(self) -> int:
        return len(self._entries) + sum(clip not in self._entries for clip in self._files)

    def location(self, clip: str) -> str:
        """Where a clip's array is, for messages: its ``.npy``, or ``<shard>.npy[clip]``."""
        entry = self._entries.get(clip)
        return str(self._file(clip)) if entry is None else f"{entry.array}[{clip}]"

    def name_of(self, clip: str) -> str:
        """What listings call a clip: its ``.npy``, or, as a shard's clip has no file of its own, the audio
        file it was encoded from (recorded in the shard's index)."""
        source = self.source_of(clip)
        return str(self._file(clip)) if source is None else source

    def source_of(self, clip: str) -> str | None:
        """The audio file a shard's clip was encoded from, as encode.py recorded it; None for a clip with a
        ``.npy`` of its own, which records no source."""
        entry = self._entries.get(clip)
        return None if entry is None else entry.source

    def shape(self, clip: str) -> tuple[int, ...]:
        """A clip's array shape, without reading its values."""
        entry = self._entries.get(clip)
        if entry is None:
            return self._load(clip, mmap_mode="r").shape
        width = self._shard(entry.array).shape[1]
        return (width,) if entry.vector else (entry.chunks, width)

    def __getitem__(self, clip: str) -> np.ndarray:
        entry = self._entries.get(clip)
        if entry is None:
            if clip not in self:
                raise KeyError(clip)
            return self._load(clip)
        rows = np.array(self._shard(entry.array)[entry.offset:entry.offset + entry.chunks])
        return rows[0] if entry.vector else rows

    def _load(self, clip: str, mmap_mode: str | None = None) -> np.ndarray:
        path = self._file(clip)
        try:
            return read_npy(path, mmap_mode)
        except (OSError, ValueError, EOFError) as exc:
            raise EmbeddingsError(f"{path}: cannot read ({exc})") from None

    def _shard(self, path: Path) -> np.ndarray:
        if path not in self._arrays:
            try:
                array = read_npy(path, "r")
            except (OSError, ValueError, EOFError) as exc:
                raise EmbeddingsError(f"{path}: cannot read the shard ({exc})") from None
            if array.dtype != np.float32 or array.ndim != 2 or len(array) != self._rows[path]:
                raise EmbeddingsError(f"{path}: shard of {array.dtype} {array.shape}, its index says "
                                      f"float32 with {self._rows[path]} rows")
            self._arrays[path] = array
        return self._arrays[path]


def read_embeddings(folder: str | Path) -> EmbeddingFolder:
    """The notebook reader: ``read_embeddings("my_embeddings")["sub/a"]`` is clip ``sub/a``'s array, in
    either layout; ``list(...)`` names every clip."""
    return EmbeddingFolder(folder)


class ShardWriter:
    """Collects clips' arrays and writes them out as shards of about ``max_bytes`` (the last may be smaller).

    Nothing is on disk until a shard is full (or ``close``): a kill loses the clips held, never a
    written shard. Clips whose arrays differ in width or kind ((n, d) or (d,)) go to separate shards.
    """

    def __init__(self, folder: Path, max_bytes: int = SHARD_BYTES, rank: int = 0) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.rank = rank
        self._held: list[tuple[str, str, np.ndarray]] = []
        self._bytes = 0

    def add(self, clip: str, source: Path, array: np.ndarray) -> None:
        if self._held and (array.ndim, array.shape[-1]) != (self._held[0][2].ndim, self._held[0][2].shape[-1]):
            self.close()
        array = np.asarray(array, dtype=np.float32)
        self._held.append((clip, str(source), array))
        self._bytes += array.nbytes
        if self._bytes >= self.max_bytes:
            self.close()

    def close(self) -> None:
        """Write the clips held as one shard (nothing when none are held)."""
        if not self._held:
            return
        vector = self._held[0][2].ndim == 1
        rows = [array[None] if vector else array for _, _, array in self._held]
        offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
        name = f"{SHARD_PREFIX}{time.time_ns():020d}-r{self.rank}-{secrets.token_hex(3)}"
        stacked = np.concatenate(rows)
        atomic_write(self.folder / f"{name}.npy", lambda f: np.save(f, stacked))
        index = {"format": SHARD_FORMAT, "array": f"{name}.npy", "rows": int(offsets[-1]), "vectors": vector,
                 "clips": [{"clip": clip, "source": source, "offset": int(offset), "chunks": len(r)}
                           for (clip, source, _), offset, r in zip(self._held, offsets, rows)]}
        atomic_write_text(self.folder / f"{name}.json", json.dumps(index) + "\n")
        self._held, self._bytes = [], 0
