"""Train COALA (AE_c, E_c) or the tag-supervised CNN baseline from a JSON config.

    python train_dual_ae.py configs/dual_ae_c.json
    torchrun --standalone --nproc_per_node=2 train_dual_ae.py configs/dual_ae_c.json

Rerunning the same command resumes after the last finished epoch. See the README's "Training"
section for the config keys and what a run writes.
"""
from __future__ import annotations

import argparse
import sys

from coala.checkpoints import CheckpointError
from coala.config import ConfigError, load_config
from coala.trainer import TrainingError, train
from coala.training_state import StateError
from data_loader import DatasetError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="JSON config with the paper's keys (e.g. configs/dual_ae_c.json)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        train(cfg)
    except (ConfigError, DatasetError, StateError, TrainingError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
