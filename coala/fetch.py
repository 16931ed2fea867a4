"""Downloading the paper's published assets (checkpoints, JSON files, scaler) into the project's places.

What to fetch is data (``PAPER_ASSETS``, a tuple of ``Asset``), so a test or a mirror can supply its own
list. Every file is pinned: by the git blob id the paper's repository records for it (what
``git ls-tree`` prints at ``PAPER_COMMIT``, public and checkable by anyone) and, where known, its sha256,
so a server or mirror cannot install other weights of the right shapes.

Each file is streamed into ``<file>.part``; an interrupted download is resumed from there with an
HTTP ``Range`` request, and the file is put in place (``coala.atomic``) only after its checks pass: its
pins, then a strict load into its model class for checkpoints. The scaler pickle is then converted to
the project's JSON format, and each of the paper's model folders gets the record every tool reads
(``config.json`` and ``model.safetensors``, docs/model-folder.md), made from the files that passed
their pins: a folder trained by this project and one fetched from the paper are read alike. A file may
not exceed ``MAX_FILE_BYTES`` and the whole run ends by its deadline (``DEADLINE_S``), so a server that
streams without end or trickles bytes cannot fill the disk or hang the command. Only the standard
library's urllib is used.
"""
from __future__ import annotations

import http.client
import io
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from coala import assets
from coala.atomic import atomic_path
from coala.audio.scaler import load_scaler, save_scaler
from coala.cli import progress_bar
from coala.core.errors import AssetError, CheckpointError, CoalaError, ScalerError
from coala.core.model import ModelDims
from coala.data.tags import load_id2tag
from coala.files import git_blob_of, sha256_of
from coala.models.checkpoints import load_checkpoint, read_state_dict
from coala.models.record import (PAPER_ROWS, ModelRecord, State, check_vocabulary_fits, read_record, read_weights,
                                 write_model_folder)
from coala.models.registry import NETWORKS, vocabulary_size

PAPER_COMMIT = "b791ad6bb5c4f7b8f8f8fa8e0c5bd5b89b0ecbc3"
PAPER_BASE_URL = f"https://raw.githubusercontent.com/xavierfav/coala/{PAPER_COMMIT}"
CHUNK_BYTES = 1 << 16
# Seconds one network operation may wait; a stalled connection fails after this.
TIMEOUT_S = 60.0
# The largest file accepted (the paper's largest, the CNN checkpoint, is about 14 MB).
MAX_FILE_BYTES = 64 << 20
# Seconds a whole fetch may take (about 60 MB in all: 30 minutes is 35 kB/s).
DEADLINE_S = 1800.0


@dataclass(frozen=True)
class Asset:
    """One file of the paper's repository and where the project keeps it.

    ``kind`` says how it is checked after download besides its pins: ``json`` (nothing more),
    ``scaler`` (converted to ``converted``), or a network name of ``coala.models.registry.NETWORKS``
    (loaded strictly into it). ``git_blob`` and ``sha256`` pin the content; an asset with neither is
    installed on its other checks alone (only lists a test or a mirror supplies).
    """

    remote: str
    local: str
    kind: str = "json"
    sha256: str | None = None
    converted: str | None = None
    git_blob: str | None = None


# The git blob ids of the paper's checkpoints in its repository at PAPER_COMMIT.
PAPER_CHECKPOINT_BLOBS = {
    ("dual_ae_c", "audio_encoder", 200): "3035f977feb330cdfdb0502733bce415509937ce",
    ("dual_ae_c", "tag_encoder", 200): "6ab320ab6674baf17f60246648222292db5866bd",
    ("dual_e_c", "audio_encoder", 200): "78373af4ed143276ed163c06ace774d22a903693",
    ("dual_e_c", "tag_encoder", 200): "36f26bf200f86f73e521194057d158c65d4a1885",
    ("cnn", "audio_encoder", 20): "ba73ad84bcd080ab85cc4190ab373caaef6306f5",
}


def _json(path: Path, git_blob: str, sha256: str) -> Asset:
    return Asset(path.as_posix(), path.as_posix(), "json", sha256, git_blob=git_blob)


