"""Vector quantization in numpy: snap continuous VQ-VAE encodings to their nearest codebook vectors.

The same rule as MONAI's ``EMAQuantizer.quantize`` (squared Euclidean distance ``|z|^2 + |e|^2 - 2 z.e`` computed in
float32, the first of equal minima), so a VQ-VAE exported as encoder + decoder (ONNX) decodes here exactly as in
torch. Latents are channel-first: (batch, D, h, w) with the codebook (codes, D).
"""

from __future__ import annotations

import numpy as np

from ...errors import InputError


def nearest_codes(z: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Indices (batch, h, w) int64 of the codebook vector nearest to each latent vector of ``z`` (batch, D, h, w)."""
    z = np.asarray(z, np.float32)
    codebook = np.asarray(codebook, np.float32)
    if z.ndim < 2 or codebook.ndim != 2 or z.shape[1] != codebook.shape[1]:
        raise InputError(
            None, "codebook", f"latent {z.shape} (channel axis 1) does not match codebook {codebook.shape}"
        )
    flat = np.moveaxis(z, 1, -1).reshape(-1, z.shape[1])
    dist = (flat**2).sum(axis=1, keepdims=True) + (codebook**2).sum(axis=1)[None] - 2.0 * flat @ codebook.T
    return np.argmin(dist, axis=1).reshape((z.shape[0],) + z.shape[2:]).astype(np.int64)


def lookup(indices: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """The codebook vectors of ``indices`` (batch, h, w), channel-first (batch, D, h, w) float32."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(codebook, np.float32)[indices], -1, 1))


def quantize(z: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """``z`` (batch, D, h, w) with every latent vector replaced by its nearest codebook vector."""
    return lookup(nearest_codes(z, codebook), codebook)
