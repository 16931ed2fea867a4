"""analyse.py cca: canonical correlations as SVCCA computed them, on known cases, and the command."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import analyse
from coala.analysis import cca
from coala.analysis.descriptors import DESCRIPTOR_KEYS
from coala.cli import EXIT_OK, EXIT_UNUSABLE
from coala.core.model import AudioEncoder, TagEncoder
from coala.data.hdf5 import GROUP, write_provenance
from run_folder import run_scaler, run_vocabulary, write_run_folder
from tiny_release import write_release_file


def _svcca_coefficients(x: np.ndarray, y: np.ndarray, epsilon: float = 1e-20) -> np.ndarray:
    """SVCCA's get_cca_similarity(x.T, y.T, epsilon)["cca_coef1"], its covariance formulation written out:
    covariance blocks rescaled by their largest entries, epsilon on the diagonals, pseudo-inverse square
    roots, singular values of Sxx^-1/2 Sxy Syy^-1/2."""
    cov = np.cov(x.T, y.T)
    dx = x.shape[1]
    sxx, sxy, syy = cov[:dx, :dx], cov[:dx, dx:], cov[dx:, dx:]
    xmax, ymax = np.abs(sxx).max(), np.abs(syy).max()
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / np.sqrt(xmax * ymax)

    def invsqrt(s: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh(np.linalg.pinv(s + epsilon * np.eye(len(s))))
        return v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T

    return np.abs(np.linalg.svd(invsqrt(sxx) @ sxy @ invsqrt(syy), compute_uv=False))


def test_coefficients_equal_svccas_on_well_sampled_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 8))
    y = x[:, :3] @ rng.standard_normal((3, 4)) + 2.0 * rng.standard_normal((500, 4))
    ours = cca.canonical_correlations(x, y)
    np.testing.assert_allclose(ours, _svcca_coefficients(x, y), atol=1e-8)
    assert ours.shape == (4,) and 0.2 < ours.mean() < 0.9


def test_a_linear_map_of_the_same_data_correlates_fully_and_noise_hardly():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2000, 6))
    assert cca.canonical_correlations(x, x @ rng.standard_normal((6, 3)) + 5.0) == pytest.approx(np.ones(3))
    noise = cca.canonical_correlations(x, rng.standard_normal((2000, 3)))
    assert noise.max() < 0.1
    # A constant column carries no variance: it is no dimension (SVCCA drops it too).
    assert cca.canonical_correlations(x, np.c_[x[:, :1], np.ones(2000)]).shape == (1,)


def test_too_few_clips_saturate_the_papers_number_and_not_the_held_out_one():
    rng = np.random.default_rng(2)
    signal = rng.standard_normal((40, 2))
    embeddings = np.c_[signal @ rng.standard_normal((2, 60)) * 10, rng.standard_normal((40, 60)) * 0.01]
    unrelated = rng.standard_normal((40, 3))
    related = signal @ rng.standard_normal((2, 3)) + 0.3 * rng.standard_normal((40, 3))
    paper = cca.mean_cca(embeddings, unrelated)
    assert paper.saturated and paper.mean_cca == pytest.approx(1.0)
    ids = np.arange(40)
    described = {i: {"mfcc_mean": unrelated[i].tolist(), "chroma_mean": related[i].tolist()} for i in ids.tolist()}
    table, settings = cca.cca_table({"model": embeddings}, ids, described, ["mfcc_mean", "chroma_mean"], permutations=30)
    unrelated_cell, related_cell = table["model"]["mfcc_mean"], table["model"]["chroma_mean"]
    assert unrelated_cell.paper.saturated and unrelated_cell.heldout < unrelated_cell.chance_95
    assert related_cell.heldout > 0.5 > related_cell.chance_95
    assert settings in cca.candidates(40 - 8 - 2)


def test_models_are_compared_on_one_footing_and_a_degenerate_one_does_not_win_by_its_rank():
    """A reduction to a share of each model's variance kept 2 directions of a rank-2 embedding unrelated to
    the descriptors and many of an informative one, and saturated the latter: the degenerate model looked
    as good or better. On one footing (same components and shrinkage, held out) it sits at its chance level."""
    rng = np.random.default_rng(5)
    n = 120
    descriptors = rng.standard_normal((n, 6))
    informative = np.c_[descriptors @ rng.standard_normal((6, 40)), rng.standard_normal((n, 200))]
    degenerate = rng.standard_normal((n, 2)) @ rng.standard_normal((2, 240)) + 1e-4 * rng.standard_normal((n, 240))
    ids = np.arange(n)
    described = {i: {"mfcc_mean": descriptors[i].tolist()} for i in ids.tolist()}
    table, settings = cca.cca_table({"trained": informative, "untrained": degenerate}, ids, described, ["mfcc_mean"])
    trained, untrained = table["trained"]["mfcc_mean"], table["untrained"]["mfcc_mean"]
    assert trained.heldout > trained.chance_95 and trained.heldout > untrained.heldout + 0.3
    assert untrained.heldout < untrained.chance_95
    fixed, same = cca.cca_table({"trained": informative, "untrained": degenerate}, ids, described, ["mfcc_mean"],
                                cca.Settings(4, 0.5))
    assert same == cca.Settings(4, 0.5) and fixed["trained"]["mfcc_mean"].heldout > fixed["untrained"]["mfcc_mean"].heldout
    rows = cca.summary(table)
    assert [r["model"] for r in rows] == ["trained", "untrained"] and rows[0]["sets_above_chance"] == 1


def test_the_table_lists_the_picture_only_when_it_was_drawn(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    ids = np.arange(40)
    described = {i: {"mfcc_mean": rng.standard_normal(3).tolist()} for i in ids.tolist()}
    table, settings = cca.cca_table({"model": rng.standard_normal((40, 8))}, ids, described, ["mfcc_mean"],
                                    cca.Settings(2, 0.5), permutations=5)
    written = cca.write_table(tmp_path, table, ["mfcc_mean"], settings, False, 5, {})
    assert [p.name for p in written] == [cca.TABLE_JSON, cca.TABLE_MARKDOWN, cca.FIGURE]
    taken = tmp_path / "taken"
    (taken / cca.FIGURE).mkdir(parents=True)  # the picture cannot be written there
    written = cca.write_table(taken, table, ["mfcc_mean"], settings, False, 5, {})
    assert [p.name for p in written] == [cca.TABLE_JSON, cca.TABLE_MARKDOWN] and all(p.is_file() for p in written)


@pytest.fixture()
def release(tmp_path) -> tuple[Path, Path, np.ndarray]:
    """A 24-clip validation file, descriptors of its clips, and an untrained encoder checkpoint."""
    dataset = write_release_file(tmp_path / "val", 24, n_tags=20, seed=3)
    with h5py.File(dataset) as f:
        ids = f["dataset/id"][:, 0]
    torch.manual_seed(0)
    torch.save(AudioEncoder().state_dict(), tmp_path / "audio_encoder_epoch_0.pt")
    return dataset, tmp_path / "audio_encoder_epoch_0.pt", ids


def _write_descriptors(path: Path, ids: np.ndarray, keys=DESCRIPTOR_KEYS) -> Path:
    rng = np.random.default_rng(4)
    width = {"mfcc": 20, "chroma": 12}
    path.write_text(json.dumps({str(i): {k: rng.random(width.get(k.split("_")[0], 1)).tolist() for k in keys}
                                for i in ids.tolist()}))
    return path


@pytest.mark.slow
def test_the_command_writes_the_table_and_figure(tmp_path, release, capsys):
    dataset, checkpoint, ids = release
    described = _write_descriptors(tmp_path / "d.json", ids)
    out = tmp_path / "cca"
    status = analyse.main(["cca", "--model", f"trained={checkpoint}", str(checkpoint), "--dataset", str(dataset),
                           "--descriptors", str(described), "--out", str(out), "--permutations", "5"])
    assert status == EXIT_OK
    printed = capsys.readouterr().out
    assert "| trained |" in printed and "| chance |" in printed  # the summary across models, chance beside
    table = json.loads((out / "cca.json").read_text())
    settings = table["settings"]  # one for every model of the run, chosen on held-out folds
    assert settings["chosen_on_held_out_folds"] and settings["folds"] == cca.FOLDS and settings["permutations"] == 5
    assert cca.Settings(settings["components"], settings["shrinkage"]) in cca.candidates(24)
    assert list(table["models"]) == ["trained", f"{checkpoint.parent.name}_0"]  # folder and epoch by default
    assert table["dataset"] == str(dataset)
    made = table["identities"]
    assert list(made) == list(table["models"]) and made["trained"] == made[f"{checkpoint.parent.name}_0"]
    assert made["trained"]["source"] == str(checkpoint) and made["trained"]["epoch"] == 0
    assert made["trained"]["paper_row"] is None and len(made["trained"]["audio_encoder_fingerprint"]) == 64
    assert table["descriptors"] == list(DESCRIPTOR_KEYS)
    for cells in table["models"].values():
        for cell in cells.values():
            assert -1.0 <= cell["heldout"] <= 1.0 and -1.0 <= cell["chance"] <= cell["chance_95"] <= 1.0
            assert 0.0 <= cell["paper"]["mean_cca"] <= 1.0 and cell["paper"]["n_clips"] == 24
            assert cell["paper"]["saturated"]  # 24 clips against a 1152-d embedding
    assert [row["model"] for row in table["summary"]] == list(table["models"])
    markdown = (out / "cca.md").read_text()
    assert "| mfcc_mean |" in markdown and "*" in markdown and "chance" in markdown
    assert (out / "cca.png").read_bytes()[:4] == b"\x89PNG"
    assert analyse.main(["cca", "--model", str(checkpoint), "--dataset", str(dataset), "--descriptors", str(described),
                         "--out", str(out), "--permutations", "2", "--json"]) == EXIT_OK
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"settings", "summary"} and printed["summary"][0]["sets"] == len(DESCRIPTOR_KEYS)


@pytest.mark.slow
def test_the_papers_descriptor_file_without_rolloff_is_used_for_what_it_holds(tmp_path, release, monkeypatch):
    """Run inside the checkpoint's folder: the label is still the folder's name and the epoch."""
    dataset, checkpoint, ids = release
    held = [k for k in DESCRIPTOR_KEYS if "rolloff" not in k]
    described = _write_descriptors(tmp_path / "sound_analysis_validation_set_librosa.json", ids, held)
    out = tmp_path / "cca"
    monkeypatch.chdir(checkpoint.parent)
    assert analyse.main(["cca", "--model", checkpoint.name, "--dataset", str(dataset), "--descriptors", str(described),
                         "--out", str(out), "--components", "2", "--shrinkage", "0.5", "--permutations", "2"]) == EXIT_OK
    table = json.loads((out / "cca.json").read_text())
    assert table["descriptors"] == held and (table["settings"]["components"], table["settings"]["shrinkage"]) == (2, 0.5)
    assert not table["settings"]["chosen_on_held_out_folds"]
    assert list(table["models"]) == [f"{checkpoint.parent.name}_0"]


def test_a_model_of_the_wrong_kind_and_too_few_clips_are_one_line_errors(tmp_path, release, capsys):
    dataset, checkpoint, ids = release
    tag_checkpoint = tmp_path / "tag_encoder_epoch_0.pt"
    torch.save(TagEncoder(n_tags=20).state_dict(), tag_checkpoint)
    described = _write_descriptors(tmp_path / "d.json", ids)
    args = ["--dataset", str(dataset), "--descriptors", str(described), "--out", str(tmp_path / "o")]
    assert analyse.main(["cca", "--model", str(tag_checkpoint), *args]) == EXIT_UNUSABLE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tag_checkpoint) in err[0] and "not a checkpoint of" in err[0]
    few = _write_descriptors(tmp_path / "few.json", ids[: cca.MIN_CLIPS - 1])
    args[3] = str(few)
    assert analyse.main(["cca", "--model", str(checkpoint), *args]) == EXIT_UNUSABLE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{few}: descriptors for {cca.MIN_CLIPS - 1} of the 24 clips" in err[0]


def test_a_run_folder_is_labelled_and_identified_by_its_record(tmp_path, release):
    """The folder's record gives the epoch, so the label is <folder>_<epoch> and cca.json says which model; a
    validation file that records the run's own scaler is analysed, one that records another is refused."""
    dataset, checkpoint, ids = release
    run = tmp_path / "my_run"
    write_run_folder(run)
    with h5py.File(dataset, "a") as f:
        write_provenance(f[GROUP], run_scaler(), run_vocabulary(20))
    described = _write_descriptors(tmp_path / "d.json", ids)
    out = tmp_path / "cca"
    assert analyse.main(["cca", "--model", str(run), str(run / "audio_encoder_epoch_3.pt"), "--dataset", str(dataset),
                         "--descriptors", str(described), "--out", str(out)]) == EXIT_UNUSABLE  # both my_run_3
    assert analyse.main(["cca", "--model", str(run), f"bare={checkpoint}", "--dataset", str(dataset),
                         "--descriptors", str(described), "--out", str(out)]) == EXIT_OK
    made = json.loads((out / "cca.json").read_text())["identities"]
    assert list(made) == ["my_run_3", "bare"]
    assert made["my_run_3"]["kind"] == "dual_ae" and made["my_run_3"]["epoch"] == 3
    assert made["my_run_3"]["audio_encoder_fingerprint"] != made["bare"]["audio_encoder_fingerprint"]


def test_a_validation_file_scaled_otherwise_than_the_run_is_one_line_error(tmp_path, release, capsys):
    dataset, _, ids = release
    run = tmp_path / "my_run"
    write_run_folder(run)
    with h5py.File(dataset, "a") as f:
        write_provenance(f[GROUP], run_scaler(seed=8), run_vocabulary(20))
    described = _write_descriptors(tmp_path / "d.json", ids)
    assert analyse.main(["cca", "--model", str(run), "--dataset", str(dataset), "--descriptors", str(described),
                         "--out", str(tmp_path / "cca")]) == EXIT_UNUSABLE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {dataset}: its patches were scaled with another scaler than {run}")
    assert not (tmp_path / "cca" / "cca.json").exists()
