"""The package's shape: installable on its own, no imports of the scripts, no side effects at import,
defaults found from any folder, and one way for every entry point to report a user's error."""
from __future__ import annotations

import ast
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from coala import assets
from coala.cli import EXIT_UNUSABLE, entry_point, progress_bar
from coala.core.errors import CoalaError, UsageError
from conftest import ROOT

PACKAGE = ROOT / "coala"
SCRIPTS = {p.stem for p in ROOT.glob("*.py")}


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_package_module_imports_a_top_level_script() -> None:
    assert {"encode", "models_t1000", "data_loader", "train_dual_ae"} <= SCRIPTS
    offenders = {str(p.relative_to(ROOT)): sorted(_imported_modules(p) & SCRIPTS) for p in PACKAGE.rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.slow
def test_wheel_installs_and_every_module_imports_without_the_repository(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy of the tracked files: building leaves build/ beside the sources
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked + [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*") if p.is_file()]:
        if (ROOT / name).is_file() and "__pycache__" not in name:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(tmp_path / "wheel"), str(source)], check=True, timeout=300, cwd=tmp_path,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (wheel,) = (tmp_path / "wheel").glob("coala-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:  # what `pip install --target` does, without touching the venv
        archive.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = (
        "import importlib, pkgutil, sys\n"
        f"sys.path = [p for p in sys.path if p.rstrip('/') != {str(ROOT)!r} and p not in ('', '.')]\n"
        "sys.meta_path = [f for f in sys.meta_path if 'editable' not in type(f).__module__.lower()]\n"
        "import coala\n"
        f"assert coala.__file__.startswith({str(site)!r}), coala.__file__\n"
        "names = [m.name for m in pkgutil.walk_packages(coala.__path__, 'coala.')]\n"
        "names += ['models_t1000', 'data_loader', 'losses', 'encode', 'utils']\n"
        "for name in names:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(site)!r}), module.__file__\n"
        "from coala.data.tags import stop_words\n"
        "assert len(stop_words()) == 179\n"
        "print(len(names))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    done = subprocess.run([sys.executable, "-c", check], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 40


@pytest.mark.slow
def test_nothing_happens_at_import() -> None:
    """Importing every module leaves the plotting backend, logging and the current folder alone."""
    check = (
        "import importlib, logging, os, pkgutil\n"
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "import coala\n"
        "for m in pkgutil.walk_packages(coala.__path__, 'coala.'):\n"
        "    importlib.import_module(m.name)\n"
        "import encode, utils, models_t1000, data_loader, losses, train_dual_ae, classify\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
        "assert not logging.getLogger().handlers and not logging.getLogger('coala').handlers\n"
        "assert 'scaler' not in vars(encode)\n"
        "assert os.listdir('.') == []\n"
    )
    empty = Path(os.environ["COALA_HOME"]) / "import_check"
    empty.mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, "-c", check], cwd=empty, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr


def test_asset_root_is_the_checkout_or_coala_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("COALA_HOME", raising=False)
    assert assets.asset_root() == ROOT  # running from the checkout (or an editable install of it)
    monkeypatch.setenv("COALA_HOME", str(tmp_path))
    assert assets.asset_root() == tmp_path
    assert assets.default_path(assets.SCALER) == tmp_path / "json" / "scaler_top_1000.json"
    (tmp_path / "saved_models" / "x").mkdir(parents=True)
    (tmp_path / "saved_models" / "x" / "a.pt").write_bytes(b"")
    monkeypatch.chdir(tmp_path.parent)
    assert assets.locate("saved_models/x/a.pt") == tmp_path / "saved_models" / "x" / "a.pt"
    assert assets.locate("saved_models/x/missing.pt") == Path("saved_models/x/missing.pt")  # named as given


def test_entry_points_report_a_users_error_in_one_line_and_keep_a_bugs_traceback(capsys) -> None:
    @entry_point
    def unusable(argv=None) -> int:
        logging.getLogger("coala.test").info("started")
        raise UsageError("--thing: must be at least 1, got 0")

    @entry_point
    def buggy(argv=None) -> int:
        raise ZeroDivisionError("a bug")

    assert unusable() == EXIT_UNUSABLE
    assert capsys.readouterr().err == "started\nerror: --thing: must be at least 1, got 0\n"
    with pytest.raises(ZeroDivisionError):
        buggy()
    assert issubclass(UsageError, CoalaError) and not issubclass(CoalaError, ValueError)


def test_progress_bars_redraw_rarely_when_stderr_is_not_a_terminal(capsys) -> None:
    for _ in progress_bar(range(20000), desc="work"):
        pass
    err = capsys.readouterr().err
    assert 1 <= err.count("\r") + err.count("\n") <= 4, err


@pytest.mark.parametrize("argv", [
    ["analyse.py", "descriptors", "--audio-dir", ".", "--dataset", "x.json", "--out", "o.json", "--workers", "100000"],
    ["search.py", "index", "--model", ".", "--input", ".", "--index", "i", "--workers", "100000"],
])
@pytest.mark.slow
def test_worker_counts_beyond_the_bound_are_one_line_before_any_work(tmp_path, argv):
    result = subprocess.run([sys.executable, str(ROOT / argv[0]), *argv[1:]], cwd=tmp_path, capture_output=True,
                            text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--workers" in result.stderr and "64" in result.stderr
    assert not any(tmp_path.iterdir())
