"""The paper's model: its sizes, its five networks, its objective, and ``embed``, the one way in.

``ModelDims`` is the only home of the sizes (the 96x96 patch, the 128 channels, the 1152-d latent and
projection, the tag encoder's hidden width and the vocabulary width, and for the follow-up paper's
contextual model the word-vector width and attention heads); every network is built from one, and a
model folder's record stores it, so a model trained on 300 tags is rebuilt with 300 inputs.

Layer positions inside each ``nn.Sequential`` are what give the ``state_dict`` names, so the order and
count of layers (the parameter-free ReLU/Dropout/Flatten entries included) stay exactly as the paper
had them, and its checkpoints load with ``strict=True``.

The objective: generalized KL for the audio reconstruction, BCE for the tags, and a contrastive loss
between the two encoders' projections ``z_d``, weighted 5 / 5 / 10 in the paper (E_c: 0 / 0 / 10). The
contrastive loss is the paper's, written in log space (log-sum-exp): equal where the paper's is finite,
and finite, with finite gradients, where the paper's exponentials overflow (temperatures below ~0.011).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from itertools import chain
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coala.core.contextual import ContextualTagEncoder, multi_hot_to_words, pad_word_vectors
from coala.core.errors import CheckpointError
from coala.core.frontend import N_MELS, PATCH_FRAMES

# Five stride-2 convolutions halve the patch five times: 96 -> 3.
CONV_BLOCKS = 5


@dataclass(frozen=True)
class ModelDims:
    """Every size of the model; the defaults are the paper's. ``latent_dim`` (1152) is both the
    embedding ``z`` and the contrastive projection ``z_d``.

    ``word_dim`` and ``attention_heads`` size the contextual model's tag encoder (``ContextualAE``) and
    are None for every other kind; ``to_dict`` leaves out what is None, so the records (and fingerprints)
    of the paper's kinds stay as they were.
    """

    n_mels: int = N_MELS
    patch_frames: int = PATCH_FRAMES
    channels: int = 128
    tag_hidden: int = 512
    n_tags: int = 1000
    dropout: float = 0.25
    word_dim: int | None = None
    attention_heads: int | None = None

    @property
    def patch_shape(self) -> tuple[int, int]:
        return self.n_mels, self.patch_frames

    @property
    def latent_side(self) -> tuple[int, int]:
        return self.n_mels >> CONV_BLOCKS, self.patch_frames >> CONV_BLOCKS

    @property
    def latent_dim(self) -> int:
        height, width = self.latent_side
        return self.channels * height * width

    @property
    def reads_words(self) -> bool:
        """Whether these are the sizes of a tag encoder over word vectors (the contextual model)."""
        return self.word_dim is not None

    def to_dict(self) -> dict:
        sizes = {name: value for name, value in asdict(self).items() if value is not None}
        return {**sizes, "latent_dim": self.latent_dim, "projection_dim": self.latent_dim}

    @classmethod
    def from_dict(cls, values: object, source: object) -> "ModelDims":
        """The sizes a record stores, checked: ``CheckpointError`` naming ``source`` for sizes no network fits."""
        if not isinstance(values, dict):
            raise CheckpointError(f"{source}: dims must be an object of sizes, found {type(values).__name__}")
        kept = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        for name, value in kept.items():
            wanted = float if name == "dropout" else int
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (wanted is int and value != int(value)):
                raise CheckpointError(f"{source}: dims.{name} must be a number, got {value!r}")
            kept[name] = wanted(value)
        dims = cls(**kept)
        if dims.n_mels != N_MELS or dims.patch_frames != PATCH_FRAMES:
            raise CheckpointError(f"{source}: patches of {dims.n_mels}x{dims.patch_frames}, but the front end makes "
                                  f"{N_MELS}x{PATCH_FRAMES}")
        words = (dims.word_dim, dims.attention_heads)
        if (min(dims.channels, dims.tag_hidden, dims.n_tags) < 1 or not 0 <= dims.dropout < 1
                or (None in words and words != (None, None)) or (dims.reads_words and min(words) < 1)):
            raise CheckpointError(f"{source}: dims {dims.to_dict()} are not sizes a network can have")
        for name in ("latent_dim", "projection_dim"):
            if name in values and values[name] != dims.latent_dim:
                raise CheckpointError(f"{source}: dims.{name} is {values[name]}, but these sizes give {dims.latent_dim}")
        return dims


PAPER_DIMS = ModelDims()
# The paper's sizes under the names its modules used (``models_t1000``).
N_TAGS = PAPER_DIMS.n_tags
DROPOUT = PAPER_DIMS.dropout
LATENT_DIM = PAPER_DIMS.latent_dim


# --- the networks -----------------------------------------------------------------------------------

def _conv_block(c_in: int, c_out: int, dropout: float) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Dropout(dropout)]


def _deconv(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1)


def conv_stack(dims: ModelDims = PAPER_DIMS) -> list[nn.Module]:
    """Five stride-2 conv blocks, 96 -> 3 pixels, then a channel-major flatten to ``latent_dim``."""
    layers: list[nn.Module] = _conv_block(1, dims.channels, dims.dropout)
    for _ in range(CONV_BLOCKS - 1):
        layers += _conv_block(dims.channels, dims.channels, dims.dropout)
    return layers + [nn.Flatten()]


def _tag_dims(dims: ModelDims, n_tags: int | None) -> ModelDims:
    """``dims`` with the vocabulary width ``n_tags`` when given (the paper's signature takes ``n_tags``)."""
    return dims if n_tags is None or n_tags == dims.n_tags else replace(dims, n_tags=int(n_tags))


class AudioEncoder(nn.Module):
    """96x96 log-mel patch -> ``(z, z_d)``: the 1152-d embedding and its contrastive projection."""

    def __init__(self, dims: ModelDims = PAPER_DIMS) -> None:
        super().__init__()
        self.dims = dims
        self.audio_encoder = nn.Sequential(*conv_stack(dims))
        self.fc_audio = nn.Sequential(nn.Linear(dims.latent_dim, dims.latent_dim, bias=False), nn.Dropout(dims.dropout))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.audio_encoder(x)
        return z, self.fc_audio(z)


class AudioDecoder(nn.Module):
    """1152-d latent -> 96x96 patch in [0, 1] (sigmoid)."""

    def __init__(self, dims: ModelDims = PAPER_DIMS) -> None:
        super().__init__()
        self.dims = dims
        c, p = dims.channels, dims.dropout
        layers: list[nn.Module] = [nn.Unflatten(1, (c, *dims.latent_side)), nn.Dropout(p)]
        for _ in range(CONV_BLOCKS - 2):
            layers += [_deconv(c, c), nn.BatchNorm2d(c), nn.ReLU(), nn.Dropout(p)]
        layers += [_deconv(c, c), nn.BatchNorm2d(c), nn.ReLU()]
        layers += [_deconv(c, 1), nn.BatchNorm2d(1), nn.Sigmoid()]
        self.audio_decoder = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.audio_decoder(z)


class TagEncoder(nn.Module):
    """Multi-hot tag vector -> ``(z, z_d)`` like the audio encoder."""

    def __init__(self, n_tags: int | None = None, dims: ModelDims = PAPER_DIMS) -> None:
        super().__init__()
        self.dims = dims = _tag_dims(dims, n_tags)
        h, d, p = dims.tag_hidden, dims.latent_dim, dims.dropout
        self.tag_encoder = nn.Sequential(
            nn.Linear(dims.n_tags, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(p),
            nn.Linear(h, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(p),
            nn.Linear(h, d), nn.BatchNorm1d(d), nn.ReLU(), nn.Dropout(p),
        )
        self.fc_tag = nn.Sequential(nn.Linear(d, d, bias=False), nn.Dropout(p))

    def forward(self, tags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.tag_encoder(tags)
        return z, self.fc_tag(z)


class TagDecoder(nn.Module):
    """1152-d latent -> tag probabilities (sigmoid)."""

    def __init__(self, n_tags: int | None = None, dims: ModelDims = PAPER_DIMS) -> None:
        super().__init__()
        self.dims = dims = _tag_dims(dims, n_tags)
        h, p = dims.tag_hidden, dims.dropout
        self.tag_decoder = nn.Sequential(
            nn.Linear(dims.latent_dim, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(p),
            nn.Linear(h, h), nn.BatchNorm1d(h), nn.ReLU(),
            nn.Linear(h, dims.n_tags), nn.BatchNorm1d(dims.n_tags), nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.tag_decoder(z)


class CNN(nn.Module):
    """Tag-supervised baseline: the audio encoder's conv stack with a tag classifier on top.

    Returns ``(z, tag_probabilities)``; ``z`` is the 1152-d embedding used downstream.
    """

    def __init__(self, n_tags: int | None = None, dims: ModelDims = PAPER_DIMS) -> None:
        super().__init__()
        self.dims = dims = _tag_dims(dims, n_tags)
        d = dims.latent_dim
        self.encoder = nn.Sequential(*conv_stack(dims))
        self.fc = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, dims.n_tags), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return z, self.fc(z)


# --- the objective ----------------------------------------------------------------------------------

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


def _full_precision(t: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 outputs of an autocast forward go to float32 for the losses; float64 stays float64."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


@dataclass(frozen=True)
class Objective:
    """The paper's weights and contrastive temperature (``configs/*.json``)."""

    audio_weight: float
    tag_weight: float
    contrastive_weight: float
    temperature: float


Losses = dict[str, torch.Tensor]


def _contrastive(objective: Objective, z_audio: torch.Tensor, z_tags: torch.Tensor, gather=None) -> torch.Tensor:
    """The contrastive loss of the two projections in at least float32, over the global batch with ``gather``."""
    z_audio, z_tags = _full_precision(z_audio), _full_precision(z_tags)
    if gather is not None:
        z_audio, z_tags = gather(z_audio), gather(z_tags)
    return contrastive_loss(z_audio, z_tags, objective.temperature)


class DualOutputs(NamedTuple):
    z_d_audio: torch.Tensor
    x_recon: torch.Tensor
    z_d_tags: torch.Tensor
    tags_recon: torch.Tensor


class DualAE(nn.Module):
    """AE_c / E_c: the four networks under one module, so that DDP and torch.compile see one forward.

    Attribute names are the checkpoint file prefixes (``audio_encoder_epoch_<N>.pt``, ...).
    """

    loss_names = ("loss", "audio", "tag", "contrastive")
    reads_words = False

    def __init__(self, n_tags: int | None = None, dims: ModelDims = PAPER_DIMS) -> None:
        super().__init__()
        self.dims = dims = _tag_dims(dims, n_tags)
        self.audio_encoder = AudioEncoder(dims)
        self.audio_decoder = AudioDecoder(dims)
        self.tag_encoder = TagEncoder(dims=dims)
        self.tag_decoder = TagDecoder(dims=dims)

    def forward(self, x: torch.Tensor, tags: torch.Tensor) -> DualOutputs:
        z_audio, z_d_audio = self.audio_encoder(x)
        z_tags, z_d_tags = self.tag_encoder(tags)
        return DualOutputs(z_d_audio, self.audio_decoder(z_audio), z_d_tags, self.tag_decoder(z_tags))

    @staticmethod
    def losses(objective: Objective, out: DualOutputs, x: torch.Tensor, tags: torch.Tensor,
               gather=None) -> Losses:
        """Audio generalized KL, tag BCE and contrastive loss in at least float32; ``loss`` is the weighted sum.

        With ``gather`` (all processes' rows, in rank order) the contrastive loss takes its negatives
        from the global batch; each process then holds the same contrastive value, and DDP's gradient
        averaging turns the per-process sums of its gradient back into the gradient of the whole batch.
        """
        audio = kullback_leibler(_full_precision(out.x_recon), x)
        tag = F.binary_cross_entropy(_full_precision(out.tags_recon), tags)
        contrastive = _contrastive(objective, out.z_d_audio, out.z_d_tags, gather)
        loss = objective.audio_weight * audio + objective.tag_weight * tag + objective.contrastive_weight * contrastive
        return {"loss": loss, "audio": audio, "tag": tag, "contrastive": contrastive}

    @staticmethod
    def examples(out: DualOutputs, n: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The first ``n`` reconstructions and tag scores, for the examples picture."""
        return out.x_recon[:n], out.tags_recon[:n]

    def parts(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in ("audio_encoder", "audio_decoder", "tag_encoder", "tag_decoder")}

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """The paper's two optimizer groups: audio encoder + decoder, tag encoder + decoder."""
        return [list(chain(self.audio_encoder.parameters(), self.audio_decoder.parameters())),
                list(chain(self.tag_encoder.parameters(), self.tag_decoder.parameters()))]


class TagSupervisedCNN(nn.Module):
    """The CNN baseline under the same interface; saved as ``audio_encoder`` (the paper's file naming)."""

    loss_names = ("loss",)
    reads_words = False

    def __init__(self, n_tags: int | None = None, dims: ModelDims = PAPER_DIMS) -> None:
        super().__init__()
        self.dims = dims = _tag_dims(dims, n_tags)
        self.audio_encoder = CNN(dims=dims)

    def forward(self, x: torch.Tensor, tags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.audio_encoder(x)

    @staticmethod
    def losses(objective: Objective, out: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor, tags: torch.Tensor,
               gather=None) -> Losses:
        """BCE of the predicted tag probabilities (the paper's ``train_cnn.py``)."""
        return {"loss": F.binary_cross_entropy(_full_precision(out[1]), tags)}

    @staticmethod
    def examples(out: tuple[torch.Tensor, torch.Tensor], n: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        return None, out[1][:n]

    def parts(self) -> dict[str, nn.Module]:
        return {"audio_encoder": self.audio_encoder}

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        return [list(self.parameters())]


class WordTagEncoder(nn.Module):
    """The contextual model's tag encoder as a network of the vocabulary: multi-hot rows -> ``(z, z_d)``.

    It holds the vocabulary's word vectors (``words``, ``(n_tags, word_dim)``, a buffer: fixed, as the
    authors kept them) so that it takes the same multi-hot rows as COALA's ``TagEncoder`` and every tool
    that feeds tags to a tag encoder feeds this one too; ``attention`` takes any word vectors, which is
    how words that were never tags are encoded. The buffer is saved with the weights, so the table a
    model was trained with is part of its weights' identity and comes back on resume.
    """

    def __init__(self, dims: ModelDims) -> None:
        super().__init__()
        if not dims.reads_words:
            raise ValueError(f"WordTagEncoder: sizes without word_dim and attention_heads: {dims.to_dict()}")
        self.dims = dims
        self.register_buffer("words", torch.zeros(dims.n_tags, dims.word_dim))
        self.attention = ContextualTagEncoder(dims.word_dim, dims.attention_heads, latent_dim=dims.latent_dim,
                                              projection_dropout=dims.dropout)

    def set_words(self, table: torch.Tensor) -> None:
        """The vocabulary's word vectors, row ``i`` for tag ``i``, before training; the mean of their unit
        vectors becomes the attention's ``center``, subtracted from every word's unit vector (the
        vocabulary's and any other word's; ``ContextualTagEncoder.forward`` says why)."""
        if tuple(table.shape) != tuple(self.words.shape):
            raise ValueError(f"WordTagEncoder: a word-vector table {tuple(table.shape)} for {tuple(self.words.shape)}")
        with torch.no_grad():
            self.words.copy_(table)
            self.attention.center.copy_(F.normalize(table, dim=-1).mean(dim=0))

    def forward(self, tags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.attention(*multi_hot_to_words(tags, self.words))


class ContextualOutputs(NamedTuple):
    z_d_audio: torch.Tensor
    x_recon: torch.Tensor
    z_d_tags: torch.Tensor


class ContextualAE(nn.Module):
    """The follow-up paper's model (Favory et al., ICASSP 2021): COALA's audio autoencoder aligned by the
    contrastive loss with self-attention over a clip's tag word vectors (``WordTagEncoder``); no tag
    decoder, so no tag loss. Its ``tag_encoder`` part takes multi-hot rows like COALA's (docs/contextual.md).
    """

    loss_names = ("loss", "audio", "contrastive")
    reads_words = True

    def __init__(self, n_tags: int | None = None, dims: ModelDims = PAPER_DIMS) -> None:
        super().__init__()
        self.dims = dims = _tag_dims(dims, n_tags)
        self.audio_encoder = AudioEncoder(dims)
        self.audio_decoder = AudioDecoder(dims)
        self.tag_encoder = WordTagEncoder(dims)

    def forward(self, x: torch.Tensor, tags: torch.Tensor) -> ContextualOutputs:
        z_audio, z_d_audio = self.audio_encoder(x)
        return ContextualOutputs(z_d_audio, self.audio_decoder(z_audio), self.tag_encoder(tags)[1])

    @staticmethod
    def losses(objective: Objective, out: ContextualOutputs, x: torch.Tensor, tags: torch.Tensor,
               gather=None) -> Losses:
        """Audio generalized KL and the contrastive loss (as ``DualAE.losses``); ``loss`` is their weighted sum."""
        audio = kullback_leibler(_full_precision(out.x_recon), x)
        contrastive = _contrastive(objective, out.z_d_audio, out.z_d_tags, gather)
        loss = objective.audio_weight * audio + objective.contrastive_weight * contrastive
        return {"loss": loss, "audio": audio, "contrastive": contrastive}

    def examples(self, out: ContextualOutputs, n: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The first ``n`` reconstructions, and as tag scores the cosine between each clip's audio ``z_d``
        and every vocabulary tag's (what ``search.py tag`` ranks): there is no tag decoder to predict tags."""
        vocabulary = torch.eye(self.dims.n_tags, device=self.tag_encoder.words.device)
        tags = F.normalize(self.tag_encoder(vocabulary)[1].float(), dim=1)
        return out.x_recon[:n], F.normalize(out.z_d_audio[:n].float(), dim=1) @ tags.t()

    def parts(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in ("audio_encoder", "audio_decoder", "tag_encoder")}

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """Two optimizer groups as the paper's: audio encoder + decoder, tag encoder."""
        return [list(chain(self.audio_encoder.parameters(), self.audio_decoder.parameters())),
                list(self.tag_encoder.parameters())]


# The trainable kinds, by the config's ``model`` key and a record's ``kind``: adding one is a class here.
MODEL_KINDS: dict[str, type[DualAE] | type[TagSupervisedCNN] | type[ContextualAE]] = {
    "dual_ae": DualAE, "cnn": TagSupervisedCNN, "contextual": ContextualAE}


# --- embed: every tool's way through an encoder -----------------------------------------------------

# Rows per forward pass. On the CPU, forwards of at most 16 patches keep the 48x48 activations in cache
# (1.3 ms per patch on 2 cores against 3.3 ms in forwards of 128); a GPU wants large batches.
CPU_BATCH_SIZE = 16
GPU_BATCH_SIZE = 256
# The most chunks one forward may take (2.4 GB of patches): files' chunks are gathered up to a batch
# before it runs, so a batch size of 10^9 would hold a whole collection in memory.
MAX_BATCH_SIZE = 1 << 16


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def default_batch_size(device: torch.device) -> int:
    return CPU_BATCH_SIZE if device.type == "cpu" else GPU_BATCH_SIZE


@torch.inference_mode()
def embed(encoder: nn.Module, inputs: np.ndarray | torch.Tensor,
          batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """An encoder's two outputs for many inputs: scaled patches ``(n, 96, 96)`` of the audio encoder (or
    the CNN), or rows of multi-hot tags ``(n, n_tags)`` of the tag encoder.

    Forwards of ``batch_size`` rows (default: the device's), in eval mode whatever mode the encoder is
    in (BatchNorm from its running statistics, no dropout: an input's output never depends on the
    others, and no statistic changes); the mode is put back afterwards. Returns ``(z, z_d)`` (for the
    CNN ``(z, tag_probabilities)``) as float32 CPU tensors.
    """
    device = model_device(encoder)
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32) if not isinstance(inputs, torch.Tensor) else inputs,
                        dtype=torch.float32)
    if x.ndim == 3:  # patches get their channel axis
        x = x.unsqueeze(1)
    size = batch_size or default_batch_size(device)
    return _eval_forwards(encoder, ((x[start:start + size].to(device),) for start in range(0, max(len(x), 1), size)))


@torch.inference_mode()
def embed_words(encoder: ContextualTagEncoder, clips: list[torch.Tensor],
                batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``embed`` for word vectors: each clip's ``(n_i, word_dim)`` vectors (e.g. a query's words, some
    never tags) through the contextual attention, ``(z, z_d)`` per clip, in eval mode, float32 on the CPU."""
    device = model_device(encoder)
    size = batch_size or default_batch_size(device)
    batches = (tuple(t.to(device) for t in pad_word_vectors(clips[start:start + size], encoder.word_dim))
               for start in range(0, len(clips), size))
    return _eval_forwards(encoder, batches)


def _eval_forwards(encoder: nn.Module, batches: Iterable[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's two outputs over ``batches`` of its inputs, in eval mode, the mode put back after.
    Batches are moved to the device one at a time and their outputs back as they come, so the device
    holds one batch, not the whole input."""
    training = encoder.training
    encoder.eval()
    try:
        outputs = [tuple(o.float().cpu() for o in encoder(*batch)[:2]) for batch in batches]
    finally:
        encoder.train(training)
    return torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs])
