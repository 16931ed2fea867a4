"""Extract COALA embeddings: the paper's notebook functions, a batch function, and the command line.

    from encode import return_loaded_model, extract_audio_embedding_chunks, encode_files
    from models_t1000 import AudioEncoder
    model = return_loaded_model(AudioEncoder, "saved_models/dual_ae_c/audio_encoder_epoch_200.pt")
    embedding, embedding_d = extract_audio_embedding_chunks(model, "clip.wav")   # (n_chunks, 1152) each
    per_file = encode_files(model, ["a.wav", "b.flac"])                          # [(embedding, embedding_d), ...]

Command line (see ``python encode.py --help`` and the README):

    python encode.py --model CKPT --input FOLDER_OR_FILE ... --output DIR
    python encode.py --model CKPT --dataset us8k|gtzan|nsynth|all [--data-dir data]
    python encode.py --features mfcc --dataset all
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from coala.audio import AudioError, compute_spectrogram, PATCH_FRAMES
from coala.checkpoints import load_model
from coala.config import resolve_device
from coala.dataset_audio import DATASETS, dataset_parts
from coala.embedding import embed_patches, model_device, scaled_chunks
from coala.extraction import (CPU_BATCH_SIZE, FAILURES_FILE, GPU_BATCH_SIZE, MODEL_PREFIXES, RunSummary, Task,
                              chunk_computer, default_batch_size, embed_stream, embedding_name, iter_files,
                              load_audio_model, plan_inputs, run_extraction)
from coala.mfcc import mfcc_features
from coala.scaler import MinMaxScaler, load_scaler
from coala.tags import load_id2tag

M = TypeVar("M", bound=nn.Module)
ScalerArg = "str | Path | MinMaxScaler | None"


def return_loaded_model(Model: type[M], checkpoint: str | Path, device: str | torch.device = "cpu") -> M:
    """Load a checkpoint in the paper's format (legacy or zip) into ``Model``, in eval mode.

    The vocabulary size of tag-sized models is read from the checkpoint; a checkpoint that does not fit
    raises ``CheckpointError`` naming the mismatching keys.
    """
    return load_model(Model, checkpoint, device)


def extract_audio_embedding_chunks(model: nn.Module, filename: str | Path,
                                   scaler: ScalerArg = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of every non-overlapping 96-frame chunk of a file: ``(embedding, embedding_d)``.

    Both are ``(n_chunks, 1152)`` float32 tensors (for the CNN: ``(z, tag_probabilities)``). Raises
    ``AudioError`` naming the file when it cannot be decoded or holds no audio.
    """
    return embed_patches(model, scaled_chunks(compute_spectrogram(filename), load_scaler(scaler)))


def encode_files(model: nn.Module, paths: "list[str | Path]", scaler: ScalerArg = None,
                 batch_size: int | None = None, workers: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``extract_audio_embedding_chunks`` for many files at once: one ``(embedding, embedding_d)`` per path.

    The chunks of consecutive files share forward passes of at most ``batch_size`` chunks (default: 16
    on the CPU, 256 on a GPU), on the model's device; ``workers`` DataLoader processes decode and compute spectrograms (0: in this
    process, the fastest on a 2-core CPU). Raises ``AudioError`` for the first file that fails.
    """
    paths = [Path(p) for p in paths]
    results = embed_stream(model, iter_files(paths, chunk_computer(load_scaler(scaler)), workers),
                           batch_size or default_batch_size(model_device(model)))
    embeddings = []
    for result in results:
        if result.error is not None:
            raise AudioError(paths[result.index], result.error)
        embeddings.append(result.value)
    return embeddings


def extract_audio_embedding(model: nn.Module, filename: str | Path,
                            scaler: ScalerArg = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's single-patch embedding: the file's first 96 frames, ``(1, 1152)`` each."""
    spec = compute_spectrogram(filename)[:, :PATCH_FRAMES]
    return embed_patches(model, load_scaler(scaler).transform(spec[None]))


