"""The networks of the latent diffusion forecaster (2D, 64 x 64 crops at 2 mm), all from MONAI's generative nets.

* image VQ-VAE (``monai.networks.nets.VQVAE``): T1CE + FLAIR (2 channels, / the pre-treatment scan's intensity
  scales) -> continuous encoding (``LATENT_CHANNELS``, 16, 16) -> nearest of ``num_embeddings`` codebook vectors
  (EMA codebook) -> decoder -> 2 channels. One VQ-VAE serves the pre- and the post-treatment scans.
* mask VQ-VAE: the GTV (1 channel, 0/1) -> the same latent shape -> decoder -> 1 channel of logits (the decoded
  GTV probability is their sigmoid).
* latent denoiser (``monai.networks.nets.DiffusionModelUNet``): input the noisy post-treatment latent (image and
  mask latents, 2 x ``LATENT_CHANNELS`` channels, normalised by the training set's per-channel mean and SD)
  concatenated with the pre-treatment image and mask latents (same normalisation) and one constant channel of the
  gap feature (``latent_inputs.gap_feature``) and, in the dose-conditioned variant, the planned RT dose / 60 Gy
  mean-pooled to the latent grid (zeros: no dose map); the outcome class (0 null, 1 responder, 2 progressor) through the
  U-Net's class embedding (``num_class_embeds=3``); output the v-prediction of the post-treatment latent.
"""

from __future__ import annotations

from typing import Sequence

import torch
from monai.networks.nets import VQVAE, DiffusionModelUNet
from torch import nn

from gliomaforecast.forecasters.latent import inputs as li

LATENT_CHANNELS = 4
LATENT_SIZE = li.CROP // 4
COND_CHANNELS = 2 * LATENT_CHANNELS + 1  # pre image + pre mask latents, gap; x_t has 2 * LATENT_CHANNELS


def cond_channels(dose: bool) -> int:
    """Condition channels of the denoiser: COND_CHANNELS, plus one (the planned dose) when ``dose``."""
    return COND_CHANNELS + int(bool(dose))
NUM_CLASSES = 3


def make_vqvae(in_channels: int, num_embeddings: int, channels: Sequence[int] = (32, 64)) -> VQVAE:
    """A small 2D VQ-VAE: two stride-2 levels (64 -> 16 pixels), one residual layer per level."""
    c = tuple(int(v) for v in channels)
    return VQVAE(spatial_dims=2, in_channels=in_channels, out_channels=in_channels, channels=c, num_res_layers=1,
                 num_res_channels=c, downsample_parameters=((2, 4, 1, 1),) * len(c),
                 upsample_parameters=((2, 4, 1, 1, 0),) * len(c), num_embeddings=num_embeddings,
                 embedding_dim=LATENT_CHANNELS, commitment_cost=0.25, decay=0.9)


def make_denoiser(channels: Sequence[int] = (64, 128, 128), dose: bool = False) -> DiffusionModelUNet:
    """The latent U-Net: 16 -> 8 -> 4 latent pixels, self-attention at the coarsest level, class embedding;
    ``dose``: one more condition channel, the planned dose at latent resolution."""
    c = tuple(int(v) for v in channels)
    return DiffusionModelUNet(spatial_dims=2, in_channels=2 * LATENT_CHANNELS + cond_channels(dose),
                              out_channels=2 * LATENT_CHANNELS, num_res_blocks=1, channels=c,
                              attention_levels=(False,) * (len(c) - 1) + (True,), norm_num_groups=16,
                              num_head_channels=c[-1] // 4, num_class_embeds=NUM_CLASSES)


def codebook(vq: VQVAE) -> torch.Tensor:
    """The VQ-VAE's codebook (num_embeddings, LATENT_CHANNELS)."""
    return vq.quantizer.quantizer.embedding.weight


class Encoder(nn.Module):
    """Export wrapper: images -> (continuous encoding z, the codebook). The lookup runs in numpy in the core."""

    def __init__(self, vq: VQVAE) -> None:
        super().__init__()
        self.vq = vq

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.vq.encode(images), codebook(self.vq) + 0.0


class Decoder(nn.Module):
    """Export wrapper: quantized latent -> decoded images (or GTV logits)."""

    def __init__(self, vq: VQVAE) -> None:
        super().__init__()
        self.vq = vq

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.vq.decode(latent)


class Denoiser(nn.Module):
    """Export wrapper: (x_t, timesteps, cond, class_labels) -> v, with the condition concatenated to x_t."""

    def __init__(self, unet: DiffusionModelUNet) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x_t: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor,
                class_labels: torch.Tensor) -> torch.Tensor:
        return self.unet(torch.cat([x_t, cond], dim=1), timesteps, class_labels=class_labels)


def quantize(vq: VQVAE, images: torch.Tensor) -> torch.Tensor:
    """The quantized latent (B, LATENT_CHANNELS, h, w) of ``images`` (eval mode: no codebook update)."""
    return vq.quantize(vq.encode(images))[0]
