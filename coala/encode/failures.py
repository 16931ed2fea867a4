"""The list of files a run could not encode (``failures.tsv`` beside its outputs), merged across runs.

Columns ``path`` and ``reason``, tab-separated, each quoted by ``coala.text.quote_name`` (a backslash,
tab, newline or byte that is not UTF-8 in a name is escaped), so one line is one file, whatever its name.
"""
from __future__ import annotations

import fcntl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from coala.atomic import atomic_write_text
from coala.text import BOM, quote_name, unquote_name

if TYPE_CHECKING:
    from coala.encode.jobs import FileJob

FAILURES_FILE = "failures.tsv"


def _read_failures(path: Path) -> dict[str, str]:
    """``path -> reason`` of a failure list; both columns are quoted (``coala.text.quote_name``), so a
    name holding a tab, a newline or bytes that are not UTF-8 is one entry, given back exactly."""
    try:
        text = path.read_bytes().decode("utf-8", "surrogateescape").removeprefix(BOM)  # a hand edit's bytes kept
    except FileNotFoundError:
        return {}
    rows = (line.removesuffix("\r").split("\t") for line in text.split("\n")[1:])
    return {unquote_name(row[0]): unquote_name(row[1]) for row in rows if len(row) == 2}


def update_failures(path: Path, tasks: "Sequence[FileJob]", failures: list[tuple[Path, str]],
                     done: "Callable[[FileJob], bool]") -> None:
    """Merge this run's failures into the list at ``path``, or remove the list when nothing is left.

    Entries stay until their file is encoded: an earlier entry goes when its file is one of this run's
    and its output now exists (``done``); entries of files this run did not take are kept, so runs on other files
    (or at the same time) into the same folder do not lose each other's failures. The read-merge-write
    runs under an exclusive ``flock`` of ``<list>.lock`` beside it (left in place: removing a lock file
    others may be waiting on would break the exclusion).
    """
    if not failures and not path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    jobs = {str(task.source): task for task in tasks}
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = {source: reason for source, reason in _read_failures(path).items()
                  if not (source in jobs and done(jobs[source]))}
        merged.update((str(source), reason) for source, reason in failures)
        if merged:
            atomic_write_text(path, "path\treason\n" + "".join(f"{quote_name(p)}\t{quote_name(reason)}\n"
                                                                for p, reason in merged.items()))
        else:
            path.unlink(missing_ok=True)
