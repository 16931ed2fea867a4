"""Generate the demo's synthetic data: ``python make_demo_data.py ...`` is ``coala demo-data ...`` run from the checkout
(``coala/commands/demo_data.py``; ``--help`` for its options)."""
from coala.commands.demo_data import main

if __name__ == "__main__":
    raise SystemExit(main())
