"""The third round of bad input (issue 25), class by class: each test is one case of a class, fixed in
the mechanism every reader or writer of that kind goes through (docs/errors.md lists the classes)."""
from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import soundfile as sf
import pytest

from coala.core.errors import DatasetError
from coala.data import checks, hdf5
from test_fetch_assets import server  # noqa: F401 - the local HTTP server fixture
from tiny_release import write_release_file


# --- 1. data that is not where it seems ----------------------------------------------------------------

def _split_file(tmp_path: Path, link: str) -> Path:
    """A training file whose ``link`` member (``dataset`` or ``dataset/<name>``) lives in another file,
    reached by an external link."""
    source = write_release_file(tmp_path / "elsewhere.h5", 8, n_tags=5)
    path = tmp_path / "train.h5"
    with h5py.File(source, "r") as src, h5py.File(path, "w") as f:
        if link == "dataset":
            f["dataset"] = h5py.ExternalLink(str(source), "/dataset")
        else:
            group = f.create_group("dataset")
            for name in ("id", "data", "label"):
                if f"dataset/{name}" == link:
                    group[name] = h5py.ExternalLink(str(source), f"/dataset/{name}")
                else:
                    group.create_dataset(name, data=src["dataset"][name][...])
    return path


@pytest.mark.parametrize("link", ["dataset", "dataset/data", "dataset/label"])
def test_an_external_link_is_refused_by_every_reader(tmp_path: Path, link: str) -> None:
    path = _split_file(tmp_path, link)
    for read in (hdf5.inspect_hdf5, checks.fingerprint, checks.check_values, hdf5.HDF5Dataset, hdf5.InMemoryDataset):
        with pytest.raises(DatasetError, match=f"{link} is an external link into .*elsewhere.h5"):
            read(path)


def test_a_soft_link_through_an_external_link_is_refused(tmp_path: Path) -> None:
    path = _split_file(tmp_path, "dataset/data")
    with h5py.File(path, "a") as f:
        f["dataset"]["outside"] = f["dataset"].get("data", getlink=True)
        del f["dataset"]["data"]
        f["dataset"]["data"] = h5py.SoftLink("/dataset/outside")
    with pytest.raises(DatasetError, match="lies in another file .*elsewhere.h5"):
        hdf5.inspect_hdf5(path)


def test_a_soft_link_inside_the_file_reads_as_before(tmp_path: Path) -> None:
    path = write_release_file(tmp_path / "train.h5", 8, n_tags=5)
    with h5py.File(path, "a") as f:
        f.move("dataset/label", "labels_elsewhere_in_this_file")
        f["dataset"]["label"] = h5py.SoftLink("/labels_elsewhere_in_this_file")
    assert hdf5.inspect_hdf5(path) == (8, 5)
    checks.check_values(path)


def test_a_virtual_dataset_is_refused_even_with_its_source_missing(tmp_path: Path) -> None:
    source = write_release_file(tmp_path / "source.h5", 8, n_tags=5)
    path = tmp_path / "train.h5"
    with h5py.File(source, "r") as src, h5py.File(path, "w") as f:
        group = f.create_group("dataset")
        group.create_dataset("id", data=src["dataset/id"][...])
        group.create_dataset("label", data=src["dataset/label"][...])
        layout = h5py.VirtualLayout(shape=(8, 96, 96), dtype=np.float32)
        layout[...] = h5py.VirtualSource(str(source), "dataset/data", shape=(8, 96, 96))
        group.create_virtual_dataset("data", layout, fillvalue=0)
    source.unlink()  # h5py now reads the fill value, zeros, without a word
    with pytest.raises(DatasetError, match="dataset/data is a virtual dataset"):
        checks.check_values(path)


def test_external_raw_storage_is_refused(tmp_path: Path) -> None:
    path = write_release_file(tmp_path / "train.h5", 8, n_tags=5)
    with h5py.File(path, "a") as f:
        ids = f["dataset/id"][...]
        del f["dataset/id"]
        f["dataset"].create_dataset("id", shape=ids.shape, dtype=ids.dtype, external=[(str(tmp_path / "ids.raw"), 0, ids.nbytes)])
        f["dataset/id"][...] = ids
    with pytest.raises(DatasetError, match=r"dataset/id keeps its values in external files \(.*ids.raw"):
        hdf5.inspect_hdf5(path)


# --- 2. sizes that a header declares --------------------------------------------------------------------

def test_a_billion_declared_patches_with_none_stored_are_refused_at_once(tmp_path: Path) -> None:
    path = write_release_file(tmp_path / "train.h5", 4, n_tags=5)
    n = 10**9
    with h5py.File(path, "a") as f:
        for name in ("id", "data", "label"):
            old = f["dataset"][name][...]
            del f["dataset"][name]
            shape = (n, *old.shape[1:])
            f["dataset"].create_dataset(name, shape=shape, dtype=old.dtype, chunks=(1, *old.shape[1:]))
            f["dataset"][name][:len(old)] = old
    assert path.stat().st_size < 10**6
    started = time.perf_counter()
    with pytest.raises(DatasetError, match=f"dataset/id declares {n} rows but stores 4 of its {n} chunks"):
        checks.check_values(path)
    assert time.perf_counter() - started < 5


