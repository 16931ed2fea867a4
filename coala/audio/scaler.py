"""The MinMax scaler applied to every 96x96 patch, in the project's JSON format.

The paper pickled a scikit-learn 0.22 ``MinMaxScaler``; pickles are fragile across versions and can run
code, so the project stores the fitted parameters as JSON and reads a pickle only when a user names one
explicitly, and then with an unpickler that admits only a MinMaxScaler's state (``_ScalerUnpickler``).
Orientation (the paper's): each patch is transformed with its 96 mel bands as rows and its 96 frame
positions as features, i.e. ``patch * scale[None, :] + min[None, :]``.

Convert the paper's pickle once with (``fetch_assets.py`` does it for the published one)::

    python -m coala.audio.scaler scaler_top_1000.pkl json/scaler_top_1000.json
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coala import assets
from coala.atomic import atomic_write_text
from coala.audio.frontend import PATCH_FRAMES
from coala.cli import entry_point
from coala.errors import ScalerError
from coala.jsonfile import read_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MinMaxScaler:
    """Fitted MinMax parameters over the 96 frame positions of a patch.

    ``scale`` and ``min`` are stored, not re-derived, because the paper's pickle holds values rounded
    differently from a float64 recomputation (by up to 1e-7 relative).
    """

    data_min: np.ndarray
    data_max: np.ndarray
    scale: np.ndarray
    min: np.ndarray
    feature_range: tuple[float, float] = (0.0, 1.0)
    n_samples_seen: int = 0

    def transform(self, patches: np.ndarray) -> np.ndarray:
        """Scale ``(..., 96 mels, 96 frames)`` patches; float32 out, as the paper's model saw them.

        A 2-D ``(rows, 96)`` array is what the paper passed to scikit-learn's ``transform`` (one chunk,
        mel bands as rows), so code written for its pickle runs on this scaler unchanged.
        """
        patches = np.asarray(patches)
        if patches.ndim < 2 or patches.shape[-1] != self.data_min.shape[0]:
            raise ValueError(f"scaler has {self.data_min.shape[0]} features; expected an array (..., "
                             f"{self.data_min.shape[0]}), got shape {patches.shape}")
        return (patches.astype(np.float64) * self.scale + self.min).astype(np.float32)

    def inverse_transform(self, scaled: np.ndarray) -> np.ndarray:
        """Back from the scaled range to log-mel values (to look at a reconstruction as a spectrogram)."""
        return ((np.asarray(scaled, dtype=np.float64) - self.min) / self.scale).astype(np.float32)

    # scikit-learn's attribute names, for code written against the paper's pickle.
    data_min_ = property(lambda self: self.data_min)
    data_max_ = property(lambda self: self.data_max)
    data_range_ = property(lambda self: self.data_max - self.data_min)
    scale_ = property(lambda self: self.scale)
    min_ = property(lambda self: self.min)
    n_features_in_ = property(lambda self: int(self.data_min.shape[0]))
    n_samples_seen_ = property(lambda self: self.n_samples_seen)

    @classmethod
    def fit(cls, patches: np.ndarray) -> "MinMaxScaler":
        """Fit on ``(n, 96 mels, 96 frames)`` patches: every mel row of every patch is one sample."""
        rows = patches.reshape(-1, patches.shape[-1]).astype(np.float64)
        data_min, data_max = rows.min(axis=0), rows.max(axis=0)
        data_range = data_max - data_min
        scale = 1.0 / np.where(data_range == 0.0, 1.0, data_range)
        return cls(data_min, data_max, scale, -data_min * scale, n_samples_seen=int(rows.shape[0]))

    def to_dict(self) -> dict:
        return {
            "kind": "MinMaxScaler",
            "feature_range": list(self.feature_range),
            "n_features": int(self.data_min.shape[0]),
            "data_min": self.data_min.tolist(),
            "data_max": self.data_max.tolist(),
            "scale": self.scale.tolist(),
            "min": self.min.tolist(),
            "n_samples_seen": self.n_samples_seen,
        }

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))


def _from_json(path: Path) -> MinMaxScaler:
    try:
        params = read_json(path)
        scaler = MinMaxScaler(*(np.asarray(params[k], dtype=np.float64) for k in ("data_min", "data_max", "scale", "min")),
                              tuple(float(v) for v in params.get("feature_range", (0.0, 1.0))),
                              int(params.get("n_samples_seen", 0)))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ScalerError(f"{path}: not a scaler file of this project ({type(exc).__name__}: {exc})") from None
    return _patch_sized(scaler, path)


def _patch_sized(scaler: MinMaxScaler, path: Path) -> MinMaxScaler:
    """The scaler, when it was fitted on 96 frame positions (a scaler of other data would mis-scale patches)
    and its parameters are finite (a NaN or Inf in one would make every embedding NaN, written unnoticed)."""
    parameters = {"data_min": scaler.data_min, "data_max": scaler.data_max, "scale": scaler.scale, "min": scaler.min}
    shapes = {a.shape for a in parameters.values()}
    if shapes != {(PATCH_FRAMES,)}:
        raise ScalerError(f"{path}: scaler parameters must have {PATCH_FRAMES} features each, found {sorted(shapes)}")
    for name, values in parameters.items():
        if not np.isfinite(values).all():
            index = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ScalerError(f"{path}: scaler parameter {name} holds {values[index]} at feature {index}")
    return scaler


class _PickledMinMaxScaler:
    """Stands in for scikit-learn's ``MinMaxScaler`` while unpickling: it only receives the pickled
    attributes, so no scikit-learn code runs and none needs to be installed."""


# Every global the paper's pickle (scikit-learn 0.22, numpy 1.x) or one written by a current
# scikit-learn / numpy 2 names: the scaler class (under its module paths since 0.22 and before) and
# numpy's array, dtype and scalar reconstructors. Anything else is refused before it is imported.
_SCALER_CLASS_PATHS = ("sklearn.preprocessing._data", "sklearn.preprocessing.data")
_NUMPY_RECONSTRUCTORS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
})


class _ScalerUnpickler(pickle.Unpickler):
    """An unpickler that builds a MinMaxScaler's state and nothing else.

    A pickle can name any importable callable and have it called (``os.system``, ``builtins.exec``), so
    a scaler file from elsewhere could run code on load. ``find_class`` is where every such name is
    resolved: it hands out only the globals above and refuses the rest before anything is imported.
    """

    def __init__(self, file, path: Path) -> None:
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> object:
        if name == "MinMaxScaler" and module in _SCALER_CLASS_PATHS:
            return _PickledMinMaxScaler
        if (module, name) in _NUMPY_RECONSTRUCTORS:
            return super().find_class(module, name)
        raise ScalerError(f"{self._path}: refused to unpickle {module}.{name}: a scaler pickle may hold only "
                          "scikit-learn's MinMaxScaler and numpy arrays (nothing was run)")


def _from_pickle(path: Path) -> MinMaxScaler:
    """Read the paper's scikit-learn pickle with :class:`_ScalerUnpickler` (only for files the user names)."""
    try:
        with open(path, "rb") as f:
            sk = _ScalerUnpickler(f, path).load()
    except ScalerError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed pickle is the file's fault, reported as one line
        raise ScalerError(f"{path}: cannot unpickle a scaler ({type(exc).__name__}: {exc})") from None
    if not isinstance(sk, _PickledMinMaxScaler):
        raise ScalerError(f"{path}: the pickle holds a {type(sk).__name__}, not a MinMaxScaler")
    try:
        scaler = _from_sklearn(sk)
    except (AttributeError, TypeError, ValueError, OverflowError) as exc:
        raise ScalerError(f"{path}: the pickled MinMaxScaler is not fitted ({type(exc).__name__}: {exc})") from None
    return _patch_sized(scaler, path)


