"""classify.py on tiny datasets in the exact on-disk layouts of UrbanSound8K, GTZAN and NSynth.

Each dataset gets two embedding sets: ``embeddings_dual_ae_c_200`` (chunk arrays, class-separable, whose
model.json says the paper's AE_c made them) and ``mfcc`` ((d,) vectors of pure noise). The protocol must
score the first near 1 and the second near chance, and the results file must have the paper's shape.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import classify
from coala.core.errors import DownstreamError
from coala.encode.provenance import FOLDER_RECORD, claim_folder, folder_record
from coala.evaluation.datasets import read_nsynth, select_nsynth_training
from coala.evaluation.report import PAPER_RESULTS, UNKNOWN_MAKER, markdown_table, paper_row

SEPARABLE = "embeddings_dual_ae_c_200"
RANDOM = "mfcc"
CHUNK_WIDTH = 24
MFCC_WIDTH = 12
RUNS = 2
US8K_CLASSES = ["air_conditioner", "car_horn", "dog_bark"]
GENRES = ["blues", "classical", "metal"]
FAMILIES = ["bass", "guitar", "synth_lead", "vocal"]  # synth_lead must be left out


def _identity(model: str, epoch: int, paper: str | None, seed: str) -> dict:
    """A ``LoadedModel.identity()`` as encode.py records it (fingerprints stand in: they are only compared)."""
    return {"model": model, "source": f"saved_models/{model.removesuffix(f'_{epoch}')}", "epoch": epoch,
            "kind": "dual_ae", "paper_row": paper, "audio_encoder_fingerprint": seed * 64, "scaler_sha256": seed * 64}


PAPER_AE_C = folder_record(_identity("dual_ae_c_200", 200, "AE_c", "a"), "z")
OTHER = folder_record(_identity("my_ae_c_run_3", 3, None, "b"), "z")  # a model trained on one's own data
MFCC = folder_record({"model": "mfcc"}, "mfcc")
RECORDS = {SEPARABLE: PAPER_AE_C, RANDOM: MFCC}


class Writer:
    """Writes the two embedding sets for one clip: separable chunk arrays and random vectors."""

    def __init__(self, root: Path, n_classes: int, seed: int) -> None:
        self.root = root
        self.rng = np.random.default_rng(seed)
        self.centres = 4 * self.rng.standard_normal((n_classes, CHUNK_WIDTH))

    def write(self, subdir: str, stem: str, label: int) -> None:
        chunks = self.centres[label] + 0.5 * self.rng.standard_normal((3, CHUNK_WIDTH))
        for name, array in ((SEPARABLE, chunks), (RANDOM, self.rng.standard_normal(MFCC_WIDTH))):
            folder = self.root / subdir / name
            if not folder.is_dir():
                claim_folder(folder, RECORDS[name])
            np.save(folder / f"{stem}.npy", array.astype(np.float32))


def make_us8k(data: Path, writer: Writer, per_class_per_fold: int = 5) -> None:
    meta = data / "UrbanSound8K" / "metadata"
    meta.mkdir(parents=True)
    with open(meta / "UrbanSound8K.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"])
        for fold in range(1, 11):
            for class_id, name in enumerate(US8K_CLASSES):
                for k in range(per_class_per_fold):
                    fs_id = 1000 * fold + 10 * class_id + k
                    out.writerow([f"{fs_id}-{class_id}-0-{k}.wav", fs_id, 0.0, 4.0, 1, fold, class_id, name])
                    writer.write("us8k", f"{fs_id}-{class_id}-0-{k}", class_id)


def make_gtzan(data: Path, writer: Writer, per_genre: int = 16) -> None:
    root = data / "GTZAN"
    root.mkdir(parents=True)
    lists = {"train": [], "test": []}
    for label, genre in enumerate(GENRES):
        for k in range(per_genre):
            name = f"{genre}.{k:05d}"
            lists["train" if k % 2 else "test"].append(f"{genre}/{name}.wav")
            writer.write("gtzan", name, label)
    for part, lines in lists.items():
        (root / f"{part}_filtered.txt").write_text("\n".join(lines) + "\n")


def nsynth_names(family: str, n: int, offset: int) -> list[str]:
    source = "synthetic" if family == "synth_lead" else "acoustic"
    return [f"{family}_{source}_{offset + k:03d}-{40 + k:03d}-100" for k in range(n)]


def make_nsynth(data: Path, writer: Writer, selection: Path, train_n: int = 14, test_n: int = 8) -> None:
    audio = data / "nsynth" / "nsynth-test" / "audio"
    audio.mkdir(parents=True)
    chosen = {}
    for label, family in enumerate(FAMILIES):
        train, test = nsynth_names(family, train_n, 0), nsynth_names(family, test_n, 100)
        chosen[family] = train
        for name in train:
            writer.write("nsynth/train", name, label)
        for name in test:
            writer.write("nsynth/test", name, label)
            (audio / f"{name}.wav").touch()
    selection.write_text(json.dumps(chosen))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """All three tasks evaluated once, MLP and linear probe, with 2 parallel jobs."""
    root = tmp_path_factory.mktemp("full")
    data = root / "data"
    writer = Writer(data / "embeddings", n_classes=len(FAMILIES), seed=0)
    make_us8k(data, writer)
    make_gtzan(data, writer)
    make_nsynth(data, writer, root / "selection.json")
    out = root / "results" / "performances.json"
    code = classify.main(["--data-dir", str(data), "--runs", str(RUNS), "--classifier", "mlp", "linear",
                          "--jobs", "2", "--nsynth-selection", str(root / "selection.json"), "--out", str(out)])
    assert code == 0
    return out, json.loads(out.read_text()), root


def the_error(capsys) -> str:
    """The run's one ``error:`` line (other messages may precede it on stderr), with no traceback."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.mark.slow
