"""The tumor-evolution network G(phi_1, phi_2, dl) -> displacement field (mm), built from MONAI blocks.

Architecture (Multi-task diffusion paper, section 4.2 and Fig. 2), 2D on axial slices as in the paper:
* input ``phi`` (B, 2, H, W): the pre-logistic signed distances of the two GTVs in mm (negative inside),
  sampled at 2 mm pixels; the network divides them by ``PHI_SCALE_MM`` = 50 mm itself;
* input ``gap_days`` (B,): the time gap t_2 - t_1 in days, through MONAI's sinusoidal embedding
  (``get_timestep_embedding``) and an MLP, applied by FiLM (h * (1 + scale) + shift) after every block;
* a U-Net with a full-resolution stem and 4 down/up-sampling stages (MONAI ``ResidualUnit`` blocks,
  strided convolutions down, transposed ``Convolution`` up, skip connections), channels
  ``channels`` = (8, 16, 32, 64) by default, batch normalization (independent of the field of view);
  H and W must be multiples of 16;
* output ``displacement`` (B, 2, H, W): (d_y, d_x) in mm, a backward map phi_2 ~= phi_1(p + v(p)).
  The last convolution starts at zero (identity map).
"""

from __future__ import annotations

from typing import Sequence

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from monai.networks.nets.diffusion_model_unet import get_timestep_embedding
from torch import nn

from ..common.layers import FiLM

PHI_SCALE_MM = 50.0
SIZE_MULTIPLE = 16


def _unit(cin: int, cout: int, strides: int = 1) -> ResidualUnit:
    return ResidualUnit(spatial_dims=2, in_channels=cin, out_channels=cout, strides=strides, kernel_size=3,
                        subunits=2, norm="batch", act="prelu")


class EvolutionNet(nn.Module):
    """U-Net G(phi_1, phi_2, dl) -> displacement (mm); see the module docstring."""

    def __init__(self, channels: Sequence[int] = (8, 16, 32, 64), embed_dim: int = 32) -> None:
        super().__init__()
        chans = list(channels)
        if len(chans) != 4:
            raise ValueError(f"EvolutionNet has 4 levels; got channels {channels}")
        self.channels = tuple(chans)
        self.embed_dim = embed_dim
        emb = 2 * embed_dim
        self.time_mlp = nn.Sequential(nn.Linear(embed_dim, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.stem = _unit(2, chans[0])
        self.stem_film = FiLM(emb, chans[0])
        levels = chans + [chans[-1]]  # 4 down-sampling stages: c0 -> c1 -> c2 -> c3 -> c3 (bottleneck)
        self.down = nn.ModuleList(_unit(levels[i], levels[i + 1], strides=2) for i in range(4))
        self.down_film = nn.ModuleList(FiLM(emb, levels[i + 1]) for i in range(4))
        self.up = nn.ModuleList(
            Convolution(2, levels[i + 1], levels[i], strides=2, kernel_size=3, is_transposed=True,
                        norm="batch", act="prelu")
            for i in reversed(range(4)))
        self.up_block = nn.ModuleList(_unit(2 * levels[i], levels[i]) for i in reversed(range(4)))
        self.up_film = nn.ModuleList(FiLM(emb, levels[i]) for i in reversed(range(4)))
        self.head = nn.Conv2d(chans[0], 2, kernel_size=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, phi: torch.Tensor, gap_days: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(get_timestep_embedding(gap_days.reshape(-1), self.embed_dim))
        h = self.stem_film(self.stem(phi / PHI_SCALE_MM), emb)
        skips = [h]
        for block, film in zip(self.down, self.down_film):
            h = film(block(h), emb)
            skips.append(h)
        skips.pop()
        for up, block, film in zip(self.up, self.up_block, self.up_film):
            h = film(block(torch.cat([up(h), skips.pop()], dim=1)), emb)
        return self.head(h)
