"""The header rules of io/headers.py pinned down (issue 34): each refusal in full (file, field, what and the values),
each bound on its exact edge, the voxel-limit variable's parsing."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from gliomaforecast.errors import InputError
from gliomaforecast.io import headers

PATH = Path("scan.nii.gz")


def _refusal(call) -> str:
    with pytest.raises(InputError) as err:
        call()
    return str(err.value)


def _header(sform: np.ndarray | None = None, pixdim=(1.0, 1.0, 1.0)) -> nib.Nifti1Header:
    header = nib.Nifti1Header()
    header.set_data_shape((4, 4, 4))
    header["pixdim"][1:4] = pixdim
    if sform is not None:
        affine = np.eye(4)
        affine[:3, :3] = sform
        header.set_sform(affine, code=1)
    return header


def test_spacing_bounds_are_inclusive_and_named() -> None:
    headers.check_spacing((headers.MIN_SPACING_MM, headers.MAX_SPACING_MM), PATH, "flair")  # both edges allowed
    assert _refusal(lambda: headers.check_spacing((1.0, 1e-4), PATH, "flair")) == (
        "scan.nii.gz: flair: voxel spacing 1 x 0.0001 mm: every spacing must lie between 0.001 and 1000 mm"
    )
    for bad, shown in (((1.0, 0.0), "1 x 0"), ((float("inf"), 1.0), "inf x 1"), ((-2.0, 1.0), "-2 x 1")):
        assert _refusal(lambda: headers.check_spacing(bad, PATH, "gtv")) == (
            f"scan.nii.gz: gtv: voxel spacing {shown} mm: every spacing must be positive and finite"
        )


def test_scaling_rules_in_full() -> None:
    header = _header()
    header["scl_slope"], header["scl_inter"] = 0.0, 0.0
    headers.check_nifti_scaling(header, PATH, "t1")  # slope 0 without an intercept: no scaling, allowed
    header["scl_inter"] = 1.0
    assert _refusal(lambda: headers.check_nifti_scaling(header, PATH, "t1")) == (
        "scan.nii.gz: t1: NIfTI header scl_slope is 0 (no scaling) but scl_inter is 1"
    )
    header["scl_slope"], header["scl_inter"] = np.nan, 0.0
    assert _refusal(lambda: headers.check_nifti_scaling(header, PATH, "t1")) == (
        "scan.nii.gz: t1: NIfTI header scl_slope is not finite (nan)"
    )


def test_geometry_rules_in_full() -> None:
    header = _header()
    header["quatern_b"], header["quatern_c"], header["quatern_d"] = 0.8, 0.6, 0.1
    assert _refusal(lambda: headers.check_nifti_geometry(header, 3, PATH, "dose")) == (
        "scan.nii.gz: dose: NIfTI header quatern_b/c/d (0.8 0.6 0.1) is not a rotation (b^2 + c^2 + d^2 > 1)"
    )
    header["quatern_b"], header["quatern_c"], header["quatern_d"] = 0.8, 0.6, 0.0  # exactly a unit quaternion
    headers.check_nifti_geometry(header, 3, PATH, "dose")
    header["srow_y"] = [0.0, np.inf, 0.0, 0.0]
    header["sform_code"] = 1
    assert _refusal(lambda: headers.check_nifti_geometry(header, 3, PATH, "dose")) == (
        "scan.nii.gz: dose: NIfTI header srow_y is not finite (0 inf 0 0)"
    )
    flat = _header(np.diag([1.0, 0.0, 1.0]))
    assert _refusal(lambda: headers.check_nifti_geometry(flat, 3, PATH, "dose")) == (
        "scan.nii.gz: dose: NIfTI sform (sform_code > 0) has an axis of length 0"
    )
    flat["sform_code"] = 0  # an unused sform is not checked
    headers.check_nifti_geometry(flat, 3, PATH, "dose")
    sheared = _header(np.array([[1.0, 0.01, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    assert _refusal(lambda: headers.check_nifti_geometry(sheared, 3, PATH, "dose")) == (
        "scan.nii.gz: dose: NIfTI sform (srow_x/y/z, sform_code > 0) is sheared: its axes are not orthogonal"
    )
    scaled = _header(np.diag([2.0, 1.0, 1.0]), pixdim=(1.0, 1.0, 1.0))
    assert _refusal(lambda: headers.check_nifti_geometry(scaled, 3, PATH, "dose")) == (
        "scan.nii.gz: dose: NIfTI pixdim 1 x 1 x 1 mm disagrees with the sform's axis lengths 2 x 1 x 1 mm"
    )
    near = _header(np.diag([1.0 + 0.9e-3, 1.0, 1.0]))  # within ITK's 1e-3 mm
    headers.check_nifti_geometry(near, 3, PATH, "dose")
    rotated = _header(np.array([[0.0, -2.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 3.0]]), pixdim=(2.0, 2.0, 3.0))
    headers.check_nifti_geometry(rotated, 3, PATH, "dose")  # orthogonal, scaled like pixdim: fine


def test_voxel_limit_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(headers.MAX_VOXELS_ENV, raising=False)
    assert headers.max_voxels() == headers.MAX_VOXELS
    for text, limit in (("1", 1), (" 250 ", 250), ("9" * 18, int("9" * 18))):
        monkeypatch.setenv(headers.MAX_VOXELS_ENV, text)
        assert headers.max_voxels() == limit
    for text in ("0", "-5", "1e6", "9" * 19, "x" * 60):
        monkeypatch.setenv(headers.MAX_VOXELS_ENV, text)
        assert _refusal(headers.max_voxels) == (
            f"GLIOMAFORECAST_MAX_VOXELS: must be a positive integer, got {text.strip()[:40]!r}"
        )
    monkeypatch.setenv(headers.MAX_VOXELS_ENV, "64")
    headers.check_voxel_count((4, 4, 4), PATH, "gtv")  # exactly the limit
    assert _refusal(lambda: headers.check_voxel_count((4, 4, 5), PATH, "gtv")) == (
        "scan.nii.gz: gtv: header declares 4 x 4 x 5 = 80 voxels, more than the limit of 64 "
        "(set GLIOMAFORECAST_MAX_VOXELS to raise it)"
    )
