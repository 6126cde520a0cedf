"""Image-similarity metrics for synthesized scans (PSNR, SSIM) by scikit-image, 2D or 3D.

``data_range`` defaults to the reference image's max - min (an intensity range, not the dtype's).
"""

from __future__ import annotations

import numpy as np
from skimage import metrics


def _images(image: np.ndarray, reference: np.ndarray,
            data_range: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    image = np.asarray(image, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if image.shape != reference.shape:
        raise ValueError(f"image {image.shape} and reference {reference.shape} are not on one grid")
    if not (np.all(np.isfinite(image)) and np.all(np.isfinite(reference))):
        raise ValueError("images contain NaN or infinite values")
    if data_range is None:
        data_range = float(reference.max() - reference.min())
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0 (the reference is constant?), got {data_range}")
    return image, reference, float(data_range)


def psnr(image: np.ndarray, reference: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio (dB) of ``image`` against ``reference``; +inf when they are equal."""
    image, reference, data_range = _images(image, reference, data_range)
    if np.array_equal(image, reference):
        return float("inf")
    return float(metrics.peak_signal_noise_ratio(reference, image, data_range=data_range))


def ssim(image: np.ndarray, reference: np.ndarray, data_range: float | None = None) -> float:
    """Mean structural similarity in [-1, 1] (scikit-image's 7-voxel uniform window, 2D or 3D)."""
    image, reference, data_range = _images(image, reference, data_range)
    return float(metrics.structural_similarity(reference, image, data_range=data_range))
