"""Reading and writing a user's JSON files, the one way.

Reading: ``json.loads`` raises ``JSONDecodeError`` for bad syntax, but a plain ``ValueError`` for an
integer of over 4300 digits, ``UnicodeDecodeError`` for bytes that are not UTF-8 and ``RecursionError``
for arrays nested some thousand deep; callers catch ``ValueError`` alone and name their file. A UTF-8
byte-order mark is dropped (``coala.text.read_text``), as other JSON readers do.

Writing: text is kept readable (``ensure_ascii=False``: a tag in Japanese stays Japanese), but a file
name that is not UTF-8 reaches Python as lone surrogates, which UTF-8 cannot encode: ``json_text``
writes each as its JSON escape (``\\udce9``), which any JSON reader, and ``read_json``, gives back.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

Kind = TypeVar("Kind", dict, list)

from coala.text import read_text


def read_json(path: str | Path) -> Any:
    """The decoded contents of ``path``; ``ValueError`` when its text is not JSON Python can hold."""
    try:
        return json.loads(read_text(path))
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


def json_text(value: Any, indent: int | None = None) -> str:
    """``value`` as JSON text that encodes as UTF-8 whatever names it holds (see the module's docstring)."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
