"""The contextual tag encoder (coala/core/contextual.py) and its word vectors (coala/data/words.py).

The encoder: sizes, padding and tag order do not change a clip's output, a clip without tags stays
finite, the multi-hot conversion matches a plain loop. The word vectors: FastText vectors saved without
pickle give gensim's vectors back, for words seen as tags and words never seen; training is
deterministic; word2vec and GloVe files are read, and a word they lack is an error naming it.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from coala.data import words as W
from coala.core.errors import CoalaError, VocabularyError, WordVectorsError
from coala.core.contextual import ContextualTagEncoder, multi_hot_to_words, pad_word_vectors
from coala.core.model import ModelDims, WordTagEncoder

WORD_DIM = 16

# A tiny tag corpus: six concepts of four tags each, clips drawing one to four tags of one concept.
GROUPS = [["dog", "bark", "cat", "meow"], ["rain", "water", "drip", "thunder"], ["bird", "chirp", "song", "wind"],
          ["guitar", "string", "pluck", "bas"], ["drum", "kick", "snare", "beat"], ["engine", "car", "motor", "his"]]
VOCABULARY = [w for g in GROUPS for w in g]
UNSEEN = ["barking", "thunderstorms", "guitarist", "xylophone"]
PARAMS = W.FastTextParams(dim=WORD_DIM, epochs=30, seed=3)


def _corpus(n: int = 300, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [list(rng.choice(GROUPS[rng.integers(len(GROUPS))], size=rng.integers(1, 5), replace=False))
            for _ in range(n)]


@pytest.fixture(scope="module")
def fasttext():
    return W.train_fasttext(_corpus(), PARAMS)


def _encoder(**sizes) -> ContextualTagEncoder:
    torch.manual_seed(0)
    return ContextualTagEncoder(WORD_DIM, **{"n_heads": 4, "latent_dim": 24, **sizes}).eval()


# -- the encoder --------------------------------------------------------------------------------------

def test_shapes_and_sizes_rebuild_the_encoder():
    encoder = _encoder(head_dim=8)
    z, z_d = encoder(torch.randn(5, 7, WORD_DIM), torch.ones(5, 7, dtype=torch.bool))
    assert z.shape == (5, WORD_DIM) and z_d.shape == (5, 24)
    rebuilt = ContextualTagEncoder(**encoder.sizes())
    rebuilt.load_state_dict(encoder.state_dict(), strict=True)
    paper = ContextualTagEncoder(128)  # the authors' 128-d word vectors, 4 heads of 128, COALA's space
    assert paper(torch.randn(2, 3, 128), torch.ones(2, 3, dtype=torch.bool))[1].shape == (2, 1152)
    assert paper.w_q.weight.shape == (4 * 128, 128)


def test_padding_and_other_clips_do_not_change_a_clips_output():
    encoder = _encoder()
    clip = torch.randn(3, WORD_DIM)
    alone = encoder(clip[None], torch.ones(1, 3, dtype=torch.bool))
    words = torch.randn(4, 9, WORD_DIM) * 100
    words[2, 5:] = float("nan")  # padding is never read, whatever it holds
    mask = torch.zeros(4, 9, dtype=torch.bool)
    mask[0, :3], mask[1, :9], mask[2, :5], mask[3, :1] = True, True, True, True
    words[0, :3] = clip
    batched = encoder(words, mask)
    for a, b in zip(alone, batched):
        torch.testing.assert_close(b[0], a[0], rtol=1e-5, atol=1e-5)
    assert all(torch.isfinite(t).all() for t in batched)


def test_the_order_of_a_clips_tags_does_not_matter():
    """No positional encoding: a clip's tags are a set."""
    encoder = _encoder()
    words = torch.randn(2, 6, WORD_DIM)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    permuted = words.clone()
    permuted[0] = words[0, torch.tensor([5, 2, 0, 4, 1, 3])]
    permuted[1, :4] = words[1, torch.tensor([3, 1, 0, 2])]
    for a, b in zip(encoder(words, mask), encoder(permuted, mask)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def _cosines(x: torch.Tensor) -> torch.Tensor:
    """The cosines between distinct rows of ``x``."""
    unit = torch.nn.functional.normalize(x, dim=1)
    similarity = unit @ unit.T
    return similarity[~torch.eye(len(x), dtype=torch.bool)]


def test_word_vectors_sharing_one_direction_still_give_distinct_clips():
    """Vectors trained on few tags share a dominant direction (the demo's: mean cosine 0.91); after
    ``set_words`` the clips of one tag each come out as different as unrelated vectors would make them."""
    torch.manual_seed(0)
    encoder = WordTagEncoder(ModelDims(n_tags=12, word_dim=WORD_DIM, attention_heads=2)).eval()
    table = 4 * torch.nn.functional.normalize(torch.randn(WORD_DIM), dim=0) + 0.25 * torch.randn(12, WORD_DIM)
    assert _cosines(table).mean() > 0.9
    one_tag_each = torch.eye(12)
    encoder.set_words(table)
    z, z_d = encoder(one_tag_each)
    encoder.attention.center.zero_()
    assert _cosines(encoder(one_tag_each)[0]).mean() > 0.8  # uncentred: what left the demo's contrastive loss at chance
    assert _cosines(z).abs().mean() < 0.4 and _cosines(z_d).abs().mean() < 0.4


def test_a_word_vectors_length_changes_no_output():
    """Words are compared by direction: a word outside the vocabulary, whose FastText vector (n-grams only)
    is often shorter, is not pulled towards minus the vocabulary's centre."""
    torch.manual_seed(0)
    encoder = WordTagEncoder(ModelDims(n_tags=6, word_dim=WORD_DIM, attention_heads=2)).eval()
    table, unseen = torch.randn(6, WORD_DIM), torch.randn(1, 2, WORD_DIM)
    rows = torch.tensor([[1.0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 1]])
    encoder.set_words(table)
    before = (*encoder(rows), *encoder.attention(unseen, torch.ones(1, 2, dtype=torch.bool)))
    encoder.set_words(table * torch.rand(6, 1).add(0.1) * 10)
    after = (*encoder(rows), *encoder.attention(unseen * torch.tensor([[[0.05], [7.0]]]), torch.ones(1, 2, dtype=torch.bool)))
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_a_clip_without_tags_is_finite_forward_and_backward():
    encoder = _encoder().train()
    words = torch.randn(3, 4, WORD_DIM, requires_grad=True)
    mask = torch.tensor([[True, True, False, False], [False] * 4, [True] * 4])
    z, z_d = encoder(words, mask)
    assert torch.isfinite(z).all() and torch.isfinite(z_d).all()
    (z_d.square().sum() + z.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters())
    assert torch.isfinite(words.grad).all() and not words.grad[1].any()
    encoder.eval()
    empty = encoder(torch.zeros(1, 1, WORD_DIM), torch.zeros(1, 1, dtype=torch.bool))[0]
    torch.testing.assert_close(empty[0], encoder.norm.bias.detach())  # LayerNorm of a zero vector


def test_bf16_autocast_stays_finite():
    encoder = _encoder()
    words, mask = torch.randn(4, 5, WORD_DIM), torch.rand(4, 5) > 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z, z_d = encoder(words, mask)
    assert torch.isfinite(z.float()).all() and torch.isfinite(z_d.float()).all()


def _slow_padding(multi_hot: torch.Tensor, table: torch.Tensor):
    clips = [[table[j] for j in range(multi_hot.shape[1]) if multi_hot[i, j] > 0] for i in range(multi_hot.shape[0])]
    length = max(1, max(len(c) for c in clips))
    words = torch.zeros(len(clips), length, table.shape[1])
    mask = torch.zeros(len(clips), length, dtype=torch.bool)
    for i, clip in enumerate(clips):
        for t, vector in enumerate(clip):
            words[i, t], mask[i, t] = vector, True
    return words, mask


def test_multi_hot_to_words_equals_a_plain_loop():
    generator = torch.Generator().manual_seed(1)
    multi_hot = (torch.rand(17, 40, generator=generator) < 0.15).float()
    multi_hot[[3, 9]] = 0.0  # clips without tags
    table = torch.randn(40, WORD_DIM, generator=generator)
    words, mask = multi_hot_to_words(multi_hot, table)
    slow_words, slow_mask = _slow_padding(multi_hot, table)
    assert torch.equal(mask, slow_mask) and torch.equal(words, slow_words)
    assert words.shape[1] == int(multi_hot.sum(1).max())
    none, none_mask = multi_hot_to_words(torch.zeros(2, 40), table)
    assert none.shape == (2, 1, WORD_DIM) and not none_mask.any()
    padded, padded_mask = pad_word_vectors([table[multi_hot[i] > 0] for i in range(17)])
    assert torch.equal(padded, words) and torch.equal(padded_mask, mask)
    assert pad_word_vectors([torch.zeros(0, WORD_DIM)], word_dim=WORD_DIM)[0].shape == (1, 1, WORD_DIM)


def test_encoding_a_multi_hot_batch_equals_encoding_each_clip_alone():
    encoder = _encoder()
    multi_hot = torch.tensor([[1, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]], dtype=torch.float32)
    table = torch.randn(6, WORD_DIM)
    _, batched = encoder(*multi_hot_to_words(multi_hot, table))
    for i in range(3):
        _, alone = encoder(*multi_hot_to_words(multi_hot[i:i + 1], table))
        torch.testing.assert_close(batched[i], alone[0], rtol=1e-5, atol=1e-5)


# -- word vectors -------------------------------------------------------------------------------------

def test_fasttext_vectors_saved_without_pickle_give_gensims_vectors(fasttext, tmp_path, monkeypatch):
    vectors = W.WordVectors.from_keyed_vectors(fasttext.wv, params={"dim": WORD_DIM})
    path = tmp_path / "words.safetensors"
    vectors.save(path)

    def refuse(*args, **kwargs):
        raise AssertionError("word vectors must load without unpickling")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    loaded = W.WordVectors.load(path)
    monkeypatch.undo()
    for word in VOCABULARY:
        assert np.array_equal(loaded.vector(word), fasttext.wv[word]), word
    for word in UNSEEN:  # "thunderstorms" is looked up as the tag preprocessing writes it: "thunderstorm"
        assert np.array_equal(loaded.vector(word), fasttext.wv[W.normalise_word(word)]), word
    assert np.array_equal(loaded.vector("Dogs"), fasttext.wv["dog"])  # normalised like the dataset's tags
    assert np.array_equal(loaded.vector("his"), fasttext.wv["his"])  # a vocabulary word is taken as it is
    assert np.array_equal(loaded.matrix(VOCABULARY), np.stack([fasttext.wv[w] for w in VOCABULARY]))
    assert "barking" in loaded and "the" not in loaded and loaded.params == {"dim": WORD_DIM}
    # Only the n-gram rows of the vocabulary's words are kept; training zeroed the others in the model.
    kept = loaded.subwords.buckets
    assert len(kept) < fasttext.wv.bucket // 20
    others = np.ones(fasttext.wv.bucket, dtype=bool)
    others[kept] = False
    assert not fasttext.wv.vectors_ngrams[others].any()
    # A word of the run's vocabulary that never occurred in the training tags is made of its n-grams.
    subset = loaded.subset(VOCABULARY[:5] + ["thunderstorm"])
    assert np.array_equal(subset.vector("thunderstorm"), fasttext.wv["thunderstorm"])
    assert np.array_equal(subset.vector("guitarist"), fasttext.wv["guitarist"])


def test_unseen_words_land_near_their_stems(fasttext):
    vectors = W.WordVectors.from_keyed_vectors(fasttext.wv)

    def nearest(word: str) -> str:
        v = vectors.vector(word)
        table = vectors.matrix(VOCABULARY)
        scores = table @ v / (np.linalg.norm(table, axis=1) * np.linalg.norm(v))
        return VOCABULARY[int(np.argmax(scores))]

    assert nearest("barking") == "bark" and nearest("thunderstorms") == "thunder"


def test_training_is_deterministic():
    corpus = _corpus(120, seed=5)
    a, b = W.train_tag_vectors(corpus, PARAMS), W.train_tag_vectors(corpus, PARAMS)
    assert np.array_equal(a.vectors, b.vectors) and np.array_equal(a.subwords.vectors, b.subwords.vectors)
    c = W.train_tag_vectors(corpus, W.FastTextParams(dim=WORD_DIM, epochs=30, seed=4))
    assert not np.array_equal(a.vectors, c.vectors)
    assert a.params["epochs"] == 30 and a.params["seed"] == 3
    assert W.train_tag_vectors(corpus, W.FastTextParams(dim=4)).params["epochs"] == W.auto_epochs(
        sum(map(len, corpus)))


def test_auto_epochs_and_parameter_checks():
    assert W.auto_epochs(10) == W.MAX_EPOCHS and W.auto_epochs(10 ** 8) == W.MIN_EPOCHS
    assert W.auto_epochs(4000) == 125
    with pytest.raises(WordVectorsError, match="max_n"):
        W.FastTextParams(min_n=4, max_n=3)
    with pytest.raises(WordVectorsError, match="unknown"):
        W.FastTextParams.from_dict({"dims": 3})
    with pytest.raises(WordVectorsError, match="no tags"):
        W.train_fasttext([[], []], PARAMS)


def test_tag_lists_from_multi_hot_labels():
    labels = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 1]], dtype=np.float32)
    assert W.tag_lists(labels, ["a", "b", "c"]) == [["a", "c"], [], ["b", "c"]]
    assert W.tag_lists(np.zeros((0, 3)), ["a", "b", "c"]) == []
    with pytest.raises(WordVectorsError, match="do not fit"):
        W.tag_lists(labels, ["a", "b"])


