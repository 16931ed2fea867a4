"""The MinMax scaler's files: the project's JSON format, and the paper's pickle read safely.

The paper pickled a scikit-learn 0.22 ``MinMaxScaler``; pickles are fragile across versions and can run
code, so the project stores the fitted parameters as JSON and reads a pickle only when a user names one
explicitly, and then with an unpickler that admits only a MinMaxScaler's state (``_ScalerUnpickler``).
Orientation (the paper's): each patch is transformed with its 96 mel bands as rows and its 96 frame
positions as features, i.e. ``patch * scale[None, :] + min[None, :]``.

Convert the paper's pickle once with (``fetch_assets.py`` does it for the published one)::

    python -m coala.audio.scaler scaler_top_1000.pkl json/scaler_top_1000.json
"""
from __future__ import annotations

import json
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coala import assets
from coala.atomic import atomic_write_text
from coala.core.frontend import MinMaxScaler
from coala.cli import ArgumentParser, entry_point
from coala.core.errors import ScalerError
from coala.jsonfile import read_json

log = logging.getLogger(__name__)


def save_scaler(scaler: MinMaxScaler, path: str | Path) -> None:
    """The scaler as this project's JSON file, written atomically."""
    atomic_write_text(path, json.dumps(scaler.to_dict(), indent=1))


def _from_json(path: Path) -> MinMaxScaler:
    try:
        params = read_json(path)
    except ValueError as exc:
        raise ScalerError(f"{path}: not a scaler file of this project ({type(exc).__name__}: {exc})") from None
    if not isinstance(params, dict):
        raise ScalerError(f"{path}: not a scaler file of this project (holds {type(params).__name__})")
    return MinMaxScaler.from_dict(params, path)


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
    return scaler.checked(path)


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
    parser = ArgumentParser(description="Convert the paper's scaler pickle to the project's JSON format.")
    parser.add_argument("pickle", type=Path, help="the paper's scaler_top_1000.pkl")
    parser.add_argument("output", type=Path, nargs="?", default=default, help=f"default {default}")
    args = parser.parse_args(argv)
    if not args.pickle.is_file():
        raise ScalerError(f"{args.pickle}: scaler pickle not found")
    save_scaler(_from_pickle(args.pickle), args.output)
    log.info(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
