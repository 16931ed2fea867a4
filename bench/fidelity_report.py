"""Print how far this project's outputs are from the paper's code's, on the reference files.

    python bench/fidelity_report.py [--reference ../shared/reference]

For each reference clip: the spectrogram of the pipeline (soxr) and of the paper's ``utils`` (kaiser_fast)
against the paper's, and every embedding the paper's code saved (per-chunk cosine, relative L2 of the
matrix); then the tag embeddings and the losses. These are the figures docs/fidelity.md quotes; the
tests assert tolerances on the same comparisons.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import utils  # noqa: E402
from coala.audio.scaler import load_scaler  # noqa: E402
from coala.core.model import contrastive_loss, kullback_leibler  # noqa: E402
from encode import (extract_audio_embedding, extract_audio_embedding_chunks, extract_tag_embedding,  # noqa: E402
                    return_loaded_model)
from models_t1000 import CNN, AudioEncoder, TagEncoder  # noqa: E402


def compare(ours: np.ndarray, expected: np.ndarray) -> str:
    a, b = np.asarray(ours, np.float64), np.asarray(expected, np.float64)
    cosine = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return f"min cosine {cosine.min():.7f}, relative L2 {np.linalg.norm(a - b) / np.linalg.norm(b):.2e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=ROOT.parent / "shared" / "reference")
    reference = parser.parse_args().reference
    scaler = load_scaler(reference / "original" / "scaler_top_1000.pkl")
    encoder = return_loaded_model(AudioEncoder, reference / "checkpoints" / "audio_encoder.pt")
    cnn = return_loaded_model(CNN, reference / "checkpoints" / "cnn.pt")
    for clip in sorted(p.name for p in (reference / "audio").iterdir()):
        expected = np.load(reference / "expected" / f"{clip.split('.')[0]}.npz")
        path = reference / "audio" / clip
        print(f"{clip}:")
        paper_spec = utils.compute_spectrogram(str(path))
        print(f"  utils.compute_spectrogram: max |difference| {np.abs(paper_spec - expected['spectrogram']).max():.2e}")
        embedding, embedding_d = extract_audio_embedding_chunks(encoder, path, scaler)
        z, tags = extract_audio_embedding_chunks(cnn, path, scaler)
        first, _ = extract_audio_embedding(encoder, path, scaler)
        for name, ours in (("embedding", embedding), ("embedding_d", embedding_d), ("cnn_embedding", z),
                           ("cnn_tags", tags), ("first_patch_embedding", first)):
            print(f"  {name}: {compare(ours.numpy(), expected[name])}")
    tag_model = return_loaded_model(TagEncoder, reference / "checkpoints" / "tag_encoder.pt")
    tags = np.load(reference / "expected" / "tag_embeddings.npz")
    worst = max(float(np.abs(extract_tag_embedding(tag_model, str(tag), reference / "original" / "id2token_top_1000.json")[0]
                                 .numpy() - embedding).max()) for tag, embedding in zip(tags["tags"], tags["embedding"]))
    print(f"tag embeddings ({len(tags['tags'])} tags): max |difference| {worst:.2e}")
    losses = np.load(reference / "expected" / "losses.npz")
    t = {k: torch.from_numpy(losses[k]) for k in ("x", "x_hat", "z_audio", "z_tag")}
    relative = [abs(kullback_leibler(t["x_hat"], t["x"]).item() / float(losses["kl"]) - 1)]
    relative += [abs(contrastive_loss(t["z_audio"], t["z_tag"], float(temperature)).item()
                     / float(losses[f"contrastive_t{temperature}"]) - 1) for temperature in ("1.0", "0.5", "0.1")]
    print(f"losses (KL, contrastive at t = 1, 0.5, 0.1): max relative difference {max(relative):.1e}")


if __name__ == "__main__":
    main()
