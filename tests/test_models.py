"""The paper's networks: exact state_dict names and shapes, strict loading of its checkpoint formats."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from coala.core.errors import CheckpointError
from conftest import ROOT
from encode import return_loaded_model
from models_t1000 import CNN, AudioDecoder, AudioEncoder, TagDecoder, TagEncoder

MODELS = {"audio_encoder": AudioEncoder, "audio_decoder": AudioDecoder, "tag_encoder": TagEncoder,
          "tag_decoder": TagDecoder, "cnn": CNN}


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_names_and_shapes_are_the_papers(reference, name):
    expected = json.loads((reference / "expected" / "state_dict_shapes.json").read_text())[name]
    ours = {k: list(v.shape) for k, v in MODELS[name]().state_dict().items()}
    assert ours == expected


@pytest.mark.parametrize("name", MODELS)
def test_fixture_checkpoints_load_strictly(reference, name):
    model = return_loaded_model(MODELS[name], reference / "checkpoints" / f"{name}.pt")
    assert not model.training
    state = torch.load(reference / "checkpoints" / f"{name}.pt", weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_legacy_format_checkpoint_is_really_legacy(reference):
    import zipfile
    assert not zipfile.is_zipfile(reference / "checkpoints" / "audio_encoder.pt")
    assert zipfile.is_zipfile(reference / "checkpoints" / "cnn.pt")


def test_mismatched_checkpoint_names_keys(reference):
    with pytest.raises(CheckpointError, match=r"audio_encoder.pt: does not fit CNN: missing keys: encoder\.0\.bias"):
        return_loaded_model(CNN, reference / "checkpoints" / "audio_encoder.pt")


def test_unreadable_checkpoint_names_file(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="broken.pt: not a zip or legacy torch checkpoint: a text file"):
        return_loaded_model(AudioEncoder, bad)
    with pytest.raises(CheckpointError, match="absent.pt: checkpoint not found"):
        return_loaded_model(AudioEncoder, tmp_path / "absent.pt")


@pytest.mark.parametrize("model_class, width_key", [(TagEncoder, "tag_encoder.0.weight"),
                                                     (TagDecoder, "tag_decoder.7.weight"), (CNN, "fc.2.weight")])
def test_vocabulary_size_comes_from_the_checkpoint(tmp_path, model_class, width_key):
    path = tmp_path / "small.pt"
    torch.save(model_class(n_tags=300).state_dict(), path)
    model = return_loaded_model(model_class, path)
    assert 300 in model.state_dict()[width_key].shape


def test_shapes_through_the_autoencoders():
    enc, dec = AudioEncoder().eval(), AudioDecoder().eval()
    z, z_d = enc(torch.rand(2, 1, 96, 96))
    assert z.shape == z_d.shape == (2, 1152)
    x_hat = dec(z)
    assert x_hat.shape == (2, 1, 96, 96) and 0 <= x_hat.min() and x_hat.max() <= 1
    tz, tz_d = TagEncoder(n_tags=300).eval()(torch.rand(2, 300))
    assert tz.shape == tz_d.shape == (2, 1152)
    assert TagDecoder(n_tags=300).eval()(tz).shape == (2, 300)


# Each writes an unusable checkpoint under a folder and returns its path; the error it must raise.
UNREADABLE = {
    "text file": (lambda tmp, ref: _write(tmp / "notes.pt", b"epoch 200, lr 5e-3\n"),
                  r"not a zip or legacy torch checkpoint: a text file"),
    "wav file": (lambda tmp, ref: _write(tmp / "clip.pt", (ref / "audio" / "pluck_16k.wav").read_bytes()),
                 r"not a zip or legacy torch checkpoint: a WAV/RIFF file"),
    # torch's own error for this one is "[Errno 22] Invalid argument", without the file's name.
    "zip cut short": (lambda tmp, ref: _write(tmp / "cut.pt", (ref / "checkpoints" / "cnn.pt").read_bytes()[:50000]),
                      r"truncated zip checkpoint \(its zip directory is missing: cut short\?\)"),
    "legacy cut short": (lambda tmp, ref: _write(tmp / "cut.pt",
                                                 (ref / "checkpoints" / "audio_encoder.pt").read_bytes()[:50000]),
                         r"truncated legacy checkpoint \(unexpected EOF, expected \d+ more bytes\)"),
    "legacy cut in its magic": (lambda tmp, ref: _write(tmp / "cut.pt", b"\x80\x02"),
                                r"truncated legacy checkpoint \(2 bytes, shorter than its header\)"),
    "directory": (lambda tmp, ref: _mkdir(tmp / "model.pt"), r"is a directory, not a checkpoint file"),
    "empty file": (lambda tmp, ref: _write(tmp / "empty.pt", b""), r"empty file, not a checkpoint"),
    "whole pickled model": (lambda tmp, ref: _saved(AudioEncoder(), tmp / "model.pt"),
                            r"a zip checkpoint holding objects other than tensors \(a whole pickled model\? "
                            r"save its state_dict\(\) instead\)"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _saved(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.mark.parametrize("case", UNREADABLE)
def test_unreadable_checkpoints_are_one_line_naming_file_and_kind(reference, tmp_path, case):
    make, message = UNREADABLE[case]
    path = make(tmp_path, reference)
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: {message}$"):
        return_loaded_model(AudioEncoder, path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(reference, tmp_path, value):
    state = torch.load(reference / "checkpoints" / "audio_encoder.pt", weights_only=True)
    state["audio_encoder.5.running_var"][3] = value
    path = tmp_path / "diverged.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: tensor audio_encoder\.5\.running_var holds "
                                              r"NaN or Inf values"):
        return_loaded_model(AudioEncoder, path)


@pytest.mark.parametrize("case", ["wav file", "zip cut short", "nan weights"])
@pytest.mark.slow
def test_encode_cli_reports_an_unusable_model_in_one_line(reference, tmp_path, case):
    if case == "nan weights":
        state = torch.load(reference / "checkpoints" / "audio_encoder.pt", weights_only=True)
        state["audio_encoder.0.weight"].view(-1)[0] = float("nan")
        model = tmp_path / "nan.pt"
        torch.save(state, model)
    else:
        model = UNREADABLE[case][0](tmp_path, reference)
    result = subprocess.run([sys.executable, str(ROOT / "encode.py"), "--model", str(model), "--input",
                             str(reference / "audio" / "pluck_16k.wav"), "--output", str(tmp_path / "out"), "--quiet"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {model}: ")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.npy"))
