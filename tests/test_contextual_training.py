"""The contextual model as a kind of this project (issue 27, phase 2): configured, trained, resumed
bit-identically with the same word vectors, loaded from its run folder with them, and searched with a
word that was never a tag; COALA's kinds keep their records.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch

import analyse
from coala.core.errors import CheckpointError, ConfigError, SearchError, StateError, VocabularyError
from coala.core.frontend import PATCH_SHAPE, MinMaxScaler
from coala.core.model import ContextualAE, ModelDims, TagEncoder, contrastive_loss
from coala.data import words as W
from coala.data.hdf5 import GROUP, read_provenance, write_provenance
from coala.data.hold_out import hold_out_tags
from coala.models.loading import load_model
from coala.models.record import WORD_VECTORS_FILE, read_record
from coala.search.metrics import evaluate_release, held_out_tags, metrics_table
from coala.search.model import ModelPair
from coala.train.config import parse_config
from coala.train.loop import train
from tiny_release import paper_config, write_corpus

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["dog", "bark", "cat", "meow", "rain", "water", "drip", "thunder", "bird", "chirp", "song", "wind"]
PARTS = ("audio_encoder", "audio_decoder", "tag_encoder")


def _config(tmp: Path, name: str, **overrides) -> dict:
    return paper_config(tmp, name, model="contextual", tag_loss_weight=0, word_dim=8, attention_heads=2,
                        **overrides)


@pytest.fixture()
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny release layout with tag words (FastText needs words, not ``tag17``): 2 batches of 4 an epoch."""
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path, n_train=8, n_val=4, n_tags=len(WORDS))
    (tmp_path / "id2token_tiny.json").write_text(json.dumps(dict(enumerate(WORDS))))
    return tmp_path


# --- config -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"tag_loss_weight": 5}, "'tag_loss_weight' must be 0 for the contextual model"),
    ({"contrastive_loss_weight": 0}, "'contrastive_loss_weight' must be above 0 for the contextual model"),
    ({"word_dim": 0}, "key 'word_dim' must be between 1 and 4096, got 0"),
    ({"attention_heads": 1000}, "key 'attention_heads' must be between 1 and 64, got 1000"),
    ({"word_vectors": "no/such/file.vec"}, "key 'word_vectors' must be \"\" (FastText trained on the training tags)"),
    ({"model": "dual_ae", "tag_loss_weight": 5}, "key 'word_dim' is for \"model\": \"contextual\", not \"dual_ae\""),
])
def test_bad_contextual_settings_are_one_line_before_any_work(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**_config(tmp_path, "x"), **change})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_shipped_contextual_configs_are_the_authors_objective() -> None:
    root = Path(__file__).resolve().parents[1] / "configs"
    for name in ("contextual.json", "demo_contextual.json"):
        cfg = parse_config(json.loads((root / name).read_text()))
        assert (cfg.model, cfg.audio_loss_weight, cfg.tag_loss_weight, cfg.contrastive_loss_weight) == ("contextual", 5, 0, 10)
        assert (cfg.word_vectors, cfg.word_dim, cfg.attention_heads) == ("", 128, 4)


# --- training and resuming ----------------------------------------------------------------------------