def test_results_have_the_papers_shape_with_one_score_per_run(full_run):
    _, results, _ = full_run
    assert set(results) == {"US8K", "GTZAN", "NSynth", "meta"}
    for task in ("US8K", "GTZAN", "NSynth"):
        assert set(results[task]) == {SEPARABLE, RANDOM, f"{SEPARABLE} (linear)", f"{RANDOM} (linear)"}
        assert len(results[task][SEPARABLE]) == len(results[task][RANDOM]) == RUNS
        assert len(results[task][f"{SEPARABLE} (linear)"]) == 1
    assert len(results["meta"]["run_seeds"]) == RUNS
    assert results["meta"]["tasks"]["US8K"]["embeddings"][SEPARABLE]["counts"]["fold 3"] == {"train": 135,
                                                                                         "test": 15}


@pytest.mark.slow
def test_separable_embeddings_score_near_one_and_random_near_chance(full_run):
    _, results, _ = full_run
    for task, n_classes in (("US8K", 3), ("GTZAN", 3), ("NSynth", 3)):
        for name in (SEPARABLE, f"{SEPARABLE} (linear)"):
            assert min(results[task][name]) >= 0.95, (task, name, results[task][name])
        for name in (RANDOM, f"{RANDOM} (linear)"):
            assert max(results[task][name]) <= 1 / n_classes + 0.25, (task, name, results[task][name])


@pytest.mark.slow
def test_synth_lead_is_left_out_of_training_and_test(full_run):
    _, results, _ = full_run
    nsynth = results["meta"]["tasks"]["NSynth"]
    assert nsynth["classes"] == ["bass", "guitar", "vocal"]
    assert nsynth["left_out_synth_lead"] == 14 + 8
    assert nsynth["embeddings"][SEPARABLE]["counts"]["test"] == {"train": 3 * 14, "test": 3 * 8}
    assert nsynth["training_selection"]["source"] == "file"


@pytest.mark.slow
def test_gtzan_reads_every_line_of_the_lists(full_run):
    _, results, _ = full_run
    counts = results["meta"]["tasks"]["GTZAN"]["embeddings"][SEPARABLE]["counts"]["test"]
    assert counts == {"train": 3 * 8, "test": 3 * 8}