def _from_sklearn(sk) -> MinMaxScaler:
    """The parameters of a fitted scikit-learn ``MinMaxScaler`` (any version)."""
    return MinMaxScaler(*(np.asarray(getattr(sk, k), dtype=np.float64) for k in ("data_min_", "data_max_", "scale_", "min_")),
                        tuple(float(v) for v in sk.feature_range), int(sk.n_samples_seen_))


def load_scaler(scaler: "str | Path | MinMaxScaler | None" = None) -> MinMaxScaler:
    """A loaded scaler, a path (``.json`` of this project or the paper's ``.pkl``), or None for the
    installed default (``json/scaler_top_1000.json`` under the asset root, see ``coala.assets``)."""
    if isinstance(scaler, MinMaxScaler):
        return scaler
    if scaler is not None and not isinstance(scaler, (str, os.PathLike)):
        if hasattr(scaler, "data_min_"):  # an already unpickled scikit-learn MinMaxScaler
            return _from_sklearn(scaler)
        raise TypeError(f"scaler must be a path or a MinMaxScaler, not {type(scaler).__name__}")
    path = assets.locate(scaler) if scaler is not None else assets.default_path(assets.SCALER)
    if not path.is_file():
        hint = (" (get the paper's scaler with `python fetch_assets.py`, or convert its pickle with "
                "`python -m coala.audio.scaler scaler_top_1000.pkl`)") if scaler is None else ""
        raise ScalerError(f"{path}: scaler file not found{hint}")
    return _from_pickle(path) if path.suffix == ".pkl" else _from_json(path)


@entry_point
def main(argv: list[str] | None = None) -> int:
    default = assets.default_path(assets.SCALER)
    parser = argparse.ArgumentParser(description="Convert the paper's scaler pickle to the project's JSON format.")
    parser.add_argument("pickle", type=Path, help="the paper's scaler_top_1000.pkl")
    parser.add_argument("output", type=Path, nargs="?", default=default, help=f"default {default}")
    args = parser.parse_args(argv)
    if not args.pickle.is_file():
        raise ScalerError(f"{args.pickle}: scaler pickle not found")
    _from_pickle(args.pickle).save(args.output)
    log.info(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
