"""encode.py's shard layout: the same embeddings as the per-file layout through the one reader, for
classify.py and search.py too; resumed after an interruption; a damaged index refused in one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coala.encode.provenance import FOLDER_RECORD
from coala.encode import read_embeddings
from coala.encode.jobs import plan_inputs
from coala.encode.run import run_extraction
from coala.encode.shards import ShardWriter
from coala.core.errors import EmbeddingsError
from coala.core.model import LATENT_DIM
from coala.search.index import index_embeddings
from encode import main as encode_main
from test_classify import GENRES, RANDOM, SEPARABLE, Writer, _run, make_gtzan, the_error
from test_encode_cli import encoder_ckpt, scaler_file, write_clip  # noqa: F401 (fixtures)

CLIPS = {"a.wav": 2.5, "sub/b.wav": 1.0, "sub/c.wav": 4.0, "d.wav": 1.5}


def _clips(root: Path) -> Path:
    for seed, (name, seconds) in enumerate(CLIPS.items()):
        write_clip(root / name, 16000, 1, seconds, seed=seed)
    return root


def _fake_compute(path: Path) -> np.ndarray:
    """A clip's (2, 8) array (64 bytes), its values from its name: no audio work."""
    return np.random.default_rng(sum(path.name.encode())).standard_normal((2, 8)).astype(np.float32)


def _as_shards(folder: Path, max_bytes: int) -> None:
    """Rewrite a per-file folder in the shard layout, as encode.py --layout shards writes it."""
    embeddings = read_embeddings(folder)
    writer = ShardWriter(folder, max_bytes)
    for clip in sorted(embeddings):
        writer.add(clip, folder / f"{clip}.wav", embeddings[clip])
    writer.close()
    for path in folder.rglob("*.npy"):
        if not path.name.startswith("shard-"):
            path.unlink()


@pytest.mark.slow
def test_both_layouts_give_the_same_embeddings_through_the_reader(capsys, tmp_path, encoder_ckpt, scaler_file):
    audio = _clips(tmp_path / "audio")
    common = ["--model", str(encoder_ckpt), "--scaler", str(scaler_file), "--input", str(audio), "--quiet"]
    assert encode_main([*common, "--output", str(tmp_path / "files")]) == 0
    # About two chunks a shard: several shards, and a clip of more chunks alone in one.
    assert encode_main([*common, "--output", str(tmp_path / "shards"), "--layout", "shards", "--shard-mb", "0.01"]) == 0
    shard_files = sorted(p.name for p in (tmp_path / "shards").iterdir() if p.name != FOLDER_RECORD)
    assert len(shard_files) > 2 and all(name.startswith("shard-") and name.endswith((".npy", ".json"))
                                        for name in shard_files), shard_files
    files, shards = read_embeddings(tmp_path / "files"), read_embeddings(tmp_path / "shards")
    assert sorted(files) == sorted(shards) == ["a", "d", "sub/b", "sub/c"]
    for clip in files:
        assert shards.shape(clip) == files.shape(clip) == files[clip].shape
        np.testing.assert_allclose(shards[clip], files[clip], rtol=0, atol=1e-5)
    assert shards.name_of("sub/b") == str(audio / "sub" / "b.wav")
    capsys.readouterr()
    assert encode_main([*common, "--output", str(tmp_path / "shards"), "--layout", "shards"]) == 0
    assert capsys.readouterr().out.strip() == f"done 0, skipped {len(CLIPS)}, failed 0"


def test_an_interrupted_run_keeps_its_completed_shards_and_resumes(tmp_path):
    for name in CLIPS:
        (tmp_path / "audio" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "audio" / name).touch()
    out = tmp_path / "out"
    tasks = plan_inputs([tmp_path / "audio"], out)
    calls = []

    def interrupted_on_the_fourth_file(path: Path) -> np.ndarray:
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return _fake_compute(path)

    # Shards of two clips: the first is written, the third clip is held when the run is stopped.
    with pytest.raises(KeyboardInterrupt):
        run_extraction(tasks, interrupted_on_the_fourth_file, out / "failures.tsv", progress=False, shard_bytes=128)
    assert not list(out.rglob(".*")), "temporaries left behind"
    first = read_embeddings(out)
    assert len(list(out.glob("shard-*.json"))) == 1 and len(first) == 2
    summary = run_extraction(tasks, _fake_compute, out / "failures.tsv", progress=False, shard_bytes=128)
    assert (summary.done, summary.skipped, summary.failed) == (len(tasks) - 2, 2, 0)
    done = read_embeddings(out)
    assert sorted(done) == sorted(["a", "d", "sub/b", "sub/c"])
    for task in tasks:
        clip = task.output.relative_to(out).with_suffix("").as_posix()
        np.testing.assert_array_equal(done[clip], _fake_compute(task.source))


