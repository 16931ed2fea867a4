"""Word vectors for tags: trained on the training set's tag lists, or read from a pretrained file.

The contextual tag encoder (``coala.core.contextual``) reads a clip's tags as word vectors. They come
from one of two places:

- **by default**, gensim's FastText trained on the training set's tag lists (each clip's tags are one
  sentence), seeded and single-threaded so that a run is reproducible. FastText also learns vectors for
  character n-grams, so a word never seen as a tag ("barking", "thunderstorms") still gets a vector:
  the mean of its n-grams' vectors, as gensim computes it;
- **a pretrained file** the user names: word2vec (text or binary), GloVe (text without a header line),
  or fastText's ``.bin`` (which has n-grams too). A word2vec or GloVe file has no n-grams: a word it does
  not hold has no vector, and asking for one is a :class:`WordVectorsError` naming the word.

A run keeps its word vectors without pickle: :meth:`WordVectors.save` writes one safetensors file (numpy
arrays) whose header carries the words and parameters as JSON. For trained FastText vectors it keeps the
rows of the n-gram table that the vocabulary's words hash to: the only rows training changes. The other
rows hold gensim's random initialisation, noise no word was trained on, so :func:`train_fasttext` sets
them to zero in the model itself; the saved vectors then give what gensim gives, for any word, at a few
MB instead of ``bucket x dim`` floats. Words are looked up after the dataset builder's tag preprocessing
(``coala.data.tags.preprocess_tags``: lowercase, singular, stop words refused), so "Dogs" finds "dog".
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coala.atomic import atomic_write
from coala.data.tags import preprocess_tags, query_tokens
from coala.core.errors import VocabularyError, WordVectorsError

if TYPE_CHECKING:  # gensim is imported where it is used: importing it takes seconds
    from gensim.models import FastText, KeyedVectors

FORMAT = "coala-word-vectors"
FORMAT_VERSION = 1
METADATA_KEY = "coala_word_vectors"
PRETRAINED_FORMATS = ("word2vec", "word2vec-binary", "glove", "fasttext")
FASTTEXT_MAGIC = 793712314  # the first int32 of a fastText .bin file
COMPRESSION_BOUND = 1000  # no word-vector file compresses better than this (zlib's limit is about 1032)
MIN_EPOCHS = 5  # gensim's default, and the authors' (train_cbow.py, gensim 3.8.1)
MAX_EPOCHS = 500
MIN_TOKEN_UPDATES = 500_000  # epochs x tokens, so that a small corpus is trained long enough
SHOWN_WORDS = 10  # unknown words an error message names


@dataclass(frozen=True)
class FastTextParams:
    """How tag vectors are trained (gensim ``FastText`` arguments); saved with the run's word vectors.

    ``window`` 0 means the longest tag list: a clip's tags are a set, so each is context for every
    other (windows are not shrunk at random either). ``epochs`` None picks ``auto_epochs``: gensim's 5
    on a corpus as large as the paper's, more on a small one. The rest are gensim's defaults (CBOW,
    negative sampling, frequent-word downsampling), which the authors' word2vec also used.
    """

    dim: int = 128
    epochs: int | None = None
    min_n: int = 3
    max_n: int = 6
    bucket: int = 2 ** 18
    window: int = 0
    sg: int = 0
    negative: int = 5
    sample: float = 1e-3
    alpha: float = 0.025
    min_alpha: float = 0.0001
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {"dim": self.dim >= 1, "min_n": self.min_n >= 1, "max_n": self.max_n >= self.min_n,
                  "bucket": self.bucket >= 1, "window": self.window >= 0, "sg": self.sg in (0, 1),
                  "negative": self.negative >= 1, "sample": self.sample >= 0, "alpha": self.alpha > 0,
                  "epochs": self.epochs is None or self.epochs >= 1}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise WordVectorsError("word-vector training parameters out of range: "
                                   + ", ".join(f"{name}={getattr(self, name)!r}" for name in bad))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "FastTextParams":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise WordVectorsError(f"unknown word-vector training parameters {unknown} (known: {sorted(known)})")
        return cls(**values)


def query_vectors(words: str | Sequence[str], vectors: "WordVectors") -> tuple[np.ndarray, list[str], list[str]]:
    """Tag words (a phrase, or a list of tags) as word vectors ``(n_known, dim)``, split and normalised as
    ``coala.data.tags.words_multi_hot`` does for a vocabulary: ``(vectors, known words, unknown words)``.

    Known is every word with a vector, which with FastText's n-grams is any word the preprocessing keeps
    ("barking", never a tag); unknown the words a pretrained file without n-grams lacks and the tokens the
    preprocessing drops. No known word at all is a ``VocabularyError`` naming them.
    """
    text, tokens, dropped = query_tokens(words)
    known = [(token, word) for token, word in tokens if token in vectors]
    unknown = [word for token, word in tokens if token not in vectors] + dropped
    if not known:
        shown = ", ".join(repr(w) for w in unknown) or repr(text)
        raise VocabularyError(f"no word of {text!r} has a word vector (unknown after preprocessing: {shown})")
    return vectors.matrix([token for token, _ in known]), [word for _, word in known], unknown


def auto_epochs(n_tokens: int) -> int:
    """Epochs for a corpus of ``n_tokens`` tags: at least 5 and ``MIN_TOKEN_UPDATES`` updates, at most 500."""
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(MIN_TOKEN_UPDATES / max(n_tokens, 1)))))


def normalise_word(word: str) -> str:
    """A word as the dataset builder writes tags ("Dogs" -> "dog"); ``WordVectorsError`` when none is left."""
    words = preprocess_tags(word.strip())
    if len(words) != 1:
        why = ("a stop word, one letter, or not alphabetic" if not words
               else f"several words {words}: give one at a time")
        raise WordVectorsError(f"{word!r} is not one tag word after the tag preprocessing ({why})")
    return words[0]


def tag_lists(labels: np.ndarray, vocabulary: Sequence[str]) -> list[list[str]]:
    """Multi-hot rows ``(n_clips, V)`` (HDF5 labels) -> each clip's tags, in vocabulary order."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != len(vocabulary):
        raise WordVectorsError(f"labels of shape {labels.shape} do not fit a vocabulary of {len(vocabulary)} tags")
    if not labels.shape[0]:
        return []
    rows, columns = np.nonzero(labels > 0)
    splits = np.searchsorted(rows, np.arange(1, labels.shape[0]))
    words = np.asarray(vocabulary, dtype=object)
    return [list(words[c]) for c in np.split(columns, splits)]


