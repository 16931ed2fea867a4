"""Generate the demo's synthetic data: a tagged sound corpus and small UrbanSound8K/GTZAN/NSynth look-alikes.

    python make_demo_data.py --out demo/data [--n-clips 800] [--seed 0]

Deterministic from --seed; a rerun with the same options reuses what is there. coala/demo/data.py
describes the layout.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from coala.cli import EXIT_OK, ArgumentParser, entry_point, seed_value
from coala.demo.data import (HELD_OUT_SUFFIX, HELD_OUT_TAGS, DemoDataSpec, write_demo_data, write_held_out_files,
                             write_untrained_model)
from coala.core.errors import UsageError

log = logging.getLogger("coala.demo")


@entry_point
def main(argv: list[str] | None = None) -> int:
    defaults = DemoDataSpec()
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo/data"), help="output folder (default demo/data)")
    parser.add_argument("--n-clips", type=int, default=defaults.n_clips,
                        help=f"clips in the tagged corpus (default {defaults.n_clips})")
    parser.add_argument("--seed", type=seed_value, default=defaults.seed, help=f"random seed (default {defaults.seed})")
    parser.add_argument("--untrained-model", type=Path, metavar="TRAIN_HDF5",
                        help="also write untrained/tag_encoder_epoch_0.pt and the untrained pair's record, with the "
                             "scaler and vocabulary this training file (of create_dataset.py) records")
    parser.add_argument("--held-out", type=Path, metavar="TRAIN_HDF5",
                        help=f"also write TRAIN_HDF5{HELD_OUT_SUFFIX} and its validation file: the build of "
                             f"create_dataset.py without the tags {', '.join(HELD_OUT_TAGS)}")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.n_clips < 1:
        raise UsageError(f"--n-clips must be at least 1, got {args.n_clips}")
    made = write_demo_data(args.out, DemoDataSpec(n_clips=args.n_clips, seed=args.seed), not args.quiet)
    log.info(f"{'wrote' if made else 'reusing'} demo data in {args.out}")
    if args.untrained_model is not None:
        path = write_untrained_model(args.out, args.untrained_model, args.seed)
        log.info(f"wrote {path}")
    if args.held_out is not None:
        for path in write_held_out_files(args.held_out):
            log.info(f"wrote {path} (without {', '.join(HELD_OUT_TAGS)})")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
