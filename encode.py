"""The paper's ``encode`` module: its notebook functions, for code written against it.

    from encode import return_loaded_model, extract_audio_embedding_chunks, encode_files
    from models_t1000 import AudioEncoder
    model = return_loaded_model(AudioEncoder, "saved_models/dual_ae_c/audio_encoder_epoch_200.pt")
    embedding, embedding_d = extract_audio_embedding_chunks(model, "clip.wav")   # (n_chunks, 1152) each
    per_file = encode_files(model, ["a.wav", "b.flac"])                          # [(embedding, embedding_d), ...]
    read_embeddings("my_embeddings")["sub/a"]     # what encode.py wrote for sub/a.wav, in either --layout

The paper's module attributes ``scaler``, ``id2tag`` and ``tag2id`` are read on first access from the
installed defaults (``python fetch_assets.py``). The command line is ``coala encode``
(``coala/commands/encode.py``), which ``python encode.py`` also runs (docs/encoding.md):

    python encode.py --model CKPT --input FOLDER_OR_FILE ... --output DIR
    python encode.py --model CKPT --dataset us8k|gtzan|nsynth|all [--data-dir data]
    python encode.py --features mfcc --dataset all
"""
from __future__ import annotations

from typing import Any

from coala.audio.scaler import load_scaler
from coala.commands.encode import main
from coala.data.tags import load_id2tag
from coala.encode.api import (encode_files, extract_audio_embedding, extract_audio_embedding_chunks,
                              extract_tag_embedding, return_loaded_model)
from coala.encode.shards import read_embeddings

__all__ = ["return_loaded_model", "extract_audio_embedding", "extract_audio_embedding_chunks",
           "extract_tag_embedding", "encode_files", "read_embeddings", "load_id2tag", "scaler", "id2tag", "tag2id",
           "main"]


def __getattr__(name: str) -> Any:
    """The paper's module attributes, loaded once on first access (never from a pickle)."""
    if name == "scaler":
        value: Any = load_scaler()
    elif name == "id2tag":
        value = {str(i): tag for i, tag in load_id2tag().items()}
    elif name == "tag2id":
        value = {tag: i for i, tag in __getattr__("id2tag").items()}
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


if __name__ == "__main__":
    raise SystemExit(main())
