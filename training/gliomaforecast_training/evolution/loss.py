"""Loss of the tumor-evolution module (Multi-task diffusion paper, eq. 6), from MONAI blocks.

L = mean |phi_2 - phi_1 o v| + lambda_smooth * mean ||grad v||^2

* phi are signed distances in mm divided by ``PHI_SCALE_MM`` (50 mm), so the data term is in units of 50 mm;
* ``phi_1 o v`` uses MONAI's ``Warp`` (bilinear, border padding) with v converted from mm to pixels;
* the smoothness term is MONAI's ``DiffusionLoss`` (mean squared first derivatives) of v in pixels.
"""

from __future__ import annotations

import warnings

import torch
from monai.losses import DiffusionLoss
from monai.networks.blocks import Warp
from torch import nn

from .net import PHI_SCALE_MM


class EvolutionLoss(nn.Module):
    """Similarity (L1 of the warped SDF) plus ``lambda_smooth`` times the diffusion regularizer."""

    def __init__(self, pixel_spacing_mm: float = 2.0, lambda_smooth: float = 0.05) -> None:
        super().__init__()
        self.pixel_spacing_mm = float(pixel_spacing_mm)
        self.lambda_smooth = float(lambda_smooth)
        with warnings.catch_warnings():  # MONAI notes that it uses torch's native grid_sample: expected here
            warnings.simplefilter("ignore", UserWarning)
            self.warp = Warp(mode="bilinear", padding_mode="border")
        self.smooth = DiffusionLoss()

    def warped(self, phi1: torch.Tensor, displacement_mm: torch.Tensor) -> torch.Tensor:
        """phi1 (B, 1, H, W) sampled at p + v(p), v (B, 2, H, W) in mm."""
        return self.warp(phi1, displacement_mm / self.pixel_spacing_mm)

    def forward(self, phi: torch.Tensor, displacement_mm: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """phi (B, 2, H, W) in mm; returns the loss and its terms (data term also in mm)."""
        phi1, phi2 = phi[:, :1] / PHI_SCALE_MM, phi[:, 1:] / PHI_SCALE_MM
        data = (phi2 - self.warped(phi1, displacement_mm)).abs().mean()
        smooth = self.smooth(displacement_mm / self.pixel_spacing_mm)
        loss = data + self.lambda_smooth * smooth
        return loss, {"loss": float(loss.detach()), "l1_mm": float(data.detach()) * PHI_SCALE_MM,
                      "smooth": float(smooth.detach())}
