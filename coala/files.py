"""Which files a folder offers, and how a file is told from the one that was there before.

Hidden names: below a folder a user names, a file or folder whose name starts with a dot is skipped by
every reader (``visible_files``): macOS's ``._`` resource forks and ``.DS_Store``, editors' swap files,
the atomic writes' temporaries and the tools' own caches are not data. A file named directly (on the
command line, in a list or CSV) is read whatever its name.

Identity: a cache entry made from a file is valid while the file is the same file with the same
contents. A newer-modification-time rule misses a file replaced by an older one (``cp -p``, an archive
unpacked, a backup restored); ``file_identity`` changes whenever the file is replaced or rewritten.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def is_hidden(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies under a dot-name below ``folder`` (or is one)."""
    return any(part.startswith(".") for part in path.relative_to(folder).parts)


def visible_files(folder: Path, pattern: str = "**/*") -> list[Path]:
    """The files below ``folder`` that match ``pattern``, sorted, hidden names and what lies under them
    left out (the module's rule)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(pattern) if not is_hidden(p, folder) and p.is_file())


def file_identity(path: Path) -> str:
    """A short key of ``path``'s size, modification and change times and inode: equal while the file is
    the same, different once it is replaced or written (the change time cannot be set back, as a
    modification time can, so a replacement with an older date is still told apart)."""
    info = os.stat(path)
    key = f"{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _digest(path: Path, digest: "hashlib._Hash") -> str:
    """The file's bytes through ``digest``, a megabyte at a time (a checkpoint is tens of megabytes)."""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """The SHA-256 of the file's bytes: what pins a published file, or a run's word vectors."""
    return _digest(path, hashlib.sha256())


def git_blob_of(path: Path) -> str:
    """The id git gives the file's content: SHA-1 of ``blob <size>\\0`` and the bytes (``git hash-object``)."""
    digest = hashlib.sha1()
    digest.update(f"blob {path.stat().st_size}\0".encode())
    return _digest(path, digest)
