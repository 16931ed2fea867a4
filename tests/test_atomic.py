"""Atomic writes: permissions as an ordinary write, nothing half-written, stale temporaries swept."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest

from coala.atomic import _create_temporary, atomic_write_text, is_stale_temporary, remove_stale_temporaries


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_file_has_the_umask_permissions_of_an_ordinary_write(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "atomic.json", "{}")
        (tmp_path / "plain.json").write_text("{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "atomic.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == 0o666 & ~umask


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")

    def fail(f):
        f.write(b"partial")
        raise RuntimeError("disk on fire")

    from coala.atomic import atomic_write
    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_sweep_removes_a_dead_writers_temporary_and_keeps_live_ones(tmp_path):
    # A child process creates a temporary and dies without renaming it, as under kill -9.
    code = ("import sys, pathlib; from coala.atomic import _create_temporary; "
            "print(_create_temporary(pathlib.Path(sys.argv[1]), 'ckpt.pt'))")
    dead = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    dead_tmp = tmp_path / os.path.basename(dead.stdout.strip())
    live_tmp = _create_temporary(tmp_path, "state.pt")  # this process: still writing
    foreign_fresh = tmp_path / ".x.pt.otherhost.1.0123abcd.tmp"
    foreign_old = tmp_path / ".y.pt.otherhost.1.89abcdef.tmp"
    unrelated = tmp_path / ".notes.tmp"
    for path in (foreign_fresh, foreign_old, unrelated):
        path.write_bytes(b"")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(foreign_old, (day_ago, day_ago))

    assert dead_tmp.exists() and is_stale_temporary(dead_tmp)
    assert remove_stale_temporaries(tmp_path) == 2
    assert not dead_tmp.exists() and not foreign_old.exists()
    assert live_tmp.exists() and foreign_fresh.exists() and unrelated.exists()


def test_a_set_killed_between_renames_is_completed_by_the_next_run(tmp_path):
    """kill -9 after the first of three renames: the journal lets the next run finish the set."""
    paths = [tmp_path / name for name in ("train.h5", "val.h5", "vocab.json")]
    for path in paths:
        path.write_text("old")
    journal = tmp_path / ".commit.json"
    code = f"""
import os, pathlib, coala.atomic as atomic
real_replace, done = os.replace, []
def replace_then_die(src, dst):
    real_replace(src, dst)
    if str(dst).endswith(".h5"):
        done.append(dst)
        if len(done) == 1:
            os._exit(9)
atomic.os.replace = replace_then_die
paths = [pathlib.Path(p) for p in {[str(p) for p in paths]!r}]
with atomic.atomic_paths(paths, pathlib.Path({str(journal)!r})) as tmps:
    for tmp in tmps:
        tmp.write_text("new")
"""
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert [p.read_text() for p in paths] == ["new", "old", "old"] and journal.exists()
    from coala.atomic import finish_interrupted_commit
    assert finish_interrupted_commit(journal)
    assert not finish_interrupted_commit(journal)
    assert [p.read_text() for p in paths] == ["new", "new", "new"] and not journal.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


def test_a_folder_in_the_way_is_named_and_no_temporary_is_left(tmp_path):
    """The rename's error named the hidden temporary; the folder the user gave is what is wrong."""
    (tmp_path / "out.json").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        atomic_write_text(tmp_path / "out.json", "{}")
    assert info.value.filename == str(tmp_path / "out.json")
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"] and not any((tmp_path / "out.json").iterdir())
