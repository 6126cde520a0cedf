"""The guided DDIM's networks.

* ``make_ddpm``: MONAI's ``DiffusionModelUNet`` (2D, 1 channel in and out, no attention, one residual block per
  level), epsilon prediction on 64 x 64 FLAIR crops in ``guided_inputs`` units.
* ``BurdenRegressor``: R(x_t, t), the tumour burden (GTV area / brain area of the crop) of the clean slice
  predicted from a noised one, built only from layers whose input gradient is written out in the forward pass
  (convolution -> transposed convolution with the same weights, LeakyReLU masks, average pooling -> its
  adjoint, linear -> its transpose), so ONE exported ONNX graph returns R and dR/dx without autograd
  (torch's ONNX exporters cannot export ``autograd.grad``; onnxruntime cannot run ONNX's Gradient op).
  The step t enters as a per-channel bias of every convolution (an embedding of t), which does not change the
  gradient rules.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from monai.networks.nets import DiffusionModelUNet
from torch import nn
from torch.nn import functional as F

SLOPE = 0.1  # LeakyReLU negative slope
NUM_TRAIN_TIMESTEPS = 1000


def make_ddpm(channels: Sequence[int] = (16, 32, 64), groups: int = 8) -> DiffusionModelUNet:
    """The unconditional epsilon-prediction DDPM network (see the module docstring)."""
    return DiffusionModelUNet(spatial_dims=2, in_channels=1, out_channels=1, channels=tuple(int(c) for c in channels),
                              attention_levels=(False,) * len(channels), num_res_blocks=1, norm_num_groups=groups)


def step_features(t: torch.Tensor, n: int = 8) -> torch.Tensor:
    """(B,) steps 0..T-1 -> (B, 2n) sinusoidal features (periods from 2 to 2 T steps)."""
    freqs = torch.exp(torch.arange(n, dtype=torch.float32) * (-math.log(NUM_TRAIN_TIMESTEPS) / max(n - 1, 1)))
    arg = t.float().reshape(-1, 1) * freqs.reshape(1, -1) * math.pi
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class BurdenRegressor(nn.Module):
    """conv(3x3, stride 1) -> LeakyReLU -> avg-pool 2, ``len(channels)`` times, then global average pooling and a
    linear head. ``forward`` returns (R (B,), dR/dx (B, 1, H, W)); see the module docstring."""

    def __init__(self, channels: Sequence[int] = (16, 32, 32, 64), size: int = 64, features: int = 8) -> None:
        super().__init__()
        c = [1] + [int(v) for v in channels]
        self.channels, self.size, self.features = tuple(c[1:]), size, features
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(c[:-1], c[1:]))
        self.t_bias = nn.ModuleList(nn.Linear(2 * features, b) for b in c[1:])
        self.head = nn.Linear(c[-1], 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = step_features(t, self.features).to(x.dtype)
        h, masks, shapes = x, [], []
        for conv, tb in zip(self.convs, self.t_bias):
            a = conv(h) + tb(emb)[:, :, None, None]
            m = torch.where(a > 0, torch.ones_like(a), torch.full_like(a, SLOPE))
            masks.append(m)
            shapes.append(a.shape)
            h = F.avg_pool2d(a * m, 2)
        r = self.head(h.mean(dim=(2, 3))).reshape(-1)
        # backward pass written out: d r / d h for the global mean, then each layer's adjoint
        g = self.head.weight.reshape(1, -1, 1, 1).expand(h.shape) / float(h.shape[2] * h.shape[3])
        for conv, m, shape in zip(reversed(self.convs), reversed(masks), reversed(shapes)):
            g = F.interpolate(g, scale_factor=2.0, mode="nearest") / 4.0  # adjoint of 2x2 average pooling
            g = g * m  # LeakyReLU's derivative
            g = F.conv_transpose2d(g, conv.weight, padding=1)  # adjoint of the 3x3 convolution
        return r, g
