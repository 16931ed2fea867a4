"""Cross-modal search with a COALA model pair: ``python search.py ...`` is ``coala search ...`` run from the checkout
(``coala/commands/search.py``; ``--help`` for its options)."""
from coala.commands.search import main

if __name__ == "__main__":
    raise SystemExit(main())