PAPER_ASSETS: tuple[Asset, ...] = (
    *(Asset(assets.checkpoint_file(*key).as_posix(), assets.checkpoint_file(*key).as_posix(), network,
            git_blob=PAPER_CHECKPOINT_BLOBS[key]) for key, network in assets.PRETRAINED.items()),
    _json(assets.ID2TAG, "0a230d7564d5f10632d5cbd6d032899d26662506",
          "e3f9c0f73af2fc19762b52764138fa76822ca437e2856313193a6a1ee9680771"),
    _json(assets.NSYNTH_SELECTION, "52857ecac01f31453c5f5dfaa57d0cfc62e258c2",
          "97acc26e18aed1f82476d36738847137386344135a4c590e3d32636afc8ed163"),
    _json(assets.TARGET_TASK_IDS, "77a5b52c2af64b51f20cb8ecab86d096d9d6e637",
          "13bca9a0920d480001e6c86f40026d100146e3eafedfa020593a7e75b76786a7"),
    _json(assets.VALIDATION_IDS, "f8a6cf4f74ca0665408395ff23423ae840fca6a1",
          "dd96a29b7f8378d65da8c92878de744003f2c2a4050770869404d2cc68a83af2"),
    Asset("scaler_top_1000.pkl", assets.SCALER_PICKLE.as_posix(), "scaler",
          "a19797fdf2fcff78d2198707d485160470367d4aae41f227a51705454eb6cc29", assets.SCALER.as_posix(),
          git_blob="9e824ea64e1b0753aa9455fdcb37a07f47223a22"),
)




def part_path(path: Path) -> Path:
    return path.with_name(path.name + ".part")


@dataclass(frozen=True)
class Deadline:
    """When a whole fetch must be over: every download checks it between reads and refuses to start
    after it, so a server that trickles bytes slower than any read timeout still cannot hang the run."""

    seconds: float
    at: float

    @classmethod
    def after(cls, seconds: float) -> "Deadline":
        return cls(seconds, time.monotonic() + seconds)

    def left(self, url: str, received: int, part: Path) -> float:
        """Seconds left; ``AssetError`` once there are none (the ``.part`` is kept to resume from)."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise AssetError(f"{url}: not complete within the fetch's deadline of {self.seconds:g} s "
                             f"({received} bytes received); rerun to resume from {part}")
        return left


class _TooLarge(Exception):
    """A response that outgrew the size limit for one file."""


class HostUnreachable(AssetError):
    """The server could not be reached at all (no network, a name that does not resolve, a refused
    connection): every other file from it would fail alike, so ``fetch_all`` says it once."""

    def __init__(self, url: str, reason: object) -> None:
        self.host = urllib.parse.urlsplit(url).netloc
        super().__init__(f"{self.host}: cannot be reached ({reason})")


def offline_hint(root: Path) -> str:
    """What to do without a connection to the paper's server (fetch_assets.py's options and the asset root)."""
    return (f"use a mirror (--base-url URL), another asset root that holds the files (${assets.HOME_VARIABLE}), "
            f"or copy files downloaded elsewhere into {root}: each is checked against its pins and kept")


def _content_length(url: str, value: str | None) -> int | None:
    """The announced length, None when there is none; a value that is no byte count is the server's
    error, refused (``str.isdigit`` took ``"²"`` for a number, which ``int`` then refused with a traceback)."""
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{1,20}", value.strip()):
        raise AssetError(f"{url}: Content-Length {value!r} is not a number of bytes; not downloaded")
    return int(value)


class _DiskError(Exception):
    """Writing the ``.part`` file failed (a full disk, a file-size limit): this machine's problem, which
    every other file would meet too; carries the ``OSError`` naming the file."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


def _write_part(f: "io.BufferedWriter", block: bytes, part: Path) -> None:
    try:
        f.write(block)
        f.flush()  # a full disk shows here, at its block, not at close
    except OSError as exc:
        raise _DiskError(OSError(exc.errno, f"cannot write the download ({exc.strerror or exc}); the bytes "
                                            "written so far are kept to resume from", str(part))) from None


