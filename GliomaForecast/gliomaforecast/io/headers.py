"""Header rules every image file must pass before a voxel is read (docs/guarantees.md, "Header rules").

* Voxel count: at most :data:`MAX_VOXELS` voxels (all components and layers counted) per file, checked from the
  header before anything is decompressed or allocated; the environment variable ``GLIOMAFORECAST_MAX_VOXELS``
  raises (or lowers) the limit.
* Spacing: every spatial axis between :data:`MIN_SPACING_MM` and :data:`MAX_SPACING_MM`.
* NIfTI scaling: ``scl_slope`` and ``scl_inter`` finite; ``scl_slope`` 0 (no scaling) only with ``scl_inter`` 0.
* NIfTI geometry: ``quatern_b/c/d``, ``qoffset_x/y/z`` and ``srow_x/y/z`` finite, ``quatern_b/c/d`` part of a
  unit quaternion; a used sform
  (``sform_code`` > 0) has orthogonal axes (no shear: ITK would silently use the qform instead, or fail) and
  axis lengths equal to ``pixdim`` (ITK takes the spacing from ``pixdim`` and the directions from the sform).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..errors import InputError

MAX_VOXELS = 64 * 1024 * 1024
"""Default voxel limit per image file (64 Mi voxels: a 1 mm brain is ~17 Mi, 0.5 mm 7 T ~64 Mi)."""
MAX_VOXELS_ENV = "GLIOMAFORECAST_MAX_VOXELS"
MIN_SPACING_MM = 1e-3
MAX_SPACING_MM = 1e3
_ORTHO_TOL = 1e-4  # ITK's own tolerance for an orthonormal sform
_SCALE_TOL = 1e-3  # ITK's "unexpected scales in sform" tolerance (mm)
_QUATERN_TOL = 3 * float(np.finfo(np.float32).eps)  # nibabel's tolerance for a unit quaternion


def max_voxels() -> int:
    """The voxel limit: ``GLIOMAFORECAST_MAX_VOXELS`` when set (a positive integer), else :data:`MAX_VOXELS`."""
    text = os.environ.get(MAX_VOXELS_ENV, "").strip()
    if not text:
        return MAX_VOXELS
    if not text.isdigit() or len(text) > 18 or int(text) <= 0:
        raise InputError(MAX_VOXELS_ENV, None, f"must be a positive integer, got {text[:40]!r}")
    return int(text)


def check_voxel_count(shape, path: Path, field: str) -> None:
    """Refuse a header declaring more voxels than :func:`max_voxels`, before any voxel is read."""
    count = math.prod(int(n) for n in shape)
    limit = max_voxels()
    if count > limit:
        dims = " x ".join(str(int(n)) for n in shape)
        raise InputError(
            path,
            field,
            f"header declares {dims} = {count} voxels, more than the limit of {limit} "
            f"(set {MAX_VOXELS_ENV} to raise it)",
        )


def check_spacing(spacing, path: Path, field: str) -> None:
    """Refuse a spacing (mm) that is not finite and between MIN_SPACING_MM and MAX_SPACING_MM on every axis."""
    values = [float(s) for s in spacing]
    if all(math.isfinite(s) and MIN_SPACING_MM <= s <= MAX_SPACING_MM for s in values):
        return
    shown = " x ".join(f"{s:g}" for s in values)
    if all(math.isfinite(s) and s > 0 for s in values):
        why = f"every spacing must lie between {MIN_SPACING_MM:g} and {MAX_SPACING_MM:g} mm"
    else:
        why = "every spacing must be positive and finite"
    raise InputError(path, field, f"voxel spacing {shown} mm: {why}")


def _finite_fields(header, names: tuple[str, ...], path: Path, field: str) -> None:
    for name in names:
        values = np.atleast_1d(np.asarray(header[name], dtype=float))
        if not np.all(np.isfinite(values)):
            shown = " ".join(f"{v:g}" for v in values)
            raise InputError(path, field, f"NIfTI header {name} is not finite ({shown})")


def check_nifti_scaling(header, path: Path, field: str) -> None:
    """Refuse a non-finite ``scl_slope``/``scl_inter``, and a slope of 0 (no scaling) with an intercept that
    ITK would add while nibabel ignores it."""
    _finite_fields(header, ("scl_slope", "scl_inter"), path, field)
    slope, inter = float(header["scl_slope"]), float(header["scl_inter"])
    if slope == 0 and inter != 0:
        raise InputError(path, field, f"NIfTI header scl_slope is 0 (no scaling) but scl_inter is {inter:g}")


def check_nifti_geometry(header, spatial: int, path: Path, field: str) -> None:
    """Refuse non-finite quaternion, offset or sform fields, a sheared sform and a sform whose axis lengths
    disagree with ``pixdim`` (``spatial``: the image's spatial axes, 1 to 3)."""
    _finite_fields(header, ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z"), path, field)
    _finite_fields(header, ("srow_x", "srow_y", "srow_z"), path, field)
    bcd = np.array([header["quatern_b"], header["quatern_c"], header["quatern_d"]], dtype=float)
    if float(bcd @ bcd) > 1 + _QUATERN_TOL:
        shown = " ".join(f"{v:g}" for v in bcd)
        raise InputError(path, field, f"NIfTI header quatern_b/c/d ({shown}) is not a rotation (b^2 + c^2 + d^2 > 1)")
    if int(header["sform_code"]) <= 0:
        return
    matrix = np.array([header["srow_x"][:3], header["srow_y"][:3], header["srow_z"][:3]], dtype=float)
    lengths = np.linalg.norm(matrix, axis=0)
    if not np.all(lengths > 0):
        raise InputError(path, field, "NIfTI sform (sform_code > 0) has an axis of length 0")
    unit = matrix / lengths
    if not np.allclose(unit @ unit.T, np.eye(3), rtol=0, atol=_ORTHO_TOL):
        raise InputError(
            path, field, "NIfTI sform (srow_x/y/z, sform_code > 0) is sheared: its axes are not orthogonal"
        )
    pixdim = np.asarray(header["pixdim"][1 : 1 + spatial], dtype=float)
    if np.any(np.abs(pixdim - lengths[:spatial]) > _SCALE_TOL):
        shown = " x ".join(f"{v:g}" for v in pixdim)
        sform = " x ".join(f"{v:g}" for v in lengths[:spatial])
        raise InputError(path, field, f"NIfTI pixdim {shown} mm disagrees with the sform's axis lengths {sform} mm")
