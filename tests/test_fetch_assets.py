"""fetch_assets against a local HTTP server with Range support: install, checks, resume, bad checksum."""
from __future__ import annotations

import hashlib
import io
import pickle
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.preprocessing import MinMaxScaler as SkMinMaxScaler

import fetch_assets
from coala.audio.scaler import load_scaler
from coala.fetch import PAPER_ASSETS, Asset, fetch_all, part_path
from models_t1000 import CNN, AudioEncoder, TagEncoder

N_TAGS = 12


class _RangeHandler(BaseHTTPRequestHandler):
    """Serves ``server.files`` from memory, honours ``Range: bytes=N-``, and can cut a response short."""

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        range_header = self.headers.get("Range")
        self.server.requests.append((name, range_header))
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
    httpd.files, httpd.requests, httpd.cut_once = {}, [], set()
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
    """The real manifest (real sha256 sums) against the paper's files served locally."""
    torch.manual_seed(0)
    files = {a.remote: (reference / "original" / Path(a.remote).name).read_bytes()
             for a in PAPER_ASSETS if a.sha256 is not None}
    models = {"audio_encoder": AudioEncoder(), "tag_encoder": TagEncoder(), "cnn": CNN()}
    files.update({a.remote: _checkpoint_bytes(models[a.kind]) for a in PAPER_ASSETS if a.sha256 is None})
    _serve(server, files)
    assert fetch_assets.main(["--base-url", server.url, "--root", str(tmp_path), "--quiet"]) == 0
    assert all((tmp_path / a.local).read_bytes() == files[a.remote] for a in PAPER_ASSETS)
    paper = load_scaler(reference / "original" / "scaler_top_1000.pkl")
    np.testing.assert_array_equal(load_scaler(tmp_path / "json" / "scaler_top_1000.json").scale, paper.scale)
    assert f"10 of 10 assets in place in {tmp_path}" in capsys.readouterr().err
