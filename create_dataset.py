"""Build COALA's training files from a folder of tagged audio: ``python create_dataset.py ...`` is ``coala create-dataset ...`` run from the checkout
(``coala/commands/create_dataset.py``; ``--help`` for its options)."""
from coala.commands.create_dataset import main

if __name__ == "__main__":
    raise SystemExit(main())
