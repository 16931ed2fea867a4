"""The record an embeddings folder keeps of what made it (``model.json``): which model, which output.

Embedding files look alike (float32, ``(n_chunks, 1152)``) whichever model made them and whether they
hold ``z`` or ``z_d``; only this record tells them apart. ``encode.py`` writes it before the first file
and refuses a folder whose record names another model or output (a resumed run would skip its files,
and outputs mixed in one folder cannot be told apart afterwards); ``classify.py`` names its rows from
it, and ``search.py index --from-embeddings`` refuses embeddings of another encoder than its model's.
"""
from __future__ import annotations

import json
from pathlib import Path

from coala.atomic import atomic_write_text
from coala.core.errors import UsageError
from coala.jsonfile import read_json

FOLDER_RECORD = "model.json"
OUTPUTS = ("z", "z_d", "mfcc")


def folder_record(identity: dict, output: str) -> dict:
    """The record of a folder of ``output`` (``z``, ``z_d`` or ``mfcc``) made by the model ``identity``
    (``LoadedModel.identity()``; for MFCC ``{"model": "mfcc"}``)."""
    return {"output": output, **identity}


def read_folder_record(folder: Path) -> dict | None:
    """The folder's record, or None when it has none or an unreadable one (then its files cannot be trusted)."""
    try:
        record = read_json(folder / FOLDER_RECORD)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("output") in OUTPUTS else None


def same_maker(a: dict, b: dict) -> bool:
    """Whether two folder records name the same output of the same model (equal embeddings for equal audio)."""
    keys = ("output", "audio_encoder_fingerprint", "scaler_sha256")
    return all(a.get(k) == b.get(k) for k in keys) if a.get("output") != "mfcc" else a.get("output") == b.get("output")


def describe(record: dict) -> str:
    """``<output> of <model> (<source>)``: a record in a message."""
    return f"{record.get('output')} of {record.get('model')} ({record.get('source', 'unknown source')})"


def claim_folder(folder: Path, record: dict) -> None:
    """Write ``record`` in ``folder``, or check that the record there names the same model and output.

    A folder with a record of another model or output, or with ``.npy`` files and no record (made by
    another tool, or before records existed), is refused in one line: choose another folder.
    """
    path = folder / FOLDER_RECORD
    if path.exists():
        previous = read_folder_record(folder)
        if previous is None or not same_maker(previous, record):
            made = "an unreadable record" if previous is None else describe(previous)
            raise UsageError(f"{path}: this folder holds {made}, not {record['output']} of {record.get('model')}; "
                             "choose another output folder")
        return
    if next(folder.rglob("*.npy"), None) is not None:
        raise UsageError(f"{folder}: holds embeddings without {FOLDER_RECORD} (made by another tool or an earlier "
                         "version: which model made them is unknown); choose another output folder")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
