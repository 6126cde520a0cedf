"""The recurrence U-Net: MONAI ``UNet`` (3D, instance normalisation, residual units), input channels of
:data:`gliomaforecast.forecasters.recurrence.inputs.CHANNELS`, one output logit per voxel; :class:`ProbabilityNet` adds the
sigmoid for export (the ONNX file outputs the recurrence probability, 0-1)."""

from __future__ import annotations

import torch
from monai.networks.layers import Norm
from monai.networks.nets import UNet

from gliomaforecast.forecasters.recurrence.inputs import CHANNELS

LEVELS = 4
SIZE_MULTIPLE = 2 ** (LEVELS - 1)
"""Spatial sizes must be multiples of this (three stride-2 stages)."""


def build_unet(width: int = 8, in_channels: int = len(CHANNELS)) -> UNet:
    """MONAI UNet with channels width x (1, 2, 4, 8), strides 2, one residual unit per block, instance norm
    (no affine), PReLU; 1 output channel (logit)."""
    return UNet(spatial_dims=3, in_channels=in_channels, out_channels=1,
                channels=tuple(width * 2 ** i for i in range(LEVELS)), strides=(2,) * (LEVELS - 1),
                num_res_units=1, norm=Norm.INSTANCE, act="PRELU")


class ProbabilityNet(torch.nn.Module):
    """``sigmoid(unet(x))``: recurrence probability (batch, 1, z, y, x) from the channels (batch, C, z, y, x)."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.unet(x))
