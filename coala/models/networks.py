"""The paper's networks, layer for layer.

Layer positions inside each ``nn.Sequential`` are what give the ``state_dict`` names, so the order
and count of layers here (including the parameter-free ReLU/Dropout/Flatten entries) must stay exactly
as the paper had them for its checkpoints to load with ``strict=True``.
"""
from __future__ import annotations

import torch
from torch import nn

DROPOUT = 0.25
N_TAGS = 1000
# The latent: 128 channels of 3x3 after five stride-2 convolutions of a 96x96 patch, flattened.
LATENT_CHANNELS = 128
LATENT_SIDE = 3
LATENT_DIM = LATENT_CHANNELS * LATENT_SIDE * LATENT_SIDE


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.Dropout(DROPOUT),
    ]


def _deconv(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1)


def conv_stack() -> list[nn.Module]:
    """Five stride-2 conv blocks, 96 -> 3 pixels, then a channel-major flatten to 1152."""
    layers: list[nn.Module] = _conv_block(1, LATENT_CHANNELS)
    for _ in range(4):
        layers += _conv_block(LATENT_CHANNELS, LATENT_CHANNELS)
    return layers + [nn.Flatten()]


class AudioEncoder(nn.Module):
    """96x96 log-mel patch -> ``(z, z_d)``: the 1152-d embedding and its contrastive projection."""

    def __init__(self) -> None:
        super().__init__()
        self.audio_encoder = nn.Sequential(*conv_stack())
        self.fc_audio = nn.Sequential(nn.Linear(LATENT_DIM, LATENT_DIM, bias=False), nn.Dropout(DROPOUT))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.audio_encoder(x)
        return z, self.fc_audio(z)


class AudioDecoder(nn.Module):
    """1152-d latent -> 96x96 patch in [0, 1] (sigmoid)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Unflatten(1, (LATENT_CHANNELS, LATENT_SIDE, LATENT_SIDE)), nn.Dropout(DROPOUT)]
        for _ in range(3):
            layers += [_deconv(LATENT_CHANNELS, LATENT_CHANNELS), nn.BatchNorm2d(LATENT_CHANNELS), nn.ReLU(),
                       nn.Dropout(DROPOUT)]
        layers += [_deconv(LATENT_CHANNELS, LATENT_CHANNELS), nn.BatchNorm2d(LATENT_CHANNELS), nn.ReLU()]
        layers += [_deconv(LATENT_CHANNELS, 1), nn.BatchNorm2d(1), nn.Sigmoid()]
        self.audio_decoder = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.audio_decoder(z)


class TagEncoder(nn.Module):
    """Multi-hot tag vector -> ``(z, z_d)`` like the audio encoder."""

    def __init__(self, n_tags: int = N_TAGS) -> None:
        super().__init__()
        self.tag_encoder = nn.Sequential(
            nn.Linear(n_tags, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Dropout(DROPOUT),
            nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Dropout(DROPOUT),
            nn.Linear(512, LATENT_DIM), nn.BatchNorm1d(LATENT_DIM), nn.ReLU(), nn.Dropout(DROPOUT),
        )
        self.fc_tag = nn.Sequential(nn.Linear(LATENT_DIM, LATENT_DIM, bias=False), nn.Dropout(DROPOUT))

    def forward(self, tags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.tag_encoder(tags)
        return z, self.fc_tag(z)


class TagDecoder(nn.Module):
    """1152-d latent -> tag probabilities (sigmoid)."""

    def __init__(self, n_tags: int = N_TAGS) -> None:
        super().__init__()
        self.tag_decoder = nn.Sequential(
            nn.Linear(LATENT_DIM, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Dropout(DROPOUT),
            nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
            nn.Linear(512, n_tags), nn.BatchNorm1d(n_tags), nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.tag_decoder(z)


class CNN(nn.Module):
    """Tag-supervised baseline: the audio encoder's conv stack with a tag classifier on top.

    Returns ``(z, tag_probabilities)``; ``z`` is the 1152-d embedding used downstream.
    """

    def __init__(self, n_tags: int = N_TAGS) -> None:
        super().__init__()
        self.encoder = nn.Sequential(*conv_stack())
        self.fc = nn.Sequential(nn.Linear(LATENT_DIM, LATENT_DIM), nn.ReLU(), nn.Linear(LATENT_DIM, n_tags), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return z, self.fc(z)
