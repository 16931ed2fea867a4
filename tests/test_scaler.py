"""The scaler: the paper's pickle read and converted to the project's JSON format without loss."""
from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.preprocessing import MaxAbsScaler, RobustScaler, StandardScaler
from sklearn.preprocessing import MinMaxScaler as SkMinMaxScaler

from coala.audio.scaler import MinMaxScaler, load_scaler, main
from coala.core.errors import ScalerError


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
    with pytest.raises(ScalerError, match="bad.json: not a scaler of this project"):
        load_scaler(bad)
    assert main([str(tmp_path / "absent.pkl"), str(tmp_path / "o.json")]) == 2
    fitted = {"data_min": [0.0] * 96, "data_max": [1.0] * 96, "scale": [1.0] * 96, "min": [0.0] * 96}
    bad.write_text(json.dumps({**fitted, "min": [0.0] * 95 + [float("nan")]}))
    with pytest.raises(ScalerError, match="bad.json: scaler parameter min holds nan at feature 95"):
        load_scaler(bad)
    bad.write_text(json.dumps({**fitted, "n_samples_seen": float("inf")}))
    with pytest.raises(ScalerError, match="bad.json: not a scaler of this project \\(OverflowError"):
        load_scaler(bad)
    bad.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ScalerError, match="bad.json: not a scaler file of this project \\(ValueError: nested too deeply\\)"):
        load_scaler(bad)


class _RunsCode:
    """Unpickling this calls ``call(*args)``: what a crafted scaler file would do."""

    def __init__(self, call, *args) -> None:
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def _scaler_hiding(payload: object) -> SkMinMaxScaler:
    """A real fitted MinMaxScaler with ``payload`` as one of its attributes."""
    fitted = SkMinMaxScaler().fit(np.random.default_rng(0).normal(size=(20, 96)))
    fitted.data_min_ = payload
    return fitted


# Each builds a pickle whose loading would create the file ``marker``; the global the loader must refuse.
CRAFTED = {
    "os.system": (lambda marker: _RunsCode(os.system, f"touch {marker}"), "posix.system"),
    "exec": (lambda marker: _RunsCode(exec, f"open({str(marker)!r}, 'w').close()"), "builtins.exec"),
    "Path.touch": (lambda marker: _RunsCode(Path.touch, marker), "Path.touch"),
    "inside a MinMaxScaler": (lambda marker: _scaler_hiding(_RunsCode(os.system, f"touch {marker}")), "posix.system"),
}


@pytest.mark.parametrize("case", CRAFTED)
def test_a_crafted_pickle_is_refused_and_runs_nothing(tmp_path, case, capsys):
    build, refused = CRAFTED[case]
    marker = tmp_path / "ran"
    bad = tmp_path / "scaler.pkl"
    bad.write_bytes(pickle.dumps(build(marker)))
    with pytest.raises(ScalerError, match=rf"^{re.escape(str(bad))}: refused to unpickle \S*{re.escape(refused)}: "):
        load_scaler(bad)
    out = tmp_path / "out.json"
    assert main([str(bad), str(out)]) == 2  # the conversion command
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad}: refused to unpickle ")
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("other", [StandardScaler, RobustScaler, MaxAbsScaler])
def test_other_scikit_learn_classes_are_refused(tmp_path, other):
    bad = tmp_path / "scaler.pkl"
    bad.write_bytes(pickle.dumps(other().fit(np.random.default_rng(0).normal(size=(20, 96)))))
    with pytest.raises(ScalerError, match=rf"refused to unpickle sklearn\.preprocessing\._data\.{other.__name__}: "):
        load_scaler(bad)


def test_a_current_scikit_learn_pickle_loads_and_other_contents_are_named(tmp_path):
    fitted = SkMinMaxScaler().fit(np.random.default_rng(0).normal(size=(20, 96)))
    good = tmp_path / "current.pkl"
    good.write_bytes(pickle.dumps(fitted))
    np.testing.assert_array_equal(load_scaler(good).scale, fitted.scale_)
    array = tmp_path / "array.pkl"
    array.write_bytes(pickle.dumps(np.zeros(96)))
    with pytest.raises(ScalerError, match="array.pkl: the pickle holds a ndarray, not a MinMaxScaler"):
        load_scaler(array)
    narrow = tmp_path / "narrow.pkl"
    narrow.write_bytes(pickle.dumps(SkMinMaxScaler().fit(np.zeros((3, 5)))))
    with pytest.raises(ScalerError, match=r"narrow.pkl: scaler parameters must have 96 features each, found \[\(5,\)\]"):
        load_scaler(narrow)
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ScalerError, match="truncated.pkl: cannot unpickle a scaler"):
        load_scaler(truncated)