@dataclass
class Subwords:
    """FastText's n-gram vectors: the rows ``buckets`` (sorted) of a ``bucket``-row table; absent rows are zero."""

    min_n: int
    max_n: int
    bucket: int
    buckets: np.ndarray  # (K,) int64, sorted
    vectors: np.ndarray  # (K, dim) float32

    def vector(self, word: str) -> np.ndarray:
        """gensim's vector of a word outside the vocabulary: the mean of its n-grams' rows, summed in order."""
        from gensim.models.fasttext import ft_ngram_hashes

        hashes = ft_ngram_hashes(word, self.min_n, self.max_n, self.bucket)
        out = np.zeros(self.vectors.shape[1], dtype=np.float32)
        if not hashes:
            return out
        rows = np.searchsorted(self.buckets, hashes)
        for h, row in zip(hashes, rows):
            if row < len(self.buckets) and self.buckets[row] == h:
                out += self.vectors[row]
        return out / np.float32(len(hashes))


class WordVectors:
    """Vectors for words: a table (``words``, ``vectors``), FastText n-grams for any other word where the
    vectors have them, and where they came from.

    ``source`` names a pretrained file (``{"path", "format", "bytes"}``) when the vectors were read from
    one; ``params`` the training parameters when they were trained here. Lookups normalise the word
    first (:func:`normalise_word`).
    """

    def __init__(self, words: Sequence[str], vectors: np.ndarray, subwords: Subwords | None = None,
                 source: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise WordVectorsError(f"{len(words)} words but a vector table of shape {vectors.shape}")
        if subwords is not None and subwords.vectors.shape[1] != vectors.shape[1]:
            raise WordVectorsError(f"n-gram vectors of width {subwords.vectors.shape[1]} beside word vectors "
                                   f"of width {vectors.shape[1]}")
        self.words = list(words)
        self.vectors = vectors
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise WordVectorsError("the word-vector table lists a word twice")
        self.subwords = subwords
        self.source = dict(source) if source else None
        self.params = dict(params) if params else None

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def _key(self, word: str) -> str:
        """The table's spelling of ``word``: itself when the table has it (a vocabulary word may not survive
        a second preprocessing: "bas", inflect's singular of "bass", would become "ba"), else normalised."""
        return word if word in self.index else normalise_word(word)

    def __contains__(self, word: str) -> bool:
        """Whether ``word`` gets a vector (always, with n-grams, for a word the preprocessing keeps)."""
        try:
            key = self._key(word)
        except WordVectorsError:
            return False
        return self.has_vector_of(key)

    def vector(self, word: str) -> np.ndarray:
        """The vector of one word (as the table spells it, else normalised); ``WordVectorsError`` naming the
        word when there is none."""
        return self.vector_of(self._key(word))

    def vector_of(self, key: str) -> np.ndarray:
        """The vector of a word already spelt as the dataset builder spells tags (a dataset's vocabulary), looked
        up as it is: a second preprocessing could change it ("bas" -> "ba"). ``WordVectorsError`` when none."""
        if key in self.index:
            return self.vectors[self.index[key]].copy()
        if self.subwords is not None:
            return self.subwords.vector(key)
        raise WordVectorsError(self._unknown_message([key]))

    def has_vector_of(self, key: str) -> bool:
        """Whether ``vector_of(key)`` gives a vector."""
        return key in self.index or self.subwords is not None

    def matrix(self, words: Sequence[str]) -> np.ndarray:
        """``(len(words), dim)`` float32, row ``i`` for ``words[i]`` (e.g. a vocabulary in index order); one
        ``WordVectorsError`` naming every word without a vector."""
        keys = [self._key(word) for word in words]
        unknown = [key for key in keys if key not in self.index] if self.subwords is None else []
        if unknown:
            raise WordVectorsError(self._unknown_message(unknown))
        out = np.empty((len(keys), self.dim), dtype=np.float32)
        for i, key in enumerate(keys):
            out[i] = self.vectors[self.index[key]] if key in self.index else self.subwords.vector(key)
        return out

    def _unknown_message(self, unknown: Sequence[str]) -> str:
        shown = ", ".join(repr(w) for w in unknown[:SHOWN_WORDS])
        more = f" and {len(unknown) - SHOWN_WORDS} more" if len(unknown) > SHOWN_WORDS else ""
        what = "word has" if len(unknown) == 1 else f"{len(unknown)} words have"
        where = ""
        if self.source and self.source.get("format") == "fasttext":
            where = (f"; the vectors come from {self.source['path']}, whose n-grams are not kept with them: "
                     f"open_source() reads the file again")
        elif self.source:
            where = (f"; the vectors come from {self.source['path']} ({self.source['format']}), which has no "
                     f"subword information")
        return f"{what} no vector: {shown}{more} (not among the {len(self)} words of the table{where})"

    def subset(self, words: Sequence[str]) -> "WordVectors":
        """The vectors a run keeps: these words' rows (e.g. the run's vocabulary), its n-grams if they were
        trained here (a few MB), not those of a pretrained fastText file (the whole table, GBs); its source."""
        keep_subwords = self.subwords is not None and self.source is None
        keys = [self._key(w) for w in words]
        return WordVectors(keys, self.matrix(keys), self.subwords if keep_subwords else None, self.source,
                           self.params)

    # -- saving without pickle ------------------------------------------------------------------------

    def to_arrays(self, prefix: str = "") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The vectors as named numpy arrays and a JSON-able description, for a file of the caller's."""
        arrays = {f"{prefix}vectors": self.vectors}
        meta: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION, "dim": self.dim, "words": self.words,
                                "subwords": None, "source": self.source, "params": self.params}
        if self.subwords is not None:
            s = self.subwords
            arrays[f"{prefix}ngram_buckets"] = np.ascontiguousarray(s.buckets, dtype=np.int64)
            arrays[f"{prefix}ngram_vectors"] = np.ascontiguousarray(s.vectors, dtype=np.float32)
            meta["subwords"] = {"min_n": s.min_n, "max_n": s.max_n, "bucket": s.bucket}
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], prefix: str = "",
                    origin: str = "word vectors") -> "WordVectors":
        """The inverse of :meth:`to_arrays`; ``WordVectorsError`` naming ``origin`` when they do not fit."""
        if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise WordVectorsError(f"{origin}: not {FORMAT} version {FORMAT_VERSION} "
                                   f"(found {meta.get('format')!r} version {meta.get('version')!r})")
        try:
            vectors = np.asarray(arrays[f"{prefix}vectors"], dtype=np.float32)
            subwords = None
            if meta.get("subwords"):
                s = meta["subwords"]
                subwords = Subwords(int(s["min_n"]), int(s["max_n"]), int(s["bucket"]),
                                    np.asarray(arrays[f"{prefix}ngram_buckets"], dtype=np.int64),
                                    np.asarray(arrays[f"{prefix}ngram_vectors"], dtype=np.float32))
            return cls(list(meta["words"]), vectors, subwords, meta.get("source"), meta.get("params"))
        except (KeyError, TypeError, ValueError) as exc:
            raise WordVectorsError(f"{origin}: incomplete word vectors ({type(exc).__name__}: {exc})") from None

    def save(self, path: str | Path) -> None:
        """One safetensors file: the arrays, and the description as JSON in its header. Written atomically."""
        from safetensors.numpy import save

        arrays, meta = self.to_arrays()
        data = save(arrays, metadata={METADATA_KEY: json.dumps(meta)})
        atomic_write(path, lambda f: f.write(data))

    @classmethod
    def load(cls, path: str | Path) -> "WordVectors":
        """Vectors written by :meth:`save`; ``WordVectorsError`` naming the file when it is not such a file."""
        from safetensors import SafetensorError
        from safetensors.numpy import safe_open

        path = Path(path)
        if not path.is_file():
            raise WordVectorsError(f"{path}: word-vector file not found")
        try:
            with safe_open(str(path), framework="np") as f:
                header = f.metadata() or {}
                arrays = {key: f.get_tensor(key) for key in f.keys()}
            meta = json.loads(header[METADATA_KEY])
        except (SafetensorError, OSError, KeyError, ValueError) as exc:
            raise WordVectorsError(f"{path}: not a word-vector file ({type(exc).__name__}: {exc})") from None
        return cls.from_arrays(arrays, meta, origin=str(path))

    def open_source(self) -> "WordVectors":
        """The whole pretrained file these vectors were taken from, for words outside the saved table;
        ``WordVectorsError`` when there is none, or it is gone or changed (its size differs)."""
        if not self.source:
            raise WordVectorsError("these word vectors were not read from a pretrained file")
        path = Path(self.source["path"])
        if not path.is_file():
            raise WordVectorsError(f"{path}: the pretrained word vectors of this run are no longer there")
        if path.stat().st_size != self.source.get("bytes"):
            raise WordVectorsError(f"{path}: changed since the run read it ({path.stat().st_size} bytes, "
                                   f"was {self.source.get('bytes')})")
        return load_pretrained(path, self.source["format"])

    # -- from gensim ----------------------------------------------------------------------------------

    @classmethod
    def from_keyed_vectors(cls, kv: "KeyedVectors", source: Mapping[str, Any] | None = None,
                           params: Mapping[str, Any] | None = None) -> "WordVectors":
        """gensim vectors; a ``FastTextKeyedVectors`` keeps its n-gram rows (all of them for a pretrained
        file, those of its vocabulary's words for vectors trained here)."""
        from gensim.models.fasttext import FastTextKeyedVectors

        words = [str(w) for w in kv.index_to_key]
        subwords = None
        if isinstance(kv, FastTextKeyedVectors) and kv.bucket > 0:
            if source is None:
                buckets = vocabulary_buckets(kv)
                ngrams = kv.vectors_ngrams[buckets]
            else:
                buckets, ngrams = np.arange(kv.bucket, dtype=np.int64), kv.vectors_ngrams
            subwords = Subwords(kv.min_n, kv.max_n, kv.bucket, buckets, np.asarray(ngrams, dtype=np.float32))
        return cls(words, np.asarray(kv.vectors, dtype=np.float32), subwords, source, params)


