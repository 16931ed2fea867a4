"""Text in and out: a user's text files read as their own tools read them, names written losslessly.

Reading: lists, CSVs and JSON files are UTF-8, and a UTF-8 byte-order mark at the start is not text
(Excel and Windows' Notepad write one; pandas, csv readers and the datasets' tools drop it), so it
never becomes part of the first name. Bytes that are not UTF-8 are a ``ValueError`` naming the offset.

Writing: a file or folder name is whatever bytes the file system holds. Python gives bytes that are
not UTF-8 as lone surrogates (``\\udce9``), which a UTF-8 file cannot hold, and a name may hold a tab,
a newline or a terminal's escape sequence, which would split a line of a list or rewrite the
terminal. ``quote_name`` writes such a name in one line of printable text from which ``unquote_name``
gives the name back exactly, as git and GNU ``ls`` quote names: ``\\\\``, ``\\t``, ``\\n``, ``\\r``,
``\\xNN`` for a byte that is not UTF-8, ``\\uNNNN`` for any other control character.
"""
from __future__ import annotations

import re
from pathlib import Path

BOM = "\ufeff"
# Lone surrogates U+DC80..U+DCFF are the bytes 0x80..0xFF that ``surrogateescape`` could not decode.
_RAW_BYTES = range(0xDC80, 0xDD00)
_NEEDS_QUOTING = re.compile(r"[\\\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_QUOTED = re.compile(r"\\(\\|t|n|r|x[0-9a-f]{2}|u[0-9a-f]{4})")


def read_text(path: str | Path) -> str:
    """The text of a UTF-8 file without its byte-order mark; ``UnicodeDecodeError`` (a ``ValueError``)
    when it is not UTF-8."""
    return Path(path).read_bytes().decode("utf-8").removeprefix(BOM)


def _quote(match: re.Match) -> str:
    char = match.group()
    if char in _ESCAPES:
        return _ESCAPES[char]
    if ord(char) in _RAW_BYTES:
        return f"\\x{ord(char) - 0xDC00:02x}"
    return f"\\u{ord(char):04x}"


def quote_name(name: str | Path) -> str:
    """``name`` as one line of valid, printable UTF-8 text; ``unquote_name`` gives it back exactly."""
    return _NEEDS_QUOTING.sub(_quote, str(name))


def escape_undecodable(text: str) -> str:
    """``text`` with each byte that is not UTF-8 (a lone surrogate) written as ``quote_name`` writes it,
    the rest as it is: free text (a table, a report) that names such a file can then be written."""
    return _SURROGATES.sub(_quote, text)


def _unquote(match: re.Match) -> str:
    code = match.group(1)
    if code[0] == "x":
        return chr(0xDC00 + int(code[1:], 16))
    if code[0] == "u":
        return chr(int(code[1:], 16))
    return {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}[code]


def unquote_name(text: str) -> str:
    """The name ``quote_name`` wrote as ``text``."""
    return _QUOTED.sub(_unquote, text)
