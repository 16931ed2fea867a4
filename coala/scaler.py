"""The MinMax scaler applied to every 96x96 patch, in the project's JSON format.

The paper pickled a scikit-learn 0.22 ``MinMaxScaler``; pickles are fragile across versions and can run
code, so the project stores the fitted parameters as JSON and reads a pickle only when a user names one
explicitly. Orientation (the paper's): each patch is transformed with its 96 mel bands as rows and its
96 frame positions as features, i.e. ``patch * scale[None, :] + min[None, :]``.

Convert the paper's pickle once with::

    python -m coala.scaler scaler_top_1000.pkl json/scaler_top_1000.json
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coala.audio import PATCH_FRAMES
from coala.atomic import atomic_write_text

DEFAULT_SCALER = Path("json/scaler_top_1000.json")


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
        """Scale ``(..., 96 mels, 96 frames)`` patches; float32 out, as the paper's model saw them."""
        if patches.shape[-1] != self.data_min.shape[0]:
            raise ValueError(f"scaler has {self.data_min.shape[0]} features, patches have {patches.shape[-1]} frames")
        return (patches.astype(np.float64) * self.scale + self.min).astype(np.float32)

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
        params = json.loads(path.read_text())
        scaler = MinMaxScaler(*(np.asarray(params[k], dtype=np.float64) for k in ("data_min", "data_max", "scale", "min")),
                              tuple(params.get("feature_range", (0.0, 1.0))), int(params.get("n_samples_seen", 0)))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a scaler file of this project ({type(exc).__name__}: {exc})") from None
    shapes = {a.shape for a in (scaler.data_min, scaler.data_max, scaler.scale, scaler.min)}
    if shapes != {(PATCH_FRAMES,)}:
        raise ValueError(f"{path}: scaler parameters must have {PATCH_FRAMES} features each, found {sorted(shapes)}")
    return scaler


def _from_pickle(path: Path) -> MinMaxScaler:
    """Read the paper's scikit-learn pickle (needs scikit-learn; only for files the user names)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns about the 0.22 pickle; the parameters are intact
        try:
            with open(path, "rb") as f:
                sk = pickle.load(f)
        except Exception as exc:
            raise ValueError(f"{path}: cannot unpickle a scaler ({type(exc).__name__}: {exc})") from None
    try:
        return _from_sklearn(sk)
    except AttributeError:
        raise ValueError(f"{path}: the pickle holds a {type(sk).__name__}, not a fitted MinMaxScaler") from None


def _from_sklearn(sk) -> MinMaxScaler:
    """The parameters of a fitted scikit-learn ``MinMaxScaler`` (any version)."""
    return MinMaxScaler(*(np.asarray(getattr(sk, k), dtype=np.float64) for k in ("data_min_", "data_max_", "scale_", "min_")),
                        tuple(float(v) for v in sk.feature_range), int(sk.n_samples_seen_))


def load_scaler(scaler: "str | Path | MinMaxScaler | None" = None) -> MinMaxScaler:
    """A loaded scaler, a path (``.json`` of this project or the paper's ``.pkl``), or None for the default."""
    if isinstance(scaler, MinMaxScaler):
        return scaler
    if scaler is not None and not isinstance(scaler, (str, os.PathLike)):
        if hasattr(scaler, "data_min_"):  # an already unpickled scikit-learn MinMaxScaler
            return _from_sklearn(scaler)
        raise TypeError(f"scaler must be a path or a MinMaxScaler, not {type(scaler).__name__}")
    path = Path(scaler) if scaler is not None else DEFAULT_SCALER
    if not path.is_file():
        hint = (" (get the paper's scaler with `python fetch_assets.py`, or convert its pickle with "
                "`python -m coala.scaler scaler_top_1000.pkl json/scaler_top_1000.json`)") if scaler is None else ""
        raise FileNotFoundError(f"{path}: scaler file not found{hint}")
    return _from_pickle(path) if path.suffix == ".pkl" else _from_json(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert the paper's scaler pickle to the project's JSON format.")
    parser.add_argument("pickle", type=Path, help="the paper's scaler_top_1000.pkl")
    parser.add_argument("output", type=Path, nargs="?", default=DEFAULT_SCALER, help=f"default {DEFAULT_SCALER}")
    args = parser.parse_args(argv)
    try:
        scaler = _from_pickle(args.pickle)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    scaler.save(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
