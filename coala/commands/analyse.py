"""The paper's analysis of its embeddings, on a validation set (docs/analysis.md).

    python analyse.py descriptors --audio-dir sounds --dataset hdf5_ds/spec_tags_top_1000_val --out analysis/descriptors.json
    python analyse.py cca --model saved_models/my_run saved_models/dual_ae_c/audio_encoder_epoch_200.pt ... \\
        --dataset hdf5_ds/spec_tags_top_1000_val --descriptors analysis/descriptors.json --out analysis
    python analyse.py maps --model saved_models/my_run --dataset hdf5_ds/spec_tags_top_1000_val --out analysis

descriptors: acoustic descriptors of the validation clips by the paper's recipe (resumable);
cca: held-out canonical correlation between each model's embeddings and each descriptor set, every model
     on the same settings, each figure beside its chance level (table, figure), then a summary across models;
maps: t-SNE maps of audio and tag embeddings (coloured by tags or labels of your choice), and of the vocabulary.

A model is a run folder, a checkpoint inside one, or a bare checkpoint (coala.models.loading); its
record gives the vocabulary, so --id2tag is for bare checkpoints only.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

from coala.analysis import cca, descriptors, embeddings, maps
from coala.atomic import require_writable_folder
from coala.cli import EXIT_FAILURES, EXIT_INTERRUPTED, EXIT_OK, SUBSET_FLAG, ArgumentParser, entry_point, seed_value
from coala.device import MAX_WORKERS, resolve_device
from coala.core.errors import UsageError
from coala.models.loading import AUDIO, TAGS

log = logging.getLogger("coala.analysis")


def _add_descriptors(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("descriptors", help="acoustic descriptors of the validation clips")
    parser.add_argument("--audio-dir", type=Path, required=True, help="folder of the clips, named <id>.<ext> (searched recursively)")
    parser.add_argument("--dataset", type=Path, required=True,
                        help="the validation HDF5 file, or a JSON list of clip ids (the paper's sound_ids_validation.json)")
    parser.add_argument("--out", type=Path, required=True, help="descriptor JSON file to write (a rerun resumes it)")
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, MAX_WORKERS),
                        help="processes (default: the CPU count, %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_subset_flag(parser, "describe the clips that have audio although more than a few of the ids have none")


def _add_subset_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(SUBSET_FLAG, action="store_true", help=f"{what} (refused otherwise)")


def run_descriptors(args: argparse.Namespace) -> int:
    if not 1 <= args.workers <= MAX_WORKERS:
        raise UsageError(f"--workers: {args.workers}; between 1 and {MAX_WORKERS}")
    ids = descriptors.validation_ids(args.dataset)
    try:
        run = descriptors.compute_descriptors(ids, args.audio_dir, args.out, args.workers, not args.quiet,
                                              args.allow_subset)
    except KeyboardInterrupt:
        log.error(f"interrupted: the clips described so far are in {descriptors.partial_file(args.out)}; "
                  "run the same command again to resume")
        return EXIT_INTERRUPTED
    log.info(f"{args.out}: {run.line()}")
    return EXIT_FAILURES if run.missing or run.failed else EXIT_OK


def _add_cca(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("cca", help="canonical correlation of embeddings and descriptors")
    parser.add_argument("--model", nargs="+", required=True, metavar="[LABEL=]PATH",
                        help="run folders or audio encoder / CNN checkpoints (label default: folder and epoch, "
                             "e.g. dual_ae_c_200)")
    parser.add_argument("--dataset", type=Path, required=True, help="the validation HDF5 file")
    parser.add_argument("--descriptors", type=Path, required=True, help="descriptor JSON (analyse.py descriptors, or the paper's file)")
    parser.add_argument("--out", type=Path, required=True, help="folder of cca.json, cca.md and cca.png")
    parser.add_argument("--components", type=int, metavar="K",
                        help="principal components of every embedding (default: chosen on held-out folds, with --shrinkage)")
    parser.add_argument("--shrinkage", type=float, metavar="S",
                        help="covariance shrinkage in [0, 1) for every model (default: chosen with --components)")
    parser.add_argument("--permutations", type=int, default=cca.PERMUTATIONS,
                        help="descriptor permutations of each chance level (default %(default)s)")
    parser.add_argument("--seed", type=seed_value, default=0, help="seed of the folds and permutations (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    parser.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N")
    _add_subset_flag(parser, "correlate the clips that have descriptors although more than a few have none")


def _settings(args: argparse.Namespace) -> cca.Settings | None:
    """The settings given on the command line: both or neither (one alone would be chosen against the other)."""
    if (args.components is None) != (args.shrinkage is None):
        raise UsageError("--components and --shrinkage go together (neither: both chosen on held-out folds)")
    if args.components is None:
        return None
    if args.components < 1 or not 0 <= args.shrinkage < 1:
        raise UsageError(f"--components must be at least 1 and --shrinkage in [0, 1), got {args.components} "
                         f"and {args.shrinkage}")
    return cca.Settings(args.components, args.shrinkage)


def run_cca(args: argparse.Namespace) -> int:
    given = _settings(args)
    if args.permutations < 1:
        raise UsageError(f"--permutations must be at least 1, got {args.permutations}")
    models = embeddings.load_models(args.model, device=resolve_device(args.device))
    require_writable_folder(args.out, "--out")
    validation = embeddings.read_validation_set(args.dataset)
    for model in models.values():
        embeddings.check_made_alike(validation, model)
    described = descriptors.read_descriptors(args.descriptors)
    cca.check_clips(validation.ids, described, args.descriptors, args.dataset, args.allow_subset)
    keys = cca.descriptor_keys(described)
    matrices, ids = {}, validation.ids
    for label, model in models.items():
        log.info(f"{label}: embedding {len(validation.ids)} validation patches")
        z = embeddings.audio_embeddings(model.audio_encoder, validation.patches)
        ids, matrices[label] = embeddings.per_clip(validation.ids, z)
    table, settings = cca.cca_table(matrices, ids, described, keys, given, args.permutations, args.seed)
    for path in cca.write_table(args.out, table, keys, settings, given is None, args.permutations,
                                embeddings.provenance(models, validation)):
        log.info(f"wrote {path}")
    rows = cca.summary(table)
    print(json.dumps({"settings": asdict(settings), "summary": rows}, indent=1) if args.json
          else cca.summary_markdown(rows, settings), end="\n" if args.json else "")
    return EXIT_OK


def _add_maps(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("maps", help="t-SNE maps of audio and tag embeddings")
    parser.add_argument("--model", required=True, metavar="[LABEL=]PATH",
                        help="a dual autoencoder's run folder or audio encoder checkpoint (its tag encoder is the "
                             "one of the same epoch beside it)")
    parser.add_argument("--dataset", type=Path, required=True, help="the validation HDF5 file")
    parser.add_argument("--id2tag", type=Path,
                        help="the vocabulary of a bare checkpoint (default: the paper's); a run folder's record holds its own")
    parser.add_argument("--out", type=Path, required=True,
                        help=f"folder of {maps.AUDIO_TAG_MAP}, {maps.VOCABULARY_MAP} and {maps.MAPS_JSON}")
    parser.add_argument("--clips", type=int, default=maps.DEFAULT_CLIPS, help="validation clips in the joint map (default %(default)s)")
    colours = parser.add_mutually_exclusive_group()
    colours.add_argument("--colour-by", nargs="+", metavar="TAG",
                         help=f"colour the joint map's clips by these vocabulary tags (the first a clip has; at most "
                              f"{maps.MAX_GROUPS}), the marker telling audio from tags")
    colours.add_argument("--labels", type=Path, metavar="JSON",
                         help='colour by your own labels: a JSON object {"<clip id>": "<label>"}')
    parser.add_argument("--seed", type=seed_value, default=0, help="seed of t-SNE and of the word choice (default %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N")


def run_maps(args: argparse.Namespace) -> int:
    if args.clips < 2:
        raise UsageError(f"--clips: {args.clips}; a map needs at least 2 clips")
    if args.colour_by and len(args.colour_by) > maps.MAX_GROUPS:
        raise UsageError(f"--colour-by: {len(args.colour_by)} tags; a map tells at most {maps.MAX_GROUPS} apart")
    parts = (AUDIO, TAGS)
    models = embeddings.load_models([args.model], parts, args.id2tag, resolve_device(args.device))
    (model,) = models.values()
    require_writable_folder(args.out, "--out")
    validation = embeddings.read_validation_set(args.dataset)
    embeddings.check_made_alike(validation, model)
    groups, colour_by = None, None
    if args.colour_by:
        groups, colour_by = maps.tag_groups(validation.labels, model.vocabulary, args.colour_by), {"tags": args.colour_by}
    elif args.labels is not None:
        groups, colour_by = maps.label_groups(validation.ids, args.labels), {"labels": str(args.labels)}
    output = maps.shared_output(model.dims)
    n = maps.audio_tag_map(model.audio_encoder, model.tag_encoder, validation, args.clips, args.seed,
                           args.out / maps.AUDIO_TAG_MAP, groups, output)
    log.info(f"wrote {args.out / maps.AUDIO_TAG_MAP} ({n} clips)")
    named = maps.vocabulary_map(model.tag_encoder, model.vocabulary, args.seed, args.out / maps.VOCABULARY_MAP, output)
    log.info(f"wrote {args.out / maps.VOCABULARY_MAP} ({len(model.vocabulary)} tags, {len(named)} named)")
    record = maps.write_record(args.out, embeddings.provenance(models, validation, parts), n, args.seed, named, colour_by,
                               output)
    log.info(f"wrote {record}")
    return EXIT_OK


COMMANDS = {"descriptors": (_add_descriptors, run_descriptors), "cca": (_add_cca, run_cca), "maps": (_add_maps, run_maps)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
