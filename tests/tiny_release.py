"""Tiny training files in the exact layout of the paper's HDF5 release, and configs pointing at them."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from coala.core.frontend import PATCH_SHAPE


def write_release_file(path: Path, n: int, n_tags: int = 1000, seed: int = 0) -> Path:
    """Group ``dataset``: ``id`` (n, 1) int32, ``data`` (n, 96, 96) float32 in [0, 1], ``label`` (n, n_tags) int16."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, n_tags)) < 0.01).astype(np.int16)
    labels[np.arange(n), rng.integers(0, n_tags, n)] = 1  # every clip has at least one tag
    with h5py.File(path, "w") as f:
        group = f.create_group("dataset")
        group.create_dataset("id", data=rng.choice(10**6, size=(n, 1), replace=False).astype(np.int32))
        group.create_dataset("data", data=rng.random((n, *PATCH_SHAPE), dtype=np.float32))
        group.create_dataset("label", data=labels)
    return path


def paper_config(tmp: Path, name: str, **overrides) -> dict:
    """A config with exactly the paper's keys (plus ``overrides``), writing under ``tmp``."""
    config = {
        "experiment_name": name,
        "train_dataset_file": str(tmp / "spec_tags_tiny"),
        "validation_dataset_file": str(tmp / "spec_tags_tiny_val"),
        "audio_loss_weight": 5, "tag_loss_weight": 5, "contrastive_loss_weight": 10,
        "contrastive_temperature": 0.1, "epochs": 2, "batch_size": 4, "learning_rate": 5e-3,
        "device": "cpu", "id2tag_file": str(tmp / "id2token_tiny.json"), "log_interval": 1, "save_model_every": 1,
    }
    config.update(overrides)
    return config


def write_corpus(tmp: Path, n_train: int = 12, n_val: int = 6, n_tags: int = 1000) -> None:
    write_release_file(tmp / "spec_tags_tiny", n_train, n_tags, seed=0)
    write_release_file(tmp / "spec_tags_tiny_val", n_val, n_tags, seed=1)
    (tmp / "id2token_tiny.json").write_text(json.dumps({str(i): f"tag{i}" for i in range(n_tags)}))


def write_config(path: Path, config: dict) -> Path:
    path.write_text(json.dumps(config))
    return path
