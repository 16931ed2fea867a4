"""Cross-modal search with a COALA model pair: which clips sound like "dog bark", which tags fit a clip.

    python search.py index --model saved_models/dual_ae_c --input my_audio/ --index my_index
    python search.py query --model saved_models/dual_ae_c --index my_index --tags "dog bark" [--top 10] [--json]
    python search.py query --model saved_models/dual_ae_c --index my_index --audio clip.wav --html results.html
    python search.py tag --model saved_models/dual_ae_c clip.wav [--top 10] [--json]
    python search.py evaluate --model saved_models/dual_ae_c --dataset hdf5_ds/spec_tags_top_1000_val
        --id2tag json/id2token_top_1000.json [--cnn saved_models/cnn/audio_encoder_epoch_20.pt] [--out search.json]

MODEL is a folder holding audio_encoder_epoch_N.pt and tag_encoder_epoch_N.pt (latest N unless --epoch).
docs/search.md explains the index, the metrics and the errors.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from coala.atomic import atomic_write_text
from coala.cli import EXIT_FAILURES, EXIT_OK, ArgumentParser, entry_point, require_file
from coala.device import resolve_device
from coala.core.errors import UsageError
from coala.models.checkpoints import load_checkpoint
from coala.text import quote_name
from coala.core.model import CNN
from coala.encode.run import check_extraction_options
from coala.search.index import Hit, build_index, build_index_from_embeddings, open_index
from coala.search.metrics import evaluate_release, held_out_tags, metrics_table, plot_precision_recall
from coala.search.model import load_pair
from coala.search.page import write_results_page
from coala.search.query import hit_tags, query_audio, query_tags, tag_files

log = logging.getLogger("coala.search")


def _model_options(parser: argparse.ArgumentParser, several: bool = False) -> None:
    parser.add_argument("--model", type=Path, required=True, nargs="+" if several else None,
                        help="a run folder (its record gives the vocabulary and scaler), or a folder of the paper's "
                             "audio_encoder_epoch_N.pt and tag_encoder_epoch_N.pt"
                             + (" (several: evaluated side by side)" if several else ""))
    parser.add_argument("--epoch", type=int, help="epoch N to load (default: the record's, or the latest in the folder)")
    parser.add_argument("--id2tag", type=Path, help="for a folder without a record: vocabulary JSON (default: the "
                                                    "paper's json/id2token_top_1000.json); a run folder's own is always used")
    parser.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N")


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--top", type=int, default=10, help="how many results (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _scaler_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scaler", type=Path, help="for a folder of bare checkpoints without a record: patch scaler "
                                                    ".json (or the paper's .pkl); default: the paper's. A run folder's "
                                                    "own scaler is always used (another is refused)")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="embed audio files into a search index")
    _model_options(index)
    source = index.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", nargs="+", type=Path, metavar="PATH", help="audio files, or folders searched recursively")
    source.add_argument("--from-embeddings", type=Path, metavar="DIR", help="outputs of encode.py --projection")
    index.add_argument("--audio-dir", type=Path, metavar="DIR", help="with --from-embeddings: the folder encode.py "
                                                                     "read (each clip's audio gives its length; "
                                                                     "default: the sources shards recorded)")
    index.add_argument("--index", type=Path, required=True, help="index folder to write")
    _scaler_option(index)
    index.add_argument("--batch-size", type=int, help="chunks per forward pass (default: 16 on the CPU)")
    index.add_argument("--workers", type=int, default=0, help="DataLoader processes decoding audio (default 0)")
    index.add_argument("--quiet", action="store_true", help="no progress bar")

    query = commands.add_parser("query", help="rank the indexed clips for tag words or a sound")
    _model_options(query)
    query.add_argument("--index", type=Path, required=True, help="index folder")
    what = query.add_mutually_exclusive_group(required=True)
    what.add_argument("--tags", help='tag words, e.g. "dog bark"')
    what.add_argument("--audio", type=Path, help="an audio file")
    _scaler_option(query)
    _output_options(query)
    query.add_argument("--html", type=Path, metavar="PAGE", help="also write the results as an HTML page with a player "
                                                                 "for each clip (audio linked relative to the page)")

    tag = commands.add_parser("tag", help="rank the vocabulary for audio files")
    _model_options(tag)
    tag.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _scaler_option(tag)
    _output_options(tag)

    evaluate = commands.add_parser("evaluate", help="retrieval metrics on a validation HDF5 file")
    _model_options(evaluate, several=True)
    evaluate.add_argument("--dataset", type=Path, required=True, help="validation HDF5 file in the release layout")
    evaluate.add_argument("--cnn", type=Path, help="the tag-supervised CNN's checkpoint, as the audio->tag competitor")
    evaluate.add_argument("--out", type=Path, help="JSON of {model name: metrics}")
    evaluate.add_argument("--plot", type=Path, help="PNG of tag->audio precision-recall curves")
    evaluate.add_argument("--json", action="store_true", help="print {model name: metrics} as JSON instead of a table")
    return parser


def _hits_table(hits: list[Hit]) -> str:
    lines = [f"{'rank':>4}  {'score':>7}  {'at':>8}  {'of':>8}  path"]
    lines += [f"{rank:>4}  {hit.score:7.4f}  {hit.best_seconds:7.2f}s  {hit.duration:7.2f}s  {quote_name(hit.path)}"
              for rank, hit in enumerate(hits, 1)]
    return "\n".join(lines)


def run_index(args: argparse.Namespace) -> int:
    check_extraction_options(args.batch_size, args.workers)
    if args.audio_dir is not None and args.from_embeddings is None:
        raise UsageError("--audio-dir goes with --from-embeddings (--input names the audio itself)")
    pair = load_pair(args.model, args.epoch, args.id2tag, resolve_device(args.device), args.scaler)
    if args.from_embeddings is not None:
        build_index_from_embeddings(pair, args.from_embeddings, args.index, args.audio_dir)
        return EXIT_OK
    summary = build_index(pair, args.input, args.index, args.batch_size, args.workers, not args.quiet)
    print(summary.line())
    return EXIT_FAILURES if summary.failed else EXIT_OK


def run_query(args: argparse.Namespace) -> int:
    require_file(args.audio, "--audio")
    pair = load_pair(args.model, args.epoch, args.id2tag, resolve_device(args.device), args.scaler)
    index = open_index(args.index, pair)
    hits = (query_tags(index, pair, args.tags, args.top)[0] if args.tags is not None
            else query_audio(index, pair, args.audio, args.top))
    print(json.dumps([{"path": h.path, "score": h.score, "at": h.best_seconds, "duration": h.duration} for h in hits],
                     indent=1) if args.json else _hits_table(hits))
    if args.html is not None:
        query = f'"{args.tags}"' if args.tags is not None else f"sounds like {args.audio}"
        write_results_page(args.html, query, pair.name, hits, hit_tags(index, pair, hits))
        log.info(f"wrote {args.html}")
    return EXIT_OK


def run_tag(args: argparse.Namespace) -> int:
    for path in args.files:
        require_file(path, "FILE")
    pair = load_pair(args.model, args.epoch, args.id2tag, resolve_device(args.device), args.scaler)
    ranked = tag_files(pair, args.files, args.top)
    if args.json:
        print(json.dumps({str(p): [{"tag": t.tag, "score": t.score} for t in tags] for p, tags in zip(args.files, ranked)},
                         indent=1))
    else:
        for path, tags in zip(args.files, ranked):
            print(f"{quote_name(path)}: " + ", ".join(f"{t.tag} {t.score:.3f}" for t in tags))
    return EXIT_OK


def run_evaluate(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    cnn = load_checkpoint(args.cnn, CNN, device) if args.cnn is not None else None
    pairs = [load_pair(folder, args.epoch, args.id2tag, device) for folder in args.model]
    held_out = held_out_tags(args.dataset, pairs)
    if held_out:
        log.info(f"held-out tags (in {args.dataset}, not in every model's training): {', '.join(held_out)}")
    evaluations = {pair.name: evaluate_release(pair, args.dataset, cnn, held_out) for pair in pairs}
    results = {name: evaluation.metrics for name, evaluation in evaluations.items()}
    print(json.dumps(results, indent=2) if args.json else metrics_table(results), end="\n" if args.json else "")
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
        log.info(f"wrote {args.out}")
    if args.plot is not None and plot_precision_recall(args.plot, evaluations):
        log.info(f"wrote {args.plot}")
    return EXIT_OK


COMMANDS = {"index": run_index, "query": run_query, "tag": run_tag, "evaluate": run_evaluate}


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Exit status 0 on success, 1 when ``index`` left files out (listed in its failures.tsv), 2 for unusable input."""
    args = build_parser().parse_args(argv)
    if getattr(args, "top", 1) < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
