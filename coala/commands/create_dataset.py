"""Build COALA's training files from a folder of tagged audio, as the paper built its Freesound set.

    python create_dataset.py --audio-dir sounds --tags-csv tags.csv --name my_set

Writes hdf5_ds/spec_tags_<NAME> and hdf5_ds/spec_tags_<NAME>_val (the release's HDF5 layout),
json/id2token_<NAME>.json, json/scaler_<NAME>.json and json/dataset_report_<NAME>.json. Patches are
cached in hdf5_ds/.cache_<NAME>/, so running the same command again resumes an interrupted build.
The stages are described in coala/data/builder.py and docs/dataset.md.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from coala.cli import EXIT_INTERRUPTED, EXIT_OK, ArgumentParser, entry_point, seed_value
from coala.data.builder import BuildOptions, build_dataset
from coala.distributed import SHARE_TIMEOUT, joined

log = logging.getLogger("coala.data")


def parse_args(argv: list[str] | None) -> BuildOptions:
    defaults = BuildOptions(Path(), Path(), "")
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio-dir", type=Path, required=True, help="folder of audio files named <id>.<ext> (searched recursively)")
    parser.add_argument("--tags-csv", type=Path, required=True, help="CSV with the columns id,tags; tags is a space-separated free-text string")
    parser.add_argument("--name", required=True, help="dataset name used in every output file name")
    parser.add_argument("--out-dir", type=Path, default=defaults.out_dir, help="folder of the HDF5 files and the patch cache (default %(default)s)")
    parser.add_argument("--json-dir", type=Path, default=defaults.json_dir, help="folder of the vocabulary, scaler and report (default %(default)s)")
    parser.add_argument("--num-tags", type=int, default=defaults.num_tags, help="vocabulary size at most (default %(default)s)")
    parser.add_argument("--min-count", type=int, default=defaults.min_count, help="keep words on at least this many clips (default %(default)s)")
    parser.add_argument("--max-fraction", type=float, default=defaults.max_fraction, help="keep words on at most this share of clips (default %(default)s)")
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction, help="share of clips held out for validation (default %(default)s)")
    parser.add_argument("--exclude-ids", type=Path, help="JSON list of clip ids to leave out (e.g. the downstream datasets' clips)")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="processes computing spectrograms, per process under torchrun (default: the CPU count divided by the processes on the node, %(default)s)")
    parser.add_argument("--seed", type=seed_value, default=defaults.seed, help="seed of the train/validation split (default %(default)s)")
    args = parser.parse_args(argv)
    return BuildOptions(**vars(args))


@entry_point
def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        with joined("cpu", SHARE_TIMEOUT) as runtime:
            report = build_dataset(options, runtime)
    except KeyboardInterrupt:
        log.error(f"interrupted: the patches computed so far are cached in {options.cache_dir}; "
                  "run the same command again to resume")
        return EXIT_INTERRUPTED
    if report is None:  # a torchrun process other than rank 0: its share's line is all it has to say
        return EXIT_OK
    log.info(f"{report['clips_read']} rows read, {report['clips_kept']} clips kept "
             f"({report['train_size']} train, {report['validation_size']} validation), "
             f"{report['clips_skipped']} skipped {report['skipped_by_reason']}, {report['tags_kept']} tags")
    for key, path in report["files"].items():
        log.info(f"{key}: {path}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
