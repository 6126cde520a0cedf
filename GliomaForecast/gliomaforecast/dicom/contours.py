"""Masks <-> planar contours in patient mm (the geometry of an RTSTRUCT ROI), on a :class:`Grid`'s slices.

Contours of a mask are traced on each slice by marching squares (scikit-image ``find_contours`` at level 0.5 on
the slice padded with background): each closed polygon separates voxel centres inside from those outside, so the
polygons' interior holds exactly the mask's voxel centres of that slice, and contours never cross. A hole is then
joined to its outer contour by a zero-width channel: the "keyhole" technique of DICOM PS3.3 C.8.8.6.3, one
CLOSED_PLANAR contour per outer boundary, which planning systems read right whether they fill contours by the
even-odd rule or take their union. The first point is not repeated (CLOSED_PLANAR).

Rasterizing reads the contours of one slice with the even-odd rule (a voxel centre is inside when it lies inside an
odd number of the slice's contours; a scanline fill, linear in the number of vertices): keyhole contours, nested
CLOSED_PLANAR contours (the convention many planning systems write) and CLOSEDPLANAR_XOR sets all read the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage import measure

from ..geometry import Grid
from .geometry import physical_to_index

PLANE_TOL_VOXELS = 1e-3  # how far (in slices) a contour may lie from a slice's plane
MIN_OUTSIDE_TOL_MM = 100.0  # a vertex may lie outside the grid by its largest extent, and at least this (mm)


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


def _inside(point: np.ndarray, polygon: np.ndarray) -> bool:
    """Whether ``point`` (y, x) lies inside the closed ``polygon`` (crossings of the ray towards -x, half-open)."""
    a, b = polygon, np.roll(polygon, -1, axis=0)
    y, x = point
    spans = (np.minimum(a[:, 0], b[:, 0]) <= y) & (y < np.maximum(a[:, 0], b[:, 0]))
    a, b = a[spans], b[spans]
    xs = a[:, 1] + (y - a[:, 0]) * (b[:, 1] - a[:, 1]) / (b[:, 0] - a[:, 0])
    return bool(np.count_nonzero(xs < x) % 2)


def _hits_left(y: float, x: float, polygon: np.ndarray) -> np.ndarray:
    """For each edge of ``polygon``, where the ray from (y, x) towards -x meets it (its x), or -inf when it does not
    (a horizontal edge on the ray is met at its right end)."""
    a, b = polygon, np.roll(polygon, -1, axis=0)
    low, high = np.minimum(a[:, 0], b[:, 0]), np.maximum(a[:, 0], b[:, 0])
    hits = np.full(len(polygon), -np.inf)
    sloped = (low <= y) & (y <= high) & (low < high)
    hits[sloped] = a[sloped, 1] + (y - a[sloped, 0]) * (b[sloped, 1] - a[sloped, 1]) / (b[sloped, 0] - a[sloped, 0])
    flat = (low == y) & (high == y)
    hits[flat] = np.maximum(a[flat, 1], b[flat, 1])
    hits[hits >= x] = -np.inf
    return hits


def _channel_start(outer: np.ndarray, hole: np.ndarray, others: Sequence[np.ndarray]) -> int:
    """The vertex of ``hole`` the channel leaves from: the leftmost one, among those between pixel rows (y = k + 0.5,
    so the channel passes no pixel centre and every reader fills it alike), whose ray towards -x meets ``outer``
    before the hole itself or the ``others`` still to join; else the hole's leftmost vertex."""
    between_rows = np.flatnonzero(hole[:, 0] % 1 == 0.5)
    for k in between_rows[np.argsort(hole[between_rows, 1], kind="stable")]:
        y, x = hole[k]
        own = _hits_left(y, x, hole)
        own[[k - 1, k]] = -np.inf  # the two edges that start and end at the vertex itself
        blocked = max([float(own.max())] + [float(_hits_left(y, x, o).max()) for o in others])
        if float(_hits_left(y, x, outer).max()) > blocked:
            return int(k)
    return int(np.argmin(hole[:, 1]))


