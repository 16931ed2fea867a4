"""search.py against an independent computation of its definitions (torch, numpy, scikit-learn directly),
with paper-format checkpoints, a generated validation file in the release layout, and short clips."""
from __future__ import annotations

import itertools
import json
import math
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch
from sklearn.metrics import average_precision_score

from coala.core.frontend import N_MELS, PATCH_FRAMES
from coala.audio.scaler import MinMaxScaler, load_scaler, save_scaler
from coala.core.errors import DemoDataError, SearchError
from coala.search import index as index_module
from coala.search.metrics import expected_random_ap
from encode import extract_audio_embedding_chunks
from encode import main as encode_main
from models_t1000 import CNN, AudioEncoder, TagEncoder
from search import main
from test_encode_cli import write_clip

WORDS = ["dog", "bark", "bird", "car", "engine", "rain", "water", "bell", "piano", "guitar", "drum", "wind"]
CLIPS = {"a/street.wav": (44100, 2, 3.0), "b.flac": (16000, 1, 2.0), "c.wav": (22050, 1, 5.0),
         "a/deeper/d.flac": (48000, 1, 1.5), "e.wav": (22050, 1, 2.5)}


def _save(model: torch.nn.Module, path: Path, seed: int) -> None:
    """Random weights and BatchNorm statistics, so that eval-mode BatchNorm is no identity."""
    torch.manual_seed(seed)
    state = model.state_dict()
    for key, value in state.items():
        if key.endswith("running_mean"):
            value.normal_(0, 0.1)
        elif key.endswith("running_var"):
            value.uniform_(0.5, 2.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def write_pair(folder: Path, epoch: int, seed: int, n_tags: int = len(WORDS)) -> Path:
    torch.manual_seed(seed)
    _save(AudioEncoder(), folder / f"audio_encoder_epoch_{epoch}.pt", seed)
    _save(TagEncoder(n_tags), folder / f"tag_encoder_epoch_{epoch}.pt", seed + 1)
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("search")
    model = write_pair(root / "models" / "pair", 3, seed=0)
    write_pair(model, 1, seed=5)  # an older epoch: the latest must be chosen
    other = write_pair(root / "models" / "other", 3, seed=7)
    id2tag = root / "id2tag.json"
    id2tag.write_text(json.dumps({str(i): w for i, w in enumerate(WORDS)}))
    scaler = root / "scaler.json"
    save_scaler(MinMaxScaler.fit(np.random.default_rng(1).uniform(-16.0, 4.0, size=(8, N_MELS, PATCH_FRAMES))), scaler)
    audio = root / "audio"
    for seed, (name, (sr, channels, seconds)) in enumerate(CLIPS.items()):
        write_clip(audio / name, sr, channels, seconds, seed=seed)
    (audio / "broken.wav").write_bytes(b"RIFF\x00\x10\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    rng = np.random.default_rng(3)
    labels = (rng.random((60, len(WORDS))) < 0.2).astype(np.int16)
    labels[:, 5] = 0  # a tag without positives: left out of tag -> audio
    labels[7] = 0  # a patch without tags: left out of audio -> tag
    val = root / "val.h5"
    with h5py.File(val, "w") as f:
        group = f.create_group("dataset")
        group.create_dataset("id", data=np.arange(60, dtype=np.int32)[:, None])
        # Below 0 in places, as real validation patches are: the evaluation clamps them.
        group.create_dataset("data", data=rng.uniform(-0.2, 1.0, (60, 96, 96)).astype(np.float32))
        group.create_dataset("label", data=labels)
    cnn = root / "cnn" / "audio_encoder_epoch_20.pt"
    torch.manual_seed(11)
    cnn.parent.mkdir()
    torch.save(CNN(n_tags=len(WORDS)).state_dict(), cnn)
    index = root / "index"
    return {"root": root, "model": model, "other": other, "id2tag": id2tag, "scaler": scaler, "audio": audio,
            "val": val, "cnn": cnn, "index": index}


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def networks(folder: Path, epoch: int = 3) -> tuple[AudioEncoder, TagEncoder]:
    audio, tags = AudioEncoder(), TagEncoder(len(WORDS))
    audio.load_state_dict(torch.load(folder / f"audio_encoder_epoch_{epoch}.pt", weights_only=True))
    tags.load_state_dict(torch.load(folder / f"tag_encoder_epoch_{epoch}.pt", weights_only=True))
    return audio.eval(), tags.eval()


def unit(x: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(x.detach().double(), dim=-1).numpy()


@pytest.fixture(scope="module")
def built_index(files) -> Path:
    code = main(["index", "--model", str(files["model"]), "--id2tag", str(files["id2tag"]), "--scaler",
                 str(files["scaler"]), "--input", str(files["audio"]), "--index", str(files["index"]), "--quiet"])
    assert code == 1  # broken.wav failed and is listed
    return files["index"]


def audio_chunks_of(path: str | Path) -> int:
    """Chunks holding audio, counted here from the file's length: those starting before its end (a
    chunk is 96 hops of 512 samples at 22000 Hz, where the file's frames are resampled to)."""
    info = sf.info(str(path))
    samples = math.ceil(info.frames * 22000 / info.samplerate)
    return math.ceil(samples / (96 * 512))


def expected_clip_vectors(files) -> dict[str, np.ndarray]:
    audio, _ = networks(files["model"])
    chunks = {name: extract_audio_embedding_chunks(audio, files["audio"] / name, files["scaler"])[1] for name in CLIPS}
    return {str(files["audio"] / name): unit(z_d[:audio_chunks_of(files["audio"] / name)].mean(0))
            for name, z_d in chunks.items()}


@pytest.mark.slow
def test_index_holds_clip_means_chunks_and_lists_failures(files, built_index):
    manifest = json.loads((built_index / "index.json").read_text())
    listed = json.loads((built_index / "files.json").read_text())
    assert sorted(listed) == sorted(str(files["audio"] / n) for n in CLIPS)
    assert manifest["n_clips"] == len(CLIPS) and manifest["model"]["epoch"] == 3
    failures = (built_index / "chunks" / "failures.tsv").read_text().splitlines()
    assert len(failures) == 2 and failures[1].startswith(str(files["audio"] / "broken.wav"))
    clips, chunks = np.load(built_index / "clips.npy"), np.load(built_index / "chunks.npy")
    offsets = np.load(built_index / "offsets.npy")
    samples = np.load(built_index / "samples.npy")
    audio, _ = networks(files["model"])
    for row, path in enumerate(listed):
        _, z_d = extract_audio_embedding_chunks(audio, path, files["scaler"])
        kept = audio_chunks_of(path)
        assert len(z_d) == 4 and offsets[row + 1] - offsets[row] == kept  # the padding's chunks are not indexed
        assert samples[row] == math.ceil(sf.info(path).frames * 22000 / sf.info(path).samplerate)
        np.testing.assert_allclose(clips[row], unit(z_d[:kept].mean(0)), atol=1e-5)
        np.testing.assert_allclose(chunks[offsets[row]:offsets[row + 1]], unit(z_d[:kept]), atol=1e-5)
        if CLIPS[str(Path(path).relative_to(files["audio"]))][2] < 96 * 512 / 22000:
            np.testing.assert_allclose(clips[row], unit(z_d[0]), atol=1e-5)  # under one chunk: its first chunk's


@pytest.mark.slow
def test_every_reported_time_lies_inside_its_clip(capsys, files, built_index):
    for query in (["--tags", "dog"], ["--tags", "piano drum"], ["--audio", files["audio"] / "c.wav"],
                  ["--audio", files["audio"] / "b.flac"]):
        code, out, err = run(capsys, "query", "--model", files["model"], "--id2tag", files["id2tag"], "--scaler",
                             files["scaler"], "--index", built_index, *query, "--json")
        assert code == 0, err
        hits = json.loads(out)
        assert len(hits) == len(CLIPS)
        for hit in hits:
            assert hit["duration"] == pytest.approx(CLIPS[str(Path(hit["path"]).relative_to(files["audio"]))][2], abs=1e-3)
            assert 0 <= hit["at"] < hit["duration"]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.references: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "audio":
            self.sources.append(values["src"] or "")
        self.references += [v or "" for k, v in attrs if k in ("href", "src") and tag != "audio"]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.mark.slow
def test_results_page_is_self_contained_and_every_audio_link_resolves(capsys, files, built_index, tmp_path):
    page = tmp_path / "pages" / "dog bark #1.html"
    page.parent.mkdir()
    code, out, err = run(capsys, "query", "--model", files["model"], "--id2tag", files["id2tag"], "--index",
                         built_index, "--tags", "dog bark", "--top", "3", "--json", "--html", page)
    assert code == 0, err
    hits = json.loads(out)
    parsed = _Page()
    parsed.feed(page.read_text(encoding="utf-8"))
    assert parsed.references == []  # no style sheet, script or picture to fetch: it opens offline
    assert len(parsed.sources) == 3
    for source, hit in zip(parsed.sources, hits):
        link, _, fragment = source.partition("#")
        assert not urlsplit(link).scheme and not link.startswith("/")  # relative
        assert (page.parent / unquote(link)).resolve() == Path(hit["path"]).resolve()
        assert float(fragment.removeprefix("t=")) == pytest.approx(hit["at"], abs=0.01)
    text = " ".join(parsed.text)
    for hit in hits:
        assert Path(hit["path"]).name in text and f"{hit['score']:.4f}" in text and f"{hit['at']:.2f} s" in text
    assert sum(word in text for word in WORDS) >= 3  # each clip's top tags


@pytest.mark.slow
def test_tag_query_top_clip_and_scores_agree(capsys, files, built_index):
    _, tag_encoder = networks(files["model"])
    multi_hot = torch.zeros(1, len(WORDS))
    multi_hot[0, [WORDS.index("dog"), WORDS.index("bark")]] = 1
    query = unit(tag_encoder(multi_hot)[1])[0]
    expected = {path: float(v @ query) for path, v in expected_clip_vectors(files).items()}
    code, out, err = run(capsys, "query", "--model", files["model"], "--id2tag", files["id2tag"], "--index",
                         built_index, "--tags", "Dogs barks", "--json", "--top", "3")
    assert code == 0, err
    hits = json.loads(out)
    assert hits[0]["path"] == max(expected, key=expected.get)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True) and len(hits) == 3
    for hit in hits:
        assert hit["score"] == pytest.approx(expected[hit["path"]], abs=1e-4)
    # The notebook API gives the same ranking, and names the unknown word.
    from coala.search import load_pair, open_index, query_tags

    pair = load_pair(files["model"], id2tag=files["id2tag"])
    found, unknown = query_tags(open_index(built_index, pair), pair, "Dogs barks zebra", top=3)
    assert [h.path for h in found] == [h["path"] for h in hits] and unknown == ["zebra"]


def test_unknown_words_are_reported_and_the_table_shows_where(capsys, files, built_index):
    code, out, err = run(capsys, "query", "--model", files["model"], "--id2tag", files["id2tag"], "--index",
                         built_index, "--tags", "the zebra Pianos 440hz")
    assert code == 0, err
    assert "zebra" in err and "440hz" in err and "the" in err and "piano" not in err.split("ignored:")[1].split("(")[0]
    lines = out.strip().splitlines()
    assert lines[0].split() == ["rank", "score", "at", "of", "path"] and len(lines) == 1 + len(CLIPS)
    assert all(line.split()[2].endswith("s") for line in lines[1:])


def test_audio_query_ranks_the_clip_itself_first(capsys, files, built_index):
    clip = files["audio"] / "c.wav"
    code, out, err = run(capsys, "query", "--model", files["model"], "--id2tag", files["id2tag"], "--index",
                         built_index, "--audio", clip, "--scaler", files["scaler"], "--json")
    assert code == 0, err
    hits = json.loads(out)
    assert hits[0]["path"] == str(clip) and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_tag_command_top_tag_agrees(capsys, files):
    _, tag_encoder = networks(files["model"])
    tag_vectors = unit(tag_encoder(torch.eye(len(WORDS)))[1])
    names = ["b.flac", "c.wav"]
    code, out, err = run(capsys, "tag", "--model", files["model"], "--id2tag", files["id2tag"], "--scaler",
                         files["scaler"], "--json", "--top", "4", *(files["audio"] / n for n in names))
    assert code == 0, err
    ranked = json.loads(out)
    vectors = expected_clip_vectors(files)
    for name in names:
        path = str(files["audio"] / name)
        scores = tag_vectors @ vectors[path]
        assert [t["tag"] for t in ranked[path]] == [WORDS[i] for i in np.argsort(-scores)[:4]]
        assert ranked[path][0]["score"] == pytest.approx(scores.max(), abs=1e-4)


def _maps(scores: np.ndarray, relevant: np.ndarray) -> float:
    return float(np.mean([average_precision_score(relevant[i], scores[i]) for i in range(len(scores))
                          if relevant[i].any()]))


@pytest.mark.slow
def test_evaluate_agrees_with_sklearn_on_the_definitions(capsys, files, tmp_path):
    out = tmp_path / "search.json"
    code, stdout, err = run(capsys, "evaluate", "--model", files["model"], "--dataset", files["val"], "--id2tag",
                            files["id2tag"], "--cnn", files["cnn"], "--out", out, "--plot", tmp_path / "pr.png")
    assert code == 0, err
    metrics = json.loads(out.read_text())["pair_3"]
    audio, tags = networks(files["model"])
    with h5py.File(files["val"], "r") as f:
        patches = torch.from_numpy(f["dataset/data"][...]).clamp(min=0).unsqueeze(1)
        relevant = f["dataset/label"][...] > 0
    with torch.no_grad():
        scores = unit(audio(patches)[1]) @ unit(tags(torch.eye(len(WORDS)))[1]).T
        cnn = CNN(n_tags=len(WORDS))
        cnn.load_state_dict(torch.load(files["cnn"], weights_only=True))
        probabilities = cnn.eval()(patches)[1].numpy()
    assert metrics["tag_to_audio_map"] == pytest.approx(_maps(scores.T, relevant.T), abs=2e-3)
    assert metrics["audio_to_tag_map"] == pytest.approx(_maps(scores, relevant), abs=2e-3)
    assert metrics["cnn_audio_to_tag_map"] == pytest.approx(_maps(probabilities, relevant), abs=2e-3)
    assert metrics["tag_to_audio_n_queries"] == len(WORDS) - 1 and metrics["audio_to_tag_n_queries"] == relevant.any(1).sum()
    top10 = np.argsort(-scores.T, axis=1, kind="stable")[:, :10]
    hits = np.take_along_axis(relevant.T, top10, axis=1).sum(1)
    kept = relevant.T.any(1)
    assert metrics["tag_to_audio_p@10"] == pytest.approx(np.mean(hits[kept] / 10), abs=1e-9)
    assert metrics["tag_to_audio_r@10"] == pytest.approx(np.mean(hits[kept] / relevant.T.sum(1)[kept]), abs=1e-9)
    assert "tag -> audio" in stdout and "CNN baseline" in stdout and (tmp_path / "pr.png").stat().st_size > 0
    code, stdout, err = run(capsys, "evaluate", "--model", files["model"], "--dataset", files["val"], "--id2tag",
                            files["id2tag"], "--cnn", files["cnn"], "--json")
    assert code == 0 and json.loads(stdout)["pair_3"] == pytest.approx(metrics), err  # the table's data, as JSON


def test_expected_random_ap_is_the_mean_over_all_rankings():
    for n, r in ((1, 1), (4, 1), (5, 2), (6, 3), (6, 6)):
        aps = [average_precision_score(np.isin(np.arange(n), positions), -np.arange(n))
               for positions in itertools.combinations(range(n), r)]
        assert expected_random_ap(n, r) == pytest.approx(np.mean(aps), abs=1e-12)


@pytest.mark.slow
def test_index_from_projection_embeddings_equals_the_direct_index(capsys, files, built_index, tmp_path):
    embeddings = tmp_path / "zd"
    checkpoint = files["model"] / "audio_encoder_epoch_3.pt"
    assert encode_main(["--model", str(checkpoint), "--scaler", str(files["scaler"]), "--input",
                        str(files["audio"]), "--output", str(embeddings), "--projection", "--quiet"]) == 1
    code, _, err = run(capsys, "index", "--model", files["model"], "--id2tag", files["id2tag"], "--from-embeddings",
                       embeddings, "--index", tmp_path / "index")
    assert code == 2
    _one_error_line(err, "does not record its audio file", "--audio-dir")
    code, _, err = run(capsys, "index", "--model", files["model"], "--id2tag", files["id2tag"], "--from-embeddings",
                       embeddings, "--audio-dir", files["audio"], "--index", tmp_path / "index")
    assert code == 0, err
    direct = dict(zip(json.loads((built_index / "files.json").read_text()), np.load(built_index / "clips.npy")))
    rebuilt = json.loads((tmp_path / "index" / "files.json").read_text())
    assert sorted(rebuilt) == sorted(direct)  # the clips' audio files, as the direct index lists them
    for path, vector in zip(rebuilt, np.load(tmp_path / "index" / "clips.npy")):
        np.testing.assert_allclose(vector, direct[path], atol=1e-6)
    # Shards record each clip's audio file: no --audio-dir needed.
    sharded = tmp_path / "zd_shards"
    assert encode_main(["--model", str(checkpoint), "--scaler", str(files["scaler"]), "--input", str(files["audio"]),
                        "--output", str(sharded), "--projection", "--layout", "shards", "--quiet"]) == 1
    code, _, err = run(capsys, "index", "--model", files["model"], "--id2tag", files["id2tag"], "--from-embeddings",
                       sharded, "--index", tmp_path / "index_shards")
    assert code == 0, err
    assert np.allclose(np.load(tmp_path / "index_shards" / "samples.npy"), np.load(tmp_path / "index" / "samples.npy"))
    # z of an earlier run in the same folder must not be taken for z_d, nor z_d of another encoder.
    plain = tmp_path / "z"
    assert encode_main(["--model", str(checkpoint), "--scaler", str(files["scaler"]), "--input",
                        str(files["audio"] / "c.wav"), "--output", str(plain), "--quiet"]) == 0
    assert encode_main(["--model", str(checkpoint), "--scaler", str(files["scaler"]), "--input",
                        str(files["audio"] / "c.wav"), "--output", str(plain), "--projection", "--quiet"]) == 2
    code, _, err = run(capsys, "index", "--model", files["other"], "--id2tag", files["id2tag"], "--from-embeddings",
                       embeddings, "--index", tmp_path / "index2")
    assert code == 2 and "not of the audio encoder" in err


def test_rerun_resumes_from_the_extracted_chunks(capsys, files, built_index):
    code, out, err = run(capsys, "index", "--model", files["model"], "--id2tag", files["id2tag"], "--scaler",
                         files["scaler"], "--input", files["audio"], "--index", built_index, "--quiet")
    assert code == 1 and out.startswith(f"done 0, skipped {len(CLIPS)}, failed 1"), err


def _one_error_line(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], err


@pytest.mark.slow
def test_bad_input_gets_one_line(capsys, files, built_index, tmp_path):
    base = ["--id2tag", files["id2tag"]]

    def query(index: Path, model: Path = files["model"], tags: str = "dog") -> tuple[int, str, str]:
        return run(capsys, "query", "--model", model, *base, "--index", index, "--tags", tags)

    code, _, err = query(built_index, tags="the zebras")
    assert code == 2
    _one_error_line(err, "is in the model's vocabulary", "zebra")

    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = query(empty)
    assert code == 2
    _one_error_line(err, str(empty), "index.json")

    code, _, err = query(built_index, model=files["other"])
    assert code == 2
    _one_error_line(err, "built with the model", str(files["model"]), str(files["other"]))

    damaged = tmp_path / "damaged"
    shutil.copytree(built_index, damaged, ignore=shutil.ignore_patterns("chunks"))
    data = (damaged / "clips.npy").read_bytes()
    (damaged / "clips.npy").write_bytes(data[:len(data) // 2])
    code, _, err = query(damaged)
    assert code == 2
    _one_error_line(err, str(damaged / "clips.npy"), "damaged")
    (damaged / "index.json").write_text("{not json")
    code, _, err = query(damaged)
    assert code == 2
    _one_error_line(err, str(damaged / "index.json"), "damaged")

    lonely = tmp_path / "audio_only"
    lonely.mkdir()
    shutil.copy(files["model"] / "audio_encoder_epoch_3.pt", lonely)
    code, _, err = run(capsys, "tag", "--model", lonely, *base, files["audio"] / "c.wav")
    assert code == 2
    _one_error_line(err, str(lonely / "tag_encoder_epoch_3.pt"), "not found")


def test_blockwise_search_equals_ranking_everything(files, built_index, monkeypatch):
    """Blocks smaller than the index (top-k merged across them) give the ranking of one whole product."""
    from coala.search import index as search_index

    index = search_index.open_index(built_index)
    vector = np.asarray(index.clips[2] + 0.5 * index.clips[0])
    vector /= np.linalg.norm(vector)
    everything = np.argsort(-(np.asarray(index.clips) @ vector), kind="stable")
    monkeypatch.setattr(search_index, "SEARCH_BLOCK", 2)
    for top in (1, 3, len(CLIPS) + 2):
        assert [hit.clip for hit in index.search(vector, top)] == list(everything[:top])


def test_demo_untrained_pair_is_seeded_and_described_by_the_training_files_record(files, tmp_path):
    import h5py

    from coala.data.hdf5 import write_provenance
    from coala.demo.data import UNTRAINED_ENCODER, write_untrained_encoder, write_untrained_model
    from coala.models.loading import AUDIO, TAGS, load_model
    from tiny_release import write_release_file

    train = write_release_file(tmp_path / "train", 4, n_tags=len(WORDS))
    scaler = load_scaler(files["scaler"])
    with h5py.File(train, "a") as f:
        write_provenance(f["dataset"], scaler, WORDS)
    for folder in ("a", "b"):
        write_untrained_encoder(tmp_path / folder / UNTRAINED_ENCODER, seed=0)
        write_untrained_model(tmp_path / folder, train, seed=0)
    first, second = (load_model(tmp_path / f / "untrained", (AUDIO, TAGS)) for f in ("a", "b"))
    assert first.tag_encoder.tag_encoder[0].in_features == len(WORDS)
    assert first.vocabulary == dict(enumerate(WORDS)) and first.scaler.same_as(scaler) and first.epoch == 0
    assert first.identity((AUDIO, TAGS)) | {"source": ""} == second.identity((AUDIO, TAGS)) | {"source": ""}
    bare = tmp_path / "bare"
    write_release_file(bare, 4, n_tags=len(WORDS))
    with pytest.raises(DemoDataError, match="does not record its scaler"):
        write_untrained_model(tmp_path / "c", bare, seed=0)


def test_audio_dir_names_each_clip_as_encode_named_it(tmp_path: Path) -> None:
    """``--audio-dir``: the file encode.py named the clip after, by its whole stem ("a" is a.wav even beside
    a.b.wav); a clip without one, or with two (a.wav and a.flac), is one error naming it."""
    audio = tmp_path / "audio"
    for name in ("a.wav", "a.b.wav", "sub/c.wav", "d.wav", "d.flac", ".hidden.wav"):
        (audio / name).parent.mkdir(parents=True, exist_ok=True)
        (audio / name).write_bytes(b"")
    embeddings = tmp_path / "zd"
    sources = index_module._audio_by_clip(audio, embeddings)
    for clip, name in (("a", "a.wav"), ("a.b", "a.b.wav"), ("sub/c", "sub/c.wav")):
        assert index_module._audio_file(None, clip, audio, sources) == audio / name
    for clip, what in (("d", "2 audio files (d.flac, d.wav)"), ("e", "no audio file"), (".hidden", "no audio file")):
        with pytest.raises(SearchError, match=re.escape(f"--audio-dir {audio}: {what} for the embeddings of {clip}")):
            index_module._audio_file(None, clip, audio, sources)
