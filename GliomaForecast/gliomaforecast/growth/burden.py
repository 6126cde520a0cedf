"""Tumor-burden series of a case manifest: GTV volume (mL) per timepoint, or GTV area (mm^2) per slice.

Slices are taken along the first array axis (z, the acquisition's slice axis: axial for the usual
axial MRI), so a slice area is the voxel count times the in-plane spacing (y, x), in mm^2.
"""

from __future__ import annotations

import numpy as np

from .. import defaults
from ..io.case import Case
from .fit import GrowthFit, fit_growth


def burden_from_case(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """(days, GTV volumes in mL), one per timepoint of ``case``."""
    voxel_ml = case.grid.voxel_volume_ml
    volumes = np.array([case.gtv(tp).sum() * voxel_ml for tp in case.timepoints], dtype=float)
    return case.days, volumes


def slice_areas_from_case(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """(days, areas) with ``areas[i, z]`` the GTV area (mm^2) of slice z at timepoint i."""
    if case.grid.ndim != 3:
        raise ValueError("per-slice areas need a 3D case grid")
    pixel_mm2 = float(case.grid.spacing[1] * case.grid.spacing[2])
    areas = np.stack([case.gtv(tp).sum(axis=(1, 2)) * pixel_mm2 for tp in case.timepoints]).astype(float)
    return case.days, areas


def fit_case_slices(
    case: Case,
    rt_start_day: float | None = None,
    min_area_mm2: float = 0.0,
    *,
    n_bootstrap: int = defaults.N_BOOTSTRAP,
    noise: float = defaults.BOOTSTRAP_NOISE,
    seed: int = defaults.SEED,
) -> dict[int, GrowthFit]:
    """Fit the growth model to the GTV area of every tumor-bearing slice (the paper's per-slice
    variant): slices whose largest area over time exceeds ``min_area_mm2`` (mm^2). Returns
    {slice index z: GrowthFit}. ``rt_start_day`` defaults to the case's. Each slice uses the same seed."""
    days, areas = slice_areas_from_case(case)
    rt = case.rt_start_day if rt_start_day is None else rt_start_day
    bearing = np.flatnonzero(areas.max(axis=0) > max(min_area_mm2, 0.0))
    return {
        int(z): fit_growth(days, areas[:, z], rt, n_bootstrap, noise, seed, source=f"{case.path} (slice {int(z)})")
        for z in bearing
    }
