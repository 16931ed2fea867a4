"""The third round of bad input (issue 25), class by class: each test is one case of a class, fixed in
the mechanism every reader or writer of that kind goes through (docs/errors.md lists the classes)."""
from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from coala.core.errors import DatasetError
from coala.data import checks, hdf5
from tiny_release import write_release_file


# --- 1. data that is not where it seems ----------------------------------------------------------------

def _split_file(tmp_path: Path, link: str) -> Path:
    """A training file whose ``link`` member (``dataset`` or ``dataset/<name>``) lives in another file,
    reached by an external link."""
    source = write_release_file(tmp_path / "elsewhere.h5", 8, n_tags=5)
    path = tmp_path / "train.h5"
    with h5py.File(source, "r") as src, h5py.File(path, "w") as f:
        if link == "dataset":
            f["dataset"] = h5py.ExternalLink(str(source), "/dataset")
        else:
            group = f.create_group("dataset")
            for name in ("id", "data", "label"):
                if f"dataset/{name}" == link:
                    group[name] = h5py.ExternalLink(str(source), f"/dataset/{name}")
                else:
                    group.create_dataset(name, data=src["dataset"][name][...])
    return path


@pytest.mark.parametrize("link", ["dataset", "dataset/data", "dataset/label"])
def test_an_external_link_is_refused_by_every_reader(tmp_path: Path, link: str) -> None:
    path = _split_file(tmp_path, link)
    for read in (hdf5.inspect_hdf5, checks.fingerprint, checks.check_values, hdf5.HDF5Dataset, hdf5.InMemoryDataset):
        with pytest.raises(DatasetError, match=f"{link} is an external link into .*elsewhere.h5"):
            read(path)


def test_a_soft_link_through_an_external_link_is_refused(tmp_path: Path) -> None:
    path = _split_file(tmp_path, "dataset/data")
    with h5py.File(path, "a") as f:
        f["dataset"]["outside"] = f["dataset"].get("data", getlink=True)
        del f["dataset"]["data"]
        f["dataset"]["data"] = h5py.SoftLink("/dataset/outside")
    with pytest.raises(DatasetError, match="lies in another file .*elsewhere.h5"):
        hdf5.inspect_hdf5(path)


def test_a_soft_link_inside_the_file_reads_as_before(tmp_path: Path) -> None:
    path = write_release_file(tmp_path / "train.h5", 8, n_tags=5)
    with h5py.File(path, "a") as f:
        f.move("dataset/label", "labels_elsewhere_in_this_file")
        f["dataset"]["label"] = h5py.SoftLink("/labels_elsewhere_in_this_file")
    assert hdf5.inspect_hdf5(path) == (8, 5)
    checks.check_values(path)


def test_a_virtual_dataset_is_refused_even_with_its_source_missing(tmp_path: Path) -> None:
    source = write_release_file(tmp_path / "source.h5", 8, n_tags=5)
    path = tmp_path / "train.h5"
    with h5py.File(source, "r") as src, h5py.File(path, "w") as f:
        group = f.create_group("dataset")
        group.create_dataset("id", data=src["dataset/id"][...])
        group.create_dataset("label", data=src["dataset/label"][...])
        layout = h5py.VirtualLayout(shape=(8, 96, 96), dtype=np.float32)
        layout[...] = h5py.VirtualSource(str(source), "dataset/data", shape=(8, 96, 96))
        group.create_virtual_dataset("data", layout, fillvalue=0)
    source.unlink()  # h5py now reads the fill value, zeros, without a word
    with pytest.raises(DatasetError, match="dataset/data is a virtual dataset"):
        checks.check_values(path)


def test_external_raw_storage_is_refused(tmp_path: Path) -> None:
    path = write_release_file(tmp_path / "train.h5", 8, n_tags=5)
    with h5py.File(path, "a") as f:
        ids = f["dataset/id"][...]
        del f["dataset/id"]
        f["dataset"].create_dataset("id", shape=ids.shape, dtype=ids.dtype, external=[(str(tmp_path / "ids.raw"), 0, ids.nbytes)])
        f["dataset/id"][...] = ids
    with pytest.raises(DatasetError, match=r"dataset/id keeps its values in external files \(.*ids.raw"):
        hdf5.inspect_hdf5(path)


# --- 2. sizes that a header declares --------------------------------------------------------------------

def test_a_billion_declared_patches_with_none_stored_are_refused_at_once(tmp_path: Path) -> None:
    path = write_release_file(tmp_path / "train.h5", 4, n_tags=5)
    n = 10**9
    with h5py.File(path, "a") as f:
        for name in ("id", "data", "label"):
            old = f["dataset"][name][...]
            del f["dataset"][name]
            shape = (n, *old.shape[1:])
            f["dataset"].create_dataset(name, shape=shape, dtype=old.dtype, chunks=(1, *old.shape[1:]))
            f["dataset"][name][:len(old)] = old
    assert path.stat().st_size < 10**6
    started = time.perf_counter()
    with pytest.raises(DatasetError, match=f"dataset/id declares {n} rows but stores 4 of its {n} chunks"):
        checks.check_values(path)
    assert time.perf_counter() - started < 5


def test_declared_contiguous_storage_never_written_is_refused(tmp_path: Path) -> None:
    path = write_release_file(tmp_path / "train.h5", 4, n_tags=5)
    with h5py.File(path, "a") as f:
        del f["dataset/data"]
        f["dataset"].create_dataset("data", shape=(4, 96, 96), dtype=np.float32)  # never written: reads as zeros
    with pytest.raises(DatasetError, match="dataset/data declares 4 rows but stores 0 of their 147456 bytes"):
        hdf5.HDF5Dataset(path)


def test_an_in_memory_load_larger_than_the_memory_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_release_file(tmp_path / "train.h5", 4, n_tags=5)
    monkeypatch.setattr(hdf5, "available_memory", lambda: 1000)
    with pytest.raises(DatasetError, match="in_memory needs 0.0 GiB, more than the 0.0 GiB of memory available; "
                                           "set in_memory to false"):
        hdf5.InMemoryDataset(path)
    monkeypatch.setattr(hdf5, "available_memory", lambda: None)  # not Linux: the load is tried
    assert len(hdf5.InMemoryDataset(path)) == 4
