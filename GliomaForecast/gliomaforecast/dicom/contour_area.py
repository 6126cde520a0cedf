"""Areas and volumes of closed planar contours in patient mm (RTSTRUCT Contour Data), to check a rasterized GTV.

Units: points are (N, 3) LPS positions in mm (x, y, z; the first point not repeated), or (N, 2) positions in mm
within one plane; areas are mm^2, volumes mm^3 (1 mL = 1000 mm^3).

A structure's volume from its contours: the sum over the contour planes of the area the contours enclose on that
plane, times the spacing between contour planes (the median distance between neighbouring distinct planes along
their normal; for contours on a single plane, a given slice thickness). The area of a plane reads the contours as the
rasterizer does (:mod:`.contours`): one ROI's contours by the even-odd rule (a point is inside when it lies inside an
odd number of them: keyhole contours, nested hole contours and CLOSEDPLANAR_XOR sets alike), and the ROIs of a GTV
united. A plane with a single contour: the shoelace formula in the contour's plane (exact for a polygon that does not
cross itself, keyhole contours included). A plane with several contours: an exact scanline integration of the
even-odd union (:func:`region_area_mm2`).

The rasterized volume (voxel centres inside the contours) and the contours' volume agree within a few per cent for a
GTV of several voxels across whose contours lie on the image's slices. They part when the contours follow another
convention than voxel centres (a structure about one voxel wide), or when the contours' planes and the rasterized
slices differ (contours drawn on a series with thicker slices than the case grid fill one case slice per contour
plane): :data:`MAX_VOLUME_DIFFERENCE` flags those.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PLANE_TOL_MM = 0.01  # contours whose planes lie closer than this (mm, along the normal) share a plane
MAX_VOLUME_DIFFERENCE = 0.20  # |rasterized - contours| / contours above this is worth a warning


def vector_area(points: np.ndarray) -> np.ndarray:
    """The vector area (mm^2, x-y-z) of a closed polygon of (N, 3) points in mm: half the sum of the cross products
    of consecutive vertices. For a planar polygon, its length is the enclosed area and its direction the normal (by
    the right-hand rule of the vertex order)."""
    p = np.asarray(points, dtype=float).reshape(-1, 3)
    if len(p) < 3:
        return np.zeros(3)
    p = p - p.mean(axis=0)  # the same vector, with less rounding far from the origin
    return 0.5 * np.cross(p, np.roll(p, -1, axis=0)).sum(axis=0)


def plane_normal(contours: Sequence[np.ndarray]) -> np.ndarray | None:
    """The unit normal of the planes of ``contours`` ((N, 3) points in mm): the direction of their summed vector
    areas, each turned to agree with the largest (holes may wind the other way); None when no contour has an
    area."""
    areas = np.array([vector_area(c) for c in contours]).reshape(-1, 3)
    lengths = np.linalg.norm(areas, axis=1)
    if not lengths.size or not float(lengths.max()) > 0:
        return None
    reference = areas[int(np.argmax(lengths))]
    total = (areas * np.where(areas @ reference < 0, -1.0, 1.0)[:, None]).sum(axis=0)
    return total / float(np.linalg.norm(total))


def in_plane(points: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """(N, 2) coordinates (mm) of (N, 3) points (mm) on two orthonormal axes perpendicular to the unit ``normal``
    (a right-handed frame with the normal, so an anticlockwise polygon seen from the normal keeps its sense)."""
    n = np.asarray(normal, dtype=float)
    helper = np.eye(3)[int(np.argmin(np.abs(n)))]
    u = np.cross(n, helper)
    u /= np.linalg.norm(u)
    v = np.cross(n, u)
    p = np.asarray(points, dtype=float).reshape(-1, 3)
    return np.column_stack([p @ u, p @ v])


def shoelace_mm2(polygon: np.ndarray) -> float:
    """The signed area (mm^2, positive anticlockwise) of a closed polygon of (N, 2) points in mm (shoelace
    formula)."""
    p = np.asarray(polygon, dtype=float).reshape(-1, 2)
    if len(p) < 3:
        return 0.0
    p = p - p.mean(axis=0)
    q = np.roll(p, -1, axis=0)
    return 0.5 * float(np.sum(p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]))


def polygon_area_mm2(points: np.ndarray, normal: np.ndarray | None = None) -> float:
    """The area (mm^2) of a closed planar polygon of (N, 3) points in mm: the shoelace formula in its plane (the
    plane perpendicular to ``normal``, by default the polygon's own). A polygon that crosses itself gets its
    signed-area sum, not its even-odd area (:func:`region_area_mm2` gives that)."""
    if normal is None:
        return float(np.linalg.norm(vector_area(points)))
    return abs(shoelace_mm2(in_plane(points, normal)))


def _union_length(y: float, x0: np.ndarray, slope: np.ndarray, y0: np.ndarray, region: np.ndarray) -> float:
    """The length (mm) of the line at height ``y`` covered by the union of the regions' even-odd interiors, from the
    edges that cross it (x at ``y0`` and dx/dy) and the region of each edge."""
    xs = x0 + (y - y0) * slope
    starts, ends = [], []
    for r in np.unique(region):
        crossings = np.sort(xs[region == r])
        starts.append(crossings[0::2])
        ends.append(crossings[1::2])
    s, e = np.concatenate(starts), np.concatenate(ends)
    order = np.argsort(s, kind="stable")
    s, e = s[order], e[order]
    covered_before = np.concatenate([[-np.inf], np.maximum.accumulate(e)[:-1]])
    return float(np.sum(np.maximum(e - np.maximum(s, covered_before), 0.0)))


def region_area_mm2(regions: Sequence[Sequence[np.ndarray]]) -> float:
    """The area (mm^2) of the union of ``regions``, each the even-odd interior of its closed polygons ((N, 2) points
    in mm, all in one plane). Exact: the plane is cut into bands between the heights of the vertices and of the
    points where two edges cross, inside which every edge is straight and no two cross, so the covered length is
    linear in the height and its value at the band's middle times the band's height is the band's area."""
    pieces = []
    for r, polygons in enumerate(regions):
        for polygon in polygons:
            a = np.asarray(polygon, dtype=float).reshape(-1, 2)
            if len(a) >= 3:
                pieces.append((a, np.roll(a, -1, axis=0), r))
    if not pieces:
        return 0.0
    a = np.concatenate([p[0] for p in pieces])
    b = np.concatenate([p[1] for p in pieces])
    region = np.concatenate([np.full(len(p[0]), p[2]) for p in pieces])
    sloped = a[:, 1] != b[:, 1]  # edges along the x axis cross no line of constant height
    a, b, region = a[sloped], b[sloped], region[sloped]
    low, high = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    slope = (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    heights = np.unique(np.concatenate([low, high]))
    area = 0.0
    for bottom, top in zip(heights[:-1], heights[1:]):
        active = (low <= bottom) & (high >= top)
        if np.count_nonzero(active) < 2:
            continue
        x0, k, y0, reg = a[active, 0], slope[active], a[active, 1], region[active]
        at_bottom, at_top = x0 + (bottom - y0) * k, x0 + (top - y0) * k
        gap_bottom = at_bottom[:, None] - at_bottom[None, :]
        gap_top = at_top[:, None] - at_top[None, :]
        crossing = gap_bottom * gap_top < 0
        cuts = bottom + (top - bottom) * gap_bottom[crossing] / (gap_bottom[crossing] - gap_top[crossing])
        bands = np.unique(np.concatenate([[bottom, top], cuts]))
        for lo, hi in zip(bands[:-1], bands[1:]):
            area += _union_length(0.5 * (lo + hi), x0, k, y0, reg) * float(hi - lo)
    return area


def plane_spacing_mm(positions: Sequence[float], single_plane_thickness_mm: float) -> float:
    """The spacing (mm) of contour planes at ``positions`` (mm along their normal, distinct): the median distance
    between neighbours (a gap of missing planes does not count), or ``single_plane_thickness_mm`` for one plane."""
    p = np.sort(np.asarray(positions, dtype=float))
    if len(p) < 2:
        return float(single_plane_thickness_mm)
    return float(np.median(np.diff(p)))


def contour_planes(
    rois: Sequence[Sequence[np.ndarray]], plane_tol_mm: float = PLANE_TOL_MM
) -> tuple[np.ndarray | None, list[tuple[float, list[tuple[int, np.ndarray]]]]]:
    """The unit normal of the contours of ``rois`` (each a list of (N, 3) points in mm) and their planes in
    increasing position: (position in mm along the normal, [(index of the ROI, contour), ...]). Contours whose
    positions (the mean of their points along the normal) lie within ``plane_tol_mm`` of their neighbour's share a
    plane. Contours of fewer than 3 points are left out; (None, []) when no contour has an area."""
    contours = [
        (r, np.asarray(c, dtype=float).reshape(-1, 3)) for r, roi in enumerate(rois) for c in roi if len(c) >= 3
    ]
    normal = plane_normal([c for _, c in contours])
    if normal is None:
        return None, []
    positions = np.array([float(np.mean(c @ normal)) for _, c in contours])
    order = np.argsort(positions, kind="stable")
    planes: list[tuple[float, list[tuple[int, np.ndarray]]]] = []
    members: list[int] = []
    for i in order:
        if members and positions[i] - positions[members[-1]] > plane_tol_mm:
            planes.append((float(np.mean(positions[members])), [contours[j] for j in members]))
            members = []
        members.append(int(i))
    planes.append((float(np.mean(positions[members])), [contours[j] for j in members]))
    return normal, planes


def plane_area_mm2(contours: Sequence[tuple[int, np.ndarray]], normal: np.ndarray) -> float:
    """The area (mm^2) that ``contours`` ((index of the ROI, (N, 3) points in mm), all on one plane perpendicular to
    the unit ``normal``) enclose: each ROI's contours by the even-odd rule, the ROIs united."""
    if len(contours) == 1:
        return polygon_area_mm2(contours[0][1], normal)
    by_roi: dict[int, list[np.ndarray]] = {}
    for r, points in contours:
        by_roi.setdefault(r, []).append(in_plane(points, normal))
    return region_area_mm2(list(by_roi.values()))


def contour_volume_mm3(
    rois: Sequence[Sequence[np.ndarray]], single_plane_thickness_mm: float, plane_tol_mm: float = PLANE_TOL_MM
) -> float:
    """The volume (mm^3) the closed planar contours of ``rois`` enclose (each ROI a list of (N, 3) points in mm; the
    ROIs united, each ROI's contours of a plane read by the even-odd rule): the sum over the contour planes of their
    area (:func:`plane_area_mm2`) times the spacing of the planes (:func:`plane_spacing_mm`;
    ``single_plane_thickness_mm`` when all lie on one plane). 0 when no contour has an area."""
    normal, planes = contour_planes(rois, plane_tol_mm)
    if normal is None:
        return 0.0
    spacing = plane_spacing_mm([position for position, _ in planes], single_plane_thickness_mm)
    return spacing * sum(plane_area_mm2(members, normal) for _, members in planes)


def volume_difference(rasterized: float, contours: float) -> float | None:
    """(``rasterized`` - ``contours``) / ``contours``: the rasterized volume's relative difference from the contours'
    volume (same units); None when the contours enclose no volume."""
    if not contours > 0:
        return None
    return (float(rasterized) - float(contours)) / float(contours)
