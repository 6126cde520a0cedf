"""Masks <-> planar contours in patient mm (the geometry of an RTSTRUCT ROI), on a :class:`Grid`'s slices.

Contours of a mask are traced on each slice by marching squares (scikit-image ``find_contours`` at level 0.5 on
the slice padded with background): each closed polygon separates voxel centres inside from those outside, so the
polygon's interior holds exactly the mask's voxel centres of that slice. Holes become separate contours nested
inside their outer contour, and contours never cross (the RTSTRUCT convention for inner and outer contours, DICOM
PS3.3 C.8.8.6.3). The first point is not repeated (CLOSED_PLANAR).

Rasterizing reads the contours of one slice with the even-odd rule (a voxel centre is inside when it lies inside an
odd number of the slice's contours; a scanline fill, linear in the number of vertices): nested contours become holes, and keyhole contours and CLOSEDPLANAR_XOR sets
read the same way.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from skimage import measure

from .dicom_geometry import physical_to_index
from .geometry import Grid

PLANE_TOL_VOXELS = 1e-3  # how far (in slices) a contour may lie from a slice's plane


class OffGridContour(ValueError):
    """A contour that does not lie on a slice of the grid (``index`` of the contour in the given list)."""

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        super().__init__(message)


def _without_collinear(polygon: np.ndarray) -> np.ndarray:
    """A closed polygon without the vertices that lie on the straight line through their neighbours (marching squares
    puts one on every pixel edge of a straight run; their coordinates are multiples of 0.5, so the test is exact)."""
    before, after = polygon - np.roll(polygon, 1, axis=0), np.roll(polygon, -1, axis=0) - polygon
    turn = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
    return polygon[turn != 0]


def slice_contours(mask2d: np.ndarray) -> list[np.ndarray]:
    """Closed polygons (rows of (y, x) continuous indices, first point not repeated) whose even-odd interior is the
    set of True pixel centres of a 2D mask."""
    padded = np.pad(np.asarray(mask2d, dtype=np.uint8), 1)
    out = []
    for contour in measure.find_contours(padded, 0.5, fully_connected="low"):
        polygon = contour[:-1] - 1.0 if np.array_equal(contour[0], contour[-1]) else contour - 1.0
        polygon = _without_collinear(polygon)
        if len(polygon) >= 3:
            out.append(polygon)
    return out


def fill_even_odd(polygons: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """The pixels of a 2D grid of ``shape`` whose centres lie inside an odd number of the closed ``polygons`` (rows of
    (y, x) continuous indices): a scanline fill, one row at a time, linear in the number of edges. A centre exactly on
    a left edge counts as outside, on a right edge as inside; a row through a vertex counts the edges that start or
    end there once (half-open edges)."""
    edges = [(p, np.roll(p, -1, axis=0)) for p in polygons if len(p) >= 3]
    mask = np.zeros(shape, dtype=bool)
    if not edges:
        return mask
    start = np.concatenate([a for a, _ in edges])
    end = np.concatenate([b for _, b in edges])
    y0, y1 = np.minimum(start[:, 0], end[:, 0]), np.maximum(start[:, 0], end[:, 0])
    columns = np.arange(shape[1])
    for row in range(max(0, int(np.ceil(y0.min()))), min(shape[0], int(np.floor(y1.max())) + 1)):
        crossing = (y0 <= row) & (row < y1)
        if not crossing.any():
            continue
        a, b = start[crossing], end[crossing]
        xs = np.sort(a[:, 1] + (row - a[:, 0]) * (b[:, 1] - a[:, 1]) / (b[:, 0] - a[:, 0]))
        mask[row] = np.searchsorted(xs, columns, side="left") % 2 == 1
    return mask


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
    by_slice: dict[int, list[np.ndarray]] = {}
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
        by_slice.setdefault(k, []).append(index[:, 1:])
    for k, polygons in by_slice.items():
        mask[k] = fill_even_odd(polygons, grid.shape[1:])
    return mask
