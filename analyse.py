"""The paper's analysis of its embeddings, on a validation set (docs/analysis.md).

    python analyse.py descriptors --audio-dir sounds --dataset hdf5_ds/spec_tags_top_1000_val --out analysis/descriptors.json
    python analyse.py cca --model saved_models/dual_ae_c/audio_encoder_epoch_200.pt ... \\
        --dataset hdf5_ds/spec_tags_top_1000_val --descriptors analysis/descriptors.json --out analysis
    python analyse.py maps --model saved_models/dual_ae_c/audio_encoder_epoch_200.pt \\
        --dataset hdf5_ds/spec_tags_top_1000_val --id2tag json/id2token_top_1000.json --out analysis

descriptors: acoustic descriptors of the validation clips by the paper's recipe (resumable);
cca: mean canonical correlation between each model's embeddings and each descriptor set (table, figure);
maps: t-SNE maps of audio and tag embeddings, and of the tag vocabulary.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from coala.analysis import descriptors
from coala.cli import EXIT_FAILURES, EXIT_OK, entry_point

log = logging.getLogger("coala.analysis")


def _add_descriptors(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("descriptors", help="acoustic descriptors of the validation clips")
    parser.add_argument("--audio-dir", type=Path, required=True, help="folder of the clips, named <id>.<ext> (searched recursively)")
    parser.add_argument("--dataset", type=Path, required=True,
                        help="the validation HDF5 file, or a JSON list of clip ids (the paper's sound_ids_validation.json)")
    parser.add_argument("--out", type=Path, required=True, help="descriptor JSON file to write (a rerun resumes it)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: the CPU count, %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run_descriptors(args: argparse.Namespace) -> int:
    ids = descriptors.validation_ids(args.dataset)
    run = descriptors.compute_descriptors(ids, args.audio_dir, args.out, args.workers, not args.quiet)
    log.info(f"{args.out}: {run.line()}")
    return EXIT_FAILURES if run.missing or run.failed else EXIT_OK


COMMANDS = {"descriptors": (_add_descriptors, run_descriptors)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(commands)
    return parser.parse_args(argv)


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return COMMANDS[args.command][1](args)


if __name__ == "__main__":
    raise SystemExit(main())
