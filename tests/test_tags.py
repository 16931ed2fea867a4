"""Tag preprocessing and vocabulary: the paper's rules, checked against its own vocabulary file."""
from __future__ import annotations

import json

import pytest
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from coala.data.tags import build_vocabulary, load_id2tag, preprocess_tags, singular, stop_words
from coala.core.errors import VocabularyError


def paper_vocabulary(reference) -> list[str]:
    return list(json.loads((reference / "original" / "id2token_top_1000.json").read_text()).values())


def test_stop_word_list_is_nltks_english_list():
    words = stop_words()
    assert len(words) == 179
    # words only NLTK's list has (scikit-learn's has none of them), and contractions it spells out
    assert {"ain", "mightn't", "should've", "that'll", "ll", "ve", "ma", "won"} <= words
    assert not {"call", "fire", "empty"} & words


def test_every_paper_vocabulary_word_comes_out_of_the_rules(reference):
    """Each word passes unchanged, or is what the rules make of its "-ss" source ("bass" -> "bas").

    Applied to their own output the rules cut those eight once more ("bas" -> "ba"): the paper
    singularised raw tags, never its vocabulary.
    """
    changed = [w for w in paper_vocabulary(reference) if preprocess_tags(w) != [w]]
    assert all(preprocess_tags(w + "s") == [w] for w in changed), changed
    assert sorted(changed) == ["bas", "bos", "bras", "contrabas", "glas", "gros", "his", "pres"]


def test_ss_words_lose_their_last_letter_as_in_the_papers_vocabulary():
    assert preprocess_tags("bass glass hiss contrabass") == ["bas", "glas", "his", "contrabas"]


def test_scikit_learn_stop_words_would_drop_ten_paper_words(reference):
    dropped = {w for w in paper_vocabulary(reference) if w in ENGLISH_STOP_WORDS}
    assert dropped == {"call", "cry", "empty", "fill", "fire", "his", "move", "name", "next", "one"}


def test_preprocessing_lowercases_filters_and_singularizes():
    tags = "Birds the bird 808 x of Rain\traw dogs-barking BIRDS ok Pianos mp3 a I"
    assert preprocess_tags(tags) == ["bird", "ok", "piano"]


def test_only_single_spaces_separate_tags():
    assert preprocess_tags("drum  kick") == ["drum", "kick"]  # empty token between two spaces is dropped
    assert preprocess_tags("drum\nkick") == []  # not alphabetic as one token


def test_singular_is_applied_once_and_keeps_non_plurals():
    assert singular("bells") == "bell"
    assert singular("piano") == "piano"
    assert singular("bass") == "bas"


def test_vocabulary_by_document_frequency():
    clip_tags = {i: ["everywhere"] for i in range(10)}
    for i in range(6):
        clip_tags[i].append("common")
    for i in range(3):
        clip_tags[i] += ["zeta", "alpha"]  # tie at 3 clips: alphabetical
    clip_tags[9].append("rare")
    assert build_vocabulary(clip_tags, num_tags=10, min_count=2, max_fraction=0.7) == ["common", "alpha", "zeta"]
    assert build_vocabulary(clip_tags, num_tags=2, min_count=2, max_fraction=0.7) == ["common", "alpha"]
    assert build_vocabulary(clip_tags, num_tags=10, min_count=1, max_fraction=1.0)[0] == "everywhere"
    # gensim's bound is int(max_fraction * n_clips): 0.69 * 10 -> 6 keeps "common" on 6 clips, 0.59 does not
    assert "common" in build_vocabulary(clip_tags, 10, 2, 0.69)
    assert "common" not in build_vocabulary(clip_tags, 10, 2, 0.59)


def test_a_vocabulary_nested_too_deeply_is_one_line(tmp_path):
    """json.loads raises RecursionError, not a decoding error, for arrays nested some thousand deep."""
    path = tmp_path / "id2token.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(VocabularyError, match="not an id-to-tag JSON object \\(nested too deeply\\)"):
        load_id2tag(path)
