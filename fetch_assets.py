"""Download the paper's pretrained checkpoints, JSON files and scaler into the places the scripts expect.

    python fetch_assets.py [--base-url URL] [--root DIR]

From the paper's repository (xavierfav/coala at a fixed commit): saved_models/{dual_ae_c,dual_e_c}/
{audio,tag}_encoder_epoch_200.pt, saved_models/cnn/audio_encoder_epoch_20.pt, json/*.json and the
scaler (kept as json/scaler_top_1000.pkl and converted to json/scaler_top_1000.json). Interrupted
downloads resume from their .part file on the next run; files are checked (sha256, strict checkpoint
load) before they are put in place; files already in place and intact are not fetched again.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coala.assets import PAPER_ASSETS, PAPER_BASE_URL, fetch_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default=PAPER_BASE_URL,
                        help="where the repository's files are served (default: the paper's repository on GitHub)")
    parser.add_argument("--root", type=Path, default=Path("."), help="project folder to install into (default .)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    errors = fetch_all(PAPER_ASSETS, args.base_url, args.root, show_progress=not args.quiet)
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    print(f"{len(PAPER_ASSETS) - len(errors)} of {len(PAPER_ASSETS)} assets in place")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
