"""The record ``encode.py --projection`` keeps beside ``z_d`` embeddings: which audio encoder made them.

``z`` and ``z_d`` files look alike (float32, ``(n_chunks, 1152)``), and so do the outputs of two
encoders; only this record tells them apart. ``search.py index --from-embeddings`` reads it to refuse
embeddings of another encoder than its model's.
"""
from __future__ import annotations

import json
from pathlib import Path

from coala.atomic import atomic_write_text
from coala.core.errors import UsageError
from coala.fetch import sha256_of
from coala.jsonfile import read_json

PROJECTION_RECORD = "projection.json"


def projection_record(checkpoint: Path, sha256: str | None = None) -> dict:
    """The record of ``checkpoint``; ``sha256`` when the caller already hashed it (a checkpoint is megabytes)."""
    return {"output": "z_d", "checkpoint": str(checkpoint), "audio_encoder_sha256": sha256 or sha256_of(checkpoint)}


def read_projection_record(folder: Path) -> dict | None:
    """The folder's record, or None when it has none or an unreadable one (then its files cannot be trusted)."""
    try:
        record = read_json(folder / PROJECTION_RECORD)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("output") == "z_d" else None


def write_projection_record(folder: Path, record: dict) -> None:
    """Write ``record`` (``projection_record``) in ``folder``: which encoder's ``z_d`` it holds. A record of another encoder, or ``.npy``
    files without a record (``z`` of an earlier run), are refused: a resumed run would skip them, and
    outputs mixed in one folder cannot be told apart afterwards."""
    path = folder / PROJECTION_RECORD
    if path.is_file():
        previous = read_projection_record(folder) or {}
        if previous.get("audio_encoder_sha256") != record["audio_encoder_sha256"]:
            raise UsageError(f"{path}: this folder holds z_d of another audio encoder "
                             f"({previous.get('checkpoint', 'unknown')}); choose another output folder")
        return
    if next(folder.rglob("*.npy"), None) is not None:
        raise UsageError(f"{folder}: holds embeddings without {PROJECTION_RECORD} (z, not z_d?); "
                         "choose another output folder")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