def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_trains_resumes_bit_identically_and_loads_with_its_word_vectors(corpus: Path) -> None:
    train(parse_config(_config(corpus, "ctx", epochs=1)))
    folder = corpus / "saved_models" / "ctx"
    vectors_sha = _sha(folder / WORD_VECTORS_FILE)
    train(parse_config(_config(corpus, "ctx", epochs=2)))  # resumes: the word vectors are read, not made again
    assert _sha(folder / WORD_VECTORS_FILE) == vectors_sha
    train(parse_config(_config(corpus, "straight", epochs=2, save_model_every=2)))
    for part in PARTS:
        resumed = torch.load(folder / f"{part}_epoch_2.pt", weights_only=True)
        straight = torch.load(corpus / "saved_models" / "straight" / f"{part}_epoch_2.pt", weights_only=True)
        assert resumed.keys() == straight.keys() and all(torch.equal(resumed[k], straight[k]) for k in resumed), part
    lines = [json.loads(line) for line in (corpus / "runs" / "ctx" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2] and "train_contrastive" in lines[0] and "train_tag" not in lines[0]
    assert (corpus / "runs" / "ctx" / "examples_epoch_2.png").is_file()

    record = read_record(folder)
    assert (record.kind, record.dims.word_dim, record.dims.attention_heads, record.parts) == ("contextual", 8, 2, list(PARTS))
    assert record.extra["word_vectors"] == {"file": WORD_VECTORS_FILE, "sha256": vectors_sha}
    loaded = load_model(folder, ("audio_encoder", "tag_encoder"))
    table = torch.from_numpy(loaded.word_vectors.matrix(WORDS))
    assert torch.equal(loaded.tag_encoder.words, table)  # the table trained with is the saved vectors' table
    assert loaded.word_vectors.subwords is not None and loaded.word_vectors.vector("barking").any()
    assert load_model(folder).word_vectors is None  # audio only: the word vectors are not read
    # The analysis maps draw z_d, the space both encoders share (the tag z has the word vectors' width).
    maps = ["maps", "--model", str(folder), "--dataset", str(corpus / "spec_tags_tiny_val"), "--out", "maps"]
    assert analyse.main([*maps, "--clips", "4"]) == 0
    assert json.loads((corpus / "maps" / "maps.json").read_text())["output"] == "z_d"

    # The tag encoder's fingerprint covers the word vectors; another file is refused by name.
    other = W.train_tag_vectors([WORDS], W.FastTextParams(dim=8, epochs=5, seed=1)).subset(WORDS)
    other.save(folder / WORD_VECTORS_FILE)
    with pytest.raises(CheckpointError, match="word_vectors.safetensors: not the word vectors .* records"):
        load_model(folder, ("audio_encoder", "tag_encoder"))


@pytest.mark.slow
def test_torchrun_two_processes_train_with_rank_zeros_word_vectors(corpus: Path) -> None:
    """Under torchrun rank 0 makes the word vectors and every process trains with its table: the saved tag
    encoder holds the file's table, and a resume under torchrun reads the file instead of making it again."""
    folder = corpus / "saved_models" / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for epochs in (1, 2):
        path = corpus / f"ddp_{epochs}.json"
        path.write_text(json.dumps(_config(corpus, "ddp", epochs=epochs, batch_size=2)))
        result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                                 str(ROOT / "train_dual_ae.py"), str(path)], capture_output=True, text=True,
                                cwd=corpus, env=env, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "2 process(es) on cpu" in result.stderr
        if epochs == 1:
            made = _sha(folder / WORD_VECTORS_FILE)
    assert _sha(folder / WORD_VECTORS_FILE) == made
    assert "resuming after epoch 1" in result.stderr
    loaded = load_model(folder, ("audio_encoder", "tag_encoder"))
    assert loaded.epoch == 2
    assert torch.equal(loaded.tag_encoder.words, torch.from_numpy(loaded.word_vectors.matrix(WORDS)))


def test_resume_checks_the_word_vectors_against_the_saved_weights(corpus: Path) -> None:
    train(parse_config(_config(corpus, "ctx", epochs=1)))
    folder = corpus / "saved_models" / "ctx"
    made = _sha(folder / WORD_VECTORS_FILE)
    (folder / WORD_VECTORS_FILE).unlink()
    train(parse_config(_config(corpus, "ctx", epochs=2)))  # made again, deterministically: the same table
    assert _sha(folder / WORD_VECTORS_FILE) == made
    W.train_tag_vectors([WORDS], W.FastTextParams(dim=8, epochs=5, seed=1)).subset(WORDS).save(folder / WORD_VECTORS_FILE)
    with pytest.raises(StateError, match="not the word vectors the saved weights were trained with"):
        train(parse_config(_config(corpus, "ctx", epochs=3)))
    with pytest.raises(StateError, match="word_dim = 8 but the config says 16"):
        train(parse_config({**_config(corpus, "ctx", epochs=3), "word_dim": 16}))


def test_held_out_files_keep_clips_split_and_scaler(tmp_path: Path) -> None:
    scaler = MinMaxScaler.fit(np.stack([np.zeros(PATCH_SHAPE[1]), np.ones(PATCH_SHAPE[1])]))
    labels = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]], dtype=np.int16)
    for name in ("train", "train_val"):
        _write_file(tmp_path / name, np.zeros((3, *PATCH_SHAPE), np.float32), labels, ["dog", "bark", "rain"], scaler)
    targets = [tmp_path / "held", tmp_path / "held_val"]
    report = hold_out_tags([tmp_path / "train", tmp_path / "train_val"], targets, ["bark"])
    assert report["tags_kept"] == 2 and list(report["patches"].values()) == [2, 2]  # clip 1 had only "bark"
    with h5py.File(targets[0]) as f:
        assert f[GROUP]["label"][...].tolist() == [[1, 0], [0, 1]] and f[GROUP]["id"][...].ravel().tolist() == [0, 2]
    kept_scaler, kept_vocabulary = read_provenance(targets[0])
    assert kept_vocabulary == ["dog", "rain"] and kept_scaler.same_as(scaler)
    with pytest.raises(VocabularyError, match=r"held-out tags \['barking'\] are not in its vocabulary"):
        hold_out_tags([tmp_path / "train", tmp_path / "train_val"], targets, ["barking"])


# --- search with a word that was never a tag ---------------------------------------------------------

# Three concepts; the training tags never hold "clicking", which shares its stem with "click".
CONCEPTS = [["click", "tick", "clack"], ["pluck", "string", "guitar"], ["rhythmic", "beat", "groove"]]
UNSEEN = "clicking"


def _write_file(path: Path, data: np.ndarray, labels: np.ndarray, vocabulary: list[str], scaler: MinMaxScaler) -> None:
    with h5py.File(path, "w") as f:
        group = f.create_group(GROUP)
        write_provenance(group, scaler, vocabulary)
        group.create_dataset("id", data=np.arange(len(data), dtype=np.int32).reshape(-1, 1))
        group.create_dataset("data", data=data)
        group.create_dataset("label", data=labels)