def test_declared_contiguous_storage_never_written_is_refused(tmp_path: Path) -> None:
    path = write_release_file(tmp_path / "train.h5", 4, n_tags=5)
    with h5py.File(path, "a") as f:
        del f["dataset/data"]
        f["dataset"].create_dataset("data", shape=(4, 96, 96), dtype=np.float32)  # never written: reads as zeros
    with pytest.raises(DatasetError, match="dataset/data declares 4 rows but stores 0 of their 147456 bytes"):
        hdf5.HDF5Dataset(path)


def test_an_in_memory_load_larger_than_the_memory_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_release_file(tmp_path / "train.h5", 4, n_tags=5)
    monkeypatch.setattr(hdf5, "available_memory", lambda: 1000)
    with pytest.raises(DatasetError, match="in_memory needs 0.0 GiB, more than the 0.0 GiB of memory available; "
                                           "set in_memory to false"):
        hdf5.InMemoryDataset(path)
    monkeypatch.setattr(hdf5, "available_memory", lambda: None)  # not Linux: the load is tried
    assert len(hdf5.InMemoryDataset(path)) == 4


def _npy_declaring(path: Path, shape: tuple[int, ...], rows_written: int) -> Path:
    """A ``.npy`` whose header declares ``shape`` float32 but which holds only ``rows_written`` rows."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        f.write(np.ones((rows_written, *shape[1:]), np.float32).tobytes())
    return path


def test_a_npy_declaring_a_billion_rows_is_refused_before_allocating(tmp_path: Path) -> None:
    from coala.core.errors import EmbeddingsError
    from coala.encode.shards import EmbeddingFolder
    _npy_declaring(tmp_path / "clip.npy", (10**9, 1152), 2)
    folder = EmbeddingFolder(tmp_path)
    for read in (folder.__getitem__, folder.shape):
        with pytest.raises(EmbeddingsError, match=r"clip.npy: cannot read \(its header declares float32 "
                                                  r"\(1000000000, 1152\) \(4608000000128 bytes\) but the file holds 9344"):
            read("clip")


def test_a_cached_patch_declaring_more_than_it_holds_is_one_line(tmp_path: Path) -> None:
    from coala.data import builder
    _npy_declaring(tmp_path / "7.npy", (10**9, 96), 96)
    with pytest.raises(DatasetError, match="7.npy: unreadable cached patch .*header declares"):
        builder.load_patches([tmp_path / "7.npy"])


def test_a_declared_sample_rate_outside_the_usable_range_is_a_reason_not_an_allocation(tmp_path: Path) -> None:
    import soundfile as sf
    from coala.core.errors import AudioError, AudioInputError
    from coala.core.frontend import load_audio, resample, signal_chunks
    for rate in (1, 10**7):
        path = tmp_path / f"rate_{rate}.wav"
        sf.write(path, np.full(64, 0.1, np.float32), rate)
        with pytest.raises(AudioError, match=f"declared sample rate {rate} Hz, outside the 1000 to 1000000 Hz"):
            load_audio(path)
    for rate in (0, 1, float("nan")):
        with pytest.raises(AudioInputError, match="sample rate nan Hz|sample rate [01] Hz"):
            resample(np.zeros(100, np.float32), rate)
    with pytest.raises(AudioInputError):
        signal_chunks(np.zeros(100, np.float32), 1, None)


def test_a_file_of_many_channels_is_decoded_in_blocks_of_bounded_size(tmp_path: Path) -> None:
    import soundfile as sf
    from coala.core import frontend
    y = np.random.default_rng(0).uniform(-0.1, 0.1, (3000, 256)).astype(np.float32)
    sf.write(tmp_path / "many.wav", y, 22000, subtype="FLOAT")
    _, blocks = frontend._soundfile_blocks(tmp_path / "many.wav", frontend.BLOCK_SAMPLES)
    parts = list(blocks)
    assert max(len(p) for p in parts) * 256 <= frontend.BLOCK_VALUES
    np.testing.assert_allclose(np.concatenate(parts), y.mean(axis=1), atol=1e-6)


@pytest.mark.parametrize("binary", [False, True])
def test_a_word2vec_header_declaring_a_billion_words_is_refused_before_gensim_allocates(tmp_path: Path, binary: bool) -> None:
    from coala.core.errors import WordVectorsError
    from coala.data.words import load_pretrained
    path = tmp_path / "vectors.txt"
    body = (b"rock " + np.ones(300, np.float32).tobytes() + b"\n") if binary else b"rock " + b" ".join([b"0.5"] * 300) + b"\n"
    path.write_bytes(b"1000000000 300\n" + body)
    with pytest.raises(WordVectorsError, match="declares 1000000000 words of 300 dimensions, more than its"):
        load_pretrained(path, "word2vec-binary" if binary else "word2vec")


# --- 3. text encodings ------------------------------------------------------------------------------------

def _tone(path: Path, seconds: float = 1.0, rate: int = 22000) -> Path:
    import os
    import soundfile as sf
    t = np.arange(int(seconds * rate)) / rate
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(os.fsencode(path), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format="WAV")
    return path


def test_byte_order_marks_start_no_name(tmp_path: Path) -> None:
    from coala.evaluation import datasets
    bom = "\ufeff"
    for part, rel in datasets.GTZAN_LISTS.items():
        lines = [f"{genre}/{genre}.0000{i}.wav" for genre in datasets.GTZAN_GENRES for i in range(2)]
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(bom + "\r\n".join(lines) + "\r\n", encoding="utf-8")
    assert datasets.read_gtzan(tmp_path, tmp_path, None, 0).classes == list(datasets.GTZAN_GENRES)
    csv_path = tmp_path / datasets.US8K_CSV
    csv_path.parent.mkdir(parents=True)
    csv_path.write_text(bom + "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
                        "100032-3-0-0.wav,100032,0,0.3,1,5,3,dog_bark\n", encoding="utf-8")
    assert datasets.read_us8k(tmp_path, tmp_path, None, 0).classes == ["dog_bark"]
    selection = tmp_path / "selection.json"
    selection.write_text(bom + '{"bass": ["bass_acoustic_000-024-025.wav"]}', encoding="utf-8")
    assert datasets.read_selection(selection) == ["bass_acoustic_000-024-025"]


def test_a_list_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    from coala.core.errors import DownstreamError
    from coala.evaluation import datasets
    for rel in datasets.GTZAN_LISTS.values():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"blues/blues.00000.wav\nj\xe9zz/jazz.00001.wav\n")
    with pytest.raises(DownstreamError, match="train_filtered.txt: not UTF-8 text"):
        datasets.read_gtzan(tmp_path, tmp_path, None, 0)


NAMES = [b"caf\xe9.wav", b"tab\there.wav", b"new\nline.wav", b"back\\slash.wav", b"esc\x1b[2J.wav", "日本.wav".encode()]


def test_quoted_names_are_one_line_of_utf8_and_unquote_exactly() -> None:
    import os
    from coala.text import quote_name, unquote_name
    for raw in NAMES:
        name = os.fsdecode(raw)
        quoted = quote_name(name)
        quoted.encode("utf-8")
        assert "\n" not in quoted and "\t" not in quoted and "\x1b" not in quoted
        assert unquote_name(quoted) == name
    assert quote_name("日本.wav") == "日本.wav"


def test_failures_of_files_with_any_name_are_listed_once_each_and_kept(tmp_path: Path) -> None:
    import os
    from coala.encode.failures import FAILURES_FILE, _read_failures, update_failures
    from coala.encode.jobs import FileJob
    sources = [tmp_path / os.fsdecode(raw) for raw in NAMES]
    jobs = [FileJob(s, tmp_path / "out" / f"{i}.npy") for i, s in enumerate(sources)]
    listing = tmp_path / FAILURES_FILE
    update_failures(listing, jobs, [(s, f"cannot decode {s.name}") for s in sources], lambda job: False)
    listing.read_text(encoding="utf-8")
    assert len(listing.read_bytes().splitlines()) == 1 + len(NAMES)
    assert _read_failures(listing) == {str(s): f"cannot decode {s.name}" for s in sources}
    update_failures(listing, jobs[:1], [], lambda job: True)  # the first is encoded now: the others stay
    assert set(_read_failures(listing)) == {str(s) for s in sources[1:]}


@pytest.mark.slow
def test_a_valid_file_whose_name_is_not_utf8_is_encoded_and_a_bad_one_listed(tmp_path: Path, capsys) -> None:
    import os
    import encode
    audio = tmp_path / "audio"
    audio.mkdir()
    _tone(audio / os.fsdecode(b"caf\xe9.wav"))
    (audio / os.fsdecode(b"bro\xffken\tname.wav")).write_bytes(b"not audio at all")
    assert encode.main(["--features", "mfcc", "--input", str(audio), "--output", str(tmp_path / "out")]) == 1
    assert (tmp_path / "out" / os.fsdecode(b"caf\xe9.npy")).is_file()
    listing = (tmp_path / "out" / "failures.tsv").read_text(encoding="utf-8").splitlines()
    assert len(listing) == 2 and listing[1].startswith(str(audio) + "/bro\\xffken\\tname.wav\t")


def test_the_dataset_report_keeps_names_that_are_not_utf8(tmp_path: Path) -> None:
    import os
    from coala.data import builder
    from coala.jsonfile import read_json
    name = str(tmp_path / os.fsdecode(b"sub\xff") / "12.wav")
    report = {"skipped": [{"reason": builder.UNDECODABLE, "id": 12, "file": name}]}
    builder._write_json(tmp_path / "report.json", report)
    (tmp_path / "report.json").read_text(encoding="utf-8")
    assert read_json(tmp_path / "report.json") == report


# --- 4. text in pictures ---------------------------------------------------------------------------------

MATH_TAGS = ["$money$", "a^b", "snake_case", "$\\frac{", "100%", "x$y$z"]


def test_tags_are_drawn_literally_even_under_a_users_usetex(tmp_path: Path) -> None:
    import matplotlib
    from coala.train import plots
    vocabulary = dict(enumerate(MATH_TAGS))
    patches = np.random.default_rng(0).random((3, 96, 96)).astype(np.float32)
    tags = np.ones((3, len(MATH_TAGS)))
    with matplotlib.rc_context({"text.usetex": True}):  # no LaTeX here: a text left to it would fail
        plots.save_examples(tmp_path / "examples.png", patches, patches, [1, 2, 3], tags, tags, vocabulary)
    assert (tmp_path / "examples.png").stat().st_size > 0


def test_a_picture_that_fails_is_a_warning_and_nothing_half_written(tmp_path: Path, capsys) -> None:
    from matplotlib.figure import Figure
    from coala.cli import setup_logging
    from coala.figures import save_figure
    setup_logging()
    fig = Figure()
    fig.subplots().set_title("fine")
    (tmp_path / "taken.png").mkdir()
    assert save_figure(fig, tmp_path / "taken.png", 50) is False
    assert "taken.png: picture not drawn (IsADirectoryError" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["taken.png"]


@pytest.mark.slow
def test_training_with_such_tags_saves_every_state_even_when_a_picture_fails(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import torch
    from coala.train.config import parse_config
    from coala.train.loop import train
    from tiny_release import paper_config, write_corpus
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path, n_train=8, n_val=4, n_tags=len(MATH_TAGS))
    (tmp_path / "id2token_tiny.json").write_text(json.dumps(dict(enumerate(MATH_TAGS))))
    (tmp_path / "runs" / "x" / "examples_epoch_2.png").mkdir(parents=True)  # this picture cannot be written
    train(parse_config(paper_config(tmp_path, "x", epochs=2)))
    assert torch.load(tmp_path / "saved_models" / "x" / "training_state.pt", weights_only=True)["epoch"] == 2
    assert (tmp_path / "runs" / "x" / "examples_epoch_1.png").is_file()
    assert (tmp_path / "runs" / "x" / "loss_curves.png").is_file()


# --- 6. paths and numbers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, flag", [
    (["--features", "mfcc", "--input", "IN", "--output", ""], "--output: an empty path"),
    (["--features", "mfcc", "--input", "", "--output", "OUT"], "--input: an empty path"),
    (["--features", "mfcc", "--input", "IN", "--output", "OUT", "--layout", "shards", "--shard-mb", "nan"],
     "--shard-mb: 'nan' is not a finite number"),
    (["--features", "mfcc", "--input", "IN", "--output", "OUT", "--shard-mb=-inf"], "--shard-mb: '-inf' is not a finite"),
    (["--features", "mfcc", "--input", "IN", "--output", "OUT", "--shard-mb", "many"], "--shard-mb: 'many' is not a number"),
    (["--features", "mfcc", "--input", "IN", "--output", "OUT\0x"], "--output: 'OUT\\x00x' holds a NUL byte"),
    (["--features", "mfcc", "--input", "IN", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_encode_checks_each_path_and_number_where_it_enters(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch,
                                                            argv: list[str], flag: str) -> None:
    import encode
    monkeypatch.chdir(tmp_path)
    _tone(tmp_path / "IN")
    assert encode.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: argument ") or err.startswith("error: unrecognized")
    assert flag in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IN"]  # nothing written into the working folder


@pytest.mark.parametrize("flag, value", [("--out-dir", ""), ("--json-dir", " "), ("--max-fraction", "nan"),
                                         ("--val-fraction", "inf")])
def test_create_dataset_checks_its_paths_and_numbers(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch,
                                                     flag: str, value: str) -> None:
    import create_dataset
    monkeypatch.chdir(tmp_path)
    (tmp_path / "audio").mkdir()
    (tmp_path / "tags.csv").write_text("id,tags\n1,rock\n")
    assert create_dataset.main(["--audio-dir", "audio", "--tags-csv", "tags.csv", "--name", "x", flag, value]) == 2
    assert f"error: argument {flag}: " in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio", "tags.csv"]


@pytest.mark.parametrize("key", ["checkpoint_dir", "log_dir", "train_dataset_file", "validation_dataset_file"])
def test_an_empty_path_in_a_training_config_is_refused(tmp_path: Path, key: str) -> None:
    from coala.core.errors import ConfigError
    from coala.train.config import parse_config
    from tiny_release import paper_config
    with pytest.raises(ConfigError, match=f"key '{key}' must be a non-empty path, got \"\""):
        parse_config(paper_config(tmp_path, "x", **{key: ""}))


def test_an_empty_asset_root_is_an_error_not_the_working_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    from coala import assets
    from coala.core.errors import UsageError
    for value in ("", "  "):
        monkeypatch.setenv("COALA_HOME", value)
        with pytest.raises(UsageError, match="COALA_HOME is set but empty"):
            assets.default_path(assets.SCALER)


# --- 7. offline and limited machines ----------------------------------------------------------------------

def _run_limited(code: str, cwd: Path, file_bytes: int) -> "subprocess.CompletedProcess":
    """``code`` in a fresh Python whose files may not grow past ``file_bytes`` (``ulimit -f``)."""
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, preexec_fn=limit, capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1])})


def test_a_write_past_the_file_size_limit_names_its_file_and_leaves_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    result = _run_limited("from coala.atomic import atomic_write_text\n"
                          f"atomic_write_text({str(target)!r}, 'x' * 100_000)", tmp_path, 10_000)
    assert f"OSError: [Errno 27] write failed (File too large); nothing was written: '{target}'" in result.stderr
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


@pytest.mark.slow
def test_a_script_that_fills_its_limit_says_so_in_one_line(tmp_path: Path) -> None:
    _tone(tmp_path / "a.wav")
    result = _run_limited("import sys, encode\nsys.exit(encode.main(['--features', 'mfcc', '--input', 'a.wav', "
                          "'--output', 'out', '--quiet', '--layout', 'shards']))", tmp_path, 300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: out/shard-")
    # np.save's buffered C write dropped this error: a truncated shard had counted as written
    assert result.stderr.splitlines()[-1].endswith(": write failed (short write: the file system kept 300 of 608 "
                                                   "bytes (a full disk or a file-size limit)); nothing was written")
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith("shard-")]


def _closed_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_server_is_one_line_with_what_to_do_and_files_in_place_are_kept(tmp_path: Path, capsys) -> None:
    import fetch_assets
    from coala.fetch import PAPER_ASSETS
    port = _closed_port()
    assert fetch_assets.main(["--base-url", f"http://127.0.0.1:{port}", "--root", str(tmp_path), "--quiet"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"error: 127.0.0.1:{port}: cannot be reached (")
    assert f"{len(PAPER_ASSETS)} file(s) not fetched" in errors[0]
    assert "--base-url URL" in errors[0] and "$COALA_HOME" in errors[0] and f"copy files downloaded elsewhere into {tmp_path}" in errors[0]


def test_offline_a_file_copied_in_by_hand_is_checked_and_kept(tmp_path: Path) -> None:
    from coala.fetch import fetch_all
    from test_fetch_assets import _pinned
    body = b'{"0": "kick"}'
    copied, other = _pinned("json/copied.json", body), _pinned("json/other.json", b"{}")
    (tmp_path / "json").mkdir()
    (tmp_path / copied.local).write_bytes(body)
    report = fetch_all((other, copied), f"http://127.0.0.1:{_closed_port()}", tmp_path, show_progress=False)
    assert report.present == [copied.local] and len(report.errors) == 1
    assert "1 file(s) not fetched (json/other.json)" in report.errors[0]


def _superscript_length(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "\u00b2")
    handler.end_headers()


def test_a_content_length_that_is_no_number_is_one_line(server, tmp_path: Path) -> None:
    from test_fetch_assets import _first_installed_then
    errors, _, bad = _first_installed_then(server, tmp_path, _superscript_length)
    assert errors == [f"{server.url}/{bad.remote}: Content-Length '\u00b2' is not a number of bytes; not downloaded"]


@pytest.mark.slow
def test_a_download_past_the_file_size_limit_is_one_line_naming_its_part_file(server, tmp_path: Path) -> None:
    from test_fetch_assets import _pinned, _serve
    body = bytes(range(256)) * 400
    asset = _pinned("json/big.json", body)
    _serve(server, {asset.remote: body})
    code = ("import sys\nfrom coala.commands import fetch_assets\nfrom coala.fetch import Asset\n"
            f"fetch_assets.PAPER_ASSETS = ({asset!r},)\n"
            f"sys.exit(fetch_assets.main(['--base-url', {server.url!r}, '--root', {str(tmp_path)!r}, '--quiet']))")
    result = _run_limited(code, tmp_path, 50_000)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == (f"error: {tmp_path / 'json' / 'big.json.part'}: cannot write the download "
                                             "(File too large); the bytes written so far are kept to resume from")
    assert not (tmp_path / asset.local).exists()


# --- 8. caches and names ----------------------------------------------------------------------------------

def test_audio_replaced_by_an_older_file_is_computed_again(tmp_path: Path) -> None:
    import os
    import soundfile as sf
    from coala.data import builder
    audio, cache = tmp_path / "7.wav", tmp_path / "cache"
    _tone(audio)
    assert builder.compute_patches({7: audio}, cache, workers=1, progress=False) == []
    first = builder.load_patches([builder.cache_file(cache, 7, audio)])
    size, inode = audio.stat().st_size, audio.stat().st_ino
    sf.write(audio, sf.read(audio, dtype="float32")[0] * 0.5, 22000, subtype="PCM_16")  # rewritten in place
    os.utime(audio, ns=(10**9, 10**9))  # and dated 1970, as `cp -p` or an unpacked archive leaves it
    assert (audio.stat().st_size, audio.stat().st_ino) == (size, inode)
    assert builder.compute_patches({7: audio}, cache, workers=1, progress=False) == []
    again = builder.load_patches([builder.cache_file(cache, 7, audio)])
    assert not np.array_equal(first, again)
    assert len(list(cache.glob("7.*npy"))) == 1  # the stale entry is gone


def test_the_value_check_memo_follows_a_replaced_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    path = write_release_file(tmp_path / "train.h5", 200, n_tags=5)  # 7 MB: the fingerprint samples 1 MB
    checks.check_values(path)
    stamp = path.stat().st_mtime_ns
    with h5py.File(path, "a") as f:  # one value in the middle: the sampled blocks may miss it
        f["dataset/data"][4, 50, 50] = np.nan
    os.utime(path, ns=(stamp, stamp))  # and the date set back
    with pytest.raises(DatasetError, match="patch 4 .*holds nan"):
        checks.check_values(path)


def test_hidden_names_are_skipped_by_every_folder_reader(tmp_path: Path) -> None:
    from coala.data.builder import find_audio_files
    from coala.encode.jobs import plan_inputs
    from coala.encode.shards import EmbeddingFolder
    from coala.evaluation.datasets import AudioPart
    from coala.evaluation.task import stems_on_disk
    for name in ("12.wav", "._12.wav", ".hidden/13.wav", "sub/14.wav", "sub/.DS_Store.wav"):
        (tmp_path / "audio" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "audio" / name).write_bytes(b"")
    for name in ("a.npy", ".b.npy", ".cache/c.npy", "sub/d.npy"):
        (tmp_path / "emb" / name).parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / "emb" / name, np.ones(3, np.float32))
    audio = tmp_path / "audio"
    assert sorted(find_audio_files(audio)) == [12, 14]
    assert [job.source.relative_to(audio).as_posix() for job in plan_inputs([audio], tmp_path / "out")] == ["12.wav", "sub/14.wav"]
    assert [p.relative_to(audio).as_posix() for p in AudioPart("x", audio, "*/*").files()] == ["sub/14.wav"]
    assert stems_on_disk([audio], ".wav") == {"12"}
    assert sorted(EmbeddingFolder(tmp_path / "emb")) == ["a", "sub/d"]
    # a hidden file named directly is read
    assert [job.source.name for job in plan_inputs([audio / "._12.wav"], tmp_path / "out")] == ["._12.wav"]


# --- 9. notebook and processes ----------------------------------------------------------------------------

def test_embedding_with_a_model_in_train_mode_changes_no_statistic_and_gives_eval_outputs(tmp_path: Path) -> None:
    import torch
    from coala.core.frontend import MinMaxScaler
    from coala.core.model import AudioEncoder
    from coala.encode.api import extract_audio_embedding, extract_audio_embedding_chunks
    torch.manual_seed(0)
    model = AudioEncoder()
    audio = _tone(tmp_path / "a.wav", seconds=5.0)
    scaler = MinMaxScaler.fit(np.random.default_rng(0).normal(-5, 2, (4, 96, 96)))
    expected = [f(model.eval(), audio, scaler=scaler) for f in (extract_audio_embedding_chunks, extract_audio_embedding)]
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got = [f(model, audio, scaler=scaler) for f in (extract_audio_embedding_chunks, extract_audio_embedding)]
    assert model.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0, msg=key)  # BatchNorm statistics untouched
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=0, atol=0)


@pytest.mark.slow
def test_a_torchrun_job_prints_a_users_error_once(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(root / "encode.py"), "--features", "mfcc", "--input", "no_such_folder", "--output", "out"],
                            capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            timeout=240)
    assert result.returncode != 0
    assert result.stderr.count("error: no_such_folder: no such file or folder") == 1, result.stderr[-3000:]


# --- 5. selections that do not match the data -------------------------------------------------------------

def _nsynth_with_a_larger_selection(tmp_path: Path) -> tuple[Path, Path]:
    """Embeddings of 14 training notes per family, and a selection naming 200 per family (another data's)."""
    import json
    from test_classify import FAMILIES, Writer, make_nsynth, nsynth_names
    data, selection = tmp_path / "data", tmp_path / "selection.json"
    make_nsynth(data, Writer(data / "embeddings", n_classes=len(FAMILIES), seed=0), selection)
    selection.write_text(json.dumps({family: nsynth_names(family, 200, 0) for family in FAMILIES}))
    return data, selection


def test_a_selection_most_of_whose_notes_are_missing_is_an_error_before_any_fit(tmp_path: Path, capsys) -> None:
    import classify
    data, selection = _nsynth_with_a_larger_selection(tmp_path)
    out = tmp_path / "r.json"
    argv = ["--data-dir", str(data), "--tasks", "nsynth", "--runs", "1", "--nsynth-selection", str(selection),
            "--out", str(out)]
    assert classify.main(argv) == 2
    err = capsys.readouterr().err
    assert "error: NSynth embeddings_dual_ae_c_200: 558 of the 624 listed clips have no usable embedding" in err
    assert "pass --allow-subset to use the 66 present" in err and "fits" not in err and not out.exists()
    assert classify.main([*argv, "--allow-subset"]) == 0
    assert "(subset: 66 of 624 clips)" in out.with_suffix(".md").read_text()


def test_a_split_list_naming_clips_the_embeddings_lack_is_an_error(tmp_path: Path, capsys) -> None:
    import classify
    from test_classify import GENRES, Writer, make_gtzan
    data = tmp_path / "data"
    make_gtzan(data, Writer(data / "embeddings", n_classes=len(GENRES), seed=1), per_genre=8)
    listing = data / "GTZAN" / "train_filtered.txt"
    listing.write_text(listing.read_text() + "".join(f"rock/rock.{k:05d}.wav\n" for k in range(30)))
    assert classify.main(["--data-dir", str(data), "--runs", "1", "--out", str(tmp_path / "r.json")]) == 2
    assert "error: GTZAN embeddings_dual_ae_c_200: 30 of the 54 listed clips have no usable embedding (e.g. " \
           "gtzan/embeddings_dual_ae_c_200/rock.00000.npy)" in capsys.readouterr().err


@pytest.mark.slow
def test_encoding_a_selection_of_other_data_is_an_error_saying_how_many(tmp_path: Path, capsys) -> None:
    import json
    import encode
    data, selection = tmp_path / "data", tmp_path / "selection.json"
    names = [f"bass_acoustic_{k:03d}-040-100" for k in range(20)]
    for name in names[:2]:
        _tone(data / "nsynth" / "nsynth-train" / "audio" / f"{name}.wav")
    _tone(data / "nsynth" / "nsynth-test" / "audio" / "bass_acoustic_100-040-100.wav")
    selection.write_text(json.dumps({"bass": [f"{name}.wav" for name in names]}))
    argv = ["--features", "mfcc", "--dataset", "nsynth", "--data-dir", str(data), "--nsynth-selection", str(selection),
            "--quiet"]
    assert encode.main(argv) == 2
    assert capsys.readouterr().err == (f"error: {selection}: 18 of the 20 listed files are not in "
                                       f"{data / 'nsynth' / 'nsynth-train' / 'audio'} (e.g. {names[2]}.wav): the list "
                                       "does not match the data; pass --allow-subset to use the 2 present (results then "
                                       "say they are a subset)\n")
    assert not (data / "embeddings").exists()
    assert encode.main([*argv, "--allow-subset"]) == 0
    assert len(list((data / "embeddings" / "nsynth" / "train" / "mfcc").glob("*.npy"))) == 2


def test_an_id_list_most_of_whose_clips_have_no_audio_is_refused_before_describing(tmp_path: Path) -> None:
    from coala.analysis.descriptors import compute_descriptors
    from coala.core.errors import AnalysisError
    for clip_id in (1, 2):
        _tone(tmp_path / "audio" / f"{clip_id}.wav")
    ids = list(range(1, 21))
    with pytest.raises(AnalysisError, match=r"audio: 18 of the 20 listed clips have no audio file \(e.g. 3\).*"
                                            "pass --allow-subset to use the 2 present"):
        compute_descriptors(ids, tmp_path / "audio", tmp_path / "d.json", progress=False)
    assert not (tmp_path / "d.json").exists()
    assert compute_descriptors(ids, tmp_path / "audio", tmp_path / "d.json", progress=False, allow_subset=True).written == 2


def test_float64_embeddings_beyond_float32_are_named_not_averaged_into_inf(tmp_path: Path) -> None:
    from coala.core.errors import DownstreamError
    from coala.encode.shards import EmbeddingFolder
    from coala.evaluation.task import clip_vector
    np.save(tmp_path / "clip.npy", np.array([[1.0, 1e300], [1.0, -1e300]]))  # averages to a harmless 0
    with pytest.raises(DownstreamError, match=r"clip.npy: holds non-finite values \(1e\+300 at index \(0, 1\), "
                                              r"beyond float32\)"):
        clip_vector(EmbeddingFolder(tmp_path), "clip")


def _small_index(folder: Path, n: int = 3) -> Path:
    from coala.core.model import LATENT_DIM
    from coala.search.index import write_index
    chunks = np.random.default_rng(0).standard_normal((n, LATENT_DIM)).astype(np.float32)
    return write_index(folder, {"audio_encoder_fingerprint": "x"}, [f"clip{i}.wav" for i in range(n)],
                       np.ones(n), [(chunks, np.ones(n, np.int64))])


def test_an_index_row_holding_nan_is_named_at_query_time(tmp_path: Path) -> None:
    from coala.core.errors import SearchError
    from coala.search.index import open_index
    folder = _small_index(tmp_path / "index")
    clips = np.load(folder / "clips.npy", mmap_mode="r+")
    clips[1, 5] = np.nan
    clips.flush()
    del clips
    index = open_index(folder)
    query = np.asarray(index.clips[0])
    with pytest.raises(SearchError, match=r"index/clips.npy: row 1 holds values that are not finite \(a damaged index\)"):
        index.search(query)
    with pytest.raises(SearchError, match="the query vector holds nan at index"):
        index.search(np.full_like(query, np.nan))


@pytest.mark.parametrize("files", [[1, 2, 3], ["a", None, "c"], "abc"])
def test_an_index_whose_paths_are_not_strings_is_damaged(tmp_path: Path, files) -> None:
    import json
    from coala.core.errors import SearchError
    from coala.search.index import open_index
    folder = _small_index(tmp_path / "index")
    (folder / "files.json").write_text(json.dumps(files))
    with pytest.raises(SearchError, match="files.json: damaged index file"):
        open_index(folder)


def test_control_characters_in_an_indexed_path_are_printed_quoted() -> None:
    from coala.commands import search
    from coala.search.index import Hit
    table = search._hits_table([Hit(0, "evil\x1b[2J\rname\n.wav", 0.5, 0.0, 1.0)])
    assert table.splitlines()[1].endswith("evil\\u001b[2J\\rname\\n.wav") and len(table.splitlines()) == 2


def test_index_from_embeddings_of_float64_beyond_float32_is_refused(tmp_path: Path) -> None:
    from coala.core.errors import SearchError
    from coala.core.model import LATENT_DIM
    from coala.encode.shards import EmbeddingFolder
    from coala.search.index import index_embeddings
    array = np.ones((2, LATENT_DIM))
    array[1, 7] = 1e300
    np.save(tmp_path / "clip.npy", array)
    sf.write(tmp_path / "clip.wav", np.zeros(22000, np.float32), 22000)  # one second: two chunks of the padded clip
    with pytest.raises(SearchError, match=r"clip.npy: holds 1e\+300 at index \(1, 7\), beyond float32"):
        index_embeddings(tmp_path / "index", {}, [str(tmp_path / "clip.wav")], EmbeddingFolder(tmp_path), ["clip"])


@pytest.mark.parametrize("entry, message", [
    ({"1": {"mfcc_mean": [1.0, 2.0]}, "2": {"mfcc_mean": [1.0]}}, "clip 2 has 1 values of mfcc_mean, clip 1 has 2"),
    ({"1": {"mfcc_mean": [1.0, [2.0]]}}, "clip 1: mfcc_mean is not a flat list of numbers"),
    ({"1": {"mfcc_mean": [1.0, "2"]}}, "clip 1: mfcc_mean is not a flat list of numbers"),
    ({"1": {"mfcc_mean": [1.0, 1e300]}}, r"clip 1: mfcc_mean holds 1e\+300 at index \(1,\), beyond float32"),
    ({"1": {"mfcc_mean": [1.0, float("inf")]}}, r"clip 1: mfcc_mean holds inf at index \(1,\)"),
    ({"1": {"mfcc_mean": [10**400]}}, "clip 1: a value beyond float64"),
])
def test_descriptor_files_with_ragged_or_overflowing_values_are_one_line(tmp_path: Path, entry: dict, message: str) -> None:
    import json
    from coala.analysis.descriptors import read_descriptors
    from coala.core.errors import AnalysisError
    path = tmp_path / "d.json"
    path.write_text(json.dumps(entry))
    with pytest.raises(AnalysisError, match=f"d.json: not a descriptor file .*{message}"):
        read_descriptors(path)
    path.write_text(json.dumps({"1": {"mfcc_skew": [float("nan"), 1.0]}}))  # NaN: left out by the CCA itself
    assert np.isnan(read_descriptors(path)[1]["mfcc_skew"][0])


def test_search_refuses_an_empty_index_path(capsys) -> None:
    import search
    assert search.main(["query", "--model", "m", "--index", "", "--tags", "dog"]) == 2
    assert capsys.readouterr().err.startswith("error: argument --index: an empty path")


def test_validation_files_read_by_search_and_analysis_get_the_value_check(tmp_path: Path) -> None:
    from coala.analysis.embeddings import read_validation_set
    from coala.search.metrics import evaluate_release
    path = write_release_file(tmp_path / "val.h5", 8, n_tags=5)
    with h5py.File(path, "a") as f:
        f["dataset/label"][3, 2] = 7
    for read in (read_validation_set, lambda p: evaluate_release(None, p)):
        with pytest.raises(DatasetError, match="patch 3 .*holds label value 7 for tag 2"):
            read(path)


@pytest.mark.parametrize("script, argv, message", [
    ("classify", ["--seed", "-5"], "argument --seed: -5 is not a seed (an integer from 0 to 4294967295)"),
    ("classify", ["--runs", "1000000000"], "--runs must be between 1 and 1000, got 1000000000"),
    ("create_dataset", ["--audio-dir", ".", "--tags-csv", "t.csv", "--name", "x", "--seed", "4294967296"],
     "argument --seed: 4294967296 is not a seed"),
    ("encode", ["--features", "mfcc", "--input", ".", "--output", "o", "--batch-size", "1000000000"],
     "--batch-size must be at most 65536 chunks, got 1000000000"),
    ("analyse", ["cca", "--model", "m.pt", "--dataset", "v", "--descriptors", "d.json", "--out", "o", "--seed", "-1"],
     "argument --seed: -1 is not a seed"),
])
def test_seeds_and_counts_are_checked_where_they_enter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys,
                                                       script: str, argv: list[str], message: str) -> None:
    import importlib
    monkeypatch.chdir(tmp_path)
    assert importlib.import_module(script).main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir())


def test_a_results_table_naming_a_set_that_is_not_utf8_is_written(tmp_path: Path) -> None:
    import os
    from coala.evaluation.report import write_results
    name = os.fsdecode(b"embeddings_caf\xe9")
    table = write_results(tmp_path / "r.json", {"GTZAN": {name: [0.5, 0.6]}, "meta": {"tasks": {}}})
    assert "embeddings_caf\\xe9" in table.read_text(encoding="utf-8")


def test_a_shard_index_naming_another_array_is_damaged(tmp_path: Path) -> None:
    import json
    from coala.core.errors import EmbeddingsError
    from coala.encode.shards import EmbeddingFolder, ShardWriter
    writer = ShardWriter(tmp_path)
    writer.add("a", Path("a.wav"), np.ones((2, 4), np.float32))
    writer.close()
    np.save(tmp_path / "elsewhere.npy", np.zeros((2, 4), np.float32))
    index = next(tmp_path.glob("shard-*.json"))
    content = json.loads(index.read_text())
    index.write_text(json.dumps({**content, "array": "elsewhere.npy"}))
    with pytest.raises(EmbeddingsError, match="damaged shard index .*its array is 'elsewhere.npy'"):
        EmbeddingFolder(tmp_path)
