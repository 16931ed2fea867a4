"""analyse.py maps: the joint audio-tag map and the vocabulary map, drawn from a tiny release."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

import analyse
from coala.analysis import maps
from coala.cli import EXIT_OK, EXIT_UNUSABLE
from coala.core.model import AudioEncoder, TagEncoder
from coala.data.hdf5 import GROUP, write_provenance
from coala.models.loading import load_model
from run_folder import N_TAGS, run_scaler, run_vocabulary, write_run_folder
from tiny_release import write_release_file


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
    record = json.loads((model / "maps" / maps.MAPS_JSON).read_text())
    (label, made), = record["identities"].items()
    assert label == f"{model.name}_3" and made["epoch"] == 3 and {"audio_encoder_fingerprint", "tag_encoder_fingerprint"} <= set(made)
    assert record["clips"] == 12 and set(record["named_words"]) <= {f"word{i}" for i in range(N_TAGS)}
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
    assert len(err) == 1 and "id2tag.json" in err[0] and f"whose tag encoder takes {N_TAGS}" in err[0]
    torch.save(TagEncoder(n_tags=N_TAGS).state_dict(), model / "audio_encoder_epoch_3.pt")
    assert analyse.main(_args(model)) == EXIT_UNUSABLE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "audio_encoder_epoch_3.pt: not a checkpoint of audio_encoder" in err[0]


def _run_args(run, dataset, out, *extra):
    return ["maps", "--model", str(run), "--dataset", str(dataset), "--out", str(out), "--clips", "12", *extra]


def test_a_run_folder_brings_its_tag_encoder_and_vocabulary(tmp_path):
    """No --id2tag: the words on the map are the record's; the tag encoder is the record's, of the same epoch."""
    run = tmp_path / "my_run"
    write_run_folder(run)
    dataset = write_release_file(tmp_path / "val", 16, n_tags=N_TAGS, seed=5)
    with h5py.File(dataset, "a") as f:
        write_provenance(f[GROUP], run_scaler(), run_vocabulary())
    assert analyse.main(_run_args(run, dataset, tmp_path / "maps")) == EXIT_OK
    record = json.loads((tmp_path / "maps" / maps.MAPS_JSON).read_text())
    assert record["named_words"] and set(record["named_words"]) <= set(run_vocabulary())
    loaded = load_model(run, ("audio_encoder", "tag_encoder"))
    assert record["identities"]["my_run_3"] == loaded.identity(("audio_encoder", "tag_encoder"), with_scaler=False)


def test_another_vocabulary_than_the_runs_is_a_one_line_error(tmp_path, capsys):
    run = tmp_path / "my_run"
    write_run_folder(run)
    dataset = write_release_file(tmp_path / "val", 16, n_tags=N_TAGS, seed=5)
    other = tmp_path / "id2tag.json"
    other.write_text(json.dumps({str(i): f"word{i}" for i in range(N_TAGS)}))
    assert analyse.main(_run_args(run, dataset, tmp_path / "maps", "--id2tag", str(other))) == EXIT_UNUSABLE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --id2tag {other}: not the vocabulary of {run}")
    with h5py.File(dataset, "a") as f:  # labels made with another vocabulary of the same size
        write_provenance(f[GROUP], run_scaler(), [f"word{i}" for i in range(N_TAGS)])
    assert analyse.main(_run_args(run, dataset, tmp_path / "maps")) == EXIT_UNUSABLE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == (f"error: {dataset}: its labels are of another vocabulary than {run}'s "
                                        "(both record theirs)")
    assert not (tmp_path / "maps" / maps.MAPS_JSON).exists()


@pytest.mark.slow
def test_the_joint_map_is_coloured_by_tags_or_labels_of_the_users_choice(model, capsys, monkeypatch):
    drawn = []
    real = maps.audio_tag_map
    monkeypatch.setattr(maps, "audio_tag_map", lambda *args: drawn.append(args[6]) or real(*args))  # groups
    with h5py.File(model / "val", "r") as f:
        labels, ids = f["dataset/label"][...], f["dataset/id"][:, 0]
    common = [f"word{i}" for i in np.argsort(-labels.sum(0), kind="stable")[:2]]
    assert analyse.main(_args(model, "--clips", "12", "--colour-by", *common)) == EXIT_OK
    groups = drawn[-1]
    first, second = (labels[:, int(w[4:])] > 0 for w in common)
    assert list(groups) == [common[0] if a else common[1] if b else maps.OTHER for a, b in zip(first, second)]
    assert json.loads((model / "maps" / maps.MAPS_JSON).read_text())["colour_by"] == {"tags": common}
    (model / "labels.json").write_text(json.dumps({str(ids[0]): "dog", str(ids[1]): "rain"}))
    assert analyse.main(_args(model, "--clips", "12", "--labels", str(model / "labels.json"))) == EXIT_OK
    assert list(drawn[-1][:3]) == ["dog", "rain", maps.OTHER]
    capsys.readouterr()
    assert analyse.main(_args(model, "--colour-by", "zebra")) == EXIT_UNUSABLE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--colour-by: zebra not in the model's vocabulary" in err[0]
