"""``coala encode``: COALA embeddings (or the paper's MFCC baseline) of audio files, one ``.npy`` per file.

    coala encode --model CKPT --input FOLDER_OR_FILE ... --output DIR
    coala encode --model CKPT --dataset us8k|gtzan|nsynth|all [--data-dir data]
    coala encode --features mfcc --dataset all

``python encode.py`` runs the same command from a checkout (docs/encoding.md).
"""
from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

from coala.audio.mfcc import mfcc_features
from coala.cli import (EXIT_FAILURES, EXIT_OK, SUBSET_FLAG, ArgumentParser, RunSummary, entry_point, is_plain_name,
                       require_file)
from coala.core.errors import UsageError
from coala.core.model import CPU_BATCH_SIZE, GPU_BATCH_SIZE, AudioEncoder, default_batch_size
from coala.distributed import SHARE_TIMEOUT, Runtime, agree, gather, joined, on_main
from coala.encode.failures import FAILURES_FILE
from coala.encode.files import chunk_computer
from coala.encode.jobs import FileJob, dataset_jobs, plan_inputs
from coala.encode.provenance import claim_folder, folder_record
from coala.encode.run import check_extraction_options, run_extraction
from coala.encode.shards import SHARD_BYTES
from coala.evaluation.datasets import DOWNSTREAM, EMBEDDINGS_FOLDER
from coala.models.loading import load_model
from coala.models.registry import AUDIO_NETWORKS

