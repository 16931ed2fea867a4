"""Downstream evaluation on encode.py's embeddings: ``python classify.py ...`` is ``coala classify ...`` run from the checkout
(``coala/commands/classify.py``; ``--help`` for its options)."""
from coala.commands.classify import main

if __name__ == "__main__":
    raise SystemExit(main())