def _bridge(outer: np.ndarray, hole: np.ndarray, others: Sequence[np.ndarray]) -> np.ndarray:
    """``outer`` with ``hole`` joined to it by a zero-width channel from a hole vertex straight towards -x to the
    nearest point of ``outer`` (which then holds the holes joined before it, those further left)."""
    k = _channel_start(outer, hole, others)
    y, x = hole[k]
    hits = _hits_left(y, x, outer)
    i = int(np.argmax(hits))
    q = np.array([y, hits[i]])
    b = np.roll(outer, -1, axis=0)
    if np.allclose(q, b[i], atol=1e-9):  # the nearest point is the edge's end: use that vertex
        i = (i + 1) % len(outer)
    rotated = np.roll(outer, -(i + 1), axis=0)  # the edge from rotated[-1] holds q
    at_vertex = np.allclose(q, rotated[-1], atol=1e-9)
    anchor = rotated[-1:] if at_vertex else q[None]
    inner = np.roll(hole, -k, axis=0)
    return np.concatenate([rotated, *([] if at_vertex else [anchor]), inner, inner[:1], anchor])


def keyhole(polygons: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The same even-odd region as ``polygons`` (closed, never crossing: marching-squares contours of one slice) as one
    polygon per outer boundary, each hole joined to its outer boundary by a zero-width channel between two pixel rows.
    Holes are joined leftmost first, and a channel never crosses the hole itself or a hole still to join, so it only
    meets the outer boundary or a hole already joined to it."""
    n = len(polygons)
    boxes = [(p.min(axis=0), p.max(axis=0)) for p in polygons]

    def contains(j: int, i: int) -> bool:
        point = polygons[i][0]
        return bool(np.all(boxes[j][0] <= point) and np.all(point <= boxes[j][1]) and _inside(point, polygons[j]))

    parents = {i: [j for j in range(n) if j != i and contains(j, i)] for i in range(n)}
    depth = {i: len(parents[i]) for i in range(n)}
    holes: dict[int, list[int]] = {i: [] for i in range(n) if depth[i] % 2 == 0}
    for i in range(n):
        if depth[i] % 2:
            holes[next(j for j in parents[i] if depth[j] == depth[i] - 1)].append(i)
    out = []
    for i, own in holes.items():
        merged = polygons[i]
        order = sorted(own, key=lambda h: float(polygons[h][:, 1].min()))
        for n_joined, h in enumerate(order):
            merged = _bridge(merged, polygons[h], [polygons[o] for o in order[n_joined + 1 :]])
        out.append(merged)
    return out


def fill_even_odd(polygons: Sequence[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
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
        polygons = keyhole(slice_contours(mask[k]))
        out[int(k)] = [grid.index_to_physical(np.column_stack([np.full(len(p), k, float), p])) for p in polygons]
    return out


def far_vertex(contours: Sequence[np.ndarray], grid: Grid) -> str | None:
    """None when every vertex of ``contours`` ((N, 3) physical LPS points, mm) lies within ``grid``'s box widened by
    its largest extent (at least ``MIN_OUTSIDE_TOL_MM``) on every side; else a description of the first that does
    not (a vertex at 1e30 mm would stretch a polygon edge across the slice and inflate the mask)."""
    shape, spacing = np.asarray(grid.shape, dtype=float), np.asarray(grid.spacing, dtype=float)
    tol = max(float(np.max(shape * spacing)), MIN_OUTSIDE_TOL_MM)
    for i, points in enumerate(contours):
        index = physical_to_index(grid, np.asarray(points, dtype=float).reshape(-1, 3))
        outside = np.maximum(np.maximum(-0.5 - index, index - (shape - 0.5)), 0.0) * spacing
        distance = np.linalg.norm(outside, axis=1)
        if distance.size and not float(distance.max()) <= tol:
            j = int(np.argmax(distance))
            return (
                f"contour {i} vertex {j} lies {float(distance[j]):.3g} mm outside the case grid "
                f"(more than {tol:g} mm): not a point of this image"
            )
    return None


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
