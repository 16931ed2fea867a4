"""The paper's networks: exact state_dict names and shapes, strict loading of its checkpoint formats."""
from __future__ import annotations

import json

import pytest
import torch

from coala.errors import CheckpointError
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
    with pytest.raises(CheckpointError, match="broken.pt: not a readable torch checkpoint"):
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