@torch.inference_mode()
def extract_tag_embedding(model: nn.Module, tag: str,
                          id2tag: "str | Path | dict | None" = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Embed one tag through the tag encoder as a one-hot vector: ``(embedding, embedding_d)``, ``(1, 1152)``."""
    vocabulary = load_id2tag(id2tag)
    index = next((i for i, t in vocabulary.items() if t == tag), None)
    if index is None:
        raise KeyError(f"tag {tag!r} is not in the vocabulary ({len(vocabulary)} tags)")
    n_tags = model.tag_encoder[0].in_features
    one_hot = torch.zeros(1, n_tags, device=model_device(model))
    one_hot[0, index] = 1.0
    z, z_d = model(one_hot)
    return z.float().cpu(), z_d.float().cpu()


class UsageError(ValueError):
    """A command line that cannot run (nothing to encode, a dataset folder missing)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Encode audio files into COALA embeddings (one float32 .npy of shape (n_chunks, 1152) per "
                    "file) or the paper's 120-d MFCC baseline. Files whose output exists are skipped; files "
                    "that fail are listed in failures.tsv and the run goes on (exit status 1).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", nargs="+", type=Path, metavar="PATH",
                        help="audio files, or folders searched recursively (their subfolders are mirrored)")
    source.add_argument("--dataset", choices=[*DATASETS, "all"],
                        help="a downstream dataset in the paper's layout under --data-dir")
    parser.add_argument("--output", type=Path, help="output folder for --input")
    parser.add_argument("--data-dir", type=Path, default=Path("data"),
                        help="root of the datasets (default data); --dataset writes to <data-dir>/embeddings/")
    parser.add_argument("--features", choices=["embeddings", "mfcc"], default="embeddings",
                        help="model embeddings (default), or the paper's MFCC baseline (needs no --model)")
    parser.add_argument("--model", type=Path, help="checkpoint of an audio encoder or of the CNN baseline")
    parser.add_argument("--model-type", choices=["auto", *MODEL_PREFIXES], default="auto",
                        help="auto (default) tells the audio encoder (ae) and the CNN apart from the checkpoint's keys")
    parser.add_argument("--scaler", type=Path, help="scaler .json (or the paper's .pkl); default json/scaler_top_1000.json")
    parser.add_argument("--name", help="embedding folder name for --dataset (default: embeddings_<checkpoint "
                                       "folder>_<epoch>, or mfcc)")
    parser.add_argument("--device", default="auto", help="auto (default: the GPU when there is one), cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=int,
                        help=f"chunks per forward pass (default {CPU_BATCH_SIZE} on the CPU, where small batches stay "
                             f"in cache, {GPU_BATCH_SIZE} on a GPU)")
    parser.add_argument("--workers", type=int,
                        help="DataLoader processes decoding audio (default: 0 on the CPU, up to 4 with a GPU)")
    parser.add_argument("--overwrite", action="store_true", help="redo files whose output already exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def plan_jobs(args: argparse.Namespace, name: str) -> list[tuple[list[Task], Path]]:
    """``(tasks, failures.tsv path)`` per output folder: one for --input, one per dataset part."""
    if args.input is not None:
        tasks = plan_inputs(args.input, args.output)
        if not tasks:
            raise UsageError(f"no audio files in {', '.join(map(str, args.input))}")
        return [(tasks, args.output / FAILURES_FILE)]
    jobs = []
    for dataset in (DATASETS if args.dataset == "all" else [args.dataset]):
        for part in dataset_parts(dataset, args.data_dir):
            files = part.files() if part.audio_dir.is_dir() else []
            if not files:
                message = f"{part.audio_dir}: no {part.pattern} audio files for {part.key}"
                if args.dataset != "all":
                    raise UsageError(message)
                print(f"note: {message}; skipped", file=sys.stderr)
                continue
            out = part.output_dir(args.data_dir, name)
            jobs.append(([Task(f, out / f"{f.stem}.npy") for f in files], out / FAILURES_FILE))
    if not jobs:
        raise UsageError(f"none of the datasets found under {args.data_dir}")
    return jobs


def run(args: argparse.Namespace) -> RunSummary:
    """Everything the command line does after parsing; raises the setup errors ``main`` reports."""
    if args.features == "embeddings" and args.model is None:
        raise UsageError("--model is required for embeddings (or pass --features mfcc)")
    if args.input is not None and args.output is None:
        raise UsageError("--output is required with --input")
    if (args.batch_size is not None and args.batch_size < 1) or (args.workers is not None and args.workers < 0):
        raise UsageError("--batch-size must be at least 1 and --workers at least 0")
    model, device = None, torch.device("cpu")
    if args.features == "mfcc":
        compute, name = mfcc_features, args.name or "mfcc"
    else:
        device = resolve_device(args.device)
        model = load_audio_model(args.model, args.model_type, device)
        compute, name = chunk_computer(load_scaler(args.scaler)), args.name or embedding_name(args.model)
    workers = args.workers if args.workers is not None else (0 if device.type == "cpu" else min(4, os.cpu_count() or 1))
    batch_size = args.batch_size or default_batch_size(device)
    summary = RunSummary()
    for tasks, failures_path in plan_jobs(args, name):
        summary.add(run_extraction(tasks, compute, failures_path, model, batch_size, workers,
                                   args.overwrite, progress=not args.quiet))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Exit status 0 when every file was encoded or skipped, 1 when any failed, 2 for bad input."""
    args = build_parser().parse_args(argv)
    try:
        summary = run(args)
    except (ValueError, OSError) as exc:  # CheckpointError, UsageError, a missing scaler or input, a bad device
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.line())
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
