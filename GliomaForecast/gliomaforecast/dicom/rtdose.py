"""Read a DICOM RT Dose (pydicom) as a dose grid in Gy and resample it onto an image grid.

The dose in Gy is the stored value times DoseGridScaling (DoseUnits must be GY; a RELATIVE dose is refused). Frames
lie at Grid Frame Offset Vector (mm) along the slice normal from Image Position (Patient): offsets that start at 0
are relative; offsets that start elsewhere are absolute z positions, which the standard allows for axial frames only.
A DoseGridScaling that makes a dose non-finite in float32 (1e38 gives inf) or above ``MAX_DOSE_GY`` is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from ..errors import InputError
from ..geometry import Grid, resample_to
from .geometry import orientation, pixel_spacing, position, stack_tolerance

MAX_DOSE_GY = 10000.0  # Gy: no treatment delivers more; a larger dose is a wrong DoseGridScaling


def _offsets(ds: Dataset, path: Path, n_frames: int, cosines: np.ndarray, ipp: np.ndarray) -> np.ndarray:
    try:
        offsets = np.asarray([float(v) for v in ds.GridFrameOffsetVector], dtype=float)
    except (AttributeError, TypeError, ValueError):
        if n_frames == 1:
            return np.zeros(1)
        raise InputError(path, "GridFrameOffsetVector", "missing or not numbers") from None
    if offsets.size != n_frames:
        raise InputError(path, "GridFrameOffsetVector", f"{offsets.size} offsets for {n_frames} frames")
    if offsets[0] != 0:
        if not np.allclose(cosines.ravel(), [1, 0, 0, 0, 1, 0], atol=1e-4):
            raise InputError(
                path, "GridFrameOffsetVector", "absolute offsets (first offset not 0) are defined for axial frames only"
            )
        offsets = offsets - ipp[2]
    return offsets


def read_dose(ds: Dataset, path: Path) -> tuple[np.ndarray, Grid]:
    """The dose (Gy, float32, z-y-x) of an RTDOSE file and its grid. ``ds`` is its header; pixels are read here."""
    units = str(getattr(ds, "DoseUnits", "")).upper()
    if units != "GY":
        raise InputError(path, "DoseUnits", f"'{units}' dose is not supported; an absolute dose in GY is needed")
    try:
        scaling = float(ds.DoseGridScaling)
    except (AttributeError, TypeError, ValueError):
        raise InputError(path, "DoseGridScaling", "missing or not a number") from None
    if not scaling > 0 or not np.isfinite(scaling):
        raise InputError(path, "DoseGridScaling", f"must be positive, got {scaling}")
    try:
        pixels = pydicom.dcmread(path).pixel_array
    except Exception as exc:  # pydicom's pixel handlers raise several types on bad data
        raise InputError(path, "PixelData", f"cannot be decoded ({type(exc).__name__}: {exc})") from None
    frames = pixels.reshape((-1, *pixels.shape[-2:]))
    cosines = orientation(ds, path)
    ipp = position(ds, path)
    offsets = _offsets(ds, path, frames.shape[0], cosines, ipp)
    order = np.argsort(offsets, kind="stable")
    offsets = offsets[order]
    if frames.shape[0] > 1:
        steps = np.diff(offsets)
        dz = float(np.mean(steps))
        if dz <= 0 or np.max(np.abs(steps - dz)) > stack_tolerance(dz):
            raise InputError(path, "GridFrameOffsetVector", "frames are not uniformly spaced")
    else:
        dz = float(getattr(ds, "SliceThickness", 0) or 0) or 1.0
    normal = np.cross(cosines[0], cosines[1])
    origin = ipp + offsets[0] * normal
    direction = np.column_stack([cosines[0], cosines[1], normal])
    row, col = pixel_spacing(ds, path)
    grid = Grid(frames[order].shape, (dz, row, col), tuple(origin), tuple(direction.ravel()))
    dose64 = frames[order].astype(np.float64) * scaling
    if dose64.size and dose64.min() < 0:
        raise InputError(path, "PixelData", f"negative dose ({float(dose64.min()):.3g} Gy)")
    if dose64.size and not float(dose64.max()) <= MAX_DOSE_GY:
        raise InputError(
            path,
            "DoseGridScaling",
            f"{scaling:g} gives a maximum dose of {float(dose64.max()):.3g} Gy, above {MAX_DOSE_GY:g} Gy: "
            "a wrong scaling",
        )
    return dose64.astype(np.float32), grid


def dose_on_grid(dose: np.ndarray, dose_grid: Grid, grid: Grid) -> np.ndarray:
    """The dose (Gy) on ``grid``: copied when the grids agree, else linear interpolation (0 Gy outside the dose
    grid)."""
    if dose_grid.same_as(grid):
        return np.asarray(dose, dtype=np.float32)
    return resample_to(dose, dose_grid, grid, default_value=0.0)
