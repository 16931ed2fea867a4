"""The paper's data_loader (HDF5Dataset / InMemoryDataset) on files in the release layout, and their one-line errors."""
from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from coala.core.errors import DatasetError
from data_loader import HDF5Dataset, InMemoryDataset, inspect_hdf5
from tiny_release import write_release_file


@pytest.fixture()
def release_file(tmp_path: Path) -> Path:
    return write_release_file(tmp_path / "spec_tags_tiny", n=40, n_tags=300, seed=3)


def test_items_are_the_papers_data_label_sound_id(release_file: Path) -> None:
    with h5py.File(release_file, "r") as f:
        ids, data, labels = f["dataset/id"][...], f["dataset/data"][...], f["dataset/label"][...]
    for dataset in (HDF5Dataset(release_file), InMemoryDataset(release_file)):
        assert len(dataset) == 40 and dataset.n_tags == 300
        patch, label, sound_id = dataset[7]
        assert patch.dtype == np.float32 and patch.shape == (96, 96)
        assert label.dtype == np.int16 and label.shape == (300,)
        assert sound_id.dtype == np.int32 and sound_id.shape == (1,)
        np.testing.assert_array_equal(patch, data[7])
        np.testing.assert_array_equal(label, labels[7])
        np.testing.assert_array_equal(sound_id, ids[7])


def test_h_file_is_the_open_file_as_the_papers_scripts_use_it(release_file: Path) -> None:
    """The paper's analysis scripts map sound ids to rows through ``dataset.h_file``."""
    dataset = HDF5Dataset(release_file)
    sound_id2idx = {i: idx for idx, i in enumerate(dataset.h_file["dataset"]["id"][:, 0])}
    patch, label, sound_id = dataset[sound_id2idx[dataset[5][2][0]]]
    np.testing.assert_array_equal(patch, dataset[5][0])
    assert dataset.h_file.filename == str(release_file)


def test_a_paper_style_loop_gets_batched_tensors(release_file: Path) -> None:
    """``for data, tags, sound_id in DataLoader(dataset)`` then ``data.view(-1, 1, 96, 96)``, as the paper's scripts."""
    loader = DataLoader(HDF5Dataset(release_file), batch_size=8, shuffle=False)
    data, tags, sound_id = next(iter(loader))
    assert data.view(-1, 1, 96, 96).shape == (8, 1, 96, 96) and data.dtype == torch.float32
    assert tags.shape == (8, 300) and tags.float().sum() > 0
    assert sound_id.shape == (8, 1)


def test_batched_read_keeps_the_requested_order(release_file: Path) -> None:
    dataset = HDF5Dataset(release_file)
    indices = [31, 2, 17, 2, 39, 0]
    batch = dataset.__getitems__(indices)
    for index, (patch, label, sound_id) in zip(indices, batch):
        expected = dataset[index]
        np.testing.assert_array_equal(patch, expected[0])
        np.testing.assert_array_equal(label, expected[1])
        np.testing.assert_array_equal(sound_id, expected[2])


def test_streaming_dataset_works_in_worker_processes_and_holds_no_data(release_file: Path) -> None:
    dataset = HDF5Dataset(release_file)
    dataset[0]  # opens the file in this process: workers must still get their own handle
    assert len(pickle.dumps(dataset)) < 2000  # the 1.5 MB of patches stay on disk
    loader = DataLoader(dataset, batch_size=8, num_workers=2)
    ids = torch.cat([batch[2] for batch in loader])
    in_memory = InMemoryDataset(release_file)
    assert ids[:, 0].tolist() == [int(in_memory[i][2][0]) for i in range(len(in_memory))]


def _broken(tmp_path: Path, edit) -> Path:
    path = write_release_file(tmp_path / "broken", n=10, n_tags=20)
    with h5py.File(path, "a") as f:
        edit(f)
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.move("dataset", "other"), "no group 'dataset'"),
    (lambda f: f.__delitem__("dataset/label"), "no dataset dataset/label"),
    (lambda f: f.__delitem__("dataset/id"), "no dataset dataset/id"),
    (lambda f: (f.__delitem__("dataset/id"), f.create_dataset("dataset/id", data=np.zeros((9, 1), np.int32))),
     "mismatched lengths id 9, data 10, label 10"),
    (lambda f: (f.__delitem__("dataset/data"), f.create_dataset("dataset/data", data=np.zeros((10, 96, 64), np.float32))),
     "dataset/data has shape (10, 96, 64), expected (N, 96, 96)"),
    (lambda f: (f.__delitem__("dataset/data"), f.create_dataset("dataset/data", data=np.full((10, 96, 96), b"x"))),
     "dataset/data holds byte string values, expected real numbers"),
    (lambda f: (f.__delitem__("dataset/data"), f.create_dataset("dataset/data", data=np.zeros((10, 96, 96), np.complex64))),
     "dataset/data holds complex values, expected real numbers"),
    (lambda f: (f.__delitem__("dataset/label"), f.create_dataset("dataset/label", data=np.full((10, 20), b"1"))),
     "dataset/label holds byte string values"),
])
def test_malformed_files_are_rejected_in_one_line(tmp_path: Path, edit, message: str) -> None:
    path = _broken(tmp_path, edit)
    for build in (inspect_hdf5, HDF5Dataset, InMemoryDataset):
        with pytest.raises(DatasetError) as info:
            build(path)
        assert str(info.value).startswith(str(path)) and message in str(info.value)
        assert "\n" not in str(info.value)


def test_missing_and_non_hdf5_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="HDF5 file not found"):
        HDF5Dataset(tmp_path / "absent")
    (tmp_path / "text").write_text("not hdf5")
    with pytest.raises(DatasetError, match="not a readable HDF5 file"):
        HDF5Dataset(tmp_path / "text")
