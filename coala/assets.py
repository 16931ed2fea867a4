"""Downloading the paper's published assets (checkpoints, JSON files, scaler) into the project's places.

What to fetch is data (``PAPER_ASSETS``, a tuple of ``Asset``), so a test or a mirror can supply its own
list. Each file is streamed into ``<file>.part``; an interrupted download is resumed from there with an
HTTP ``Range`` request, and the file is renamed into place only after its checks pass: the sha256 where
one is known, a strict load into its model class for checkpoints. The scaler pickle is then converted
to the project's JSON format. Only the standard library's urllib is used.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from coala.checkpoints import CheckpointError, build_model, load_into, read_state_dict
from coala.scaler import DEFAULT_SCALER, load_scaler
from models_t1000 import CNN, AudioEncoder, TagEncoder

PAPER_COMMIT = "b791ad6bb5c4f7b8f8f8fa8e0c5bd5b89b0ecbc3"
PAPER_BASE_URL = f"https://raw.githubusercontent.com/xavierfav/coala/{PAPER_COMMIT}"
CHUNK_BYTES = 1 << 16
TIMEOUT_S = 60.0
MODEL_CLASSES = {"audio_encoder": AudioEncoder, "tag_encoder": TagEncoder, "cnn": CNN}


class AssetError(Exception):
    """One asset that could not be fetched or checked; the message names it and says why."""


@dataclass(frozen=True)
class Asset:
    """One file of the paper's repository and where the project keeps it.

    ``kind`` says how it is checked after download: ``json`` (nothing more), ``scaler`` (converted to
    ``converted``), or a key of ``MODEL_CLASSES`` (loaded strictly into that model class).
    """

    remote: str
    local: str
    kind: str = "json"
    sha256: str | None = None
    converted: str | None = None


def _checkpoint(folder: str, name: str, epoch: int, kind: str) -> Asset:
    path = f"saved_models/{folder}/{name}_epoch_{epoch}.pt"
    return Asset(path, path, kind)


PAPER_ASSETS: tuple[Asset, ...] = (
    *(_checkpoint(folder, name, 200, name) for folder in ("dual_ae_c", "dual_e_c") for name in ("audio_encoder", "tag_encoder")),
    _checkpoint("cnn", "audio_encoder", 20, "cnn"),
    Asset("json/id2token_top_1000.json", "json/id2token_top_1000.json", "json",
          "e3f9c0f73af2fc19762b52764138fa76822ca437e2856313193a6a1ee9680771"),
    Asset("json/nsynth_selected_sounds_per_class.json", "json/nsynth_selected_sounds_per_class.json", "json",
          "97acc26e18aed1f82476d36738847137386344135a4c590e3d32636afc8ed163"),
    Asset("json/fs_ids_target_task.json", "json/fs_ids_target_task.json", "json",
          "13bca9a0920d480001e6c86f40026d100146e3eafedfa020593a7e75b76786a7"),
    Asset("json/sound_ids_validation.json", "json/sound_ids_validation.json", "json",
          "dd96a29b7f8378d65da8c92878de744003f2c2a4050770869404d2cc68a83af2"),
    Asset("scaler_top_1000.pkl", "json/scaler_top_1000.pkl", "scaler",
          "a19797fdf2fcff78d2198707d485160470367d4aae41f227a51705454eb6cc29", str(DEFAULT_SCALER)),
)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def part_path(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def download(url: str, dest: Path, show_progress: bool = True, timeout: float = TIMEOUT_S) -> None:
    """Stream ``url`` into ``dest.part``, resuming from the bytes already there.

    A server that ignores ``Range`` (status 200) restarts the file from zero. A short read raises
    ``AssetError`` and keeps the partial file for the next run.
    """
    part = part_path(dest)
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left after the bytes we have: the .part is complete
            return
        raise AssetError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise AssetError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    with response:
        resumed = have > 0 and response.status == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        received = have
        try:
            with open(part, "ab" if resumed else "wb") as f, tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, desc=dest.name, disable=not show_progress,
                    leave=False) as bar:
                while block := response.read(CHUNK_BYTES):
                    f.write(block)
                    received += len(block)
                    bar.update(len(block))
        except (http.client.IncompleteRead, OSError) as exc:
            raise AssetError(f"{url}: connection lost after {received} bytes ({type(exc).__name__}); "
                             f"rerun to resume from {part}") from None
    if total is not None and received < total:
        raise AssetError(f"{url}: connection closed after {received} of {total} bytes; rerun to resume from {part}")


def check(asset: Asset, path: Path) -> None:
    """The asset's checks on the downloaded bytes at ``path``; ``AssetError`` when one fails."""
    if asset.sha256 is not None:
        found = sha256_of(path)
        if found != asset.sha256:
            raise AssetError(f"{asset.local}: sha256 {found} does not match the expected {asset.sha256}; not installed")
    if asset.kind in MODEL_CLASSES:
        try:
            state = read_state_dict(path)
            load_into(build_model(MODEL_CLASSES[asset.kind], state), state, asset.local)
        except CheckpointError as exc:
            raise AssetError(f"{exc}; not installed") from None
    elif asset.kind == "scaler":
        try:
            load_scaler(path)  # the path ends in .pkl (see fetch), so it is read as the paper's pickle
        except ValueError as exc:
            raise AssetError(f"{asset.local}: {exc}; not installed") from None


def fetch(asset: Asset, base_url: str, root: Path, show_progress: bool = True) -> bool:
    """Make ``root/asset.local`` present and checked; True when it was downloaded, False when already there.

    A file already in place that fails its checks (corrupted, replaced) is fetched again.
    """
    dest = root / asset.local
    if dest.is_file():
        try:
            check(asset, dest)
            fresh = False
        except AssetError:
            fresh = True
    else:
        fresh = True
    if fresh:
        download(f"{base_url.rstrip('/')}/{asset.remote}", dest, show_progress)
        part = part_path(dest)
        staged = part.with_name(part.name + dest.suffix)  # keeps the suffix the loaders look at
        os.replace(part, staged)
        try:
            check(asset, staged)
        except AssetError:
            staged.unlink()
            raise
        os.replace(staged, dest)
    if asset.converted is not None and (fresh or not (root / asset.converted).is_file()):
        load_scaler(dest).save(root / asset.converted)
    return fresh


def fetch_all(assets: tuple[Asset, ...] = PAPER_ASSETS, base_url: str = PAPER_BASE_URL, root: Path = Path("."),
              show_progress: bool = True, report: Callable[[str], object] = print) -> list[str]:
    """Fetch every asset, going on past failures; returns one error line per failed asset."""
    errors = []
    for asset in tqdm(assets, desc="assets", unit="file", disable=not show_progress):
        try:
            report(f"{'fetched' if fetch(asset, base_url, root, show_progress) else 'already there'}: {asset.local}")
        except AssetError as exc:
            errors.append(str(exc))
    return errors
