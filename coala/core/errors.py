"""The errors a user can fix, under one base class.

Entry points turn a :class:`CoalaError` into one ``error:`` line and exit status 2 (``coala.cli``);
any other exception is a bug and keeps its traceback. Each subclass says which input was wrong, and
every message names the file, key or value and what is wrong with it.
"""
from __future__ import annotations

from pathlib import Path


class CoalaError(Exception):
    """A problem with the user's input or environment, reported as one line without a traceback."""


class UsageError(CoalaError):
    """A command line that cannot run (an option missing, a combination that makes no sense)."""


class ConfigError(CoalaError):
    """A training config that cannot be used; the message names the file and the offending key."""


class AudioError(CoalaError):
    """A file that cannot be turned into a spectrogram; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class AudioInputError(CoalaError):
    """Audio handed over in memory (the HEAR API) that is not a batch of float samples in [-1, 1]."""


class ScalerError(CoalaError):
    """A scaler file that is missing or not a fitted MinMax scaler."""


class VocabularyError(CoalaError):
    """A tag vocabulary that is missing or unreadable, or a tag that is not in it."""


class WordVectorsError(VocabularyError):
    """Word vectors that cannot be read or trained, or a word they give no vector for (a pretrained file
    without subword information, a word the tag preprocessing drops); the message names the file or word."""


class CheckpointError(CoalaError):
    """A checkpoint that cannot be read or does not fit the model; the message names file and keys."""


class DatasetError(CoalaError):
    """Training data (HDF5 files, a tag CSV, an audio folder) that is missing or not in its layout."""


class PlanMismatchError(CoalaError):
    """Processes of one torchrun job started with different arguments; the message names the first."""


class StateError(CoalaError):
    """A training state that cannot be resumed under this config; the message names file and key."""


class DivergenceError(CoalaError):
    """Training whose losses became non-finite; the message names the epoch, whose results are not saved."""


class DownstreamError(CoalaError):
    """A downstream dataset file or embedding that cannot be used; the message names the file."""


class DataAbsentError(DownstreamError):
    """A downstream dataset that is not on disk at all: the evaluation skips it and goes on."""


class AssetError(CoalaError):
    """A published asset that could not be fetched or checked; the message names it and says why."""


class SearchError(CoalaError):
    """A search index or query that cannot be used (empty, damaged, built with another model; no known
    word); the message names the index file or the words."""


class DemoDataError(CoalaError):
    """A demo data folder made with other parameters."""


class AnalysisError(CoalaError):
    """Input of the embedding analysis (``analyse.py``) that cannot be used; the message names the file."""


class EmbeddingsError(DownstreamError):
    """encode.py's outputs (a per-clip ``.npy``, a shard or a shard's index) that cannot be read; the
    message names the file. A ``DownstreamError``, as classify.py counts an unreadable clip and goes on."""
