"""Atomic file writes: every output appears complete or not at all.

A write goes to a temporary name in the destination folder, is flushed to disk, then renamed over the
target (``os.replace`` is atomic on POSIX), so a crash or ``kill -9`` never leaves a half-written file.

The temporary is created as an ordinary ``open`` would create the file (mode 0666 less the umask), so
a shared machine's users can read checkpoints and embeddings exactly as they could any other file.
Its name records the host and process that write it: a run that starts sweeps the temporaries a killed
run of this host left behind (``remove_stale_temporaries``), never those of a process still writing.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import secrets
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from coala.core.errors import CoalaError, UsageError
from coala.text import escape_undecodable

log = logging.getLogger(__name__)

_SUFFIX = ".tmp"
# .<target name>.<host>.<pid>.<random>.tmp
_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.(?P<host>[^.]*)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
# A temporary from another host may belong to a live process we cannot see; only a day-old one is stale.
FOREIGN_STALE_SECONDS = 24 * 3600


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _create_temporary(folder: Path, name: str) -> Path:
    """A new empty file beside the target, made with the umask's permissions like any ``open(..., "w")``."""
    while True:
        tmp = folder / f".{name}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}{_SUFFIX}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


def _temporary_for(path: Path) -> Path:
    """A new temporary beside ``path``, its folder made; a folder at ``path`` is refused now, not at the
    rename, whose error would name the temporary instead of ``path``."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    return _create_temporary(path.parent, path.name)


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """An ``OSError`` raised while writing ``path`` names ``path``: a write that fills the disk or passes
    the file-size limit (``ulimit -f``) raises one without a file name, or with a temporary's."""
    try:
        yield
    except OSError as exc:
        if exc.filename == str(path):
            raise
        reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
        raise OSError(exc.errno, f"write failed ({reason}); nothing was written", str(path)) from None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on error removed
    (and an ``OSError`` names ``path``, ``_naming``)."""
    path = Path(path)
    tmp_path = _temporary_for(path)
    try:
        with _naming(path):
            yield tmp_path
            with open(tmp_path, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_paths(paths: Sequence[Path], journal: Path) -> Iterator[list[Path]]:
    """Temporaries for files that only make sense together (a dataset's train, validation, vocabulary).

    Nothing is renamed until every file is written. The renames are then listed in ``journal`` before
    the first one, so a kill between two renames (a window of milliseconds) is completed by
    ``finish_interrupted_commit`` when the next run starts: the set is never left mixed for good.
    """
    temporaries: list[Path] = []
    try:
        temporaries.extend(_temporary_for(path) for path in paths)
        with _naming(paths[0].parent):
            yield temporaries
            for tmp in temporaries:
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
        atomic_write_text(journal, json.dumps([[str(t), str(p)] for t, p in zip(temporaries, paths)]))
        finish_interrupted_commit(journal)
    finally:
        for tmp in temporaries:
            tmp.unlink(missing_ok=True)


def finish_interrupted_commit(journal: Path) -> bool:
    """Complete the renames ``journal`` lists (those not yet done); False when there was nothing to do."""
    if not journal.is_file():
        return False
    for tmp, path in json.loads(journal.read_text()):
        if Path(tmp).exists():
            os.replace(tmp, path)
    journal.unlink()
    return True


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(f)`` on a binary file object that becomes ``path`` only once complete.

    The file must then hold every byte written: ``np.save`` writes through C's buffered ``fwrite`` and
    drops the error of a write cut short by a full disk or ``ulimit -f``, which left a truncated file
    that counted as complete.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()
        kept = os.fstat(f.fileno()).st_size
        if kept < f.tell():
            raise OSError(errno.EIO, f"short write: the file system kept {kept} of {f.tell()} bytes "
                                     "(a full disk or a file-size limit)")


def atomic_write_text(path: str | Path, text: str) -> None:
    """``text`` as UTF-8; a file name in it that is not UTF-8 is written escaped (``coala.text``), not a
    ``UnicodeEncodeError`` after the work that made the text."""
    atomic_write(path, lambda f: f.write(escape_undecodable(text).encode("utf-8")))


def require_writable_folder(folder: Path, name: str, error: type[CoalaError] = UsageError) -> None:
    """An output folder must take a file before the work whose results go there starts.

    The folder is created if missing and a probe file is written and removed: permissions, a read-only
    mount or a full quota show up now, as one line naming ``name`` (an option or config key), not
    after hours of work.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise error(f"{name}: cannot write into {folder} ({exc.strerror or exc})") from None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def is_stale_temporary(path: Path) -> bool:
    """True for a temporary of ours whose writer is gone (dead on this host, or a day old from another)."""
    match = _TEMPORARY.match(path.name)
    if match is None:
        return False
    if match["host"] == _host():
        return int(match["pid"]) != os.getpid() and not _process_alive(int(match["pid"]))
    try:
        return time.time() - path.stat().st_mtime > FOREIGN_STALE_SECONDS
    except FileNotFoundError:
        return False


def remove_stale_temporaries(folder: str | Path, recursive: bool = False) -> int:
    """Delete the temporaries killed writers left in ``folder``; returns how many were removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    pattern = f"**/.*{_SUFFIX}" if recursive else f".*{_SUFFIX}"
    removed = 0
    for path in folder.glob(pattern):
        if is_stale_temporary(path):
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info(f"{folder}: removed {removed} temporary file(s) left by an interrupted run")
    return removed
