"""Download the paper's pretrained checkpoints, JSON files and scaler: ``python fetch_assets.py ...`` is ``coala fetch-assets ...`` run from the checkout
(``coala/commands/fetch_assets.py``; ``--help`` for its options)."""
from coala.commands.fetch_assets import main

if __name__ == "__main__":
    raise SystemExit(main())
