"""The list of files a run could not encode (``failures.tsv`` beside its outputs), merged across runs."""
from __future__ import annotations

import fcntl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from coala.atomic import atomic_write_text

if TYPE_CHECKING:
    from coala.encode.jobs import FileJob

FAILURES_FILE = "failures.tsv"


def _read_failures(path: Path) -> dict[str, str]:
    """``path -> reason`` of a failure list (reasons never hold tabs; a path might)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
    except FileNotFoundError:
        return {}
    return dict(line.rsplit("\t", 1) for line in lines if "\t" in line)


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
            atomic_write_text(path, "path\treason\n" + "".join(f"{p}\t{reason}\n" for p, reason in merged.items()))
        else:
            path.unlink(missing_ok=True)
