"""analyse.py maps: the joint audio-tag map and the vocabulary map, drawn from a tiny release."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import analyse
from coala.analysis import maps
from coala.cli import EXIT_OK, EXIT_UNUSABLE
from coala.core.model import AudioEncoder, TagEncoder
from tiny_release import write_release_file

N_TAGS = 30


@pytest.fixture()
def model(tmp_path):
    torch.manual_seed(0)
    torch.save(AudioEncoder().state_dict(), tmp_path / "audio_encoder_epoch_3.pt")
    torch.save(TagEncoder(n_tags=N_TAGS).state_dict(), tmp_path / "tag_encoder_epoch_3.pt")
    (tmp_path / "id2tag.json").write_text(json.dumps({str(i): f"word{i}" for i in range(N_TAGS)}))
    write_release_file(tmp_path / "val", 16, n_tags=N_TAGS, seed=5)
    return tmp_path


def _args(folder, *extra):
    return ["maps", "--model", str(folder / "audio_encoder_epoch_3.pt"), "--dataset", str(folder / "val"),
            "--id2tag", str(folder / "id2tag.json"), "--out", str(folder / "maps"), *extra]


@pytest.mark.slow
def test_both_maps_are_drawn_and_repeatable(model, capsys):
    assert analyse.main(_args(model, "--clips", "12")) == EXIT_OK
    drawn = {name: (model / "maps" / name).read_bytes() for name in (maps.AUDIO_TAG_MAP, maps.VOCABULARY_MAP)}
    assert all(png[:4] == b"\x89PNG" for png in drawn.values())
    assert "(12 clips)" in capsys.readouterr().err
    assert analyse.main(_args(model, "--clips", "12")) == EXIT_OK  # seeded: the same pictures again
    assert {name: (model / "maps" / name).read_bytes() for name in drawn} == drawn


def test_named_words_are_spread_over_the_map():
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(5)[:, None] * 100.0, 40, axis=0) + rng.standard_normal((200, 2))
    named = maps.labelled_points(clusters, 5, seed=0)
    assert sorted(i // 40 for i in named) == [0, 1, 2, 3, 4]  # one word per cluster, none piled up


def test_a_cnn_checkpoint_or_a_vocabulary_of_another_size_is_a_one_line_error(model, capsys):
    (model / "id2tag.json").write_text(json.dumps({str(i): f"w{i}" for i in range(N_TAGS - 1)}))
    assert analyse.main(_args(model)) == EXIT_UNUSABLE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "id2tag.json" in err[0] and f"{N_TAGS} inputs" in err[0]
    torch.save(TagEncoder(n_tags=N_TAGS).state_dict(), model / "audio_encoder_epoch_3.pt")
    assert analyse.main(_args(model)) == EXIT_UNUSABLE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "audio_encoder_epoch_3.pt: not a checkpoint of audio_encoder" in err[0]
