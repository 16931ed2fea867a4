"""encode.py and create_dataset.py under torchrun, launched both ways a cluster would on this one machine:
one node with two processes, and two single-process nodes meeting on the loopback. Each launch must
write what one process writes and split the work between its processes."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import encode
from coala.audio.scaler import MinMaxScaler, save_scaler
from coala.data.builder import BuildOptions, build_dataset
from coala.distributed import balanced_shares
from models_t1000 import AudioEncoder
from test_create_dataset import WORDS, tone
from test_encode_cli import save_random, write_clip

ROOT = Path(__file__).resolve().parents[1]
RANK_LINE = re.compile(r"rank (\d) of 2: done (\d+), skipped (\d+), failed (\d+)")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TIMEOUT_S = 240


def _torchrun(*options: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *options]


def standalone(script: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(_torchrun("--standalone", "--nproc_per_node=2", str(ROOT / script), *argv), cwd=cwd,
                          env=ENV, capture_output=True, text=True, timeout=TIMEOUT_S)


def two_nodes(script: str, argv: list[str], cwd: Path, node_1_extra: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    """Two torchrun launches of one process each, as two nodes would start them (``--node_rank`` 0 and 1);
    returns each launch's exit status and output."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launches = [subprocess.Popen(_torchrun("--nnodes=2", f"--node_rank={node}", "--nproc_per_node=1",
                                           "--master_addr=127.0.0.1", f"--master_port={port}", str(ROOT / script),
                                           *argv, *(node_1_extra if node else ())),
                                 cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for node in (0, 1)]
    return [(launch.wait(TIMEOUT_S), launch.communicate()[0]) for launch in launches]


def shares(output: str) -> dict[int, tuple[int, int, int]]:
    """``rank -> (done, skipped, failed)`` from the processes' summary lines."""
    return {int(m[1]): (int(m[2]), int(m[3]), int(m[4])) for m in RANK_LINE.finditer(output)}


def test_shares_are_deterministic_balanced_by_size_and_cover_every_file_once() -> None:
    sizes = [10, 900, 12, 11, 950, 13, 9, 14]  # the two long files sit together in sorted order
    first, second = balanced_shares(sizes, 2)
    assert balanced_shares(sizes, 2) == [first, second]
    assert sorted(first + second) == list(range(len(sizes))) and first == sorted(first) and second == sorted(second)
    assert {1, 4} & set(first) and {1, 4} & set(second)  # one long file each
    assert abs(sum(sizes[i] for i in first) - sum(sizes[i] for i in second)) <= max(sizes)
    assert balanced_shares([5, 5], 3) == [[0], [1], []]


