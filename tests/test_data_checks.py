"""Value checks of training files (non-finite patches, labels other than 0/1) and their fingerprint."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from coala.cli import setup_logging
from coala.data import checks
from coala.core.errors import DatasetError
from tiny_release import write_release_file


def _edit(path: Path, name: str, index: tuple, value: float) -> int:
    """Set one value of ``dataset/<name>`` in place; returns the sound id of the patch edited."""
    with h5py.File(path, "a") as f:
        f["dataset"][name][index] = value
        return int(f["dataset/id"][index[0], 0])


@pytest.mark.parametrize("name, index, value, message", [
    ("data", (13, 5, 7), np.nan, "holds nan in dataset/data"),
    ("data", (13, 0, 0), -np.inf, "holds -inf in dataset/data"),
    ("label", (13, 4), 2, "holds label value 2 for tag 4 in dataset/label (labels must be 0 or 1)"),
    ("label", (13, 0), -1, "holds label value -1 for tag 0 in dataset/label (labels must be 0 or 1)"),
])
def test_first_offending_patch_is_named_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      name: str, index: tuple, value: float, message: str) -> None:
    path = write_release_file(tmp_path / "train", n=20, n_tags=10)
    sound_id = _edit(path, name, index, value)
    _edit(path, "data", (17, 1, 1), np.inf)  # a later bad patch is not the one named
    monkeypatch.setattr(checks, "READ_BYTES", 5 * 96 * 96 * 4)  # blocks of 4 patches: the first bad one is in the 4th
    with pytest.raises(DatasetError) as info:
        checks.check_values(path)
    assert str(info.value) == f"{path}: patch 13 (sound id {sound_id}) {message}; fix or drop it before training"


def test_a_passed_file_is_remembered_until_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COALA_HOME", str(tmp_path / "home"))
    path = write_release_file(tmp_path / "train", n=6, n_tags=10)
    checks.check_values(path)
    memos = list((tmp_path / "home" / checks.MEMO_FOLDER).glob("*.json"))
    assert len(memos) == 1 and (tmp_path / "home" / ".cache" / ".gitignore").read_text() == "*\n"

    def unread(*args) -> None:
        raise AssertionError("a remembered file was read again")
    with monkeypatch.context() as patch:
        patch.setattr(checks, "_first_bad", unread)
        checks.check_values(path)
    _edit(path, "data", (2, 0, 0), np.nan)  # in place: size and shapes unchanged
    with pytest.raises(DatasetError, match="patch 2 "):
        checks.check_values(path)


def test_an_unwritable_memo_only_costs_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    setup_logging()  # as the script: warnings to stderr
    (tmp_path / "home").write_text("a file where the asset root should be")
    monkeypatch.setenv("COALA_HOME", str(tmp_path / "home"))
    checks.check_values(write_release_file(tmp_path / "train", n=4, n_tags=10))
    assert "cannot remember that" in capsys.readouterr().err


def test_fingerprint_tells_other_contents_and_shapes(tmp_path: Path) -> None:
    path = write_release_file(tmp_path / "train", n=8, n_tags=10, seed=0)
    first = checks.fingerprint(path)
    assert checks.fingerprint_difference(first, checks.fingerprint(path)) is None
    write_release_file(path, n=8, n_tags=10, seed=1)
    assert checks.fingerprint_difference(first, checks.fingerprint(path)) == "its contents changed"
    write_release_file(path, n=8, n_tags=12)
    assert checks.fingerprint_difference(first, checks.fingerprint(path)) == "dataset/label had shape (8, 10), now (8, 12)"
