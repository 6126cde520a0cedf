"""Training pairs for the tumor-evolution module: 2D axial slices of (phi_1, phi_2) and the time gap.

Everything is sampled at ``PIXEL_MM`` (2 mm) pixels in crops of ``size`` x ``size`` pixels; phi are signed
distances in mm (``gliomaforecast.sdf.signed_distance``, computed in 3D on the case grid for cohort data).

* :func:`cohort_pairs`: every pair of scans (t_i, t_j), i < j, of each patient (the paper samples random
  pairs of scans of one patient; the sampler draws them at random), every axial slice where either GTV
  covers at least ``min_area_mm2`` (75 mm^2, the paper's threshold), cropped around the pair's tumor centre.
* :func:`synthetic_pairs`: growing/shrinking blobs (unions of ellipses, whose boundary moves by a spatially
  varying amount rate * gap) for tests and development.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage

from gliomaforecast import sdf
from gliomaforecast.io.case import load_case
from gliomaforecast.deformation import resample_plane

PIXEL_MM = 2.0
NOISE_SMOOTHING_MM = 12.0  # sd (mm) of the Gaussian that smooths the synthetic boundary-speed noise
MIN_AREA_MM2 = 75.0


def crop_planes(stack: np.ndarray, center_yx: Sequence[float], size: int) -> np.ndarray:
    """Crop (n, h, w) planes to (n, size, size) centred on ``center_yx`` (pixels), edge-padding outside."""
    cy, cx = (int(round(c)) - size // 2 for c in center_yx)
    h, w = stack.shape[1:]
    pad = ((0, 0), (max(0, -cy), max(0, cy + size - h)), (max(0, -cx), max(0, cx + size - w)))
    padded = np.pad(stack, pad, mode="edge")
    y0, x0 = cy + pad[1][0], cx + pad[2][0]
    return padded[:, y0:y0 + size, x0:x0 + size]


def case_phis(case) -> list[np.ndarray]:
    """3D signed distances (mm) of every timepoint's GTV of a loaded case."""
    return [sdf.signed_distance(case.gtv(tp), case.grid.spacing) for tp in case.timepoints]


def pairs_from_phis(phis: Sequence[np.ndarray], days: Sequence[float], spacing: Sequence[float], size: int = 96,
                    min_area_mm2: float = MIN_AREA_MM2) -> tuple[np.ndarray, np.ndarray]:
    """Slice pairs (N, 2, size, size) in mm at 2 mm pixels and gaps (N,) in days from one patient's 3D phis."""
    sp = np.asarray(spacing, dtype=float)
    pixel_area = sp[1] * sp[2]
    out, gaps = [], []
    for i, j in combinations(range(len(phis)), 2):
        inside = (phis[i] <= 0) | (phis[j] <= 0)
        area = np.maximum((phis[i] <= 0).sum(axis=(1, 2)), (phis[j] <= 0).sum(axis=(1, 2))) * pixel_area
        keep = np.nonzero(area >= min_area_mm2)[0]
        if keep.size == 0 or days[j] <= days[i]:
            continue
        center = np.array(ndimage.center_of_mass(inside))[1:] * sp[1:] / PIXEL_MM
        planes = [crop_planes(resample_plane(p[keep], sp[1:], PIXEL_MM), center, size) for p in (phis[i], phis[j])]
        out.append(np.stack(planes, axis=1))
        gaps.append(np.full(keep.size, days[j] - days[i], dtype=np.float32))
    if not out:
        return np.zeros((0, 2, size, size), np.float32), np.zeros(0, np.float32)
    return np.concatenate(out).astype(np.float32), np.concatenate(gaps)


def cohort_pairs(case_paths: Sequence[str | Path], size: int = 96,
                 min_area_mm2: float = MIN_AREA_MM2) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs from case manifests (case.json files or their folders); see the module docstring."""
    phis_all, gaps_all = [], []
    for path in case_paths:
        case = load_case(Path(path) / "case.json" if Path(path).is_dir() else path)
        phi, gap = pairs_from_phis(case_phis(case), list(case.days), case.grid.spacing, size, min_area_mm2)
        phis_all.append(phi)
        gaps_all.append(gap)
    return np.concatenate(phis_all), np.concatenate(gaps_all)


def _blob(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] * PIXEL_MM
    mask = np.zeros((size, size), bool)
    c0 = size * PIXEL_MM / 2 + rng.uniform(-15, 15, 2)
    for _ in range(rng.integers(1, 4)):
        cy, cx = c0 + rng.uniform(-10, 10, 2)
        a, b = rng.uniform(5, 22, 2)
        t = rng.uniform(0, np.pi)
        u = (yy - cy) * np.cos(t) + (xx - cx) * np.sin(t)
        v = -(yy - cy) * np.sin(t) + (xx - cx) * np.cos(t)
        mask |= (u / a) ** 2 + (v / b) ** 2 <= 1
    return mask


def synthetic_pairs(n: int, size: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic slice pairs (n, 2, size, size) of signed distances (mm, 2 mm pixels) and gaps (days).

    The second boundary is the first moved outward (growth) or inward (shrinkage) by
    rate * gap * (1 + 0.5 * noise smoothed over NOISE_SMOOTHING_MM), rate in [-0.04, 0.08] mm/day, gap in [20, 365] days."""
    rng = np.random.default_rng(seed)
    phis = np.empty((n, 2, size, size), np.float32)
    gaps = np.empty(n, np.float32)
    k = 0
    while k < n:
        m1 = _blob(rng, size)
        phi1 = sdf.signed_distance(m1, (PIXEL_MM, PIXEL_MM))
        gap = rng.uniform(20, 365)
        noise = ndimage.gaussian_filter(rng.standard_normal((size, size)), NOISE_SMOOTHING_MM / PIXEL_MM)
        noise /= max(np.abs(noise).max(), 1e-6)
        m2 = phi1 - rng.uniform(-0.04, 0.08) * gap * (1 + 0.5 * noise) <= 0
        if m2.sum() * PIXEL_MM ** 2 < MIN_AREA_MM2 or m2.all():
            continue
        phis[k, 0], phis[k, 1], gaps[k] = phi1, sdf.signed_distance(m2, (PIXEL_MM, PIXEL_MM)), gap
        k += 1
    return phis, gaps
