"""The paper's module surface: code written for its repository runs on this project unchanged."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import encode
import utils
from coala.audio.scaler import load_scaler, save_scaler
from coala.core.errors import VocabularyError
from models_t1000 import AudioEncoder, TagEncoder
from conftest import CLIPS, ROOT


def test_pad_is_the_papers(tmp_path: Path) -> None:
    signal = np.linspace(-0.5, 0.5, 1234, dtype=np.float64)
    for sr in (22000, 16000):
        padded = utils.pad(signal, sr)
        assert padded.dtype == np.float32 and padded.shape == (10 * sr,)
        noise = padded - np.pad(signal, (0, 10 * sr - signal.size)).astype(np.float32)
        assert noise.min() >= 0 and noise.max() < 5e-4 and noise.std() > 1e-4  # uniform below 5e-4, everywhere
        # The paper's unseeded draw after np.random.seed(0): 5e-4 * U[0, 1), to float32 rounding.
        np.testing.assert_allclose(noise, 5e-4 * np.random.RandomState(0).rand(10 * sr), rtol=0, atol=1e-7)
    np.testing.assert_array_equal(utils.pad(signal, 22000), utils.pad(signal, 22000))  # repeatable
    with pytest.raises(ValueError):  # the paper's compute_spectrogram relied on this for clips over 10 s
        utils.pad(np.zeros(10 * 16000 + 1), 16000)


@pytest.mark.parametrize("clip", CLIPS)
def test_compute_spectrogram_matches_the_papers_output(reference: Path, clip: str) -> None:
    """With the paper's resampler the spectrogram is the paper's to float32 rounding, padded clips included."""
    expected = np.load(reference / "expected" / f"{clip.split('.')[0]}.npz")["spectrogram"]
    spec = utils.compute_spectrogram(str(reference / "audio" / clip))
    assert spec.shape == expected.shape and spec.dtype == np.float32
    np.testing.assert_allclose(spec, expected, rtol=0, atol=1e-5)


def test_scaler_transforms_2d_chunks_as_scikit_learn_did(reference: Path) -> None:
    pickle_path = reference / "original" / "scaler_top_1000.pkl"
    ours = load_scaler(pickle_path)
    chunk = np.random.default_rng(0).normal(-5, 3, (96, 96)).astype(np.float32)
    expected = chunk * ours.scale_ + ours.min_  # scikit-learn's MinMaxScaler.transform on (samples, features)
    np.testing.assert_allclose(ours.transform(chunk), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.inverse_transform(ours.transform(chunk)), chunk, rtol=0, atol=1e-4)
    assert ours.n_features_in_ == 96


def install_assets(reference: Path, home: Path) -> Path:
    """What ``python fetch_assets.py`` leaves in an asset root, made from the reference files."""
    (home / "json").mkdir(parents=True)
    save_scaler(load_scaler(reference / "original" / "scaler_top_1000.pkl"), home / "json" / "scaler_top_1000.json")
    shutil.copy(reference / "original" / "id2token_top_1000.json", home / "json")
    models = home / "saved_models" / "dual_ae_c"
    models.mkdir(parents=True)
    shutil.copy(reference / "checkpoints" / "audio_encoder.pt", models / "audio_encoder_epoch_200.pt")
    shutil.copy(reference / "checkpoints" / "tag_encoder.pt", models / "tag_encoder_epoch_200.pt")
    return home


# Written as the paper's analysis scripts and evaluation wrappers are: the paper's names, relative asset
# paths, and the scaler applied to 2-D chunks by hand.
PAPER_STYLE_PROGRAM = '''
import sys
import librosa
import numpy as np
import torch

import encode
from encode import extract_audio_embedding_chunks, extract_tag_embedding, return_loaded_model
from models_t1000 import AudioEncoder, TagEncoder
from utils import compute_spectrogram, pad

clip, out = sys.argv[1], sys.argv[2]
model = return_loaded_model(AudioEncoder, "saved_models/dual_ae_c/audio_encoder_epoch_200.pt")
embedding, embedding_d = extract_audio_embedding_chunks(model, clip)
x = compute_spectrogram(clip)
chunks = np.array([encode.scaler.transform(chunk.T) for chunk in
                   librosa.util.frame(np.asfortranarray(x), frame_length=96, hop_length=96, axis=-1).T])
with torch.no_grad():
    by_hand, _ = model(torch.unsqueeze(torch.tensor(chunks), 1).float())
tag_model = return_loaded_model(TagEncoder, "saved_models/dual_ae_c/tag_encoder_epoch_200.pt")
tag = encode.id2tag["7"]
tag_embedding = extract_tag_embedding(tag_model, tag)
assert int(encode.tag2id[tag]) == 7
np.savez(out, embedding=embedding.numpy(), by_hand=by_hand.numpy(), tag=np.array(tag),
         tag_embedding=tag_embedding.numpy())
'''


@pytest.mark.parametrize("clip", ["pluck_16k.wav", "groove_22050.wav"])
@pytest.mark.slow
def test_a_paper_style_program_in_another_folder_gets_the_papers_embeddings(reference: Path, tmp_path: Path,
                                                                          clip: str) -> None:
    home = install_assets(reference, tmp_path / "assets")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "program.py").write_text(textwrap.dedent(PAPER_STYLE_PROGRAM))
    env = {**os.environ, "COALA_HOME": str(home), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "program.py", str(reference / "audio" / clip), "out.npz"], cwd=elsewhere,
                   env=env, check=True, timeout=300)
    got = np.load(elsewhere / "out.npz")
    expected = np.load(reference / "expected" / f"{clip.split('.')[0]}.npz")
    from test_audio_frontend import assert_close_embedding
    assert_close_embedding(got["embedding"], expected["embedding"], clip)
    # By hand through utils.compute_spectrogram and encode.scaler: the paper's own pipeline, to rounding.
    np.testing.assert_allclose(got["by_hand"], expected["embedding"], rtol=0,
                               atol=1e-4 * np.abs(expected["embedding"]).max())
    tags = np.load(reference / "expected" / "tag_embeddings.npz")
    names = [str(t) for t in tags["tags"]]
    if str(got["tag"]) in names:
        np.testing.assert_allclose(got["tag_embedding"][0], tags["embedding"][names.index(str(got["tag"]))], atol=1e-5)
    assert got["tag_embedding"].shape == (1, 1152)


def test_module_attributes_load_lazily_from_the_asset_root(reference: Path, tmp_path: Path, monkeypatch,
                                                             request) -> None:
    home = install_assets(reference, tmp_path / "assets")
    monkeypatch.setenv("COALA_HOME", str(home))
    assert "scaler" not in vars(encode)  # nothing read at import
    request.addfinalizer(lambda: [vars(encode).pop(name, None) for name in ("scaler", "id2tag", "tag2id")])
    np.testing.assert_array_equal(encode.scaler.scale, load_scaler(reference / "original" / "scaler_top_1000.pkl").scale)
    assert encode.id2tag == json.loads((reference / "original" / "id2token_top_1000.json").read_text())
    assert all(encode.id2tag[i] == tag for tag, i in encode.tag2id.items())
    model = encode.return_loaded_model(AudioEncoder)  # no checkpoint named: the paper's published one
    installed = torch.load(home / "saved_models" / "dual_ae_c" / "audio_encoder_epoch_200.pt", weights_only=True)
    assert not model.training and torch.equal(model.state_dict()["audio_encoder.0.weight"], installed["audio_encoder.0.weight"])


def test_tag_embedding_refuses_a_vocabulary_that_does_not_index_the_model(reference: Path) -> None:
    model = TagEncoder(n_tags=5).eval()
    five = {i: f"tag{i}" for i in range(5)}
    z = encode.extract_tag_embedding(model, "tag3", five)
    with torch.no_grad():
        expected, _ = model(torch.eye(5)[3:4])
    torch.testing.assert_close(z, expected)
    with pytest.raises(VocabularyError, match=r"^the vocabulary given: a vocabulary of 4 tags does not fit the model, "
                                              r"whose tag encoder takes 5$"):
        encode.extract_tag_embedding(model, "tag1", {i: f"tag{i}" for i in range(4)})
    wraps = {-1: "kick", **{i: f"tag{i}" for i in range(4)}}  # -1 would set the last input, silently
    with pytest.raises(VocabularyError, match=r"^the vocabulary given: tag index -1 \('kick'\) is outside the model's "
                                              r"inputs 0\.\.4$"):
        encode.extract_tag_embedding(model, "kick", wraps)
    paper_vocabulary = reference / "original" / "id2token_top_1000.json"
    with pytest.raises(VocabularyError, match=rf"^{re.escape(str(paper_vocabulary))}: a vocabulary of 1000 tags"):
        encode.extract_tag_embedding(model, "tag1", paper_vocabulary)
