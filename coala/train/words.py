"""The contextual model's word vectors in a training run: made once, kept in the run folder, reused on resume.

A fresh run makes them from the config (``word_vectors``: "" trains FastText on the training file's tag
lists, seeded by the run's ``seed``; a path reads a pretrained file) and writes them to the run folder
(``coala.models.record.WORD_VECTORS_FILE``) before the first epoch: the vocabulary's rows and, for FastText,
the n-grams that give any other word a vector. A resumed run reads that file and checks that its table
is the one in the saved weights, so the tag encoder is never fed other vectors than it was trained on;
a file that is gone is made again the same way (FastText here is deterministic) and checked likewise.
Only rank 0 makes or reads them; every process gets the table from it (``from_main``).
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from coala.core.errors import ConfigError, StateError
from coala.data.hdf5 import read_labels
from coala.data.words import FastTextParams, WordVectors, load_pretrained, tag_lists, train_tag_vectors
from coala.distributed import Runtime, from_main, on_main
from coala.models.record import WORD_VECTORS_FILE
from coala.train.config import TrainConfig

log = logging.getLogger(__name__)


def make_word_vectors(cfg: TrainConfig, vocabulary: list[str]) -> WordVectors:
    """The vectors the config asks for, kept for the vocabulary (``WordVectors.subset``): ``WordVectorsError``
    naming vocabulary words a pretrained file lacks, ``ConfigError`` for a file of another width."""
    if cfg.word_vectors:
        vectors = load_pretrained(cfg.word_vectors)
        if vectors.dim != cfg.word_dim:
            raise ConfigError(f"word_vectors {cfg.word_vectors}: vectors of {vectors.dim} dimensions, but word_dim is "
                              f"{cfg.word_dim}; set word_dim to {vectors.dim}")
    else:
        clips = tag_lists(read_labels(cfg.train_dataset_file), vocabulary)
        vectors = train_tag_vectors(clips, FastTextParams(dim=cfg.word_dim, seed=cfg.seed))
    return vectors.subset(vocabulary)


def _on_main(cfg: TrainConfig, vocabulary: list[str], resuming: bool) -> WordVectors:
    path = cfg.checkpoint_folder / WORD_VECTORS_FILE
    if resuming and path.is_file():
        return WordVectors.load(path)
    if resuming:
        log.warning(f"{path}: missing; making the word vectors again (they are checked against the saved weights)")
    else:
        log.info(f"{cfg.experiment_name}: word vectors " + (f"from {cfg.word_vectors}" if cfg.word_vectors else
                                                            f"of FastText trained on {cfg.train_dataset_file}'s tags"))
    vectors = make_word_vectors(cfg, vocabulary)
    vectors.save(path)
    return vectors


def run_word_vectors(cfg: TrainConfig, vocabulary: list[str], runtime: Runtime, resuming: bool) -> np.ndarray:
    """The vocabulary's word-vector table ``(n_tags, word_dim)`` on every process, made or read once by rank 0."""
    vectors = on_main(runtime, lambda: _on_main(cfg, vocabulary, resuming))
    return from_main(runtime, lambda: vectors.matrix(vocabulary))


def check_resumed_table(cfg: TrainConfig, saved: torch.Tensor, table: np.ndarray) -> None:
    """A resumed run's table must be the one its weights were trained with: ``StateError`` otherwise."""
    if not torch.equal(saved.cpu(), torch.from_numpy(table)):
        raise StateError(f"{cfg.checkpoint_folder / WORD_VECTORS_FILE}: not the word vectors the saved weights were "
                         "trained with; use another experiment_name (or checkpoint_dir) for a new run")
