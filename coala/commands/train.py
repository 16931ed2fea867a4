"""Train COALA (AE_c, E_c) or the tag-supervised CNN baseline from a JSON config.

    python train_dual_ae.py configs/dual_ae_c.json
    torchrun --standalone --nproc_per_node=2 train_dual_ae.py configs/dual_ae_c.json

Rerunning the same command resumes after the last finished epoch. docs/training.md lists the config
keys and what a run writes.
"""
from __future__ import annotations

import argparse

from coala.cli import EXIT_OK, ArgumentParser, entry_point
from coala.train.config import load_config
from coala.train.loop import train


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="JSON config with the paper's keys (e.g. configs/dual_ae_c.json)")
    args = parser.parse_args(argv)
    train(load_config(args.config))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