def download(url: str, dest: Path, show_progress: bool = True, timeout: float = TIMEOUT_S,
             max_bytes: int = MAX_FILE_BYTES, deadline: Deadline | None = None) -> None:
    """Stream ``url`` into ``dest.part``, resuming from the bytes already there.

    A server that ignores ``Range`` (status 200) restarts the file from zero. A short read or the
    deadline raises ``AssetError`` and keeps the partial file for the next run; a file larger than
    ``max_bytes`` (announced, or streamed without a length) raises it and deletes the partial file.
    Each network wait is at most ``timeout`` and never past the deadline.
    """
    deadline = deadline or Deadline.after(DEADLINE_S)
    part = part_path(dest)
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have > max_bytes:  # left by a run with a larger limit
        part.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=min(timeout, deadline.left(url, have, part)))
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left after the bytes we have: the .part is complete
            return
        raise AssetError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, OSError):  # DNS, refused, unreachable, timed out: not this file's fault
            raise HostUnreachable(url, exc.reason) from None
        raise AssetError(f"{url}: {exc.reason}") from None
    except OSError as exc:
        raise AssetError(f"{url}: {exc}") from None
    with response:
        resumed = have > 0 and response.status == 206
        if not resumed:
            have = 0
        length = _content_length(url, response.headers.get("Content-Length"))
        total = have + length if length is not None else None
        if total is not None and total > max_bytes:
            part.unlink(missing_ok=True)
            raise AssetError(f"{url}: {total} bytes announced, over the limit of {max_bytes} bytes for one file; "
                             "not downloaded")
        received = have
        try:
            with open(part, "ab" if resumed else "wb") as f, progress_bar(
                    None, show_progress, total=total, initial=have, unit="B", unit_scale=True, desc=dest.name,
                    leave=False) as bar:
                # read1: one socket read per call, so a trickle returns here to meet the deadline check.
                while deadline.left(url, received, part) and (block := response.read1(CHUNK_BYTES)):
                    received += len(block)
                    if received > max_bytes:
                        raise _TooLarge
                    _write_part(f, block, part)
                    bar.update(len(block))
        except _TooLarge:
            part.unlink()
            raise AssetError(f"{url}: more than {max_bytes} bytes sent, over the limit for one file; "
                             "not installed") from None
        except _DiskError as exc:
            raise exc.error from None  # not the connection's: fetch_all stops on it, in one line
        except (http.client.IncompleteRead, OSError) as exc:
            raise AssetError(f"{url}: connection lost after {received} bytes ({type(exc).__name__}); "
                             f"rerun to resume from {part}") from None
    if total is not None and received < total:
        raise AssetError(f"{url}: connection closed after {received} of {total} bytes; rerun to resume from {part}")


def check(asset: Asset, path: Path) -> None:
    """The asset's checks on the downloaded bytes at ``path``; ``AssetError`` when one fails.

    The pins come first: a file that is not the published one is refused before anything reads it.
    """
    pins = (("git blob id", asset.git_blob, git_blob_of), ("sha256", asset.sha256, sha256_of))
    for label, expected, digest_of in pins:
        if expected is not None:
            found = digest_of(path)
            if found != expected:
                raise AssetError(f"{asset.local}: {label} {found} does not match the expected {expected}; "
                                 "not installed")
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


def in_place(asset: Asset, root: Path) -> bool:
    """Whether ``root/asset.local`` is there and passes the asset's checks (copied in by hand or fetched)."""
    dest = root / asset.local
    if not dest.is_file():
        return False
    try:
        check(asset, dest)
    except AssetError:
        return False
    return True


def fetch(asset: Asset, base_url: str, root: Path, show_progress: bool = True, max_bytes: int = MAX_FILE_BYTES,
          deadline: Deadline | None = None, offline: bool = False) -> bool | None:
    """Make ``root/asset.local`` present and checked; True when it was downloaded, False when already there,
    None when it is not and ``offline`` (the host was found unreachable): no download is tried.

    A file already in place that fails its checks (corrupted, replaced) is fetched again; it stays as it
    was unless the new download passes them.
    """
    dest = root / asset.local
    fresh = not in_place(asset, root)
    if fresh and offline:
        return None
    if fresh:
        download(f"{base_url.rstrip('/')}/{asset.remote}", dest, show_progress, max_bytes=max_bytes, deadline=deadline)
        part = part_path(dest)
        staged = part.with_name(part.name + dest.suffix)  # keeps the suffix the loaders look at
        os.replace(part, staged)
        try:
            check(asset, staged)
        except AssetError:
            staged.unlink()
            raise
        with atomic_path(dest) as installed:
            os.replace(staged, installed)
    if asset.converted is not None and (fresh or not (root / asset.converted).is_file()):
        save_scaler(load_scaler(dest), root / asset.converted)
    return fresh


@dataclass
class FetchReport:
    """What ``fetch_all`` did: assets downloaded, assets already in place, model folders whose record it
    wrote, and one line per failure."""

    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def paper_models() -> dict[str, tuple[int, dict[str, str]]]:
    """The paper's model folders, from ``assets.PRETRAINED``: experiment -> (epoch, {part: network})."""
    folders: dict[str, tuple[int, dict[str, str]]] = {}
    for (experiment, part, epoch), network in assets.PRETRAINED.items():
        folders.setdefault(experiment, (epoch, {}))[1][part] = network
    return folders


def _pins(asset: Asset) -> dict[str, str]:
    return {name: value for name, value in (("git_blob", asset.git_blob), ("sha256", asset.sha256)) if value}


