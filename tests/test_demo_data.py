"""The demo's synthetic data: determinism, exact dataset layouts, realistic tag noise, learnable classes."""
from __future__ import annotations

import collections
import csv
import json
import re
from pathlib import Path

import inflect
import numpy as np
import pytest
import soundfile as sf

import make_demo_data
from coala.core.frontend import load_audio, log_mel
from coala.demo import corpus as tc
from coala.demo import downstream as ds
from coala.demo.data import MANIFEST, UNTRAINED_ENCODER, DemoDataSpec, write_demo_data
from coala.core.errors import DemoDataError
from coala.models.checkpoints import load_checkpoint
from models_t1000 import AudioEncoder

US8K_COLUMNS = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
NSYNTH_NAME = re.compile(r"^(?P<family>[a-z_]+?)_(?P<source>acoustic|electronic|synthetic)_(?P<inst>\d{3})-(?P<pitch>\d{3})-(?P<vel>\d{3})\.wav$")
US8K_PER_CLASS = 10  # one clip per class in every fold


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo_sets")
    ds.write_urbansound8k(root, seed=0, per_class=US8K_PER_CLASS)
    ds.write_gtzan(root, seed=0, per_genre=4, seconds=2.0)
    ds.write_nsynth(root, root / "json" / "nsynth_selected_sounds_per_class.json", seed=0,
                    train_per_family=6, test_per_family=3)
    return root


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_corpus_is_deterministic_from_the_seed(tmp_path: Path) -> None:
    tc.write_corpus(tmp_path / "a", 12, seed=5)
    tc.write_corpus(tmp_path / "b", 12, seed=5)
    tc.write_corpus(tmp_path / "c", 12, seed=6)
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert a == b
    assert a["tags.csv"] != c["tags.csv"] and a.keys() == c.keys()


