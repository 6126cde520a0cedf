"""The voxel grid of a DICOM image series, from its headers (Image Position/Orientation (Patient), Pixel Spacing).

DICOM patient coordinates are LPS in mm, as :class:`~gliomaforecast.geometry.Grid`'s. The first row cosine of Image
Orientation (Patient) is the direction of increasing column index (array axis x), the second that of increasing row
index (y); slices are sorted along their normal (row x column cosine), so the slice axis (z) is right-handed. The grid's
origin is the centre of the first pixel of the first slice; the slice spacing (mm) is the mean distance between
consecutive slices, which must be uniform.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from ..errors import InputError
from ..geometry import Grid

ORIENTATION_TOL = 1e-4  # direction cosines (unitless)
SPACING_TOL_MM = 1e-3  # pixel spacings that agree; slice positions that coincide


def stack_tolerance(dz: float) -> float:
    """How far (mm) slice positions may stray from a uniform stack of spacing ``dz`` (mm): 1 % of a slice, at least
    0.01 mm (scanners round positions to a few decimals)."""
    return max(0.01, 0.01 * dz)


def orientation(ds: Dataset, path: Path) -> np.ndarray:
    """(row cosine, column cosine) of ``ds`` as a 2 x 3 array of unit vectors (LPS)."""
    try:
        iop = np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=float)
    except (AttributeError, TypeError, ValueError):
        raise InputError(path, "ImageOrientationPatient", "missing or not 6 numbers") from None
    if iop.size != 6 or not np.all(np.isfinite(iop)):
        raise InputError(path, "ImageOrientationPatient", f"expected 6 finite numbers, got {iop.size}")
    cosines = iop.reshape(2, 3)
    norms = np.linalg.norm(cosines, axis=1)
    if np.any(np.abs(norms - 1) > 1e-3) or abs(float(cosines[0] @ cosines[1])) > 1e-3:
        raise InputError(path, "ImageOrientationPatient", "row and column cosines are not orthonormal")
    return cosines / norms[:, None]


def position(ds: Dataset, path: Path, field: str = "ImagePositionPatient") -> np.ndarray:
    """Image Position (Patient) of ``ds``: the centre of its first pixel (mm, LPS)."""
    try:
        ipp = np.asarray([float(v) for v in getattr(ds, field)], dtype=float)
    except (AttributeError, TypeError, ValueError):
        raise InputError(path, field, "missing or not 3 numbers") from None
    if ipp.size != 3 or not np.all(np.isfinite(ipp)):
        raise InputError(path, field, "expected 3 finite numbers")
    return ipp


def pixel_spacing(ds: Dataset, path: Path) -> tuple[float, float]:
    """Pixel Spacing (row spacing, column spacing) in mm: the spacing along y, then x."""
    try:
        row, col = (float(v) for v in ds.PixelSpacing)
    except (AttributeError, TypeError, ValueError):
        raise InputError(path, "PixelSpacing", "missing or not 2 numbers") from None
    if not (row > 0 and col > 0 and np.isfinite(row) and np.isfinite(col)):
        raise InputError(path, "PixelSpacing", f"must be positive, got {row}, {col}")
    return row, col


def slice_order(headers: Sequence[Dataset], paths: Sequence[Path]) -> tuple[list[int], Grid]:
    """The slice order (indices into ``headers``, increasing along the slice normal) and the grid of a series of
    single-frame images. Every slice must share orientation, size and pixel spacing; positions must be distinct,
    on one line along the normal, and uniformly spaced. Errors name the first offending file and the field."""
    if not headers:
        raise ValueError("a series needs at least one image")
    cosines = orientation(headers[0], paths[0])
    normal = np.cross(cosines[0], cosines[1])
    spacing_yx = pixel_spacing(headers[0], paths[0])
    rows, cols = int(headers[0].Rows), int(headers[0].Columns)
    found = []
    for ds, path in zip(headers, paths):
        if np.max(np.abs(orientation(ds, path) - cosines)) > ORIENTATION_TOL:
            raise InputError(path, "ImageOrientationPatient", f"differs from that of {paths[0].name} in the series")
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise InputError(path, "Rows", f"{ds.Rows}x{ds.Columns} differs from {rows}x{cols} of {paths[0].name}")
        if np.max(np.abs(np.subtract(pixel_spacing(ds, path), spacing_yx))) > SPACING_TOL_MM:
            raise InputError(path, "PixelSpacing", f"differs from that of {paths[0].name} in the series")
        found.append(position(ds, path))
    positions = np.asarray(found)
    along = positions @ normal
    order = [int(i) for i in np.argsort(along, kind="stable")]
    along = along[order]
    if len(order) > 1:
        steps = np.diff(along)
        if np.min(steps) < SPACING_TOL_MM:
            k = int(np.argmin(steps))
            raise InputError(
                paths[order[k + 1]],
                "ImagePositionPatient",
                f"same slice position as {paths[order[k]].name}: two images of one slice",
            )
        dz = float(np.mean(steps))
        if np.max(np.abs(steps - dz)) > stack_tolerance(dz):
            k = int(np.argmax(np.abs(steps - dz)))
            raise InputError(
                paths[order[k + 1]],
                "ImagePositionPatient",
                f"slice spacing is not uniform ({steps[k]:.4g} mm here, mean {dz:.4g} mm): a slice is "
                "missing or the series mixes stacks",
            )
        offsets = positions[order] - positions[order[0]]
        off_line = np.linalg.norm(offsets - np.outer(offsets @ normal, normal), axis=1)
        if np.max(off_line) > stack_tolerance(dz):
            k = int(np.argmax(off_line))
            raise InputError(
                paths[order[k]],
                "ImagePositionPatient",
                "slices are not stacked along their normal (a gantry tilt or mixed stacks)",
            )
    else:
        dz = _slice_thickness(headers[0])
    direction = np.column_stack([cosines[0], cosines[1], normal])
    grid = Grid(
        (len(order), rows, cols),
        (dz, spacing_yx[0], spacing_yx[1]),
        tuple(positions[order[0]]),
        tuple(direction.ravel()),
    )
    return order, grid


def _slice_thickness(ds: Dataset) -> float:
    """A single slice's thickness (mm) as its spacing; 1 mm when not given."""
    value: Any = getattr(ds, "SpacingBetweenSlices", None) or getattr(ds, "SliceThickness", None)
    try:
        thickness = float(value)
    except (TypeError, ValueError):
        return 1.0
    return thickness if thickness > 0 else 1.0


def physical_to_index(grid: Grid, points_xyz: np.ndarray) -> np.ndarray:
    """Continuous array indices (z, y, x) of physical LPS points (mm, x-y-z order) given as (..., 3)."""
    local = (np.asarray(points_xyz, dtype=float) - np.asarray(grid.origin)) @ grid.direction_matrix
    return (local / np.asarray(grid.spacing[::-1]))[..., ::-1]
