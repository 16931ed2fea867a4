"""fetch_assets against a local HTTP server with Range support: install, pins, resume, and servers that
misbehave (trickling bytes, streaming without end, sending other content)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import pickle
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.preprocessing import MinMaxScaler as SkMinMaxScaler

import coala.fetch
import fetch_assets
from coala import assets
from coala.audio.scaler import load_scaler
from coala.fetch import PAPER_ASSETS, Asset, fetch_all, paper_models, part_path
from coala.files import git_blob_of
from coala.models.loading import TAGS, load_model
from coala.models.record import RECORD_FILE, WEIGHTS_FILE
from coala.models.registry import NETWORKS
from models_t1000 import CNN, AudioEncoder, TagEncoder

N_TAGS = 12


class _RangeHandler(BaseHTTPRequestHandler):
    """Serves ``server.files`` from memory, honours ``Range: bytes=N-``, and can cut a response short."""

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        range_header = self.headers.get("Range")
        self.server.requests.append((name, range_header))
        if name in self.server.misbehave:
            self.server.misbehave[name](self)
            return
        body = self.server.files.get(name)
        if body is None:
            self.send_error(404)
            return
        start = int(range_header.removeprefix("bytes=").split("-")[0]) if range_header else 0
        if start >= len(body) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.end_headers()
            return
        self.send_response(206 if range_header else 200)
        if range_header:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if name in self.server.cut_once:
            self.server.cut_once.discard(name)
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    httpd.files, httpd.requests, httpd.cut_once, httpd.misbehave = {}, [], set(), {}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/base"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _checkpoint_bytes(model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def _scaler_pickle() -> tuple[bytes, SkMinMaxScaler]:
    sk = SkMinMaxScaler().fit(np.random.default_rng(0).normal(size=(300, 96)))
    return pickle.dumps(sk), sk


def _serve(server, assets_bytes: dict[str, bytes]) -> None:
    server.files.update({f"base/{remote}": body for remote, body in assets_bytes.items()})


def _small_manifest(server) -> tuple[tuple[Asset, ...], dict[str, bytes]]:
    """Random-weight checkpoints of each model class, a JSON file and a scaler pickle, with their sums."""
    torch.manual_seed(0)
    scaler_bytes, _ = _scaler_pickle()
    files = {
        "saved_models/x/audio_encoder_epoch_2.pt": _checkpoint_bytes(AudioEncoder()),
        "saved_models/x/tag_encoder_epoch_2.pt": _checkpoint_bytes(TagEncoder(n_tags=N_TAGS)),
        "saved_models/cnn/audio_encoder_epoch_1.pt": _checkpoint_bytes(CNN(n_tags=N_TAGS)),
        "json/id2token.json": b'{"0": "kick", "1": "snare"}',
        "scaler.pkl": scaler_bytes,
    }
    _serve(server, files)
    sha = {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    manifest = (
        Asset("saved_models/x/audio_encoder_epoch_2.pt", "saved_models/x/audio_encoder_epoch_2.pt", "audio_encoder"),
        Asset("saved_models/x/tag_encoder_epoch_2.pt", "saved_models/x/tag_encoder_epoch_2.pt", "tag_encoder"),
        Asset("saved_models/cnn/audio_encoder_epoch_1.pt", "saved_models/cnn/audio_encoder_epoch_1.pt", "cnn"),
        Asset("json/id2token.json", "json/id2token.json", "json", sha["json/id2token.json"]),
        Asset("scaler.pkl", "json/scaler.pkl", "scaler", sha["scaler.pkl"], "json/scaler.json"),
    )
    return manifest, files


def git_blob_of_bytes(body: bytes) -> str:
    """What ``git hash-object`` prints for a file holding ``body``."""
    return hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()


def _installed(root: Path, manifest, files) -> bool:
    return all((root / a.local).read_bytes() == files[a.remote] for a in manifest)


def test_fetch_installs_checks_and_converts_then_skips(server, tmp_path: Path) -> None:
    manifest, files = _small_manifest(server)
    report = fetch_all(manifest, server.url, tmp_path, show_progress=False)
    assert report.errors == [] and report.present == []
    assert _installed(tmp_path, manifest, files)
    assert report.fetched == [a.local for a in manifest]
    assert not list(tmp_path.rglob("*.part*"))
    converted = load_scaler(tmp_path / "json" / "scaler.json")
    reference = load_scaler(tmp_path / "json" / "scaler.pkl")
    np.testing.assert_array_equal(converted.scale, reference.scale)
    np.testing.assert_array_equal(converted.min, reference.min)

    n_requests = len(server.requests)
    report = fetch_all(manifest, server.url, tmp_path, show_progress=False)
    assert len(server.requests) == n_requests, "intact files must not be fetched again"
    assert report.present == [a.local for a in manifest] and report.fetched == report.errors == []


def _fake_paper_repository(server, experiments: tuple[str, ...] = tuple(paper_models())
                           ) -> tuple[tuple[Asset, ...], dict[str, bytes]]:
    """The paper's manifest (the checkpoints of ``experiments`` only), its files made here (random
    weights, a vocabulary of ``N_TAGS`` tags, a scaler) and pinned by their own blob ids: what a mirror
    of another release would serve."""
    torch.manual_seed(0)
    models = {"audio_encoder": AudioEncoder, "tag_encoder": lambda: TagEncoder(n_tags=N_TAGS),
              "cnn": lambda: CNN(n_tags=N_TAGS)}
    kept = [a for a in PAPER_ASSETS if a.kind not in NETWORKS or Path(a.local).parent.name in experiments]
    files = {a.remote: _checkpoint_bytes(models[a.kind]()) for a in kept if a.kind in NETWORKS}
    files.update({a.remote: b"{}" for a in kept if a.kind == "json"})
    files[assets.ID2TAG.as_posix()] = _vocabulary_bytes("tag")
    scaler = next(a for a in kept if a.kind == "scaler")
    files[scaler.remote] = _scaler_pickle()[0]
    _serve(server, files)
    return tuple(_repinned(a, files[a.remote]) for a in kept), files


def _vocabulary_bytes(word: str, n_tags: int = N_TAGS) -> bytes:
    return json.dumps({str(i): f"{word}{i}" for i in range(n_tags)}).encode()


def _repinned(asset: Asset, body: bytes) -> Asset:
    return dataclasses.replace(asset, git_blob=git_blob_of_bytes(body), sha256=None)


def _with_vocabulary(server, manifest: tuple[Asset, ...], body: bytes) -> tuple[Asset, ...]:
    """``manifest`` with another vocabulary served and pinned."""
    _serve(server, {assets.ID2TAG.as_posix(): body})
    return tuple(_repinned(a, body) if a.local == assets.ID2TAG.as_posix() else a for a in manifest)


@pytest.mark.slow
def test_each_paper_folder_gets_its_record_once(server, tmp_path: Path, monkeypatch) -> None:
    """After a fetch, each paper folder holds a record ``load_model`` reads: kind, epoch, the fetched scaler
    and vocabulary, the .pt files' weights. It names the paper's row only for checkpoints whose pins
    are the published blob ids (here: made so for AE_c and the CNN, not for E_c); a rerun rewrites nothing."""
    manifest, files = _fake_paper_repository(server)
    published = {"dual_ae_c": "AE_c", "cnn": "CNN"}
    monkeypatch.setattr(coala.fetch, "PAPER_CHECKPOINT_BLOBS", {
        (x, part, epoch): git_blob_of_bytes(files[assets.checkpoint_file(x, part, epoch).as_posix()])
        for x, (epoch, networks) in paper_models().items() if x in published for part in networks})
    report = fetch_all(manifest, server.url, tmp_path, show_progress=False)
    assert report.errors == [] and report.records == [f"saved_models/{x}" for x in paper_models()]
    scaler = load_scaler(tmp_path / assets.SCALER_PICKLE)
    for experiment, (epoch, networks) in paper_models().items():
        loaded = load_model(tmp_path / assets.CHECKPOINT_DIR / experiment, parts=tuple(networks))
        row = published.get(experiment)
        assert (loaded.kind, loaded.paper_row, loaded.epoch) == (
            "cnn" if "cnn" in networks.values() else "dual_ae", row, epoch)
        assert loaded.record.origin == ("paper" if row else "fetched") and loaded.record.training is None
        assert loaded.scaler.same_as(scaler) and loaded.record.vocabulary == [f"tag{i}" for i in range(N_TAGS)]
        if TAGS in networks:
            assert loaded.vocabulary == dict(enumerate(loaded.record.vocabulary))
        for part in networks:
            remote = assets.checkpoint_file(experiment, part, epoch).as_posix()
            fetched = torch.load(io.BytesIO(files[remote]), weights_only=True)
            own = loaded.networks[part].state_dict()
            assert own.keys() == fetched.keys() and all(torch.equal(own[k], fetched[k]) for k in own)
            assert loaded.record.extra["fetched"][remote] == {"git_blob": git_blob_of_bytes(files[remote])}

    written = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.name in (RECORD_FILE, WEIGHTS_FILE)}
    assert len(written) == 2 * len(paper_models())
    report = fetch_all(manifest, server.url, tmp_path, show_progress=False)
    assert report.records == [] and report.errors == []
    assert {p: p.stat().st_mtime_ns for p in written} == written, "a rerun over the same files rewrites nothing"


@pytest.mark.slow
def test_a_record_is_rewritten_when_its_inputs_change_or_it_is_damaged(server, tmp_path: Path) -> None:
    manifest, _ = _fake_paper_repository(server, ("cnn",))
    assert fetch_all(manifest, server.url, tmp_path, show_progress=False).records == ["saved_models/cnn"]
    folder = tmp_path / "saved_models" / "cnn"
    renamed = _with_vocabulary(server, manifest, _vocabulary_bytes("word"))
    report = fetch_all(renamed, server.url, tmp_path, show_progress=False)
    assert report.errors == [] and report.fetched == [assets.ID2TAG.as_posix()]
    assert report.records == ["saved_models/cnn"]
    assert load_model(folder).record.vocabulary == [f"word{i}" for i in range(N_TAGS)]
    (folder / WEIGHTS_FILE).write_bytes(b"damaged")
    assert fetch_all(renamed, server.url, tmp_path, show_progress=False).records == ["saved_models/cnn"]
    assert load_model(folder).record.vocabulary == [f"word{i}" for i in range(N_TAGS)]


def test_the_record_and_weights_alone_are_the_model(server, tmp_path: Path) -> None:
    """A folder of config.json and model.safetensors only, as a model hub serves it, loads alike."""
    manifest, _ = _fake_paper_repository(server, ("cnn",))
    fetch_all(manifest, server.url, tmp_path, show_progress=False)
    hub = tmp_path / "hub"
    hub.mkdir()
    for name in (RECORD_FILE, WEIGHTS_FILE):
        shutil.copy(tmp_path / "saved_models" / "cnn" / name, hub / name)
    here, shared = load_model(tmp_path / "saved_models" / "cnn"), load_model(hub)
    assert shared.fingerprint() == here.fingerprint() and shared.scaler.same_as(here.scaler)
    assert (shared.kind, shared.epoch, shared.name) == ("cnn", 20, "hub_20")


def test_no_record_without_every_input_checked(server, tmp_path: Path) -> None:
    """No record from a list whose vocabulary failed its pin, or from files without pins; a vocabulary
    that does not fit the checkpoints is one error line naming it."""
    manifest, _ = _fake_paper_repository(server, ("cnn",))
    vocabulary = assets.ID2TAG.as_posix()
    refused = tuple(dataclasses.replace(a, git_blob="0" * 40) if a.local == vocabulary else a for a in manifest)
    report = fetch_all(refused, server.url, tmp_path / "refused", show_progress=False)
    assert len(report.errors) == 1 and report.records == []
    unpinned = tuple(dataclasses.replace(a, git_blob=None) for a in manifest)
    assert fetch_all(unpinned, server.url, tmp_path / "unpinned", show_progress=False).records == []
    misfit = _with_vocabulary(server, manifest, _vocabulary_bytes("tag", 1))
    report = fetch_all(misfit, server.url, tmp_path / "misfit", show_progress=False)
    assert report.records == [] and report.errors == [
        f"{tmp_path / 'misfit' / vocabulary}: a vocabulary of 1 tags does not fit the model, whose tag encoder "
        f"takes {N_TAGS}; no model record written in {tmp_path / 'misfit' / 'saved_models' / 'cnn'}"]
    assert not list(tmp_path.rglob(RECORD_FILE))


def test_interrupted_download_resumes_from_part(server, tmp_path: Path) -> None:
    manifest, files = _small_manifest(server)
    ckpt = manifest[0]
    server.cut_once.add(f"base/{ckpt.remote}")
    errors = fetch_all(manifest, server.url, tmp_path, show_progress=False).errors
    assert len(errors) == 1 and "rerun to resume" in errors[0] and ckpt.remote in errors[0]
    dest = tmp_path / ckpt.local
    assert not dest.exists()
    kept = part_path(dest).stat().st_size
    assert 0 < kept < len(files[ckpt.remote])
    assert all((tmp_path / a.local).is_file() for a in manifest[1:]), "the other assets go on"

    assert fetch_all(manifest, server.url, tmp_path, show_progress=False).errors == []
    assert server.requests[-1] == (f"base/{ckpt.remote}", f"bytes={kept}-")
    assert dest.read_bytes() == files[ckpt.remote]
    assert not part_path(dest).exists()


def test_wrong_checksum_is_reported_and_not_installed(server, tmp_path: Path) -> None:
    manifest, _ = _small_manifest(server)
    bad = Asset("json/id2token.json", "json/id2token.json", "json", "0" * 64)
    errors = fetch_all((bad,), server.url, tmp_path, show_progress=False).errors
    assert len(errors) == 1
    assert errors[0].startswith("json/id2token.json: sha256 ") and "not installed" in errors[0]
    assert not (tmp_path / "json" / "id2token.json").exists()
    assert not list((tmp_path / "json").glob("*.part*")), "a bad download is not kept for resuming"


def test_checkpoint_of_the_wrong_model_is_rejected(server, tmp_path: Path) -> None:
    _small_manifest(server)
    wrong = Asset("saved_models/x/tag_encoder_epoch_2.pt", "saved_models/x/audio_encoder_epoch_2.pt", "audio_encoder")
    errors = fetch_all((wrong,), server.url, tmp_path, show_progress=False).errors
    assert len(errors) == 1 and "does not fit AudioEncoder" in errors[0]
    assert not (tmp_path / wrong.local).exists()


def test_missing_file_is_one_line_and_the_cli_exits_1(server, tmp_path: Path, capsys) -> None:
    assert fetch_assets.main(["--base-url", server.url, "--root", str(tmp_path), "--quiet"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(PAPER_ASSETS)
    assert all("HTTP 404" in line for line in errors)


def test_cli_with_the_papers_manifest(server, tmp_path: Path, reference: Path, capsys) -> None:
    """The real manifest against the paper's files served locally: its JSON files and scaler pass their
    pins; checkpoints of the right shapes but other weights are refused by theirs and not installed."""
    torch.manual_seed(0)
    checkpoints = [a for a in PAPER_ASSETS if a.kind in NETWORKS]
    files = {a.remote: (reference / "original" / Path(a.remote).name).read_bytes()
             for a in PAPER_ASSETS if a not in checkpoints}
    models = {"audio_encoder": AudioEncoder(), "tag_encoder": TagEncoder(), "cnn": CNN()}
    files.update({a.remote: _checkpoint_bytes(models[a.kind]) for a in checkpoints})
    _serve(server, files)
    assert fetch_assets.main(["--base-url", server.url, "--root", str(tmp_path), "--quiet"]) == 1
    assert all((tmp_path / a.local).read_bytes() == files[a.remote] for a in PAPER_ASSETS if a not in checkpoints)
    paper = load_scaler(reference / "original" / "scaler_top_1000.pkl")
    np.testing.assert_array_equal(load_scaler(tmp_path / "json" / "scaler_top_1000.json").scale, paper.scale)
    err = capsys.readouterr().err
    for asset in checkpoints:
        assert (f"error: {asset.local}: git blob id {git_blob_of_bytes(files[asset.remote])} "
                f"does not match the expected {asset.git_blob}; not installed") in err
        assert not (tmp_path / asset.local).exists()
    assert f"5 of 10 assets in place in {tmp_path}" in err


def test_every_paper_asset_is_pinned_by_its_git_blob_id(reference: Path) -> None:
    """The ids are those of the paper's repository at b791ad6; the reference copies of its JSON files and
    scaler have them (its checkpoints are not in the reference folder)."""
    assert all(a.git_blob is not None and len(a.git_blob) == 40 for a in PAPER_ASSETS)
    for asset in PAPER_ASSETS:
        copy = reference / "original" / Path(asset.remote).name
        if asset.kind not in NETWORKS:
            assert git_blob_of(copy) == asset.git_blob, asset.remote


def test_git_blob_of_is_gits_object_id(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    path.write_bytes(bytes(range(256)) * 300)
    expected = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout
    assert git_blob_of(path) == expected.strip()


def _pinned(remote: str, body: bytes, kind: str = "json") -> Asset:
    return Asset(remote, remote, kind, git_blob=git_blob_of_bytes(body))


def test_other_content_of_the_right_shapes_is_refused_by_the_pin(server, tmp_path: Path) -> None:
    _, files = _small_manifest(server)
    published = files["saved_models/x/audio_encoder_epoch_2.pt"]
    pinned = _pinned("saved_models/x/audio_encoder_epoch_2.pt", published + b"other", "audio_encoder")
    errors = fetch_all((pinned,), server.url, tmp_path, show_progress=False).errors
    assert errors == [f"{pinned.local}: git blob id {git_blob_of_bytes(published)} does not match the expected "
                      f"{pinned.git_blob}; not installed"]
    assert not (tmp_path / pinned.local).exists() and not list(tmp_path.rglob("*.part*"))


def _trickle(handler: BaseHTTPRequestHandler) -> None:
    """Announces 10 kB and sends one byte every 20 ms: each read succeeds long before any timeout."""
    handler.send_response(200)
    handler.send_header("Content-Length", "10000")
    handler.end_headers()
    try:
        for _ in range(10000):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.02)
    except OSError:  # the client gave up
        pass


def _endless(handler: BaseHTTPRequestHandler) -> None:
    """Streams without a Content-Length (closing the connection would end it), forever."""
    handler.send_response(200)
    handler.end_headers()
    try:
        while True:
            handler.wfile.write(b"\0" * 4096)
    except OSError:
        pass


def _announces_too_much(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(10 ** 12))
    handler.end_headers()


def _first_installed_then(server, tmp_path: Path, misbehaviour, **limits) -> tuple[list[str], float, Asset]:
    """A good file, then one from a misbehaving server: the errors, the seconds it took, the good asset."""
    good_body = b'{"0": "kick"}'
    good = _pinned("json/good.json", good_body)
    _serve(server, {good.remote: good_body})
    server.misbehave["base/saved_models/bad.pt"] = misbehaviour
    bad = Asset("saved_models/bad.pt", "saved_models/bad.pt", "audio_encoder", git_blob="0" * 40)
    start = time.monotonic()
    errors = fetch_all((good, bad), server.url, tmp_path, show_progress=False, **limits).errors
    elapsed = time.monotonic() - start
    assert (tmp_path / good.local).read_bytes() == good_body, "the file fetched before stays installed"
    assert not (tmp_path / bad.local).exists()
    return errors, elapsed, bad


def test_a_trickling_server_is_cut_at_the_deadline(server, tmp_path: Path) -> None:
    errors, elapsed, bad = _first_installed_then(server, tmp_path, _trickle, deadline_s=0.5)
    assert elapsed < 3
    assert len(errors) == 1 and errors[0].startswith(f"{server.url}/{bad.remote}: not complete within the fetch's "
                                                     "deadline of 0.5 s (")
    assert part_path(tmp_path / bad.local).stat().st_size < 10000  # kept to resume from, never installed


def test_an_endless_stream_without_length_is_cut_at_the_size_limit(server, tmp_path: Path) -> None:
    errors, elapsed, bad = _first_installed_then(server, tmp_path, _endless, max_bytes=64 * 1024)
    assert elapsed < 3
    assert errors == [f"{server.url}/{bad.remote}: more than 65536 bytes sent, over the limit for one file; "
                      "not installed"]
    assert not list(tmp_path.rglob("*.part*")), "nothing half-written is left"


def test_a_file_announced_over_the_size_limit_is_not_downloaded(server, tmp_path: Path) -> None:
    errors, _, bad = _first_installed_then(server, tmp_path, _announces_too_much)
    assert errors == [f"{server.url}/{bad.remote}: 1000000000000 bytes announced, over the limit of "
                      f"{64 << 20} bytes for one file; not downloaded"]
    assert not list(tmp_path.rglob("*.part*"))


def test_a_refused_download_leaves_the_installed_file_as_it_was(server, tmp_path: Path) -> None:
    """A file in place that fails its pin is fetched again, and kept when the new one fails too."""
    asset = _pinned("json/vocabulary.json", b'{"0": "kick"}')
    installed = tmp_path / asset.local
    installed.parent.mkdir(parents=True)
    installed.write_bytes(b'{"0": "edited"}')
    _serve(server, {asset.remote: b'{"0": "other"}'})
    errors = fetch_all((asset,), server.url, tmp_path, show_progress=False).errors
    assert len(errors) == 1 and "git blob id" in errors[0]
    assert installed.read_bytes() == b'{"0": "edited"}' and not list(tmp_path.rglob("*.part*"))


def test_cli_deadline_option_stops_every_download(server, tmp_path: Path, capsys) -> None:
    assert fetch_assets.main(["--base-url", server.url, "--root", str(tmp_path), "--quiet", "--deadline", "0"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(PAPER_ASSETS) and all("deadline of 0 s" in line for line in errors)
    assert server.requests == []


@pytest.mark.parametrize("url", ["not a url", "http://[::1", "ftp://mirror.example/", "file:///etc/", "https://"])
def test_a_base_url_that_is_no_http_mirror_is_one_line_before_any_download(tmp_path, capsys, url):
    assert fetch_assets.main(["--base-url", url, "--root", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --base-url {url!r}: ") and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("deadline", ["nan", "inf", "-1"])
def test_a_deadline_that_is_no_duration_is_one_line(tmp_path, capsys, deadline):
    import fetch_assets
    assert fetch_assets.main(["--root", str(tmp_path), "--deadline", deadline]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(("error: --deadline must be a finite number",
                                                "error: argument --deadline: '{}' is not a finite number".format(deadline))), err
    assert not any(tmp_path.iterdir())