def test_normalise_word():
    assert W.normalise_word("Dogs") == "dog" and W.normalise_word(" bass ") == "bas"
    for word in ("the", "x", "440hz", "dog bark"):
        with pytest.raises(WordVectorsError, match="not one tag word"):
            W.normalise_word(word)


TEXT_VECTORS = {"dog": [0.5, -1.0, 2.0], "bark": [0.25, 0.0, -3.5], "rain": [1e-3, 4.0, 0.125]}


def _write_text(path, header: bool) -> None:
    lines = [f"{len(TEXT_VECTORS)} 3"] if header else []
    lines += [w + " " + " ".join(repr(x) for x in v) for w, v in TEXT_VECTORS.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("fmt", ["word2vec", "glove", "word2vec-binary"])
def test_pretrained_files_without_subwords(tmp_path, fmt):
    from gensim.models import KeyedVectors

    path = tmp_path / f"vectors.{fmt}"
    if fmt == "word2vec-binary":
        kv = KeyedVectors(3)
        kv.add_vectors(list(TEXT_VECTORS), np.array(list(TEXT_VECTORS.values()), dtype=np.float32))
        kv.save_word2vec_format(str(path), binary=True)
    else:
        _write_text(path, header=fmt == "word2vec")
    assert W.detect_format(path) == fmt
    vectors = W.load_pretrained(path)
    assert vectors.source["format"] == fmt and vectors.subwords is None
    for word, values in TEXT_VECTORS.items():
        assert np.array_equal(vectors.vector(word), np.array(values, dtype=np.float32))
    assert np.array_equal(vectors.vector("Dogs"), vectors.vector("dog"))
    with pytest.raises(WordVectorsError, match="'thunder'") as error:
        vectors.vector("thunder")
    assert isinstance(error.value, VocabularyError) and isinstance(error.value, CoalaError)
    assert "no subword information" in str(error.value) and "thunder" not in vectors
    with pytest.raises(WordVectorsError, match="2 words have no vector: 'cat', 'meow'"):
        vectors.matrix(["dog", "cat", "meow"])
    # A run keeps its vocabulary's rows and where they came from, and finds the rest there again.
    kept = vectors.subset(["dog", "bark"])
    kept.save(tmp_path / "run.safetensors")
    reloaded = W.WordVectors.load(tmp_path / "run.safetensors")
    assert reloaded.words == ["dog", "bark"] and reloaded.source == vectors.source
    with pytest.raises(WordVectorsError, match="'rain'"):
        reloaded.vector("rain")
    assert np.array_equal(reloaded.open_source().vector("rain"), vectors.vector("rain"))
    path.write_text("changed\n")
    with pytest.raises(WordVectorsError, match="changed since"):
        reloaded.open_source()


def test_pretrained_fasttext_bin_gives_vectors_for_any_word(fasttext, tmp_path):
    from gensim.models import FastText
    from gensim.models.fasttext import load_facebook_vectors, save_facebook_model

    small = FastText(vector_size=8, min_count=1, bucket=1024, workers=1, seed=0, epochs=2)
    small.build_vocab(corpus_iterable=_corpus(60))
    small.train(corpus_iterable=_corpus(60), total_examples=60, epochs=2)
    path = tmp_path / "tags.bin"
    save_facebook_model(small, str(path))
    assert W.detect_format(path) == "fasttext"
    vectors, reference = W.load_pretrained(path), load_facebook_vectors(str(path))
    for word in VOCABULARY[:4] + [W.normalise_word(w) for w in UNSEEN]:
        assert np.allclose(vectors.vector(word), reference[word], rtol=1e-6, atol=1e-7), word
    kept = vectors.subset(VOCABULARY)  # the run keeps its vocabulary's rows, not the file's n-gram table
    assert kept.subwords is None and kept.source["format"] == "fasttext"
    assert np.array_equal(kept.vector("dog"), vectors.vector("dog"))
    with pytest.raises(WordVectorsError, match="'barking'.*open_source"):
        kept.vector("barking")
    assert np.array_equal(kept.open_source().vector("barking"), vectors.vector("barking"))


def test_unreadable_files_are_errors_naming_them(tmp_path):
    with pytest.raises(WordVectorsError, match="not found"):
        W.load_pretrained(tmp_path / "missing.txt")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(WordVectorsError, match="bad.safetensors: not a word-vector file"):
        W.WordVectors.load(bad)
    with pytest.raises(WordVectorsError, match="unknown word-vector format"):
        _write_text(tmp_path / "v.txt", header=True)
        W.load_pretrained(tmp_path / "v.txt", format="bert")
