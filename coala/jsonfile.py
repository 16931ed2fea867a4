"""Reading a user's JSON file with every way its text can be malformed reported as one ``ValueError``.

``json.loads`` raises ``JSONDecodeError`` for bad syntax, but a plain ``ValueError`` for an integer
of over 4300 digits, ``UnicodeDecodeError`` for bytes that are not UTF-8 and ``RecursionError`` for
arrays nested some thousand deep; callers catch ``ValueError`` alone and name their file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

Kind = TypeVar("Kind", dict, list)


def read_json(path: str | Path) -> Any:
    """The decoded contents of ``path``; ``ValueError`` when its text is not JSON Python can hold."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_json_as(path: str | Path, kind: type[Kind], error: type[Exception], what: str) -> Kind:
    """``read_json`` of a user's file that must hold a ``kind`` (an object, a list): ``error`` in one line
    naming the file and ``what`` it should hold, when it cannot be read or holds something else."""
    try:
        value = read_json(path)
    except (OSError, ValueError) as exc:
        raise error(f"{path}: cannot read {what} ({exc})") from None
    if not isinstance(value, kind):
        raise error(f"{path}: {what} must be a JSON {kind.__name__}, found {type(value).__name__}")
    return value