# Options each process of a torchrun job may set for itself: they change how fast it runs, not its outputs.
PER_PROCESS_OPTIONS = {"workers", "quiet"}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        description="Encode audio files into COALA embeddings (one float32 .npy of shape (n_chunks, 1152) per "
                    "file) or the paper's 120-d MFCC baseline. Files whose output exists are skipped; files "
                    f"that fail are listed in {FAILURES_FILE} and the run goes on (exit status 1).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", nargs="+", type=Path, metavar="PATH",
                        help="audio files, or folders searched recursively (their subfolders are mirrored)")
    source.add_argument("--dataset", choices=[*DOWNSTREAM, "all"],
                        help="a downstream dataset in the paper's layout under --data-dir")
    parser.add_argument("--output", type=Path, help="output folder for --input")
    parser.add_argument("--data-dir", type=Path, default=Path("data"),
                        help=f"root of the datasets (default data); --dataset writes to <data-dir>/{EMBEDDINGS_FOLDER}/")
    parser.add_argument("--nsynth-selection", type=Path,
                        help="NSynth training selection JSON, used when nsynth-train/audio_selected/ is absent "
                             "(default: the installed json/nsynth_selected_sounds_per_class.json)")
    parser.add_argument(SUBSET_FLAG, action="store_true",
                        help="with --dataset nsynth, read the selection's notes that are there although more than a "
                             "few of them are not (refused otherwise)")
    parser.add_argument("--features", choices=["embeddings", "mfcc"], default="embeddings",
                        help="model embeddings (default), or the paper's MFCC baseline (needs no --model)")
    parser.add_argument("--model", type=Path, help="a run folder (saved_models/<experiment>), a checkpoint inside one, "
                                                   "or a bare checkpoint of the paper's audio encoder or CNN")
    parser.add_argument("--model-type", choices=["auto", *AUDIO_NETWORKS], default="auto",
                        help="auto (default) tells the audio encoder and the CNN apart from the checkpoint's keys")
    parser.add_argument("--scaler", type=Path, help="for a bare checkpoint without a record: scaler .json (or the paper's "
                                                    ".pkl); default: the paper's json/scaler_top_1000.json. A run "
                                                    "folder's own scaler is always used (another is refused)")
    parser.add_argument("--name", help="embedding folder name for --dataset (default: embeddings_<checkpoint "
                                       "folder>_<epoch>, or mfcc)")
    parser.add_argument("--device", default="auto", help="auto (default: the GPU when there is one), cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=int,
                        help=f"chunks per forward pass (default {CPU_BATCH_SIZE} on the CPU, where small batches stay "
                             f"in cache, {GPU_BATCH_SIZE} on a GPU)")
    parser.add_argument("--workers", type=int,
                        help="DataLoader processes decoding audio (default: 0 on the CPU, up to 4 with a GPU)")
    parser.add_argument("--bf16", action="store_true",
                        help="run the model under bfloat16 autocast (the front end stays float): faster on GPUs and "
                             "CPUs with bf16 instructions, much slower on CPUs without them")
    parser.add_argument("--projection", action="store_true",
                        help="save z_d, the audio encoder's contrastive projection, instead of z (what search.py "
                             "index --from-embeddings reads)")
    parser.add_argument("--layout", choices=["files", "shards"], default="files",
                        help="files (default): one .npy per audio file; shards: a few large shard files with an "
                             "index, for collections of millions of files (docs/encoding.md)")
    parser.add_argument("--shard-mb", type=float, default=SHARD_BYTES / 2**20,
                        help=f"with --layout shards, the size of a shard in MB (default {SHARD_BYTES // 2**20}): "
                             "an interrupted run loses at most the shard being filled")
    parser.add_argument("--overwrite", action="store_true", help="redo files whose output already exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace, runtime: Runtime) -> RunSummary:
    """Everything the command line does after parsing; setup problems raise ``CoalaError`` before any work.

    Under torchrun every process must have been given the same arguments (``--workers`` and ``--quiet``
    aside: they change no output) and find the same files; each then encodes its share."""
    agree(runtime, {f"--{key.replace('_', '-')}": value for key, value in vars(args).items()
                    if key not in PER_PROCESS_OPTIONS})
    if args.features == "embeddings" and args.model is None:
        raise UsageError("--model is required for embeddings (or pass --features mfcc)")
    if args.input is not None and args.output is None:
        raise UsageError("--output is required with --input")
    check_extraction_options(args.batch_size, args.workers)
    for flag in ("bf16", "projection"):
        if getattr(args, flag) and args.features == "mfcc":
            raise UsageError(f"--{flag} applies to model embeddings, not to --features mfcc")
    if args.name is not None and not is_plain_name(args.name):
        raise UsageError(f"--name must be a plain folder name, got {args.name!r}")
    if args.shard_mb <= 0:
        raise UsageError(f"--shard-mb must be positive, got {args.shard_mb}")
    require_file(args.nsynth_selection, "--nsynth-selection")
    model, device = None, runtime.device
    if args.features == "mfcc":
        if args.scaler is not None:
            raise UsageError("--scaler applies to model embeddings, not to --features mfcc")
        compute, name = mfcc_features, args.name or "mfcc"
        record = folder_record({"model": "mfcc"}, "mfcc")
    else:
        loaded = load_model(args.model, scaler=args.scaler, device=device, model_type=args.model_type)
        model = loaded.audio_encoder
        compute = chunk_computer(loaded.scaler)
        name = args.name or f"embeddings_{loaded.name}" + ("_zd" if args.projection else "")
        if args.projection and not isinstance(model, AudioEncoder):
            raise UsageError(f"--projection: {args.model} is not an audio encoder (the CNN has no z_d)")
        record = folder_record(loaded.identity(), "z_d" if args.projection else "z")
    if args.input is not None:
        jobs = plan_inputs(args.input, args.output)
        if not jobs:
            raise UsageError(f"no audio files in {', '.join(map(str, args.input))}")
        plans = [(jobs, args.output / FAILURES_FILE)]
    else:
        datasets = list(DOWNSTREAM) if args.dataset == "all" else [args.dataset]
        plans = dataset_jobs(datasets, args.data_dir, args.data_dir / EMBEDDINGS_FOLDER, name, args.nsynth_selection,
                             args.allow_subset)
    agree(runtime, {"the file list": _file_list(plans)})
    workers = args.workers if args.workers is not None else (0 if device.type == "cpu" else min(4, os.cpu_count() or 1))
    batch_size = args.batch_size or default_batch_size(device)
    shard_bytes = max(1, int(args.shard_mb * 2**20)) if args.layout == "shards" else None
    summary = RunSummary()
    for jobs, failures_path in plans:
        # Checks the folder, so no process may write into it before rank 0 has.
        on_main(runtime, lambda: claim_folder(failures_path.parent, record))
        summary.add(run_extraction(jobs, compute, failures_path, model, batch_size, workers, args.overwrite,
                                   progress=not args.quiet, bf16=args.bf16, output=int(args.projection),
                                   runtime=runtime, shard_bytes=shard_bytes))
    return summary


def _file_list(plans: list[tuple[list[FileJob], Path]]) -> str:
    """The jobs, compared between processes as a count and a digest (a million paths would be a lot to send)."""
    digest = hashlib.sha256()
    for jobs, failures_path in plans:
        for job in [*jobs, FileJob(failures_path, failures_path)]:
            digest.update(f"{job.source}\0{job.output}\n".encode("utf-8", "surrogateescape"))
    return f"{sum(len(jobs) for jobs, _ in plans)} files (sha256 {digest.hexdigest()[:16]})"


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Exit status 0 when every file was encoded or skipped, 1 when any failed, 2 for unusable input.

    Under torchrun each process prints its share's counts, rank 0 the total as one process would, and
    every process exits 1 when any process had a failure."""
    args = build_parser().parse_args(argv)
    with joined(args.device if args.features == "embeddings" else "cpu", SHARE_TIMEOUT) as runtime:
        summary = run(args, runtime)
        total = RunSummary()
        for share in gather(runtime, summary):
            total.add(share)
        if runtime.distributed:
            print(f"{runtime.label()}: {summary.counts()}", flush=True)
        if runtime.main:
            print(total.line(), flush=True)
        # torchrun stops the other processes when one exits with a failure: none may exit before all printed.
        gather(runtime, None)
    return EXIT_FAILURES if total.failed else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