def vocabulary_buckets(kv: "KeyedVectors") -> np.ndarray:
    """The n-gram rows a FastText vocabulary's words hash to (sorted): the rows training updates."""
    from gensim.models.fasttext import ft_ngram_hashes

    rows = {h for w in kv.index_to_key for h in ft_ngram_hashes(w, kv.min_n, kv.max_n, kv.bucket)}
    return np.array(sorted(rows), dtype=np.int64)


def train_fasttext(clip_tags: Iterable[Sequence[str]], params: FastTextParams = FastTextParams()) -> "FastText":
    """gensim's FastText trained on tag lists (one sentence per clip), seeded, on one worker thread.

    n-gram rows that no word of the vocabulary hashes to keep gensim's random initialisation through
    training; they are set to zero here, so that a word outside the vocabulary is made of trained
    n-grams only, and the saved vectors (:meth:`WordVectors.save`) give exactly this model's vectors.
    """
    from gensim.models import FastText

    sentences = [list(tags) for tags in clip_tags if len(tags)]
    n_tokens = sum(len(s) for s in sentences)
    if not n_tokens:
        raise WordVectorsError("no tags to train word vectors on (every clip's tag list is empty)")
    window = params.window or max(max(len(s) for s in sentences) - 1, 1)
    epochs = params.epochs or auto_epochs(n_tokens)
    model = FastText(vector_size=params.dim, window=window, min_count=1, sg=params.sg, negative=params.negative,
                     sample=params.sample, alpha=params.alpha, min_alpha=params.min_alpha, seed=params.seed,
                     workers=1, epochs=epochs, min_n=params.min_n, max_n=params.max_n, bucket=params.bucket,
                     shrink_windows=False)
    model.build_vocab(corpus_iterable=sentences)
    model.train(corpus_iterable=sentences, total_examples=len(sentences), epochs=epochs)
    trained = np.zeros(model.wv.bucket, dtype=bool)
    trained[vocabulary_buckets(model.wv)] = True
    model.wv.vectors_ngrams[~trained] = 0.0
    return model