class ConceptAudio(torch.nn.Module):
    """A stand-in audio encoder: a patch's mean value says its concept, ``z_d`` is that concept's direction."""

    def __init__(self, directions: torch.Tensor) -> None:
        super().__init__()
        self.directions = torch.nn.Parameter(directions, requires_grad=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        concept = (x.mean(dim=(1, 2, 3)) * len(self.directions)).long().clamp(0, len(self.directions) - 1)
        return self.directions[concept], self.directions[concept]


def test_a_word_never_a_tag_ranks_its_concepts_clips_above_random(tmp_path: Path) -> None:
    """The tag side trained contrastively on tag lists without ``clicking``; queried with it, through
    FastText's n-grams, it finds the clicks: mAP well above the random ranking's on the held-out tag."""
    rng = np.random.default_rng(0)
    vocabulary = [w for words in CONCEPTS for w in words]
    clips = [int(c) for c in rng.integers(0, len(CONCEPTS), 400)]
    tag_lists = [list(rng.choice(CONCEPTS[c], size=rng.integers(1, 3), replace=False)) for c in clips]
    vectors = W.train_tag_vectors(tag_lists, W.FastTextParams(dim=16, epochs=100, seed=0)).subset(vocabulary)
    assert UNSEEN not in vectors.index

    torch.manual_seed(0)
    dims = ModelDims(n_tags=len(vocabulary), word_dim=16, attention_heads=2)
    model = ContextualAE(dims=dims)
    model.tag_encoder.set_words(torch.from_numpy(vectors.matrix(vocabulary)))
    directions = torch.nn.functional.normalize(torch.randn(len(CONCEPTS), dims.latent_dim), dim=1)
    multi_hot = torch.zeros(len(clips), len(vocabulary))
    for row, tags in enumerate(tag_lists):
        multi_hot[row, [vocabulary.index(t) for t in tags]] = 1
    optimizer = torch.optim.Adam(model.tag_encoder.parameters(), lr=3e-3)
    for step in range(150):
        batch = torch.from_numpy(rng.choice(len(clips), 32, replace=False))
        loss = contrastive_loss(directions[torch.tensor(clips)[batch]], model.tag_encoder(multi_hot[batch])[1], 0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    # The validation file's vocabulary has the unseen word: its clicks are tagged "clicking".
    val_concepts = np.repeat(np.arange(len(CONCEPTS)), 10)
    data = ((val_concepts + 0.5) / len(CONCEPTS))[:, None, None] * np.ones((1, *PATCH_SHAPE))
    val_words = vocabulary + [UNSEEN]
    labels = np.zeros((len(val_concepts), len(val_words)), dtype=np.int16)
    for row, concept in enumerate(val_concepts):
        labels[row, [val_words.index(w) for w in CONCEPTS[concept][:1]]] = 1
        labels[row, -1] = concept == 0
    scaler = MinMaxScaler.fit(np.stack([np.zeros(PATCH_SHAPE[1]), np.ones(PATCH_SHAPE[1])]))
    _write_file(tmp_path / "val", data.astype(np.float32), labels, val_words, scaler)

    loaded = SimpleNamespace(word_vectors=vectors)
    pair = ModelPair(tmp_path, 1, ConceptAudio(directions).eval(), model.tag_encoder.eval(), dict(enumerate(vocabulary)),
                     {"model": "toy"}, loaded)
    assert held_out_tags(tmp_path / "val", [pair]) == [UNSEEN]
    evaluation = evaluate_release(pair, tmp_path / "val", held_out=[UNSEEN])
    metrics = evaluation.metrics
    assert metrics["held_out_tags"] == {UNSEEN: {"ap": pytest.approx(metrics["held_out_tag_to_audio_map"]),
                                                 "seen_in_training": False}}
    assert metrics["held_out_tag_to_audio_map"] > 0.9 > 2 * metrics["held_out_tag_to_audio_random_map"]
    assert "toy: held-out tags, never seen in its training | tag -> audio" in metrics_table({"toy": metrics})

    vector, known, unknown = pair.words_vector("the Clicking 440hz")  # a query: the same vector as the column's
    assert known == [UNSEEN] and unknown == ["the", "440hz"]
    assert np.allclose(vector, pair.each_word_vectors([UNSEEN])[0], atol=1e-6)
    with pytest.raises(SearchError, match="no word of 'the 440hz' has a word vector"):
        pair.words_vector("the 440hz")


def test_a_coala_pair_cannot_encode_a_word_outside_its_vocabulary(tmp_path: Path) -> None:
    """COALA's tag encoder has an input per vocabulary tag and nothing else: the held-out word is refused."""
    pair = ModelPair(tmp_path, 1, None, TagEncoder(n_tags=3).eval(), {0: "click", 1: "pluck", 2: "beat"},
                     {"model": "coala"}, SimpleNamespace(word_vectors=None))
    assert pair.each_word_vectors(["pluck"]).shape == (1, 1152)
    with pytest.raises(SearchError, match="coala: cannot encode 'clicking': not in its vocabulary of 3 tags$"):
        pair.each_word_vectors(["click", UNSEEN])
