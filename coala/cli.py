"""What every entry point shares: logging to stderr, progress bars, and one way to report a user's error.

Exit statuses: 0 when everything was done; 1 when the run finished but some items failed (listed in
its output); 2 when the command or its config cannot run (a :class:`~coala.core.errors.CoalaError`, or an
``OSError`` such as a folder that cannot be written, reported as one ``error:`` line); 130 on Ctrl-C.
Any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from tqdm import tqdm

from coala.core.errors import CoalaError, UsageError
from coala.text import quote_name

EXIT_OK, EXIT_FAILURES, EXIT_UNUSABLE, EXIT_INTERRUPTED = 0, 1, 2, 130
# A progress bar redraws this often (seconds) on a terminal, and this rarely when stderr is a log file,
# where every redraw is another line.
TERMINAL_REFRESH_S = 0.1
LOG_REFRESH_S = 60.0

log = logging.getLogger("coala")


class _StderrHandler(logging.Handler):
    """Writes through ``tqdm.write`` to the current ``sys.stderr``, so messages do not break a live bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


class _LevelPrefix(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"


class _TimedLevelPrefix(_LevelPrefix):
    def format(self, record: logging.LogRecord) -> str:
        return f"{self.formatTime(record, '%Y-%m-%d %H:%M:%S')} {super().format(record)}"


@contextlib.contextmanager
def log_copy(path: Path) -> Iterator[None]:
    """The ``coala`` loggers' messages also appended to ``path``, each with its time, while the block runs,
    and the error that ends it: a run folder keeps what its console showed, after the terminal is gone."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(_TimedLevelPrefix("%(message)s"))
    log.addHandler(handler)
    try:
        yield
    except CoalaError as exc:  # entry_point reports it after the block: copied here, where the file is known
        handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, str(exc), None, None))
        raise
    finally:
        log.removeHandler(handler)
        handler.close()


def setup_logging(level: int = logging.INFO) -> None:
    """Send the ``coala`` loggers' messages to stderr: plain at INFO, prefixed ``warning:`` / ``error:``.

    stdout then writes what it cannot encode as escapes, as stderr always does: a file name that is not
    UTF-8 in a printed line is shown, never a crash after the work is done.
    """
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_LevelPrefix("%(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(level)


def _echoes_rank_0() -> bool:
    """Whether this process is one of torchrun's others (``RANK`` > 0 of ``WORLD_SIZE`` > 1). Every process
    of a job gets the same arguments and data (``coala.distributed.agree`` refuses otherwise), so a user's
    mistake stops each of them alike, and rank 0's line is the one that needs saying."""
    return int(os.environ.get("WORLD_SIZE") or 1) > 1 and os.environ.get("RANK", "0") != "0"


def entry_point(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a script's ``main(argv) -> exit status``: logging set up, a user's error as one line, status 2.

    Under torchrun the line is printed by rank 0 alone (``_echoes_rank_0``), not once per process; the
    others exit with the same status. An ``OSError`` is printed by every process that meets it: a full
    disk or an unwritable folder may be one node's.
    """

    @functools.wraps(main)
    def run(*args: Any, **kwargs: Any) -> int:
        setup_logging()
        try:
            return main(*args, **kwargs)
        except CoalaError as exc:
            log.log(logging.DEBUG if _echoes_rank_0() else logging.ERROR, str(exc))
            return EXIT_UNUSABLE
        except OSError as exc:  # a folder that cannot be written, a full disk: the environment, not a bug
            log.error(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))
            return EXIT_UNUSABLE
        except KeyboardInterrupt:
            log.error("interrupted")
            return EXIT_INTERRUPTED

    return run


def user_path(text: str) -> Path:
    """A path from the command line. ``''`` would silently mean the working folder (``Path('')`` is
    ``Path('.')``), and a NUL byte names no file at all: both are refused where they enter."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (name a file or folder; '.' is the working folder)")
    if "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} holds a NUL byte, which no path can")
    return Path(text)


def finite_float(text: str) -> float:
    """A number from the command line: ``nan`` and ``inf`` parse as floats but pass no range check
    (``nan <= 0`` is false), so they are refused where they enter."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


# numpy's and scikit-learn's generators take seeds below 2**32: a larger or negative one passed every
# check and failed as a traceback when first used, after the work before it.
SEED_LIMIT = 2**32


def seed_value(text: str) -> int:
    """A seed from the command line: an integer in [0, 2**32)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"{value} is not a seed (an integer from 0 to {SEED_LIMIT - 1})")
    return value


class ArgumentParser(argparse.ArgumentParser):
    """Every script's parser. Each ``type=Path`` argument is read by ``user_path`` and each ``type=float``
    by ``finite_float`` (argparse's type registry, shared by argument groups and subcommands), and a
    command line that cannot be parsed is a ``UsageError``: one ``error:`` line naming the flag, exit
    status 2 (``entry_point``), not argparse's usage block."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("type", Path, user_path)
        self.register("type", float, finite_float)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


# A list (a selection, split list, id list) may name a few entries the data lacks (a dataset's one corrupt
# file): 1 % of it, and at least 5. Beyond that the list is another data's, and results on what is left
# would be printed as if they were the list's.
FEW_MISSING_SHARE = 0.01
FEW_MISSING_AT_LEAST = 5
SUBSET_FLAG = "--allow-subset"


def check_coverage(subject: str, missing: int, listed: int, what: str, allow_subset: bool,
                   error: type[CoalaError] = UsageError) -> None:
    """Refuse, before any work, a list of which more than a few of the ``listed`` entries are ``missing``
    (``what`` says what is missing of each, with an example), unless ``allow_subset`` (``--allow-subset``)."""
    if missing > max(FEW_MISSING_AT_LEAST, int(listed * FEW_MISSING_SHARE)) and not allow_subset:
        raise error(f"{subject}: {missing} of the {listed} listed {what}: the list does not match the data; "
                    f"pass {SUBSET_FLAG} to use the {listed - missing} present (results then say they are a subset)")


def require_file(path: Path | None, option: str) -> None:
    """A file named on the command line must be there before any work starts (None: not given)."""
    if path is not None and not path.is_file():
        raise UsageError(f"{option}: no such file {path}")


def is_plain_name(name: str) -> bool:
    """A name that becomes one file or folder name inside an output folder: no '/' (nor '..') to write
    elsewhere, no leading '.' to hide it or to look like one of the atomic writes' temporaries."""
    return bool(name) and "/" not in name and "\0" not in name and not name.startswith(".")


def progress_bar(iterable: Iterable | None = None, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr that redraws rarely when stderr is not a terminal (a log keeps few lines)."""
    terminal = sys.stderr.isatty()
    kwargs.setdefault("mininterval", TERMINAL_REFRESH_S if terminal else LOG_REFRESH_S)
    kwargs.setdefault("maxinterval", max(kwargs["mininterval"], 10.0))
    return tqdm(iterable, disable=not enabled, dynamic_ncols=terminal, file=sys.stderr, **kwargs)


@dataclass
class RunSummary:
    """Counts of one run (or several, added up; or one process's share of one) and where its failure lists
    are, for the last line."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    failure_files: list[Path] = field(default_factory=list)

    def add(self, other: "RunSummary") -> None:
        self.done += other.done
        self.skipped += other.skipped
        self.failed += other.failed
        self.failure_files += other.failure_files

    def counts(self) -> str:
        return f"done {self.done}, skipped {self.skipped}, failed {self.failed}"

    def line(self) -> str:
        where = f" (reasons in {', '.join(map(quote_name, self.failure_files))})" if self.failure_files else ""
        return self.counts() + where
