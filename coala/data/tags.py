"""Tag preprocessing and the tag vocabulary, as the paper turned Freesound tag strings into labels.

The paper's rules (reference README, "Tags"): split the tag string on single spaces; keep tokens whose
``str.isalpha()`` is true, lowercased; drop English stop words (NLTK's list) and one-letter words; take
inflect's ``singular_noun`` once, keeping the word where it returns False; remove duplicates within a
clip. The vocabulary is chosen by document frequency like gensim's ``filter_extremes``.

inflect is pinned to 5.6.2 on purpose: like the paper's version it strips the last letter of words
ending in "ss" ("bass" -> "bas", "hiss" -> "his", as in the paper's vocabulary), which inflect 6+ no
longer does. Newer inflect would change eight words of the paper's vocabulary.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import inflect
import numpy as np

from coala import assets
from coala.core.errors import VocabularyError
from coala.jsonfile import read_json

STOP_WORDS_FILE = Path(__file__).with_name("stopwords_en_nltk.txt")


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """NLTK's English stop-word list, read from the project's copy (NLTK would download it at run time)."""
    lines = STOP_WORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


@lru_cache(maxsize=1)
def _inflect_engine() -> inflect.engine:
    return inflect.engine()


@lru_cache(maxsize=65536)
def singular(word: str) -> str:
    """inflect's singular form, once; the word itself where inflect says it is not a plural noun."""
    form = _inflect_engine().singular_noun(word)
    return word if form is False else form


def preprocess_tags(tag_string: str) -> list[str]:
    """A free-text Freesound tag string -> the clip's distinct words, in order of first appearance.

    Splitting on single spaces (not any whitespace) is the paper's: a token holding a tab or newline
    is not alphabetic and is dropped, as it was there.
    """
    stops = stop_words()
    words = (token.lower() for token in tag_string.split(" ") if token.isalpha())
    kept = (singular(w) for w in words if len(w) > 1 and w not in stops)
    return list(dict.fromkeys(kept))


def document_frequencies(clip_tags: Iterable[Sequence[str]]) -> Counter[str]:
    """On how many clips each word appears (each clip's words are already distinct)."""
    return Counter(word for tags in clip_tags for word in tags)


def build_vocabulary(clip_tags: Mapping[int, Sequence[str]], num_tags: int, min_count: int,
                     max_fraction: float) -> list[str]:
    """The vocabulary, index order = list order: gensim's ``filter_extremes(min_count, max_fraction, num_tags)``.

    Words on at least ``min_count`` clips and at most ``int(max_fraction * n_clips)`` clips (gensim's
    rounding), then the ``num_tags`` with the highest document frequency. Ties are broken alphabetically,
    so the result does not depend on the order of the CSV rows (gensim kept first-seen words).
    """
    frequencies = document_frequencies(clip_tags.values())
    max_count = int(max_fraction * len(clip_tags))
    eligible = [w for w, n in frequencies.items() if min_count <= n <= max_count]
    eligible.sort(key=lambda w: (-frequencies[w], w))
    return eligible[:num_tags]


def load_id2tag(id2tag: "str | Path | dict | None" = None) -> dict[int, str]:
    """The vocabulary as ``{index: tag}`` from a dict or the paper's ``id2token_*.json`` (None: the
    installed ``json/id2token_top_1000.json``, see ``coala.assets``)."""
    if isinstance(id2tag, dict):
        return {int(k): str(v) for k, v in id2tag.items()}
    path = assets.locate(id2tag) if id2tag is not None else assets.default_path(assets.ID2TAG)
    if not path.is_file():
        raise VocabularyError(f"{path}: vocabulary file not found (get it with `python fetch_assets.py`)")
    try:
        return {int(k): str(v) for k, v in read_json(path).items()}
    except (ValueError, AttributeError) as exc:
        raise VocabularyError(f"{path}: not an id-to-tag JSON object ({exc})") from None


def tag_index(vocabulary: Mapping[int, str], tag: str) -> int:
    """The index of ``tag`` in an ``{index: tag}`` vocabulary; ``VocabularyError`` naming it when absent."""
    index = next((i for i, t in vocabulary.items() if t == tag), None)
    if index is None:
        raise VocabularyError(f"tag {tag!r} is not in the vocabulary ({len(vocabulary)} tags)")
    return index


def query_tokens(words: "str | Sequence[str]") -> tuple[str, list[tuple[str, str]], list[str]]:
    """A query (a phrase, or a list of tags) split as the dataset builder splits a tag string: ``(text,
    [(token, word)], dropped)``, each kept token with its word after the preprocessing (the first token
    of each word), and the tokens the preprocessing drops (stop words, "440hz")."""
    text = words if isinstance(words, str) else " ".join(words)
    tokens: dict[str, str] = {}
    dropped = []
    for token in text.split(" "):
        kept = preprocess_tags(token)
        if kept:
            tokens.setdefault(kept[0], token)
        elif token:
            dropped.append(token)
    return text, [(token, word) for word, token in tokens.items()], dropped


def words_multi_hot(words: "str | Sequence[str]", vocabulary: Mapping[int, str]) -> tuple[np.ndarray, list[str], list[str]]:
    """Tag words (a phrase, or a list of tags) as one multi-hot row over ``vocabulary``, after the dataset
    builder's preprocessing ("Dogs barking" -> dog, bark): ``(row, known words, unknown words)``.

    Unknown are words outside the vocabulary and tokens the preprocessing drops (stop words, "440hz");
    no known word at all is a ``VocabularyError`` naming them.
    """
    text, tokens, dropped = query_tokens(words)
    index = {tag: i for i, tag in vocabulary.items()}
    kept = [word for _, word in tokens]
    known = [w for w in kept if w in index]
    unknown = [w for w in kept if w not in index] + dropped
    if not known:
        shown = ", ".join(repr(w) for w in unknown) or repr(text)
        raise VocabularyError(f"no word of {text!r} is in the model's vocabulary of {len(vocabulary)} tags "
                              f"(unknown after preprocessing: {shown})")
    row = np.zeros(max(vocabulary) + 1 if vocabulary else 0, dtype=np.float32)
    row[[index[w] for w in known]] = 1.0
    return row, known, unknown
