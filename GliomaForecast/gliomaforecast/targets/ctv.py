"""Clinical target volumes: the standard margin CTV (Euclidean or geodesic, in mm) and the
iso-volumetric CTV drawn from any score map (PREDICT-GBM, "Radiation plans").

All functions are pure: they take arrays in (z, y, x) order with ``spacing`` in mm in the same order,
never modify their inputs, and return a new bool array on the input grid. Bad arguments raise
``ValueError`` with a one-line message (the CLI turns it into an ``InputError`` naming the file).

Documented behaviour for edge cases
-----------------------------------
* An empty GTV, a GTV entirely outside the brain mask, a negative or non-finite margin, arrays of
  different shapes: ``ValueError``.
* A GTV partly outside the brain mask: the GTV is always kept whole; the margin is clipped to the mask.
* ``isovolumetric_ctv`` with ``n_voxels`` larger than the candidate region returns every candidate
  (fewer than ``n_voxels`` voxels); ``n_voxels`` smaller than the GTV is a ``ValueError``.
* An all-NaN score with a GTV yields the distance fill around the GTV (a margin of the right volume);
  without a GTV (nothing scores above zero and there is nothing to grow from) it is a ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import skfmm
from scipy import ndimage

from .. import defaults, sdf
from ..checks import check_mask, check_spacing

DEFAULT_MARGIN_MM = defaults.MARGIN_MM  # mm
# Distances are compared with margin + tolerance (mm), so that floating-point rounding of a distance
# that equals the margin exactly (e.g. 9-12-0 mm -> 15 mm) never drops a voxel.
_TOLERANCE_MM = 1e-6
# Level of the GTV voxels in the level-set function handed to fast marching: the zero contour then
# lies within 1e-6 of a voxel spacing of the GTV voxel centres, as voxel-centre distances require.
_FMM_INSIDE = -1e-6


# --- argument checks ------------------------------------------------------------------------------


def _mask(array: np.ndarray | None, shape: tuple[int, ...] | None, name: str) -> np.ndarray | None:
    """:func:`checks.check_mask`, with None staying None."""
    return None if array is None else check_mask(array, name, shape)


def _check_gtv(gtv: np.ndarray, brain: np.ndarray | None) -> None:
    if not gtv.any():
        raise ValueError("GTV is empty: there is no tumor to draw a target around")
    if brain is not None and not np.any(gtv & brain):
        raise ValueError("GTV lies entirely outside the brain mask (check that both share one grid)")


# --- standard (margin) CTV ------------------------------------------------------------------------


def standard_ctv(
    gtv: np.ndarray,
    spacing: Sequence[float],
    margin_mm: float = DEFAULT_MARGIN_MM,
    brain_mask: np.ndarray | None = None,
    barrier: np.ndarray | None = None,
) -> np.ndarray:
    """The margin CTV: every voxel whose centre lies within ``margin_mm`` (mm) of a GTV voxel centre.

    Without ``barrier`` the distance is Euclidean on the grid's (possibly anisotropic) ``spacing``,
    exact (scipy's EDT in float64). With a ``barrier`` mask (ventricles, falx, tentorium, bone) the
    distance is geodesic: the shortest path that does not cross a barrier voxel, by second-order fast
    marching (scikit-fmm); barrier voxels themselves are never in the CTV unless they are GTV, and
    when a brain mask is given, the outside of the brain is a barrier too. The result is clipped to
    ``brain_mask``; the GTV is always included whole. Returns a bool array on the GTV's grid.

    Only the GTV's bounding box grown by the margin is computed: any voxel outside it is more than
    ``margin_mm`` away (geodesic distances are never shorter than Euclidean ones).
    """
    gtv = check_mask(gtv, "gtv")
    spacing = check_spacing(spacing, gtv.ndim)
    margin = float(margin_mm)
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a finite distance >= 0 mm, got {margin_mm}")
    brain = _mask(brain_mask, gtv.shape, "brain mask")
    wall = _mask(barrier, gtv.shape, "barrier")
    _check_gtv(gtv, brain)

    box = _grown_box(gtv, spacing, margin)
    sub = gtv[box]
    if wall is None:
        within = _euclidean_distance(sub, spacing) <= margin + _TOLERANCE_MM
    else:
        obstacles = wall[box] if brain is None else wall[box] | ~brain[box]
        within = _geodesic_distance(sub, spacing, obstacles & ~sub, margin) <= margin + _TOLERANCE_MM
    out = np.zeros(gtv.shape, dtype=bool)
    out[box] = within
    if brain is not None:
        out &= brain
    out |= gtv
    return out


def _grown_box(mask: np.ndarray, spacing: tuple[float, ...], margin_mm: float) -> tuple[slice, ...]:
    """Bounding box of ``mask`` grown by ``margin_mm`` along each axis (in voxels of that axis), within the grid."""
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    grow = [int(math.floor(margin_mm / s + 1e-9)) for s in spacing]
    return tuple(slice(max(b.start - g, 0), min(b.stop + g, n)) for b, g, n in zip(box, grow, mask.shape))


def _euclidean_distance(mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Exact Euclidean distance (mm, float64) from each voxel centre to the nearest True voxel centre."""
    if mask.all():
        return np.zeros(mask.shape)
    return ndimage.distance_transform_edt(~mask, sampling=spacing)


def _geodesic_distance(
    mask: np.ndarray, spacing: tuple[float, ...], obstacles: np.ndarray, limit_mm: float
) -> np.ndarray:
    """Geodesic distance (mm) from the voxel centres of ``mask`` that avoids ``obstacles``, by
    second-order fast marching (scikit-fmm) limited to a band of ``limit_mm`` plus two voxels.
    Obstacles and voxels beyond the band (or unreachable) get +inf; ``mask`` voxels get 0."""
    if mask.all():
        return np.zeros(mask.shape)
    if not np.any(ndimage.binary_dilation(mask) & ~mask & ~obstacles):  # walled in: nowhere to go
        return np.where(mask, 0.0, np.inf)
    phi = np.ma.MaskedArray(np.where(mask, _FMM_INSIDE, 1.0), mask=obstacles)
    band = limit_mm + 2.0 * max(spacing)
    dist = skfmm.distance(phi, dx=list(spacing), order=2, narrow=band)
    out = np.ma.filled(np.ma.asarray(dist, dtype=np.float64), np.inf)
    out[mask] = 0.0
    out[obstacles] = np.inf
    return out


# --- iso-volumetric CTV ---------------------------------------------------------------------------


def isovolumetric_ctv(
    score: np.ndarray,
    n_voxels: int,
    spacing: Sequence[float],
    gtv: np.ndarray | None = None,
    brain_mask: np.ndarray | None = None,
) -> np.ndarray:
    """The ``n_voxels`` highest-scoring voxels as a bool target (an iso-volumetric plan).

    Candidates are the brain-mask voxels (every voxel without a mask) and the GTV, which is always
    included whole. The remaining ``n_voxels - |GTV|`` voxels are ranked:

    1. voxels scoring above zero, highest score first; equal scores go to the smaller Euclidean
       distance (mm, on ``spacing``) to the GTV, then to the lower flat (C-order) index;
    2. when too few voxels score above zero, all of them are taken and the rest is filled by
       increasing distance (mm) from what was chosen (GTV and positive voxels), first among the
       voxels with a score (<= 0), then among NaN voxels (NaN ranks lowest); equal distances go to
       the lower flat index.

    Exactly ``n_voxels`` voxels are returned, or every candidate when there are fewer. The selection
    is linear in the number of voxels (``np.partition``, no full sort); distance maps are computed
    only when the tie rule or the fill needs them.
    """
    values = np.asarray(score)
    if values.ndim not in (2, 3) or not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        raise ValueError(f"score must be a real-valued 2D or 3D map, got {values.ndim}D {values.dtype}")
    spacing = check_spacing(spacing, values.ndim)
    n_voxels = _voxel_count(n_voxels)
    tumor = _mask(gtv, values.shape, "gtv")
    brain = _mask(brain_mask, values.shape, "brain mask")
    if tumor is not None:
        _check_gtv(tumor, brain)

    out, rest = _gtv_and_candidates(values.shape, tumor, brain, n_voxels)
    k = n_voxels - int(np.count_nonzero(out))
    if k >= rest.size:
        out.flat[rest] = True
        return out
    if k == 0:
        return out

    s = values.ravel()[rest].astype(np.float64)
    positive = s > 0  # NaN compares False
    n_pos = int(np.count_nonzero(positive))
    if n_pos >= k:
        chosen = rest[positive]
        tie = None if tumor is None else _nearer_to(tumor, chosen, spacing)
        out.flat[chosen[_largest(s[positive], k, tie)]] = True
        return out
    out.flat[rest[positive]] = True
    if not out.any():
        raise ValueError("no voxel scores above zero and there is no GTV: nothing to grow the target from")
    return _add_nearest(out, rest[~positive], s[~positive], k - n_pos, spacing)


def _voxel_count(n_voxels: int) -> int:
    """``n_voxels`` as an int; ``ValueError`` unless it is a whole number >= 0 (a bool is not)."""
    whole = isinstance(n_voxels, (int, np.integer)) or (
        isinstance(n_voxels, (float, np.floating)) and float(n_voxels).is_integer()
    )
    if isinstance(n_voxels, (bool, np.bool_)) or not whole or n_voxels < 0:
        raise ValueError(f"n_voxels must be a whole number >= 0, got {n_voxels}")
    return int(n_voxels)


def _gtv_and_candidates(
    shape: tuple[int, ...], tumor: np.ndarray | None, brain: np.ndarray | None, n_voxels: int
) -> tuple[np.ndarray, np.ndarray]:
    """(the target so far: the GTV, or nothing; the flat indices, ascending, of the other candidates: the
    brain-mask voxels, or every voxel, outside the GTV). ``ValueError`` when ``n_voxels`` cannot hold the GTV."""
    out = np.zeros(shape, dtype=bool)
    if tumor is not None:
        n_gtv = int(np.count_nonzero(tumor))
        if n_voxels < n_gtv:
            raise ValueError(
                f"n_voxels ({n_voxels}) is smaller than the GTV ({n_gtv} voxels), which the target always includes"
            )
        out |= tumor
    candidates = np.ones(shape, dtype=bool) if brain is None else brain.copy()
    if tumor is not None:
        candidates &= ~tumor
    return out, np.flatnonzero(candidates)


def _nearer_to(tumor: np.ndarray, chosen: np.ndarray, spacing: tuple[float, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """The tie key of :func:`_largest` for the voxels ``chosen`` (flat indices): minus the distance (mm) of
    ``chosen[positions]`` to ``tumor``, computed only when a tie asks for it."""

    def key(positions: np.ndarray) -> np.ndarray:
        return -_distance_from(tumor, spacing).ravel()[chosen[positions]]

    return key


def _add_nearest(
    out: np.ndarray, others: np.ndarray, scores: np.ndarray, need: int, spacing: tuple[float, ...]
) -> np.ndarray:
    """``out`` (modified, not empty) plus ``need`` voxels of ``others`` (flat indices, ascending; ``scores`` theirs)
    by increasing distance (mm) from ``out``: first those with a score, then the NaN ones; equal distances go to the
    lower index."""
    distance = _distance_from(out, spacing).ravel()
    has_score = ~np.isnan(scores)
    for group in (others[has_score], others[~has_score]):
        take = min(need, group.size)
        out.flat[group[_largest(-distance[group], take)]] = True
        need -= take
        if need == 0:
            break
    return out


def _distance_from(mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Euclidean distance (mm) from every voxel centre to the nearest ``mask`` voxel centre (0 on it),
    via :func:`sdf.signed_distance` (SimpleITK's exact, multi-threaded Maurer transform)."""
    if mask.all():
        return np.zeros(mask.shape, dtype=np.float32)
    return np.maximum(sdf.signed_distance(mask, spacing), 0.0)


def _largest(values: np.ndarray, k: int, tie_key: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Bool selector of the ``k`` largest ``values`` (no NaN) in linear time.

    Among entries equal to the k-th largest value, ``tie_key(positions)`` (larger wins) decides when
    given, then the earlier position wins.
    """
    n = values.size
    if k <= 0:
        return np.zeros(n, dtype=bool)
    if k >= n:
        return np.ones(n, dtype=bool)
    threshold = np.partition(values, n - k)[n - k]
    selected = values > threshold
    need = k - int(np.count_nonzero(selected))
    tied = np.flatnonzero(values == threshold)
    if need < tied.size:
        if tie_key is not None:
            tied = tied[_largest(np.asarray(tie_key(tied), dtype=np.float64), need)]
        else:
            tied = tied[:need]
    selected[tied] = True
    return selected
