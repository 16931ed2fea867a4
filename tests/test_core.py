"""``coala.core``, the paper in one place: it stands alone (imports nothing else of ``coala``), and its
``ModelDims`` is the one home of the model's sizes. (That no module of ``coala`` imports an entry script
is tests/test_package.py's.)"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from coala.core.errors import CheckpointError
from coala.core.model import CNN, DualAE, ModelDims
from conftest import ROOT

CORE = ROOT / "coala" / "core"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, text: str | None = None) -> set[str]:
    """Every module the module at ``path`` (its source ``text``, or the file's) imports, anywhere in it
    (inside functions too), relative imports resolved against its package, and the names given
    literally to ``importlib.import_module`` or ``__import__``."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    names = set()
    source = path.read_text(encoding="utf-8") if text is None else text
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)  # ``from coala import assets``
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value))
    return names


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def _outside_core(name: str) -> bool:
    return _within(name, "coala") and not _within(name, "coala.core")


def test_core_imports_nothing_else_of_coala() -> None:
    modules = sorted(CORE.rglob("*.py"))
    assert {p.stem for p in modules} >= {"__init__", "frontend", "model", "errors"}
    offenders = {str(p.relative_to(ROOT)): sorted(filter(_outside_core, imported_modules(p))) for p in modules}
    assert {path: names for path, names in offenders.items() if names} == {}


@pytest.mark.parametrize("source, expected", [
    ("from . import errors", {"coala.core", "coala.core.errors"}),
    ("from .. import assets", {"coala", "coala.assets"}),
    ("from ..models.record import X", {"coala.models.record", "coala.models.record.X"}),
    ("def f():\n    import coala.fetch", {"coala.fetch"}),
    ("import importlib\nimportlib.import_module('coala.cli')", {"importlib", "coala.cli"}),
])
def test_the_import_walker_sees_every_form(source: str, expected: set[str]) -> None:
    """The check above is only as good as ``imported_modules``: relative forms resolve against the
    package, imports inside functions and by name are seen."""
    found = imported_modules(CORE / "probe.py", source)
    assert found == expected


def test_model_dims_alone_size_every_network() -> None:
    """Sizes other than the paper's reach every layer: nothing in the networks repeats 128, 1152 or 1000."""
    dims = ModelDims(n_tags=30, channels=64, tag_hidden=100)
    model = DualAE(dims=dims).eval()
    assert model.tag_encoder.tag_encoder[0].in_features == 30 and model.tag_decoder.tag_decoder[-3].out_features == 30
    assert dims.latent_dim == 64 * 3 * 3 == model.audio_encoder.fc_audio[0].in_features
    with torch.no_grad():
        out = model(torch.rand(2, 1, 96, 96), torch.rand(2, 30))
        z, z_d = model.audio_encoder(torch.rand(2, 1, 96, 96))
        cnn_z, scores = CNN(dims=dims).eval()(torch.rand(2, 1, 96, 96))
    assert z.shape == z_d.shape == out.z_d_tags.shape == cnn_z.shape == (2, 576)
    assert out.x_recon.shape == (2, 1, 96, 96) and out.tags_recon.shape == scores.shape == (2, 30)
    assert all(module.dims == dims for module in model.parts().values())


def test_model_dims_round_trip_through_a_record() -> None:
    dims = ModelDims(n_tags=30, channels=64)
    stored = dims.to_dict()
    assert stored["latent_dim"] == stored["projection_dim"] == 576
    assert ModelDims.from_dict(stored, "config.json") == dims
    assert ModelDims.from_dict({}, "config.json") == ModelDims()


@pytest.mark.parametrize("values, message", [
    ([128], "dims must be an object of sizes, found list"),
    ({"channels": 64, "latent_dim": 1152}, "dims.latent_dim is 1152, but these sizes give 576"),
    ({"projection_dim": 100}, "dims.projection_dim is 100, but these sizes give 1152"),
    ({"n_mels": 128}, "patches of 128x96, but the front end makes 96x96"),
    ({"n_tags": 0}, "are not sizes a network can have"),
    ({"dropout": 1.0}, "are not sizes a network can have"),
    ({"channels": 64.5}, "dims.channels must be a number, got 64.5"),
    ({"channels": "64"}, "dims.channels must be a number, got '64'"),
    ({"n_tags": True}, "dims.n_tags must be a number, got True"),
])
def test_model_dims_refuse_inconsistent_sizes(values: object, message: str) -> None:
    with pytest.raises(CheckpointError, match="^config.json: ") as caught:
        ModelDims.from_dict(values, "config.json")
    assert message in str(caught.value)
