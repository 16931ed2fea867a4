"""Download the paper's pretrained checkpoints, JSON files and scaler to where the package looks for them.

    python fetch_assets.py [--base-url URL] [--root DIR] [--deadline SECONDS]

From the paper's repository (xavierfav/coala at a fixed commit): saved_models/{dual_ae_c,dual_e_c}/
{audio,tag}_encoder_epoch_200.pt, saved_models/cnn/audio_encoder_epoch_20.pt, json/*.json and the
scaler (kept as json/scaler_top_1000.pkl and converted to json/scaler_top_1000.json). The default root
is the asset root (this project folder, or $COALA_HOME; docs/assets.md). Interrupted downloads resume
from their .part file on the next run; files are checked (the git blob id the paper's repository
records for each, sha256, strict checkpoint load) before they are put in place; files already in place
and intact are not fetched again. No file may exceed 64 MiB, and the run stops at its deadline. Each
model folder then gets its record, config.json and model.safetensors (docs/model-folder.md), made from
the checked files and rewritten only when they change.
"""
from __future__ import annotations

import argparse
import logging
import urllib.parse
from pathlib import Path

from coala.assets import HOME_VARIABLE, asset_root
from coala.cli import EXIT_FAILURES, EXIT_OK, ArgumentParser, entry_point
from coala.core.errors import UsageError
from coala.fetch import DEADLINE_S, PAPER_ASSETS, PAPER_BASE_URL, fetch_all

log = logging.getLogger("coala.fetch")


def check_base_url(url: str) -> None:
    """Only http(s) mirrors: urllib would also try ftp:// and file://, and a URL that is no URL at all
    ('mirror.example', a broken IPv6 host) raised a ValueError traceback at the first download."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise UsageError(f"--base-url {url!r}: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--base-url {url!r}: expected an http:// or https:// URL with a host")


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default=PAPER_BASE_URL,
                        help="where the repository's files are served (default: the paper's repository on GitHub)")
    parser.add_argument("--root", type=Path, default=None,
                        help=f"folder to install into (default: {asset_root()}, set by ${HOME_VARIABLE} when given)")
    parser.add_argument("--deadline", type=float, default=DEADLINE_S, metavar="SECONDS",
                        help=f"stop downloading after this long (default {DEADLINE_S:g}); a rerun resumes")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    check_base_url(args.base_url)
    if args.deadline < 0:  # nan and inf are refused as the command line is parsed
        raise UsageError(f"--deadline must be a finite number of seconds >= 0, got {args.deadline}")
    root = args.root or asset_root()
    report = fetch_all(PAPER_ASSETS, args.base_url, root, show_progress=not args.quiet, deadline_s=args.deadline)
    for status, names in (("fetched", report.fetched), ("already there", report.present),
                          ("model record written", report.records)):
        for name in names:
            log.info(f"{status}: {root / name}")
    for line in report.errors:
        log.error(line)
    log.info(f"{len(report.fetched) + len(report.present)} of {len(PAPER_ASSETS)} assets in place in {root}")
    return EXIT_FAILURES if report.errors else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