@pytest.mark.slow
def test_table_and_confusion_matrices_are_written_beside_the_results(full_run):
    out, results, _ = full_run
    table = out.with_suffix(".md").read_text()
    assert "{:.2f} ± {:.2f}".format(*PAPER_RESULTS["AE_c"]["US8K"]) in table
    assert "{:.2f} ± {:.2f}".format(*PAPER_RESULTS["MFCC"]["NSynth"]) in table
    mean = 100 * np.mean(results["GTZAN"][SEPARABLE])
    assert f"{mean:.2f} ± " in table
    for task in ("us8k", "gtzan", "nsynth"):
        png = out.with_name(f"performances_confusion_{task}.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paper_rows_come_from_the_record_never_the_name():
    assert paper_row("embeddings_dual_ae_c_200", None) is None
    assert paper_row("embeddings_dual_ae_c_200", OTHER) is None
    assert paper_row("whatever", PAPER_AE_C) == "AE_c" and paper_row("x", MFCC) == "MFCC"
    assert paper_row("whatever (linear)", PAPER_AE_C) is None and paper_row("mfcc (linear)", MFCC) is None
    assert paper_row("whatever_zd", {**PAPER_AE_C, "output": "z_d"}) is None  # the paper's figures are of z
    table = markdown_table({"US8K": {"embeddings_mine_3": [0.5, 0.7]}})
    assert f"| embeddings_mine_3 | {UNKNOWN_MAKER} | — | 60.00 ± 10.00 | — |" in table


def test_the_follow_up_papers_figures_stand_beside_a_contextual_models_rows():
    """Told by the record's kind and sizes (which of the authors' variants it is), for its z only."""
    contextual = folder_record({**_identity("demo_contextual_10", 10, None, "c"), "kind": "contextual",
                                "word_dim": 128, "attention_heads": 4}, "z")
    assert paper_row("embeddings_demo_contextual_10", contextual) == "follow-up 128-d, 4 heads"
    assert paper_row("x", {**contextual, "word_dim": 64}) is None  # no variant of the authors' of these sizes
    assert paper_row("x", {**contextual, "output": "z_d"}) is None and paper_row("x (linear)", contextual) is None
    results = {"US8K": {"x": [0.5]}, "meta": {"tasks": {"US8K": {"embeddings": {"x": {"model": contextual}}}}}}
    assert "| x | demo_contextual, epoch 10 | follow-up 128-d, 4 heads | 50.00 | 73.51 ± 0.30 |" in markdown_table(results)


def _table_rows(table: str) -> dict[str, str]:
    return {line.split(" | ")[0].removeprefix("| "): line for line in table.splitlines()[2:]}


def test_paper_figures_stand_beside_the_papers_model_only(tmp_path, capsys):
    """The same embeddings in four folders: the paper's model's under its default name and under another
    name get the paper's figures; an AE_c-named folder another model made, and one without model.json
    (an earlier version's), do not, and the table says which model made each row."""
    data = _small_gtzan(tmp_path)
    gtzan = data / "embeddings" / "gtzan"
    for name in ("mine", "embeddings_my_ae_c_run_3", "embeddings_old_ae_c_200"):
        shutil.copytree(gtzan / SEPARABLE, gtzan / name)
    (gtzan / "embeddings_my_ae_c_run_3" / FOLDER_RECORD).write_text(json.dumps(OTHER))
    (gtzan / "embeddings_old_ae_c_200" / FOLDER_RECORD).unlink()
    out = tmp_path / "r.json"
    assert _run(data, out) == 0
    captured = capsys.readouterr()
    rows = _table_rows(out.with_suffix(".md").read_text())
    paper = "{:.2f} ± {:.2f}".format(*PAPER_RESULTS["AE_c"]["GTZAN"])
    assert rows[SEPARABLE].startswith(f"| {SEPARABLE} | dual_ae_c, epoch 200 | AE_c | ") and paper in rows[SEPARABLE]
    assert rows["mine"].startswith("| mine | dual_ae_c, epoch 200 | AE_c | ") and paper in rows["mine"]
    assert rows["embeddings_my_ae_c_run_3"].startswith("| embeddings_my_ae_c_run_3 | my_ae_c_run, epoch 3 | — | ")
    assert rows["embeddings_old_ae_c_200"].startswith(f"| embeddings_old_ae_c_200 | {UNKNOWN_MAKER} | — | ")
    for name in ("embeddings_my_ae_c_run_3", "embeddings_old_ae_c_200"):
        assert paper not in rows[name] and rows[name].endswith(" | — |")
    assert "{:.2f} ± {:.2f}".format(*PAPER_RESULTS["MFCC"]["GTZAN"]) in rows[RANDOM]
    assert rows == _table_rows(captured.out.strip() + "\n")  # the printed table is the file's
    notes = [line for line in captured.err.splitlines() if FOLDER_RECORD in line]
    assert notes == [f"note: embeddings_old_ae_c_200: no {FOLDER_RECORD} in its folders (encoded by an earlier "
                     "version), so which model made it is unknown and no paper figures stand beside it; encode it "
                     "again to compare it with the paper"]
    made = json.loads(out.read_text())["meta"]["tasks"]["GTZAN"]["embeddings"]
    assert made["embeddings_my_ae_c_run_3"]["model"] == OTHER and made["embeddings_old_ae_c_200"]["model"] is None


def test_folders_of_one_set_made_by_two_models_are_a_one_line_error(tmp_path, capsys):
    data = tmp_path / "data"
    make_nsynth(data, Writer(data / "embeddings", n_classes=len(FAMILIES), seed=3), tmp_path / "selection.json",
                train_n=6, test_n=4)
    record = data / "embeddings" / "nsynth" / "train" / SEPARABLE / FOLDER_RECORD
    record.write_text(json.dumps(OTHER))
    assert _run(data, tmp_path / "r.json", "--tasks", "nsynth", "--nsynth-selection", str(tmp_path / "selection.json")) == 2
    error = the_error(capsys)
    assert error.startswith(f"error: {record}: z of my_ae_c_run_3 (saved_models/my_ae_c_run), but ")
    assert f"{data / 'embeddings' / 'nsynth' / 'test' / SEPARABLE / FOLDER_RECORD}: z of dual_ae_c_200" in error


def _small_gtzan(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    make_gtzan(data, Writer(data / "embeddings", n_classes=len(GENRES), seed=1), per_genre=8)
    return data


def _run(data: Path, out: Path, *extra: str) -> int:
    return classify.main(["--data-dir", str(data), "--runs", "1", "--out", str(out), *extra])


def test_missing_embeddings_are_counted_and_the_rest_evaluated(tmp_path, capsys):
    data = _small_gtzan(tmp_path)
    for stem in ("blues.00001", "metal.00002"):
        (data / "embeddings" / "gtzan" / SEPARABLE / f"{stem}.npy").unlink()
    (data / "embeddings" / "gtzan" / SEPARABLE / "blues.00003.npy").write_bytes(b"not numpy")
    out = tmp_path / "r.json"
    assert _run(data, out) == 0
    results = json.loads(out.read_text())
    gtzan = results["meta"]["tasks"]["GTZAN"]["embeddings"]
    assert (gtzan[SEPARABLE]["missing"], gtzan[SEPARABLE]["unreadable"]) == (2, 1)
    assert (gtzan[RANDOM]["missing"], gtzan[RANDOM]["unreadable"]) == (0, 0)
    assert gtzan[SEPARABLE]["counts"]["test"] == {"train": 12 - 2, "test": 12 - 1}
    assert len(results["GTZAN"][SEPARABLE]) == 1
    assert "GTZAN embeddings_dual_ae_c_200: 2 of 24 listed embeddings missing, 1 unreadable" in capsys.readouterr().err


def test_absent_tasks_are_skipped_with_a_message(tmp_path, capsys):
    data = _small_gtzan(tmp_path)
    out = tmp_path / "r.json"
    assert _run(data, out) == 0
    messages = capsys.readouterr().err
    assert "US8K: skipped, data absent" in messages and "NSynth: skipped" in messages
    results = json.loads(out.read_text())
    assert set(results) == {"GTZAN", "meta"}
    assert set(results["meta"]["skipped"]) == {"US8K", "NSynth"}


def test_no_data_at_all_is_a_one_line_error(tmp_path, capsys):
    assert _run(tmp_path / "nothing", tmp_path / "r.json") == 2
    assert the_error(capsys).startswith("error: no task could be evaluated")
    assert not (tmp_path / "r.json").exists()


def test_mismatched_widths_stop_with_an_error_naming_the_file(tmp_path, capsys):
    data = _small_gtzan(tmp_path)
    bad = data / "embeddings" / "gtzan" / RANDOM / "metal.00005.npy"
    np.save(bad, np.zeros(MFCC_WIDTH + 1, np.float32))
    assert _run(data, tmp_path / "r.json") == 2
    err = the_error(capsys)
    assert str(bad) in err and "width 13 differs from 12" in err


def test_malformed_list_line_is_a_one_line_error(tmp_path, capsys):
    data = _small_gtzan(tmp_path)
    (data / "GTZAN" / "test_filtered.txt").write_text("blues.00000.wav\n")
    assert _run(data, tmp_path / "r.json") == 2
    err = the_error(capsys)
    assert "test_filtered.txt" in err and "'blues.00000.wav'" in err


@pytest.mark.slow
def test_later_task_runs_keep_earlier_results_and_seeds_repeat(tmp_path):
    data = _small_gtzan(tmp_path)
    make_us8k(data, Writer(data / "embeddings", n_classes=3, seed=2), per_class_per_fold=2)
    out = tmp_path / "r.json"
    assert _run(data, out, "--tasks", "gtzan", "--embedding", SEPARABLE) == 0
    first = json.loads(out.read_text())
    assert _run(data, out, "--tasks", "us8k", "--embedding", RANDOM) == 0
    merged = json.loads(out.read_text())
    assert merged["GTZAN"] == first["GTZAN"] and set(merged["US8K"]) == {RANDOM}
    assert set(merged["meta"]["tasks"]) == {"GTZAN", "US8K"}
    assert _run(data, out, "--tasks", "gtzan", "--embedding", SEPARABLE, "--jobs", "2") == 0
    assert json.loads(out.read_text())["GTZAN"] == first["GTZAN"]  # same seed, parallel or not


def test_later_runs_of_other_embedding_sets_keep_the_earlier_sets(tmp_path):
    data = _small_gtzan(tmp_path)
    out = tmp_path / "r.json"
    assert _run(data, out, "--tasks", "gtzan", "--embedding", SEPARABLE) == 0
    first = json.loads(out.read_text())
    assert _run(data, out, "--tasks", "gtzan", "--embedding", RANDOM) == 0
    merged = json.loads(out.read_text())
    assert set(merged["GTZAN"]) == {SEPARABLE, RANDOM} and merged["GTZAN"][SEPARABLE] == first["GTZAN"][SEPARABLE]
    assert set(merged["meta"]["tasks"]["GTZAN"]["embeddings"]) == {SEPARABLE, RANDOM}


def test_a_task_with_nothing_readable_keeps_its_earlier_results_and_exits_1(tmp_path, capsys):
    data = _small_gtzan(tmp_path)
    out = tmp_path / "r.json"
    assert _run(data, out, "--tasks", "gtzan") == 0
    before = out.read_bytes()
    for npy in (data / "embeddings" / "gtzan").rglob("*.npy"):
        npy.write_bytes(b"not numpy")
    capsys.readouterr()
    assert _run(data, out, "--tasks", "gtzan") == 1
    assert out.read_bytes() == before
    err = capsys.readouterr().err
    assert "error: GTZAN: none of the embedding sets" in err and "Traceback" not in err


def test_an_unwritable_out_stops_before_any_fit(tmp_path, capsys):
    data = _small_gtzan(tmp_path)
    (tmp_path / "a_file").write_text("")
    assert _run(data, tmp_path / "a_file" / "r.json") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --out: cannot write into"), err
    assert _run(data, tmp_path) == 2
    assert "is a folder" in capsys.readouterr().err


def test_nsynth_without_selection_file_draws_a_seeded_selection(tmp_path, capsys):
    data = tmp_path / "data"
    make_nsynth(data, Writer(data / "embeddings", n_classes=len(FAMILIES), seed=3), tmp_path / "unused.json",
                train_n=6, test_n=4)
    task = read_nsynth(data, data / "embeddings", tmp_path / "absent.json", seed=0)
    assert task.info["training_selection"]["source"] == "seeded"
    assert sorted(set(task.classes)) == ["bass", "guitar", "vocal"]
    assert (task.groups == "train").sum() == 3 * 6
    pool = {f"{family}_acoustic_{k % 1000:03d}-{20 + k // 1000:03d}-100" for family in ("bass", "vocal")
            for k in range(2100)} | {"brass_acoustic_000-060-100"}
    chosen = select_nsynth_training(pool, seed=5)
    assert len(chosen) == 2 * 2000 + 1 and "brass_acoustic_000-060-100" in chosen
    assert chosen == select_nsynth_training(pool, seed=5) != select_nsynth_training(pool, seed=6)
    with pytest.raises(DownstreamError, match="not an NSynth note name"):
        select_nsynth_training({"piano_acoustic_000-060-100"}, seed=0)


def test_malformed_us8k_row_is_a_one_line_error(tmp_path, capsys):
    data = tmp_path / "data"
    make_us8k(data, Writer(data / "embeddings", n_classes=3, seed=4), per_class_per_fold=1)
    csv_path = data / "UrbanSound8K" / "metadata" / "UrbanSound8K.csv"
    lines = csv_path.read_text().splitlines()
    lines[1] = lines[1].replace(",1,0,air_conditioner", ",one,0,air_conditioner")
    csv_path.write_text("\n".join(lines) + "\n")
    assert _run(data, tmp_path / "r.json", "--tasks", "us8k") == 2
    assert f"{csv_path} line 2: classID and fold must be integers, got '0' and 'one'" in the_error(capsys)


def test_embedding_set_without_test_clips_is_skipped_and_the_others_evaluated(tmp_path, capsys):
    data = _small_gtzan(tmp_path)
    for line in (data / "GTZAN" / "test_filtered.txt").read_text().split():
        (data / "embeddings" / "gtzan" / RANDOM / f"{Path(line).stem}.npy").unlink()
    out = tmp_path / "r.json"
    assert _run(data, out) == 0
    results = json.loads(out.read_text())
    assert set(results["GTZAN"]) == {SEPARABLE}
    assert results["meta"]["tasks"]["GTZAN"]["embeddings"][RANDOM]["missing"] == 12
    assert "warning: GTZAN mfcc: skipped, a split has no test clip" in capsys.readouterr().err


@pytest.mark.parametrize("array, message", [
    (np.full((3, 4), "x"), "expected an array of real numbers, got <U1"),
    (np.ones((3, 4), np.complex64), "expected an array of real numbers, got complex64"),
    (np.ones((2, 3, 4), np.float32), "got shape (2, 3, 4)"),
    (np.array([1.0, np.nan], np.float32), "holds non-finite values"),
])
def test_an_embedding_file_that_is_no_vector_is_named(tmp_path: Path, array: np.ndarray, message: str) -> None:
    """2-D strings stopped the average with a TypeError traceback; complex vectors lost their imaginary part."""
    from coala.encode import read_embeddings
    from coala.evaluation.task import clip_vector
    np.save(tmp_path / "clip.npy", array)
    with pytest.raises(DownstreamError, match=f"clip.npy: .*{re.escape(message)}"):
        clip_vector(read_embeddings(tmp_path), "clip")


def test_an_object_array_is_never_unpickled(tmp_path: Path) -> None:
    from coala.encode import read_embeddings
    from coala.evaluation.task import clip_vector
    np.save(tmp_path / "clip.npy", np.array([print], dtype=object), allow_pickle=True)
    with pytest.raises(DownstreamError, match="clip.npy: cannot read .*allow_pickle"):
        clip_vector(read_embeddings(tmp_path), "clip")
