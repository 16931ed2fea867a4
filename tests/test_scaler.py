"""The scaler: the paper's pickle read and converted to the project's JSON format without loss."""
from __future__ import annotations

import json

import numpy as np
import pytest

from coala.audio.scaler import MinMaxScaler, load_scaler, main
from coala.errors import ScalerError


def test_pickle_converts_to_json_with_the_papers_parameters(reference, tmp_path):
    out = tmp_path / "scaler.json"
    assert main([str(reference / "original" / "scaler_top_1000.pkl"), str(out)]) == 0
    ours = json.loads(out.read_text())
    expected = json.loads((reference / "expected" / "scaler_top_1000_params.json").read_text())
    for key in ("data_min", "data_max", "scale", "min"):
        np.testing.assert_allclose(ours[key], expected[key], rtol=1e-12)
    assert ours["n_samples_seen"] == expected["n_samples_seen"]
    patches = np.random.default_rng(0).normal(-5, 3, size=(3, 96, 96)).astype(np.float32)
    np.testing.assert_array_equal(load_scaler(out).transform(patches),
                                  load_scaler(reference / "original" / "scaler_top_1000.pkl").transform(patches))


def test_orientation_is_frames_as_features():
    patches = np.random.default_rng(1).normal(size=(5, 96, 96)).astype(np.float32)
    scaler = MinMaxScaler.fit(patches)
    scaled = scaler.transform(patches)
    columns = scaled.transpose(2, 0, 1).reshape(96, -1)  # each frame position over all mel rows
    np.testing.assert_allclose(columns.min(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(columns.max(axis=1), 1, atol=1e-6)


def test_bad_scaler_files_are_named(tmp_path):
    with pytest.raises(ScalerError, match="nowhere.json: scaler file not found"):
        load_scaler(tmp_path / "nowhere.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"data_min": [1, 2]}')
    with pytest.raises(ScalerError, match="bad.json: not a scaler file"):
        load_scaler(bad)
    assert main([str(tmp_path / "absent.pkl"), str(tmp_path / "o.json")]) == 2