def test_corpus_layout_is_the_dataset_builders_input(tmp_path: Path) -> None:
    specs = tc.write_corpus(tmp_path, 24, seed=0)
    with open(tmp_path / "tags.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "tags"]
    assert [int(r[0]) for r in rows[1:]] == [s.id for s in specs]
    assert all(r[1].strip() and "  " not in r[1] for r in rows[1:])
    assert sorted(p.name for p in (tmp_path / "audio").iterdir()) == sorted(f"{s.id}.wav" for s in specs)
    infos = {s.id: sf.info(str(tmp_path / "audio" / f"{s.id}.wav")) for s in specs}
    assert {i.samplerate for i in infos.values()} == set(tc.SAMPLE_RATES)
    assert all(infos[s.id].channels == (2 if s.stereo else 1) for s in specs)
    assert all(0.5 <= i.duration <= 3.1 for i in infos.values())
    assert all(np.abs(load_audio(tmp_path / "audio" / f"{s.id}.wav")).max() > 0.05 for s in specs[:6])


def _preprocess(tags: str, singular) -> set[str]:
    """The paper's tag preprocessing (reference README), with a few stop words for the check."""
    out = set()
    for token in tags.split(" "):
        if token.isalpha() and token.lower() not in tc.STOP_WORDS and len(token) > 1:
            word = token.lower()
            out.add(singular(word) or word)
    return out


def test_tags_carry_realistic_noise_and_give_a_usable_vocabulary() -> None:
    engine = inflect.engine()
    n = 800
    tags = []
    for i in range(n):
        rng = tc.clip_rng(0, tc.CORPUS_STREAM, i)
        spec = tc.draw_spec(i, rng)
        tags.append((spec, tc.noisy_tags(spec, rng, engine.plural_noun)))
    words = collections.Counter(w for _, t in tags for w in t)
    assert any(w.endswith("s") and w[:-1] in tc.NOUNS for w in words), "plurals"
    assert any(w[0].isupper() for w in words), "capitalized tags"
    assert sum(words[w] for w in tc.STOP_WORDS) > n / 2, "stop words"
    assert any(w in tc.REJECTED_TOKENS for w in words), "tokens the preprocessing rejects"
    synonyms = {s for concept, options in tc.SYNONYMS.items() for s in options[1:]}
    assert sum(words[w] for w in synonyms) > n / 2, "synonyms"
    missing = sum(not set(tc.SYNONYMS[s.source]) & {w.lower() for w in t} for s, t in tags)
    assert 0.1 * n < missing < 0.6 * n, "source tag missing on some clips, not on most"
    known = {w for options in tc.SYNONYMS.values() for w in options} | {w for w, _ in tc.GENERIC}
    known |= set(tc.STOP_WORDS) | set(tc.RARE_WORDS) | set(tc.REJECTED_TOKENS) | tc.NOUNS
    typos = {w for w in words if w.lower() not in known and engine.singular_noun(w.lower()) not in known}
    assert typos, "typos"

    document_frequency = collections.Counter(w for _, t in tags for w in _preprocess(" ".join(t), engine.singular_noun))
    vocabulary = {w for w, c in document_frequency.items() if 10 <= c <= 0.7 * n}
    assert {"tone", "noise", "chirp", "click", "pluck", "drum", "low", "high", "rising", "falling"} <= vocabulary
    assert "sound" not in vocabulary, "a word on most clips is dropped by the upper frequency bound"
    assert 30 <= len(vocabulary) <= 150


@pytest.mark.slow
def test_urbansound8k_layout_and_balance(sets: Path) -> None:
    root = sets / "UrbanSound8K"
    with open(root / "metadata" / "UrbanSound8K.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == US8K_COLUMNS
        rows = list(reader)
    assert len(rows) == US8K_PER_CLASS * len(ds.US8K_CLASSES)
    for r in rows:
        assert (root / "audio" / f"fold{r['fold']}" / r["slice_file_name"]).is_file()
        assert ds.US8K_CLASSES[int(r["classID"])] == r["class"]
        assert r["slice_file_name"].startswith(f"{r['fsID']}-{r['classID']}-")
        assert float(r["end"]) > float(r["start"]) and r["salience"] in ("1", "2")
    per_fold = collections.Counter((int(r["fold"]), r["class"]) for r in rows)
    assert set(per_fold.values()) == {1} and len(per_fold) == 10 * len(ds.US8K_CLASSES)
    assert sorted(p.name for p in (root / "audio").iterdir()) == sorted(f"fold{k}" for k in range(1, 11))


@pytest.mark.slow
def test_gtzan_layout(sets: Path) -> None:
    root = sets / "GTZAN"
    train = (root / "train_filtered.txt").read_text().splitlines()
    test = (root / "test_filtered.txt").read_text().splitlines()
    assert not set(train) & set(test)
    for line in train + test:
        genre, name = line.split("/")
        assert re.fullmatch(rf"{genre}\.\d{{5}}\.wav", name) and (root / "genres" / line).is_file()
    assert collections.Counter(l.split("/")[0] for l in train + test) == {g: 3 for g in ds.GTZAN_GENRES}
    assert len({l.split("/")[0] for l in test}) == len(ds.GTZAN_GENRES)
    on_disk = {str(p.relative_to(root / "genres")) for p in (root / "genres").rglob("*.wav")}
    assert len(on_disk - set(train + test)) == len(ds.GTZAN_GENRES), "one faulty file per genre left out"
    assert sf.info(str(root / "genres" / train[0])).samplerate == 22050


@pytest.mark.slow
def test_nsynth_layout_and_selection(sets: Path) -> None:
    train_dir, test_dir = sets / "nsynth" / "nsynth-train" / "audio_selected", sets / "nsynth" / "nsynth-test" / "audio"
    parsed = {}
    for part, folder in (("train", train_dir), ("test", test_dir)):
        matches = [NSYNTH_NAME.match(p.name) for p in folder.iterdir()]
        assert all(matches)
        parsed[part] = matches
        assert all(int(m["vel"]) in ds.NSYNTH_VELOCITIES for m in matches)
    assert collections.Counter(m["family"] for m in parsed["test"]) == {f: 3 for f in ds.NSYNTH_FAMILIES}
    selection = json.loads((sets / "json" / "nsynth_selected_sounds_per_class.json").read_text())
    assert set(selection) == set(ds.NSYNTH_FAMILIES) - {"synth_lead"}
    assert sorted(s for stems in selection.values() for s in stems) == sorted(p.stem for p in train_dir.iterdir())
    assert all(s.startswith(f"{family}_") for family, stems in selection.items() for s in stems)
    instruments = {part: {(m["family"], m["inst"]) for m in ms} for part, ms in parsed.items()}
    assert not instruments["train"] & instruments["test"], "test instruments are unseen, as in NSynth"
    info = sf.info(str(next(test_dir.iterdir())))
    assert (info.samplerate, info.frames) == (ds.NSYNTH_SR, int(ds.NSYNTH_SR * ds.NSYNTH_SECONDS))


def _mean_log_mel(path: Path) -> np.ndarray:
    spec = log_mel(load_audio(path))
    return np.concatenate([spec.mean(axis=1), spec.std(axis=1)])


def _nearest_centroid(x_train, y_train, x_test, y_test) -> float:
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mu) / sd, (x_test - mu) / sd
    classes = sorted(set(y_train))
    centroids = np.stack([x_train[y_train == c].mean(0) for c in classes])
    predicted = np.array(classes)[((x_test[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)]
    return float((predicted == y_test).mean())


@pytest.mark.slow
def test_classes_are_learnable_but_not_from_one_feature(sets: Path) -> None:
    with open(sets / "UrbanSound8K" / "metadata" / "UrbanSound8K.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.stack([_mean_log_mel(sets / "UrbanSound8K" / "audio" / f"fold{r['fold']}" / r["slice_file_name"]) for r in rows])
    y = np.array([r["class"] for r in rows])
    train = np.array([int(r["fold"]) <= 7 for r in rows])
    accuracy = _nearest_centroid(x[train], y[train], x[~train], y[~train])
    best_single = max(_nearest_centroid(x[train][:, [j]], y[train], x[~train][:, [j]], y[~train]) for j in range(x.shape[1]))
    assert 0.4 <= accuracy < 1.0, f"US8K-like accuracy {accuracy} (chance 0.1)"
    assert best_single < accuracy, "no single band separates the classes"

    nsynth = sets / "nsynth"
    train_files = sorted((nsynth / "nsynth-train" / "audio_selected").iterdir())
    test_files = [p for p in sorted((nsynth / "nsynth-test" / "audio").iterdir()) if not p.name.startswith("synth_lead")]
    family = lambda p: NSYNTH_NAME.match(p.name)["family"]  # noqa: E731
    accuracy = _nearest_centroid(np.stack([_mean_log_mel(p) for p in train_files]), np.array([family(p) for p in train_files]),
                                 np.stack([_mean_log_mel(p) for p in test_files]), np.array([family(p) for p in test_files]))
    assert 0.2 <= accuracy < 1.0, f"NSynth-like accuracy {accuracy} (chance 0.1)"


@pytest.mark.slow
def test_demo_data_is_reused_and_other_parameters_refused(tmp_path: Path, capsys) -> None:
    spec = DemoDataSpec(n_clips=6, us8k_per_class=1, gtzan_per_genre=1, gtzan_seconds=1.0,
                        nsynth_train_per_family=1, nsynth_test_per_family=1)
    assert write_demo_data(tmp_path, spec, show_progress=False)
    before = _files(tmp_path)
    assert json.loads((tmp_path / MANIFEST).read_text())["n_clips"] == 6
    untrained = load_checkpoint(tmp_path / UNTRAINED_ENCODER, AudioEncoder)
    assert float(untrained.state_dict()["audio_encoder.0.weight"].abs().sum()) > 0
    assert not write_demo_data(tmp_path, spec, show_progress=False)
    assert _files(tmp_path) == before
    with pytest.raises(DemoDataError, match="seed 0 \\(asked 1\\)"):
        write_demo_data(tmp_path, DemoDataSpec(**{**spec.__dict__, "seed": 1}), show_progress=False)
    assert make_demo_data.main(["--out", str(tmp_path), "--seed", "2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path / MANIFEST}") and "\n" not in err
    assert _files(tmp_path) == before
