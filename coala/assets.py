"""Where the published assets live: checkpoints, scaler, vocabulary and NSynth selection.

``fetch_assets.py`` installs them under :func:`asset_root`, and every default path of the package
resolves there, whatever the current directory: a notebook in another folder or a program importing
the paper's modules from its own root finds them. The root is ``$COALA_HOME`` when set (set but empty is an error, not the working folder); otherwise the
project folder when the package runs from its checkout (``pip install -e .`` keeps it there); otherwise
``$XDG_DATA_HOME/coala`` (``~/.local/share/coala``) for an installed wheel.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from coala.core.errors import UsageError

HOME_VARIABLE = "COALA_HOME"

SCALER = Path("json/scaler_top_1000.json")
SCALER_PICKLE = Path("json/scaler_top_1000.pkl")
ID2TAG = Path("json/id2token_top_1000.json")
NSYNTH_SELECTION = Path("json/nsynth_selected_sounds_per_class.json")
TARGET_TASK_IDS = Path("json/fs_ids_target_task.json")
VALIDATION_IDS = Path("json/sound_ids_validation.json")
CHECKPOINT_DIR = Path("saved_models")
# The paper's pretrained networks: (experiment folder, file prefix, epoch) -> which network it holds.
PRETRAINED = {
    ("dual_ae_c", "audio_encoder", 200): "audio_encoder",
    ("dual_ae_c", "tag_encoder", 200): "tag_encoder",
    ("dual_e_c", "audio_encoder", 200): "audio_encoder",
    ("dual_e_c", "tag_encoder", 200): "tag_encoder",
    ("cnn", "audio_encoder", 20): "cnn",
}
# The checkpoint a network loads when none is named: the paper's COALA (AE_c) and its CNN baseline.
DEFAULT_EXPERIMENT = {"audio_encoder": "dual_ae_c", "tag_encoder": "dual_ae_c", "cnn": "cnn"}


_CHECKPOINT_STEM = re.compile(r"^(?P<prefix>.+)_epoch_(?P<epoch>\d+)$")


def checkpoint_name(prefix: str, epoch: int) -> str:
    """The paper's checkpoint file name, ``<network>_epoch_<N>.pt`` (training writes it, encode.py reads it)."""
    return f"{prefix}_epoch_{epoch}.pt"


def checkpoint_epoch(path: str | os.PathLike, prefix: str | None = None) -> int | None:
    """The epoch in a checkpoint file name (for ``prefix`` only, when given), or None for other names."""
    match = _CHECKPOINT_STEM.match(Path(path).stem)
    if match is None or (prefix is not None and match["prefix"] != prefix):
        return None
    return int(match["epoch"])


def latest_checkpoint_epoch(folder: Path, prefixes: list[str]) -> int | None:
    """The last epoch in ``folder`` with a checkpoint for every prefix (how the paper's own code resumed), or None."""
    epochs = {checkpoint_epoch(p, prefixes[0]) for p in folder.glob(f"{prefixes[0]}_epoch_*.pt")} - {None}
    complete = [e for e in epochs if all((folder / checkpoint_name(prefix, e)).is_file() for prefix in prefixes)]
    return max(complete, default=None)


def checkpoint_file(experiment: str, prefix: str, epoch: int) -> Path:
    """A published checkpoint relative to the asset root: ``saved_models/<experiment>/<name>``."""
    return CHECKPOINT_DIR / experiment / checkpoint_name(prefix, epoch)


def pretrained_checkpoint(network: str) -> Path:
    """The relative path of the paper's published checkpoint for ``network`` (see ``DEFAULT_EXPERIMENT``)."""
    experiment = DEFAULT_EXPERIMENT[network]
    prefix, epoch = next((p, e) for (x, p, e), n in PRETRAINED.items() if x == experiment and n == network)
    return checkpoint_file(experiment, prefix, epoch)


def asset_root() -> Path:
    """The folder ``fetch_assets.py`` installs into and default paths resolve under (see module doc)."""
    configured = os.environ.get(HOME_VARIABLE)
    if configured is not None:
        if not configured.strip():  # Path("") is the working folder: assets would land wherever one stands
            raise UsageError(f"{HOME_VARIABLE} is set but empty: unset it, or set it to the asset folder")
        return Path(configured).expanduser()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "fetch_assets.py").is_file():
        return checkout
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "coala"


def default_path(relative: Path) -> Path:
    """An asset's installed location."""
    return asset_root() / relative


def locate(path: str | os.PathLike) -> Path:
    """A user's asset path: as given when it exists; a relative path that does not exist from here but
    does under the asset root resolves there (``saved_models/...`` works from any folder). Otherwise the
    path as given, so the error that follows names what the user wrote."""
    given = Path(path).expanduser()
    if given.exists() or given.is_absolute():
        return given
    installed = asset_root() / given
    return installed if installed.exists() else given
