"""The contextual tag encoder of the follow-up paper (Favory et al., ICASSP 2021, arXiv 2010.14171).

A clip's tags arrive as word vectors, a padded batch ``(B, T, word_dim)`` with a boolean mask ``(B, T)``
(True = a real tag). One layer of multi-head self-attention lets each tag's vector take the others into
account; the outputs of the real tags are averaged, layer-normalised (``z``) and projected into the
contrastive space (``z_d``), where COALA's contrastive loss aligns them with the audio encoder's ``z_d``.

The layout follows the authors' code (``models_t1000_att.py`` of xavierfav/ae-w2v-attention): query, key
and value maps without bias, each head as wide as the word vectors, scaled dot products, dropout 0.1 on
the attention weights and on the output map, no residual connection, no positional encoding (a clip's
tags are a set), LayerNorm with eps 1e-6 after pooling. What differs, and why, is in docs/contextual.md:
the pooling is a masked mean over the real tags (the authors summed over ten fixed slots, padding
included), and a bias-free linear projection maps ``z`` into the 1152-d space of COALA's audio encoder.

Torch only: ``coala.core.model`` builds the contextual model kind (``ContextualAE``) from these pieces.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LATENT_DIM = 1152  # COALA's contrastive space: the width of AudioEncoder.fc_audio
LAYER_NORM_EPS = 1e-6  # the authors' LayerNorm


class ContextualTagEncoder(nn.Module):
    """A clip's tag word vectors -> ``(z, z_d)``, like COALA's encoders.

    ``z`` (``word_dim``) is the layer-normalised mean of the attention outputs over the clip's tags;
    ``z_d`` (``latent_dim``) its projection, the vector the contrastive loss compares with the audio
    encoder's ``z_d``. ``head_dim`` defaults to ``word_dim`` (the authors' ``d_k = d_v = d_model``), so
    the attention works in ``n_heads * word_dim`` dimensions and maps back to ``word_dim``.

    The output does not depend on the order of the tags (no positional encoding) nor on the padding:
    padded positions are neither attended to nor pooled. A clip without tags gives the encoding of an
    all-zero pooled vector (``z`` = the LayerNorm's bias), a finite value.
    """

    def __init__(self, word_dim: int, n_heads: int = 4, head_dim: int | None = None, latent_dim: int = LATENT_DIM,
                 dropout: float = 0.1, attention_dropout: float = 0.1, projection_dropout: float = 0.25) -> None:
        super().__init__()
        if word_dim < 1 or n_heads < 1 or latent_dim < 1 or (head_dim is not None and head_dim < 1):
            raise ValueError(f"ContextualTagEncoder: sizes must be positive (word_dim={word_dim}, "
                             f"n_heads={n_heads}, head_dim={head_dim}, latent_dim={latent_dim})")
        self.word_dim = word_dim
        self.n_heads = n_heads
        self.head_dim = head_dim or word_dim
        self.latent_dim = latent_dim
        self.attention_dropout = attention_dropout
        inner = n_heads * self.head_dim
        self.w_q = nn.Linear(word_dim, inner, bias=False)
        self.w_k = nn.Linear(word_dim, inner, bias=False)
        self.w_v = nn.Linear(word_dim, inner, bias=False)
        self.w_o = nn.Linear(inner, word_dim, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(word_dim, eps=LAYER_NORM_EPS)
        # Every word vector is scaled to unit length, then this is subtracted (zero until
        # ``WordTagEncoder.set_words`` sets the mean of the vocabulary's unit vectors): see ``forward``.
        self.register_buffer("center", torch.zeros(word_dim))
        # Like COALA's fc_tag: a bias-free linear map and dropout 0.25.
        self.fc_tag = nn.Sequential(nn.Linear(word_dim, latent_dim, bias=False), nn.Dropout(projection_dropout))

    def sizes(self) -> dict[str, int]:
        """The constructor's size arguments, to be saved with a run and passed back to rebuild it."""
        return {"word_dim": self.word_dim, "n_heads": self.n_heads, "head_dim": self.head_dim,
                "latent_dim": self.latent_dim}

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, head_dim)

    def forward(self, words: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if words.dim() != 3 or words.shape[-1] != self.word_dim:
            raise ValueError(f"ContextualTagEncoder: expected word vectors (B, T, {self.word_dim}), "
                             f"got {tuple(words.shape)}")
        if mask.shape != words.shape[:2]:
            raise ValueError(f"ContextualTagEncoder: mask {tuple(mask.shape)} does not fit word vectors "
                             f"{tuple(words.shape)}")
        mask = mask.to(torch.bool)
        # Word vectors trained on few tags share one dominant direction (on the demo's FastText vectors the
        # mean cosine between two tags is 0.91): fed as they are, every clip's output starts nearly the
        # same and the contrastive loss gives the audio side no signal. Centring removes that direction;
        # scaling to unit length first keeps a word's output independent of its vector's length (as it is
        # uncentred, through the LayerNorm), so that a word outside the vocabulary, whose FastText vector
        # is often shorter, is not pulled towards minus the centre. Padding is zeroed after, so whatever
        # the caller put there (even NaN) cannot reach the output.
        words = (F.normalize(words, dim=-1) - self.center).masked_fill(~mask[..., None], 0.0)
        b, t, _ = words.shape
        # A clip without tags would have every key masked (softmax over nothing: NaN). It may attend to its
        # first slot instead, a zero vector whose value is zero (no bias); its outputs are not pooled anyway.
        keys = mask.clone()
        keys[:, 0] |= ~mask.any(dim=1)
        attended = F.scaled_dot_product_attention(
            self._heads(self.w_q(words)), self._heads(self.w_k(words)), self._heads(self.w_v(words)),
            attn_mask=keys[:, None, None, :], dropout_p=self.attention_dropout if self.training else 0.0)
        attended = attended.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)
        out = self.dropout(self.w_o(attended))
        weights = mask.to(out.dtype)[..., None]
        pooled = (out * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        z = self.norm(pooled)
        return z, self.fc_tag(z)


def multi_hot_to_words(multi_hot: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A multi-hot batch ``(B, V)`` and the vocabulary's word vectors ``(V, word_dim)`` -> the encoder's input.

    Returns ``(words, mask)``: ``words`` is ``(B, T, word_dim)`` with each clip's tags in vocabulary order
    and zeros after them, ``mask`` ``(B, T)`` True on the real tags; ``T`` is the largest number of tags in
    the batch (at least 1, so a batch of tagless clips still has a slot). A tag is present where the
    entry is > 0. No loop over the batch: a stable sort moves each row's present tags to the front.
    """
    if multi_hot.dim() != 2 or table.dim() != 2 or multi_hot.shape[1] != table.shape[0]:
        raise ValueError(f"multi_hot_to_words: multi-hot {tuple(multi_hot.shape)} does not fit a word-vector "
                         f"table {tuple(table.shape)} (expected (B, V) and (V, word_dim))")
    present = multi_hot > 0
    counts = present.sum(dim=1)
    length = max(int(counts.max()) if counts.numel() else 0, 1)
    # Absent tags sort after present ones; stable, so present tags keep their vocabulary order.
    order = torch.argsort((~present).to(torch.uint8), dim=1, stable=True)[:, :length]
    mask = torch.arange(length, device=multi_hot.device)[None, :] < counts[:, None]
    words = table[order].masked_fill(~mask[..., None], 0.0)
    return words, mask


def pad_word_vectors(clips: Sequence[torch.Tensor], word_dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-clip word vectors ``[(n_i, word_dim), ...]`` -> ``(words (B, T, word_dim), mask (B, T))``.

    For inputs that are not multi-hot rows, e.g. a query's words, some never seen as tags. ``T`` is the
    longest clip (at least 1); ``word_dim`` is needed only when every clip is empty.
    """
    if not clips:
        raise ValueError("pad_word_vectors: no clips")
    dims = {int(c.shape[1]) for c in clips if c.dim() == 2 and c.shape[0] > 0}
    if word_dim is not None:
        dims.add(word_dim)
    if len(dims) != 1 or any(c.dim() != 2 for c in clips):
        raise ValueError(f"pad_word_vectors: expected (n_i, word_dim) tensors of one width, got "
                         f"{[tuple(c.shape) for c in clips]}")
    dim = dims.pop()
    length = max(max(int(c.shape[0]) for c in clips), 1)
    reference = next((c for c in clips if c.shape[0] > 0), clips[0])
    words = torch.zeros(len(clips), length, dim, dtype=reference.dtype, device=reference.device)
    mask = torch.zeros(len(clips), length, dtype=torch.bool, device=reference.device)
    for i, clip in enumerate(clips):
        words[i, :clip.shape[0]] = clip
        mask[i, :clip.shape[0]] = True
    return words, mask
