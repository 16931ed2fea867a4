"""The paper's analysis of its embeddings: ``python analyse.py ...`` is ``coala analyse ...`` run from the checkout
(``coala/commands/analyse.py``; ``--help`` for its options)."""
from coala.commands.analyse import main

if __name__ == "__main__":
    raise SystemExit(main())
