"""The ``coala`` command: the project's tools as subcommands, installed by ``pip install`` as one console script.

    coala train configs/dual_ae_c.json
    coala search query --model saved_models/dual_ae_c --index my_index --tags "dog bark"

Each subcommand is a module here with a ``main(argv) -> exit status``; the checkout's scripts
(``train_dual_ae.py``, ``search.py``...) run the same ``main``. A subcommand's module is imported only
when it is asked for, so ``coala --help`` answers at once and needs none of the heavy libraries.
"""
from __future__ import annotations

import importlib
import sys

from coala import __version__
from coala.cli import entry_point
from coala.core.errors import UsageError

# name: (module, what it does), in the order a project runs them.
COMMANDS = {
    "fetch-assets": ("coala.commands.fetch_assets", "download the paper's checkpoints, vocabulary and scaler"),
    "demo-data": ("coala.commands.demo_data", "generate the demo's synthetic corpus and downstream sets"),
    "create-dataset": ("coala.commands.create_dataset", "build training files from a folder of tagged audio"),
    "train": ("coala.commands.train", "train AE_c, E_c or the CNN baseline from a JSON config"),
    "encode": ("coala.commands.encode", "embed audio files, or compute the MFCC baseline"),
    "classify": ("coala.commands.classify", "the paper's downstream classification on the embeddings"),
    "search": ("coala.commands.search", "search clips by tags or by sound, tag clips, measure retrieval"),
    "analyse": ("coala.commands.analyse", "descriptors, canonical correlation and maps of the embeddings"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: coala COMMAND [options]   (coala COMMAND --help for a command's options)", "",
             "COALA: co-aligned audio and tag autoencoders (Favory et al. 2020), a reproduction.", "", "commands:"]
    lines += [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return "\n".join(lines)


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Run ``coala COMMAND ...``: the command's own ``main`` with the rest of the arguments."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        print(f"coala {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        raise UsageError(f"{name!r} is no coala command; one of {', '.join(COMMANDS)} (coala --help)")
    # argparse names the program after sys.argv[0]: usage and error lines then read `coala search ...`.
    program, sys.argv[0] = sys.argv[0], f"coala {name}"
    try:
        return importlib.import_module(COMMANDS[name][0]).main(rest)
    finally:
        sys.argv[0] = program
