"""The single-scan latent diffusion forecaster's networks: data (scan pairs), two VQ-VAEs (images, GTV), the
latent diffusion U-Net with classifier-free guidance of the outcome class, training, export, evaluation."""
