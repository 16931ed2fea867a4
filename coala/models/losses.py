"""The paper's training losses, computed stably on whatever device the inputs live on.

The paper exponentiated cosine similarities divided by the temperature directly, which overflows in
float32 once ``1/t`` passes ~88 (t = 0.01) and moved tensors to CUDA inside the loss. The contrastive loss
here is the same function written in log space (log-sum-exp), so values agree with the paper's where the
paper's are finite, and stay finite, with finite gradients, where they are not.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

KL_EPS = 1e-5
CONTRASTIVE_EPS = 1e-5


def kullback_leibler(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Generalized KL divergence of the reconstruction ``y_hat`` against ``y``.

    ``sum_last(y * (log(y + eps) - log(y_hat + eps)) + y_hat - y)``, averaged over the other axes; unlike
    the normalised KL it is defined for non-negative patches that do not sum to one.
    """
    per_row = (y * (torch.log(y + KL_EPS) - torch.log(y_hat + KL_EPS)) + y_hat - y).sum(dim=-1)
    return per_row.mean()


def contrastive_loss(z_audio: torch.Tensor, z_tag: torch.Tensor, t: float) -> torch.Tensor:
    """NT-Xent-style loss aligning each clip's audio projection with its own tags' projection.

    The 2N stacked projections are compared by cosine similarity / ``t``; for each row the positive is
    the same clip in the other modality, the denominator sums over every other row (positive included,
    self excluded), and the loss is ``-mean(log(pos / row_sum + 1e-5))``.
    """
    n = z_audio.shape[0]
    if z_tag.shape[0] != n:
        raise ValueError(f"contrastive_loss: {n} audio and {z_tag.shape[0]} tag projections")
    out = F.normalize(torch.cat([z_audio, z_tag], dim=0), dim=1)
    logits = out @ out.t() / t
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    positive_index = torch.arange(2 * n, device=logits.device).roll(n)
    log_ratio = logits.gather(1, positive_index[:, None]).squeeze(1) - torch.logsumexp(logits, dim=1)
    log_eps = torch.full_like(log_ratio, math.log(CONTRASTIVE_EPS))
    return -torch.logaddexp(log_ratio, log_eps).mean()