def test_vectors_keep_their_shape_and_the_newest_copy_of_a_clip_wins(tmp_path):
    first = ShardWriter(tmp_path, max_bytes=10**6, rank=1)
    first.add("x", tmp_path / "x.wav", np.zeros(120, np.float32))
    first.add("y", tmp_path / "y.wav", np.ones(120, np.float32))
    first.close()
    again = ShardWriter(tmp_path, max_bytes=10**6, rank=0)
    again.add("x", tmp_path / "x.wav", np.full(120, 2.0, np.float32))
    again.close()
    embeddings = read_embeddings(tmp_path)
    assert len(embeddings) == 2 and embeddings.shape("y") == (120,)
    np.testing.assert_array_equal(embeddings["x"], np.full(120, 2.0, np.float32))
    assert any("-r1-" in p.name for p in tmp_path.glob("shard-*.npy"))  # each process names its own shards


def test_classify_results_are_identical_with_either_layout(tmp_path):
    results = {}
    for layout in ("files", "shards"):
        data = tmp_path / layout / "data"
        make_gtzan(data, Writer(data / "embeddings", n_classes=len(GENRES), seed=1), per_genre=8)
        if layout == "shards":
            for name in (SEPARABLE, RANDOM):
                _as_shards(data / "embeddings" / "gtzan" / name, max_bytes=1000)
            assert not list((data / "embeddings" / "gtzan" / SEPARABLE).glob("blues*"))
        out = tmp_path / layout / "r.json"
        assert _run(data, out) == 0
        results[layout] = json.loads(out.read_text())
    assert results["files"]["GTZAN"] == results["shards"]["GTZAN"]
    counts = [{name: {key: s[key] for key in ("width", "present", "missing", "unreadable", "counts")}
               for name, s in r["meta"]["tasks"]["GTZAN"]["embeddings"].items()} for r in results.values()]
    assert counts[0] == counts[1]


def test_search_indexes_shards_as_it_indexes_files(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "files"
    for i, n in enumerate((1, 3, 2)):
        folder.mkdir(exist_ok=True)
        np.save(folder / f"clip{i}.npy", rng.standard_normal((n, LATENT_DIM)).astype(np.float32))
    direct = read_embeddings(folder)
    clips = sorted(direct)
    index_embeddings(tmp_path / "index_files", {}, clips, direct, clips)
    _as_shards(folder, max_bytes=3 * LATENT_DIM * 4)
    sharded = read_embeddings(folder)
    index_embeddings(tmp_path / "index_shards", {}, clips, sharded, clips)
    for name in ("clips.npy", "chunks.npy", "offsets.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "index_files" / name),
                                      np.load(tmp_path / "index_shards" / name))


@pytest.mark.parametrize("damage", [
    lambda index: "{not json",
    lambda index: json.dumps({**index, "clips": [{"clip": "x"}]}),
    lambda index: json.dumps({**index, "rows": 1}),
])
def test_a_damaged_index_is_one_line_naming_it(tmp_path, capsys, damage):
    data = tmp_path / "data"
    make_gtzan(data, Writer(data / "embeddings", n_classes=len(GENRES), seed=1), per_genre=4)
    folder = data / "embeddings" / "gtzan" / SEPARABLE
    _as_shards(folder, max_bytes=10**6)
    index_path = next(folder.glob("shard-*.json"))
    index_path.write_text(damage(json.loads(index_path.read_text())))
    with pytest.raises(EmbeddingsError, match="damaged shard index"):
        read_embeddings(folder)
    assert _run(data, tmp_path / "r.json") == 2
    assert the_error(capsys).startswith(f"error: {index_path}: damaged shard index")
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "new.wav").touch()
    with pytest.raises(EmbeddingsError, match="damaged shard index"):  # encode.py's rerun stops before any work
        run_extraction(plan_inputs([tmp_path / "audio"], folder), _fake_compute, folder / "failures.tsv",
                       progress=False, shard_bytes=1000)


def test_a_shard_array_that_does_not_match_its_index_is_named(tmp_path):
    writer = ShardWriter(tmp_path)
    writer.add("x", tmp_path / "x.wav", np.zeros((2, 4), np.float32))
    writer.close()
    array = next(tmp_path.glob("shard-*.npy"))
    np.save(array, np.zeros((1, 4), np.float32))
    with pytest.raises(EmbeddingsError, match=f"{array}: shard of float32 \\(1, 4\\), its index says float32 with 2"):
        read_embeddings(tmp_path)["x"]