def train_tag_vectors(clip_tags: Iterable[Sequence[str]], params: FastTextParams = FastTextParams()) -> WordVectors:
    """Word vectors for tags, trained on the training set's tag lists (see :func:`train_fasttext`)."""
    sentences = [list(tags) for tags in clip_tags]
    model = train_fasttext(sentences, params)
    n_tokens = sum(len(s) for s in sentences)
    recorded = {**asdict(params), "epochs": params.epochs or auto_epochs(n_tokens), "trained_on_tags": n_tokens}
    return WordVectors.from_keyed_vectors(model.wv, params=recorded)


def _head(path: Path) -> bytes:
    """The first 64 KiB of a word-vector file, decompressed as gensim will (.gz, .bz2)."""
    from gensim.utils import open as open_compressed

    try:
        with open_compressed(str(path), "rb") as f:
            return f.read(1 << 16)
    except OSError as exc:
        raise WordVectorsError(f"{path}: cannot read the word-vector file ({exc})") from None


def check_declared_size(path: Path, fmt: str) -> None:
    """A word2vec header's ``<words> <dimensions>`` against what the file can hold: gensim allocates the
    declared matrix before reading a vector, so a header of a billion words would ask for terabytes.
    Each value takes at least 2 bytes as text ("0 "), 4 in binary; compressed files get ``COMPRESSION_BOUND``."""
    if fmt not in ("word2vec", "word2vec-binary"):
        return
    words, dims = (int(part) for part in _head(path).partition(b"\n")[0].split()[:2])
    size = os.path.getsize(path)
    room = size * (COMPRESSION_BOUND if path.suffix in (".gz", ".bz2") else 1)
    if words * dims * (4 if fmt == "word2vec-binary" else 2) > room:
        raise WordVectorsError(f"{path}: its header declares {words} words of {dims} dimensions, more than its "
                               f"{size} bytes hold")