@pytest.fixture(scope="module")
def encode_inputs(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("encode")
    for seed, seconds in enumerate([1.0, 2.0, 1.5, 1.0, 2.0, 1.0]):
        write_clip(root / "clips" / ("sub" if seed % 2 else "") / f"c{seed}.wav", 22050, 1, seconds, seed=seed)
    (root / "clips" / "broken.wav").write_bytes(b"RIFF\x00\x10\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    model = save_random(AudioEncoder, root / "models" / "x" / "audio_encoder_epoch_1.pt")
    save_scaler(MinMaxScaler.fit(np.random.default_rng(1).uniform(-16.0, 4.0, size=(8, 96, 96))), root / "scaler.json")
    return root, ["--model", str(model), "--scaler", str(root / "scaler.json"), "--input", str(root / "clips"), "--quiet"]


def _outputs(folder: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(folder)): np.load(p) for p in sorted(folder.rglob("*.npy"))}


@pytest.mark.slow
def test_encode_splits_files_over_ranks_and_nodes_and_writes_what_one_process_writes(encode_inputs, capsys) -> None:
    root, argv = encode_inputs
    assert encode.main([*argv, "--output", str(root / "one")]) == 1  # the broken file fails
    assert capsys.readouterr().out.startswith("done 6, skipped 0, failed 1")
    expected, failures = _outputs(root / "one"), (root / "one" / "failures.tsv").read_text()
    assert len(expected) == 6

    result = standalone("encode.py", [*argv, "--output", "node"], root)
    assert result.returncode == 1, result.stderr[-2000:]
    counts = shares(result.stdout)
    assert sorted(counts) == [0, 1] and all(done > 0 for done, _, _ in counts.values())
    assert sum(done for done, _, _ in counts.values()) == 6 and sum(f for _, _, f in counts.values()) == 1
    assert "done 6, skipped 0, failed 1 (reasons in node/failures.tsv)" in result.stdout

    # Two nodes finishing a folder one process started: what exists is skipped, the rest split.
    (root / "nodes" / "sub").mkdir(parents=True)
    for done in ("model.json", "sub/c3.npy"):
        (root / "nodes" / done).write_bytes((root / "one" / done).read_bytes())
    launches = two_nodes("encode.py", [*argv, "--output", "nodes"], root)
    assert [status for status, _ in launches] == [1, 1], launches[0][1][-2000:]
    counts = {**shares(launches[0][1]), **shares(launches[1][1])}
    assert sorted(counts) == [0, 1] and all(done > 0 for done, _, _ in counts.values())
    assert "done 5, skipped 1, failed 1" in launches[0][1]

    for folder in (root / "node", root / "nodes"):
        got = _outputs(folder)
        assert got.keys() == expected.keys()
        for name, array in expected.items():
            np.testing.assert_allclose(got[name], array, rtol=1e-5, atol=1e-6, err_msg=name)
        assert (folder / "failures.tsv").read_text() == failures


@pytest.mark.slow
def test_each_rank_writes_its_own_shards_and_they_read_as_one_process_files(encode_inputs, capsys) -> None:
    root, argv = encode_inputs
    assert encode.main([*argv, "--output", str(root / "files")]) == 1
    capsys.readouterr()
    result = standalone("encode.py", [*argv, "--output", "sharded", "--layout", "shards"], root)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "done 6, skipped 0, failed 1 (reasons in sharded/failures.tsv)" in result.stdout
    assert {re.search(r"-r(\d)-", p.name)[1] for p in (root / "sharded").glob("shard-*.json")} == {"0", "1"}
    expected, got = encode.read_embeddings(root / "files"), encode.read_embeddings(root / "sharded")
    assert sorted(got) == sorted(expected) and len(got) == 6
    for clip in expected:
        np.testing.assert_allclose(got[clip], expected[clip], rtol=1e-5, atol=1e-6, err_msg=clip)
    assert (root / "sharded" / "failures.tsv").read_text() == (root / "files" / "failures.tsv").read_text()


@pytest.mark.slow
def test_processes_started_with_other_arguments_are_refused_in_one_line(encode_inputs) -> None:
    root, argv = encode_inputs
    launches = two_nodes("encode.py", [*argv, "--output", "refused"], root, node_1_extra=("--overwrite",))
    assert [status for status, _ in launches] != [0, 0]
    lines = [line for _, output in launches for line in output.splitlines() if line.startswith("error:")]
    assert lines and set(lines) == {"error: rank 1 of 2 was started with --overwrite True, rank 0 with False: "
                                    "every process must get the same arguments"}
    assert not list((root / "refused").rglob("*.npy"))


def _dataset(root: Path) -> list[str]:
    rng = np.random.default_rng(3)
    (root / "audio").mkdir(parents=True)
    lines = ["id,tags"]
    for i in range(16):
        sf.write(root / "audio" / f"{100 + i}.wav", tone(rng, 1.0, 22050), 22050)
        lines.append(f"{100 + i},{' '.join(rng.choice(WORDS[:4], size=2, replace=False))}")
    (root / "audio" / "200.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    (root / "tags.csv").write_text("\n".join([*lines, "200,piano drum"]) + "\n")
    # Relative output folders: each launch runs in its own folder, so even the report's paths agree.
    return ["--audio-dir", str(root / "audio"), "--tags-csv", str(root / "tags.csv"), "--name", "t", "--min-count", "2",
            "--val-fraction", "0.25", "--workers", "1"]


OUTPUTS = ("hdf5_ds/spec_tags_t", "hdf5_ds/spec_tags_t_val", "json/id2token_t.json", "json/scaler_t.json",
           "json/dataset_report_t.json")


@pytest.mark.slow
def test_dataset_spectrograms_split_over_ranks_and_nodes_and_files_equal_one_process(tmp_path, monkeypatch) -> None:
    argv = _dataset(tmp_path)
    runs = {name: tmp_path / name for name in ("one", "node", "nodes")}
    for folder in runs.values():
        folder.mkdir()
    monkeypatch.chdir(runs["one"])
    report = build_dataset(BuildOptions(tmp_path / "audio", tmp_path / "tags.csv", "t", min_count=2, val_fraction=0.25,
                                        workers=1, progress=False))
    assert report["clips_kept"] == 16 and report["skipped_by_reason"] == {"undecodable audio": 1}

    result = standalone("create_dataset.py", argv, runs["node"])
    assert result.returncode == 0, result.stderr[-2000:]
    outputs = [result.stderr]
    launches = two_nodes("create_dataset.py", argv, runs["nodes"])
    assert [status for status, _ in launches] == [0, 0], launches[0][1][-2000:]
    outputs.append(launches[0][1] + launches[1][1])
    for output in outputs:
        counts = shares(output)
        assert sorted(counts) == [0, 1] and all(done > 0 for done, _, _ in counts.values())
        assert sum(done + failed for done, _, failed in counts.values()) == 17
    for name in OUTPUTS:
        expected = (runs["one"] / name).read_bytes()
        assert (runs["node"] / name).read_bytes() == expected, name
        assert (runs["nodes"] / name).read_bytes() == expected, name
