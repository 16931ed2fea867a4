"""The training losses under their module name: ``from losses import contrastive_loss, kullback_leibler``.

They live in ``coala.models.losses``.
"""
from coala.models.losses import contrastive_loss, kullback_leibler

__all__ = ["contrastive_loss", "kullback_leibler"]