def detect_format(path: str | Path) -> str:
    """Which pretrained format a file is in, from its first bytes: fastText's ``.bin`` by its magic number;
    a first line of two integers is word2vec's header, binary if what follows is not text; else GloVe."""
    path = Path(path)
    head = _head(path)
    if len(head) >= 4 and int.from_bytes(head[:4], "little", signed=True) == FASTTEXT_MAGIC:
        return "fasttext"
    first, _, rest = head.partition(b"\n")
    parts = first.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        try:
            rest[:4096].decode("utf-8")
            return "word2vec-binary" if b"\0" in rest[:4096] else "word2vec"
        except UnicodeDecodeError:
            return "word2vec-binary"
    return "glove"


def load_pretrained(path: str | Path, format: str | None = None) -> WordVectors:
    """Every vector of a pretrained file: ``word2vec`` (text with a header line), ``word2vec-binary``,
    ``glove`` (text without a header) or ``fasttext`` (Facebook's ``.bin``, with n-grams); ``format`` None
    detects it (:func:`detect_format`). Use :meth:`WordVectors.subset` for what a run keeps."""
    from gensim.models import KeyedVectors
    from gensim.models.fasttext import load_facebook_vectors

    path = Path(path)
    if not path.is_file():
        raise WordVectorsError(f"{path}: word-vector file not found")
    fmt = format or detect_format(path)
    if fmt not in PRETRAINED_FORMATS:
        raise WordVectorsError(f"{path}: unknown word-vector format {fmt!r} (one of {', '.join(PRETRAINED_FORMATS)})")
    try:
        check_declared_size(path, fmt)
        if fmt == "fasttext":
            kv = load_facebook_vectors(str(path))
        else:
            kv = KeyedVectors.load_word2vec_format(str(path), binary=fmt == "word2vec-binary",
                                                   no_header=fmt == "glove")
    except (OSError, ValueError, EOFError, UnicodeDecodeError, AssertionError) as exc:
        raise WordVectorsError(f"{path}: cannot read it as {fmt} word vectors ({type(exc).__name__}: {exc})") from None
    source = {"path": str(path.resolve()), "format": fmt, "bytes": os.path.getsize(path)}
    return WordVectors.from_keyed_vectors(kv, source=source)
