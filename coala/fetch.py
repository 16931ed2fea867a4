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
from dataclasses import dataclass, field
from pathlib import Path

from coala import assets
from coala.audio.scaler import load_scaler
from coala.cli import progress_bar
from coala.errors import AssetError, CheckpointError, ScalerError
from coala.models.checkpoints import load_checkpoint
from coala.models.registry import NETWORKS

PAPER_COMMIT = "b791ad6bb5c4f7b8f8f8fa8e0c5bd5b89b0ecbc3"
PAPER_BASE_URL = f"https://raw.githubusercontent.com/xavierfav/coala/{PAPER_COMMIT}"
CHUNK_BYTES = 1 << 16
TIMEOUT_S = 60.0



@dataclass(frozen=True)
class Asset:
    """One file of the paper's repository and where the project keeps it.

    ``kind`` says how it is checked after download: ``json`` (nothing more), ``scaler`` (converted to
    ``converted``), or a network name of ``coala.models.registry.NETWORKS`` (loaded strictly into it).
    """

    remote: str
    local: str
    kind: str = "json"
    sha256: str | None = None
    converted: str | None = None


def _json(path: Path, sha256: str) -> Asset:
    return Asset(path.as_posix(), path.as_posix(), "json", sha256)


PAPER_ASSETS: tuple[Asset, ...] = (
    *(Asset(path.as_posix(), path.as_posix(), network) for path, network in
      ((assets.checkpoint_file(*key), network) for key, network in assets.PRETRAINED.items())),
    _json(assets.ID2TAG, "e3f9c0f73af2fc19762b52764138fa76822ca437e2856313193a6a1ee9680771"),
    _json(assets.NSYNTH_SELECTION, "97acc26e18aed1f82476d36738847137386344135a4c590e3d32636afc8ed163"),
    _json(assets.TARGET_TASK_IDS, "13bca9a0920d480001e6c86f40026d100146e3eafedfa020593a7e75b76786a7"),
    _json(assets.VALIDATION_IDS, "dd96a29b7f8378d65da8c92878de744003f2c2a4050770869404d2cc68a83af2"),
    Asset("scaler_top_1000.pkl", assets.SCALER_PICKLE.as_posix(), "scaler",
          "a19797fdf2fcff78d2198707d485160470367d4aae41f227a51705454eb6cc29", assets.SCALER.as_posix()),
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
            with open(part, "ab" if resumed else "wb") as f, progress_bar(
                    None, show_progress, total=total, initial=have, unit="B", unit_scale=True, desc=dest.name,
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
    if asset.kind in NETWORKS:
        try:
            load_checkpoint(path, NETWORKS[asset.kind])
        except CheckpointError as exc:
            raise AssetError(f"{asset.local}: {exc}; not installed") from None
    elif asset.kind == "scaler":
        try:
            load_scaler(path)  # the path ends in .pkl (see fetch), so it is read as the paper's pickle
        except ScalerError as exc:
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


@dataclass
class FetchReport:
    """What ``fetch_all`` did: assets downloaded, assets already in place, and one line per failure."""

    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def fetch_all(wanted: tuple[Asset, ...] = PAPER_ASSETS, base_url: str = PAPER_BASE_URL, root: Path | None = None,
              show_progress: bool = True) -> FetchReport:
    """Fetch every asset into ``root`` (default: the asset root), going on past failures."""
    root = assets.asset_root() if root is None else root
    report = FetchReport()
    for asset in progress_bar(wanted, show_progress, desc="assets", unit="file"):
        try:
            (report.fetched if fetch(asset, base_url, root, show_progress) else report.present).append(asset.local)
        except AssetError as exc:
            report.errors.append(str(exc))
    return report