def paper_record(root: Path, experiment: str, epoch: int, checkpoints: dict[str, Asset], vocabulary: Asset,
                 scaler: Asset) -> tuple[ModelRecord, dict[str, State]]:
    """The record and weights of one of the paper's folders, from its installed and checked files.

    The vocabulary width comes from the checkpoints, the other sizes are the paper's (the strict load of
    ``check`` held them to the paper's classes). The record names the pins each file passed; it gives the
    paper's table row only when the checkpoints' pins are the published blob ids, the rule by which
    ``coala.models.loading`` tells a bare checkpoint, so a mirror's or a test's other weights are never
    reported as the paper's model.
    """
    states = {part: read_state_dict(root / asset.local) for part, asset in checkpoints.items()}
    n_tags = next(n for n in map(vocabulary_size, states.values()) if n is not None)
    id2tag = load_id2tag(root / vocabulary.local)
    check_vocabulary_fits(id2tag, n_tags, root / vocabulary.local)
    published = all(asset.git_blob == PAPER_CHECKPOINT_BLOBS.get((experiment, part, epoch))
                     for part, asset in checkpoints.items())
    kind = "cnn" if any(a.kind == "cnn" for a in checkpoints.values()) else "dual_ae"
    record = ModelRecord(
        kind=kind, dims=ModelDims(n_tags=n_tags), parts=list(states), epoch=epoch,
        scaler=load_scaler(root / scaler.local), vocabulary=[id2tag[i] for i in range(n_tags)],
        origin="paper" if published else "fetched",
        paper_row=PAPER_ROWS[experiment] if published else None,
        extra={"fetched": {a.local: _pins(a) for a in (*checkpoints.values(), vocabulary, scaler)}})
    return record, states


def _holds(folder: Path, pins: dict[str, dict[str, str]]) -> bool:
    """Whether ``folder`` holds a readable record made from files of these ``pins``, with intact weights
    (a record or weights file damaged in any way is written again, so every error means no)."""
    try:
        record = read_record(folder)
        if record is None or record.extra.get("fetched") != pins:
            return False
        read_weights(folder, record)
    except CoalaError:
        return False
    return True


def record_paper_models(wanted: tuple[Asset, ...], root: Path, report: FetchReport) -> None:
    """The record of each paper folder whose checkpoints, vocabulary and scaler are all among ``wanted``,
    pinned, and in place and checked in this run; written when missing, damaged, or made from files of
    other pins (the pins are content hashes: equal pins, equal inputs), else left as it is."""
    checked = {a.local: a for a in wanted if a.local in {*report.fetched, *report.present} and _pins(a)}
    vocabulary = checked.get(assets.ID2TAG.as_posix())
    scaler = next((a for a in checked.values() if a.kind == "scaler" and a.converted == assets.SCALER.as_posix()), None)
    for experiment, (epoch, networks) in paper_models().items():
        checkpoints = {part: checked.get(assets.checkpoint_file(experiment, part, epoch).as_posix())
                       for part in networks}
        if vocabulary is None or scaler is None or any(a is None or a.kind != networks[part]
                                                       for part, a in checkpoints.items()):
            continue
        folder = root / assets.CHECKPOINT_DIR / experiment
        if _holds(folder, {a.local: _pins(a) for a in (*checkpoints.values(), vocabulary, scaler)}):
            continue
        try:
            write_model_folder(folder, *paper_record(root, experiment, epoch, checkpoints, vocabulary, scaler))
        except CoalaError as exc:
            report.errors.append(f"{exc}; no model record written in {folder}")
        else:
            report.records.append((assets.CHECKPOINT_DIR / experiment).as_posix())


def fetch_all(wanted: tuple[Asset, ...] = PAPER_ASSETS, base_url: str = PAPER_BASE_URL, root: Path | None = None,
              show_progress: bool = True, max_bytes: int = MAX_FILE_BYTES,
              deadline_s: float = DEADLINE_S) -> FetchReport:
    """Fetch every asset into ``root`` (default: the asset root), going on past failures, all within
    ``deadline_s`` seconds and none larger than ``max_bytes``; then the paper's model folders' records."""
    root = assets.asset_root() if root is None else root
    deadline = Deadline.after(deadline_s)
    report = FetchReport()
    unreachable: HostUnreachable | None = None
    not_fetched = []
    for asset in progress_bar(wanted, show_progress, desc="assets", unit="file"):
        try:
            fetched = fetch(asset, base_url, root, show_progress, max_bytes, deadline, offline=unreachable is not None)
            if fetched is None:
                not_fetched.append(asset.local)
            else:
                (report.fetched if fetched else report.present).append(asset.local)
        except HostUnreachable as exc:
            unreachable = exc
            not_fetched.append(asset.local)
        except AssetError as exc:
            report.errors.append(str(exc))
    if unreachable is not None:
        report.errors.append(f"{unreachable}: {len(not_fetched)} file(s) not fetched ({', '.join(not_fetched)}); "
                             + offline_hint(root))
    record_paper_models(wanted, root, report)
    return report
