"""Shared fixtures: the paper's reference files, read from ../shared/reference beside the project."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

REFERENCE = Path(os.environ.get("COALA_REFERENCE", ROOT.parent / "shared" / "reference"))
CLIPS = ["groove_22050.wav", "pluck_16k.wav", "plucks_22000.flac", "tone_stereo_44k.wav"]
PADDED_CLIPS = {"pluck_16k.wav"}  # at most 10 s: zero-padded, noise added


@pytest.fixture(autouse=True, scope="session")
def empty_asset_root(tmp_path_factory) -> Path:
    """Tests never read assets a developer installed: the asset root is an empty folder unless a test
    sets its own (``COALA_HOME``, see coala/assets.py)."""
    root = tmp_path_factory.mktemp("asset_root")
    previous = os.environ.get("COALA_HOME")
    os.environ["COALA_HOME"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("COALA_HOME", None)
    else:
        os.environ["COALA_HOME"] = previous


@pytest.fixture(scope="session")
def reference() -> Path:
    """The reference folder, or a skip that says why (a user's fresh clone has none)."""
    if not (REFERENCE / "README.md").is_file():
        pytest.skip(f"reference files from the paper's code not found at {REFERENCE} "
                    "(they sit beside the project in development and CI; set COALA_REFERENCE to use another copy)")
    return REFERENCE


@pytest.fixture(scope="session")
def paper_scaler(reference: Path):
    from coala.audio.scaler import load_scaler
    return load_scaler(reference / "original" / "scaler_top_1000.pkl")
