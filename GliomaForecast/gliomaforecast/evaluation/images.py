"""Image-similarity metrics for synthesized scans (PSNR, SSIM) by scikit-image, 2D or 3D.

``data_range`` defaults to the reference image's max - min (an intensity range, not the dtype's).
"""

from __future__ import annotations

import numpy as np
from skimage import metrics


def _images(image: np.ndarray, reference: np.ndarray, data_range: float | None) -> tuple[np.ndarray, np.ndarray, float]:
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


def slice_similarity(
    image: np.ndarray, reference: np.ndarray, slices: np.ndarray, brain: np.ndarray | None = None
) -> dict[str, float]:
    """PSNR (dB) and mean 2D SSIM of a 3D ``image`` against ``reference`` (z, y, x) on the axial ``slices`` (indices
    along z), inside the bounding box of the brain mask on those slices (the whole slice without one); the data range
    is the reference's on that box. How a synthesized FLAIR is scored against the true future FLAIR."""
    slices = np.asarray(slices, dtype=int)
    if slices.size == 0:
        raise ValueError("no slice to compare")
    region = np.ones(reference.shape[1:], bool) if brain is None else np.asarray(brain, bool)[slices].any(axis=0)
    if not region.any():
        raise ValueError("the brain mask is empty on the compared slices")
    ys, xs = np.nonzero(region)
    box = (slices, slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    a, b = np.asarray(image, np.float64)[box], np.asarray(reference, np.float64)[box]
    data_range = float(b.max() - b.min())
    return {"psnr_db": psnr(a, b, data_range), "ssim": float(np.mean([ssim(x, y, data_range) for x, y in zip(a, b)]))}
