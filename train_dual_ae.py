"""Train COALA (AE_c, E_c) or the tag-supervised CNN baseline from a JSON config: ``python train_dual_ae.py ...`` is ``coala train ...`` run from the checkout
(``coala/commands/train.py``; ``--help`` for its options)."""
from coala.commands.train import main

if __name__ == "__main__":
    raise SystemExit(main())
