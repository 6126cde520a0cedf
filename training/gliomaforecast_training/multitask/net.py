"""The multi-task diffusion network: one shared encoder, a generative and a predictive decoder with shared skips.

Built from MONAI's ``DiffusionUNetResnetBlock`` (``monai.networks.nets.diffusion_model_unet``), 2D on axial
slices of ``CROP`` x ``CROP`` pixels at 2 mm (sizes must be multiples of 16). For CPU speed the network works at
half that resolution (4 mm pixels): the conditions are average-pooled by 2 on entry, the FLAIR change is
denoised at 4 mm, and the probability correction is upsampled (bilinear) onto the 2 mm grid of ``phi_2``:

* inputs: ``x_t`` (B, 1, H/2, W/2) the noised FLAIR change at 4 mm (see ``multitask_inputs``), ``timesteps`` (B,) diffusion
  step 0..T-1, ``cond`` (B, 10, H, W) the prior-scan channels in physical units (mm, Gy; divided by fixed scales
  here), ``gaps`` (B, 3) days [t2 - t1, t_target - t2, t2 - t_rt];
* gap embedding: MONAI's sinusoidal ``get_timestep_embedding`` per gap, an MLP, FiLM (h (1 + scale) + shift)
  after every block of the encoder and of both decoders; the step embedding (sinusoidal + MLP) is added to the
  gap embedding in the generative decoder only;
* shared encoder (conditions only) -> skips at 4, 8 and 16 mm pixels and a 32 mm bottleneck;
* predictive decoder (gaps only): the logit of the target tumour probability as a correction of the last scan's
  logistic map, ``logit = beta (mu - phi_2) + head`` (beta 0.1 /mm, mu 15 mm; zero-initialised head: the network
  starts as the persistence forecast), output ``probability`` = sigmoid;
* generative decoder (gaps + step): the same skips plus ``x_t`` average-pooled to each level (one 3x3 convolution each), output
  ``prediction`` (B, 1, H/2, W/2: v-prediction of the FLAIR change at 4 mm). The probability (B, 1, H, W) does
  not depend on ``x_t`` or ``timesteps``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from monai.networks.nets.diffusion_model_unet import DiffusionUNetResnetBlock, get_timestep_embedding
from torch import nn
from torch.nn import functional as F

from gliomaforecast.forecasters.crops import COND_CHANNELS, COND_NAMES, GEN_POOL, PHI2_CHANNEL

from ..common.layers import FiLM

BETA_PER_MM = 0.1
MU_MM = 15.0
SIZE_MULTIPLE = 16
POOL = GEN_POOL  # the network's pixels are POOL x the input's (4 mm)
#: fixed divisors of the condition channels (mm, Gy, dimensionless), applied inside the network
COND_SCALES = {"phi_1": 50.0, "phi_2": 50.0, "dose": 60.0, "disp_y": 10.0, "disp_x": 10.0}
GAP_SCALE_DAYS = 1.0


class MultiTaskNet(nn.Module):
    """See the module docstring. ``channels`` (c0, c1, c2): widths at 4, 8 and 16 mm pixels (bottleneck c2)."""

    def __init__(self, channels: Sequence[int] = (32, 64, 64), embed_dim: int = 32, groups: int = 8) -> None:
        super().__init__()
        c = [int(v) for v in channels]
        if len(c) != 3:
            raise ValueError(f"MultiTaskNet has 3 levels; got channels {channels}")
        self.channels, self.embed_dim = tuple(c), embed_dim
        emb = 4 * embed_dim
        self.gap_mlp = nn.Sequential(nn.Linear(3 * embed_dim, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.step_mlp = nn.Sequential(nn.Linear(embed_dim, emb), nn.SiLU(), nn.Linear(emb, emb))
        scales = torch.tensor([COND_SCALES.get(n, 1.0) for n in COND_NAMES], dtype=torch.float32)
        self.register_buffer("cond_scale", scales.reshape(1, -1, 1, 1))

        def block(cin: int, cout: int, **kw) -> DiffusionUNetResnetBlock:
            return DiffusionUNetResnetBlock(2, cin, emb, cout, norm_num_groups=groups, **kw)

        self.stem = nn.Conv2d(COND_CHANNELS, c[0], 3, padding=1)
        self.enc = nn.ModuleList([block(c[0], c[0]), block(c[0], c[1]), block(c[1], c[2])])
        self.enc_film = nn.ModuleList(FiLM(emb, ch) for ch in c)
        self.down = nn.ModuleList(block(ch, ch, down=True) for ch in c)
        self.mid = block(c[2], c[2])
        self.mid_film = FiLM(emb, c[2])
        ups = [(c[2], c[2]), (c[2], c[1]), (c[1], c[0])]  # (incoming, level width) from 1/4 to full resolution
        levels = [c[2], c[1], c[0]]

        def decoder(extra: int) -> tuple[nn.ModuleList, nn.ModuleList, nn.ModuleList]:
            up = nn.ModuleList(block(cin, cin, up=True) for cin, _ in ups)
            blocks = nn.ModuleList(block(cin + lvl + extra, cout) for (cin, cout), lvl in zip(ups, levels))
            films = nn.ModuleList(FiLM(emb, cout) for _, cout in ups)
            return up, blocks, films

        self.p_up, self.p_block, self.p_film = decoder(0)
        # x_t enters the generative decoder at every level through its own 3x3 convolution (``groups`` channels)
        self.g_x = nn.ModuleList(nn.Conv2d(1, groups, 3, padding=1) for _ in range(4))
        self.g_in = block(c[2] + groups, c[2])
        self.g_up, self.g_block, self.g_film = decoder(groups)
        self.p_head = nn.Conv2d(c[0], 1, 1)
        self.g_head = nn.Conv2d(c[0], 1, 1)
        for head in (self.p_head, self.g_head):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def gap_embedding(self, gaps: torch.Tensor) -> torch.Tensor:
        """(B, 3) days -> (B, 4 embed_dim)."""
        parts = [get_timestep_embedding(gaps[:, i] / GAP_SCALE_DAYS, self.embed_dim) for i in range(gaps.shape[1])]
        return self.gap_mlp(torch.cat(parts, dim=1))

    def encode(self, cond: torch.Tensor, gaps: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """The shared encoder: (skips at 4, 8 and 16 mm pixels, the 32 mm bottleneck, the gap embedding)."""
        e_gap = self.gap_embedding(gaps)
        h = self.stem(F.avg_pool2d(cond / self.cond_scale, POOL))
        skips = []
        for enc, film, down in zip(self.enc, self.enc_film, self.down):
            h = film(enc(h, e_gap), e_gap)
            skips.append(h)
            h = down(h, e_gap)
        return skips, self.mid_film(self.mid(h, e_gap), e_gap), e_gap

    def predict_probability(self, cond: torch.Tensor, skips: list[torch.Tensor], bottom: torch.Tensor,
                            e_gap: torch.Tensor) -> torch.Tensor:
        """The predictive decoder: probability (B, 1, H, W) in [0, 1]."""
        p = bottom
        for up, blk, film, skip in zip(self.p_up, self.p_block, self.p_film, reversed(skips)):
            p = film(blk(torch.cat([up(p, e_gap), skip], dim=1), e_gap), e_gap)
        phi_2 = cond[:, PHI2_CHANNEL:PHI2_CHANNEL + 1]
        correction = F.interpolate(self.p_head(p), scale_factor=float(POOL), mode="bilinear", align_corners=False)
        return torch.sigmoid(BETA_PER_MM * (MU_MM - phi_2) + correction)

    def predict_change(self, x_t: torch.Tensor, timesteps: torch.Tensor, skips: list[torch.Tensor],
                       bottom: torch.Tensor, e_gap: torch.Tensor) -> torch.Tensor:
        """The generative decoder: v of the FLAIR change (B, 1, H/2, W/2) at step ``timesteps``."""
        e_gen = e_gap + self.step_mlp(get_timestep_embedding(timesteps.reshape(-1).float(), self.embed_dim))
        g = self.g_in(torch.cat([bottom, self.g_x[0](F.avg_pool2d(x_t, 8))], dim=1), e_gen)
        for i, (up, blk, film, skip) in enumerate(zip(self.g_up, self.g_block, self.g_film, reversed(skips))):
            factor = 4 >> i
            xs = self.g_x[i + 1](F.avg_pool2d(x_t, factor) if factor > 1 else x_t)
            g = film(blk(torch.cat([up(g, e_gen), skip, xs], dim=1), e_gen), e_gen)
        return self.g_head(g)

    def forward(self, x_t: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor,
                gaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (``prediction`` (B, 1, H/2, W/2): v of the FLAIR change; ``probability`` (B, 1, H, W) in [0, 1])."""
        skips, bottom, e_gap = self.encode(cond, gaps)
        return (self.predict_change(x_t, timesteps, skips, bottom, e_gap),
                self.predict_probability(cond, skips, bottom, e_gap))
