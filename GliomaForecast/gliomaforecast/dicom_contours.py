"""Masks <-> planar contours in patient mm (the geometry of an RTSTRUCT ROI), on a :class:`Grid`'s slices.

Contours of a mask are traced on each slice by marching squares (scikit-image ``find_contours`` at level 0.5 on
the slice padded with background): each closed polygon separates voxel centres inside from those outside, so the
polygon's interior holds exactly the mask's voxel centres of that slice. Holes become separate contours nested
inside their outer contour, and contours never cross (the RTSTRUCT convention for inner and outer contours, DICOM
PS3.3 C.8.8.6.3). The first point is not repeated (CLOSED_PLANAR).

Rasterizing reads the contours of one slice with the even-odd rule (a voxel centre is inside when it lies inside an
odd number of the slice's contours): nested contours become holes, and keyhole contours and CLOSEDPLANAR_XOR sets
read the same way.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from skimage import draw, measure

from .dicom_geometry import physical_to_index
from .geometry import Grid

PLANE_TOL_VOXELS = 1e-3  # how far (in slices) a contour may lie from a slice's plane


class OffGridContour(ValueError):
    """A contour that does not lie on a slice of the grid (``index`` of the contour in the given list)."""

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        super().__init__(message)


def slice_contours(mask2d: np.ndarray) -> list[np.ndarray]:
    """Closed polygons (rows of (y, x) continuous indices, first point not repeated) whose even-odd interior is the
    set of True pixel centres of a 2D mask."""
    padded = np.pad(np.asarray(mask2d, dtype=np.uint8), 1)
    out = []
    for contour in measure.find_contours(padded, 0.5, fully_connected="low"):
        polygon = measure.approximate_polygon(contour - 1.0, tolerance=0)
        if len(polygon) > 1 and np.array_equal(polygon[0], polygon[-1]):
            polygon = polygon[:-1]
        if len(polygon) >= 3:
            out.append(polygon)
    return out


def mask_contours(mask: np.ndarray, grid: Grid) -> dict[int, list[np.ndarray]]:
    """{slice index k: contours as (N, 3) arrays of physical LPS points (mm, x-y-z)} of a 3D bool mask on
    ``grid``, for every slice the mask touches."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != grid.shape:
        raise ValueError(f"mask shape {mask.shape} differs from the grid {grid.shape}")
    out: dict[int, list[np.ndarray]] = {}
    for k in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        polygons = slice_contours(mask[k])
        out[int(k)] = [grid.index_to_physical(np.column_stack([np.full(len(p), k, float), p])) for p in polygons]
    return out


def rasterize(contours: Sequence[np.ndarray], grid: Grid) -> np.ndarray:
    """The bool mask on ``grid`` of closed planar contours given as (N, 3) physical LPS points (mm), even-odd rule
    per slice. A contour off the grid's slice planes, or outside its slice range, raises :class:`OffGridContour`."""
    mask = np.zeros(grid.shape, dtype=bool)
    for i, points in enumerate(contours):
        points = np.asarray(points, dtype=float).reshape(-1, 3)
        if len(points) < 3:
            continue
        index = physical_to_index(grid, points)
        k = int(np.round(np.mean(index[:, 0])))
        if np.max(np.abs(index[:, 0] - k)) > PLANE_TOL_VOXELS:
            raise OffGridContour(i, "does not lie on a slice plane of the grid")
        if not 0 <= k < grid.shape[0]:
            raise OffGridContour(i, f"lies on slice {k}, outside the grid's {grid.shape[0]} slices")
        rr, cc = draw.polygon(index[:, 1], index[:, 2], shape=grid.shape[1:])
        mask[k, rr, cc] ^= True
    return mask
