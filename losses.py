"""The training losses under their module name: ``from losses import contrastive_loss, kullback_leibler``.

They live in ``coala.core.model``.
"""
from coala.core.model import contrastive_loss, kullback_leibler

__all__ = ["contrastive_loss", "kullback_leibler"]
