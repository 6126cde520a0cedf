"""Treatment of a virtual patient: resection of the enhancing core, a 60 Gy / 30 fraction dose map with a
Gaussian penumbra, linear-quadratic cell survival per fraction and its hypoxic radioresistance (the CTV
itself is ``gliomaforecast.targets.ctv.standard_ctv``).

Distances in mm from ``spacing`` (array order z, y, x); dose in Gy; time in days.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage


def dose_map(ctv: np.ndarray, spacing: Sequence[float], prescription_gy: float = 60.0, ptv_margin_mm: float = 5.0,
             penumbra_sigma_mm: float = 3.0, edge_level: float = 0.95) -> np.ndarray:
    """A conformal dose distribution (Gy, float32): the PTV (CTV + ``ptv_margin_mm``) blurred by a
    Gaussian penumbra of sd ``penumbra_sigma_mm``, scaled so that the blurred level ``edge_level``
    (reached at a flat CTV edge with the defaults) gets the prescription, capped at the prescription."""
    ptv = ndimage.distance_transform_edt(~np.asarray(ctv, dtype=bool), sampling=spacing) <= ptv_margin_mm
    sigma = [penumbra_sigma_mm / float(h) for h in spacing]
    field = ndimage.gaussian_filter(ptv.astype(np.float32), sigma, mode="constant")
    return (prescription_gy * np.minimum(field / edge_level, 1.0)).astype(np.float32)


def fraction_days(start_day: float, n_fractions: int = 30) -> np.ndarray:
    """Days (float) of ``n_fractions`` daily fractions given Monday to Friday from ``start_day`` (a Monday)."""
    i = np.arange(n_fractions)
    return float(start_day) + 7 * (i // 5) + i % 5


def surviving_fraction(dose_per_fraction: np.ndarray, alpha: float, alpha_beta: float = 10.0) -> np.ndarray:
    """Linear-quadratic survival of one fraction: exp(-alpha d - beta d^2) with beta = alpha / alpha_beta
    (alpha in 1/Gy, d in Gy). Returns float32 in (0, 1]."""
    d = np.asarray(dose_per_fraction, dtype=np.float64)
    return np.exp(-alpha * d - (alpha / alpha_beta) * d * d).astype(np.float32)


def oxygen_enhancement_ratio(density: np.ndarray, oer_max: float, onset: float = 0.8) -> np.ndarray:
    """Dose-modifying factor (>= 1, float32) of hypoxic radioresistance: 1 (oxic) where the tumor-cell
    density (fraction of capacity) is below ``onset``, rising linearly to ``oer_max`` at full density,
    where the dense, poorly perfused core is hypoxic. The LQ survival of a fraction of d Gy is then that
    of d / OER Gy (alpha and beta divided by OER and OER^2)."""
    h = np.clip((np.asarray(density, dtype=np.float32) - onset) / (1.0 - onset), 0.0, 1.0)
    return (1.0 + (float(oer_max) - 1.0) * h).astype(np.float32)


def resection_cavity(density: np.ndarray, threshold: float, brain_mask: np.ndarray) -> np.ndarray:
    """The resected volume: the holes-filled region of density >= ``threshold`` (the enhancing core and
    its necrosis), inside the brain."""
    core = ndimage.binary_fill_holes(np.asarray(density) >= threshold)
    return core & np.asarray(brain_mask, dtype=bool)
