"""Exact geometry round trips through NIfTI and NRRD, resampling, atomic and protected writes."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from conftest import oblique_grid
from gliomaforecast.errors import InputError
from gliomaforecast.geometry import Grid, resample_to
from gliomaforecast.io.images import (read_image, read_labels, read_mask, read_segmentation, read_vector_image,
                                      write_image, write_segmentation)

FORMATS = [".nii.gz", ".nii", ".nrrd"]


def _assert_float32_close(a: Grid, b: Grid) -> None:
    """NIfTI stores geometry as float32: equal to float32 precision."""
    assert a.shape == b.shape
    np.testing.assert_allclose(a.spacing, b.spacing, rtol=2e-7)
    np.testing.assert_allclose(a.origin, b.origin, rtol=2e-7, atol=1e-6)
    np.testing.assert_allclose(a.direction, b.direction, atol=1e-7)


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8])
def test_roundtrip_oblique_anisotropic(tmp_path: Path, suffix: str, dtype) -> None:
    grid = oblique_grid()
    data = (np.random.default_rng(1).random(grid.shape) * 100).astype(dtype)
    write_image(tmp_path / f"a{suffix}", data, grid)
    back, got = read_image(tmp_path / f"a{suffix}")
    assert back.dtype == dtype and np.array_equal(back, data)
    if suffix == ".nrrd":
        assert got == grid  # bit-exact
    else:
        _assert_float32_close(got, grid)
        write_image(tmp_path / f"b{suffix}", back, got)  # a grid read from NIfTI re-writes bit-exactly
        assert read_image(tmp_path / f"b{suffix}")[1] == got


def test_nifti_nrrd_nifti_is_bit_exact(tmp_path: Path) -> None:
    grid = oblique_grid()
    data = np.arange(np.prod(grid.shape), dtype=np.float32).reshape(grid.shape)
    write_image(tmp_path / "a.nii.gz", data, grid)
    _, g_nii = read_image(tmp_path / "a.nii.gz")
    write_image(tmp_path / "b.nrrd", data, g_nii)
    _, g_nrrd = read_image(tmp_path / "b.nrrd")
    assert g_nrrd == g_nii
    write_image(tmp_path / "c.nii", data, g_nrrd)
    back, g_back = read_image(tmp_path / "c.nii")
    assert g_back == g_nii and np.array_equal(back, data)


def test_segmentation_roundtrip_overlapping_layers(tmp_path: Path) -> None:
    grid = oblique_grid()
    rng = np.random.default_rng(2)
    a = rng.random(grid.shape) > 0.5
    b = a | (rng.random(grid.shape) > 0.7)  # overlaps a: needs a second layer
    c = ~b
    write_segmentation(tmp_path / "s.seg.nrrd", {"GTV": a, "CTV standard": b, "Rest": c}, grid)
    segs, got = read_segmentation(tmp_path / "s.seg.nrrd")
    assert got == grid
    assert list(segs) == ["GTV", "CTV standard", "Rest"]
    for name, mask in {"GTV": a, "CTV standard": b, "Rest": c}.items():
        assert np.array_equal(segs[name], mask)
    # the file is also a valid NRRD for ITK's reader with the same geometry (as Slicer reads it)
    header = open(tmp_path / "s.seg.nrrd", "rb").read(2000)
    assert b"kinds: list domain domain domain" in header and b"Segment1_Layer:=1" in header


def test_single_segment_seg_nrrd_reads_as_mask_with_sitk_geometry(tmp_path: Path) -> None:
    grid = oblique_grid()
    mask = np.zeros(grid.shape, bool)
    mask[2:4, 3:6, 4:8] = True
    write_segmentation(tmp_path / "g.seg.nrrd", {"GTV": mask}, grid)
    back, got = read_mask(tmp_path / "g.seg.nrrd")
    assert np.array_equal(back, mask) and got == grid
    itk = sitk.ReadImage(str(tmp_path / "g.seg.nrrd"))
    np.testing.assert_allclose(itk.GetDirection(), grid.direction, atol=1e-12)
    np.testing.assert_allclose(itk.GetSpacing(), grid.spacing[::-1], rtol=1e-12)


def test_vector_image_roundtrip(tmp_path: Path) -> None:
    grid = oblique_grid()
    field = np.random.default_rng(3).normal(size=grid.shape + (3,)).astype(np.float32)
    write_image(tmp_path / "v.nii.gz", field, grid)
    back, got = read_vector_image(tmp_path / "v.nii.gz")
    assert np.array_equal(back, field)
    _assert_float32_close(got, grid)
    with pytest.raises(InputError, match="scalar image"):
        read_image(tmp_path / "v.nii.gz")


def test_grid_physical_points_match_sitk() -> None:
    grid = oblique_grid()
    image = sitk.Image(grid.shape[::-1], sitk.sitkUInt8)
    grid.apply_to(image)
    idx = np.array([[1, 2, 3], [5, 7, 9]])
    ours = grid.index_to_physical(idx)
    ref = [image.TransformIndexToPhysicalPoint([int(i) for i in row[::-1]]) for row in idx]
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_resample_identity_and_shift() -> None:
    grid = Grid.identity((8, 10, 12), (2.0, 1.0, 1.0))
    data = np.random.default_rng(4).random(grid.shape).astype(np.float32)
    np.testing.assert_allclose(resample_to(data, grid, grid), data, atol=1e-6)
    labels = (data > 0.5).astype(np.int16)
    assert np.array_equal(resample_to(labels, grid, grid, label=True), labels)
    # a finer reference: nearest keeps label values, linear interpolates between neighbours in mm
    fine = Grid((8, 10, 23), (2.0, 1.0, 0.5), (0.0, 0.0, 0.0), grid.direction)
    up = resample_to(labels, grid, fine, label=True)
    assert set(np.unique(up)) <= {0, 1} and up.dtype == np.int16
    lin = resample_to(data, grid, fine)
    np.testing.assert_allclose(lin[:, :, 1], 0.5 * (data[:, :, 0] + data[:, :, 1]), atol=1e-5)


@pytest.mark.parametrize("content,match", [
    (b"not an image at all", "cannot read image"),
])
def test_unreadable_file(tmp_path: Path, content: bytes, match: str) -> None:
    (tmp_path / "bad.nii.gz").write_bytes(content)
    with pytest.raises(InputError, match=match) as err:
        read_image(tmp_path / "bad.nii.gz", "flair")
    assert str(tmp_path / "bad.nii.gz") in str(err.value) and "flair" in str(err.value)
    assert "\n" not in str(err.value)


def test_unsupported_missing_4d_nan_nonbinary(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unsupported file type"):
        read_image(tmp_path / "x.mha")
    with pytest.raises(InputError, match="file not found"):
        read_image(tmp_path / "missing.nii.gz")
    four = sitk.GetImageFromArray(np.zeros((2, 3, 4, 5), np.float32), isVector=False)
    sitk.WriteImage(four, str(tmp_path / "4d.nii.gz"))
    with pytest.raises(InputError, match="4D images are not supported"):
        read_image(tmp_path / "4d.nii.gz", "flair")
    grid = Grid.identity((3, 4, 5))
    bad = np.zeros(grid.shape, np.float32)
    bad[1, 1, 1] = np.nan
    bad[0, 0, 0] = np.inf
    nib.save(nib.Nifti1Image(bad, np.eye(4)), tmp_path / "nan.nii.gz")  # ITK would read NaN as 0
    with pytest.raises(InputError, match="2 voxels are NaN or infinite"):
        read_image(tmp_path / "nan.nii.gz", "dose")
    write_image(tmp_path / "nan.nrrd", bad, grid)
    with pytest.raises(InputError, match="nan.nrrd: dose: 2 voxels are NaN or infinite"):
        read_image(tmp_path / "nan.nrrd", "dose")
    write_image(tmp_path / "lab.nii.gz", np.arange(60, dtype=np.int16).reshape(grid.shape) % 3, grid)
    with pytest.raises(InputError, match="mask is not binary"):
        read_mask(tmp_path / "lab.nii.gz", "gtv")
    write_image(tmp_path / "neg.nii.gz", -np.ones(grid.shape, np.int16), grid)
    with pytest.raises(InputError, match="negative labels"):
        read_labels(tmp_path / "neg.nii.gz")


def test_writes_are_atomic_and_never_overwrite_inputs(tmp_path: Path) -> None:
    grid = Grid.identity((3, 4, 5))
    src = tmp_path / "in.nii.gz"
    write_image(src, np.ones(grid.shape, np.uint8), grid)
    before = src.read_bytes()
    read_image(src)
    with pytest.raises(InputError, match="refusing to overwrite an input"):
        write_image(src, np.zeros(grid.shape, np.uint8), grid)
    other = tmp_path / "other.nrrd"
    with pytest.raises(InputError, match="refusing to overwrite an input"):
        write_image(other, np.zeros(grid.shape, np.uint8), grid, inputs=[other])
    assert src.read_bytes() == before
    with pytest.raises(ValueError):  # wrong shape: nothing (not even a temporary file) is left behind
        write_image(tmp_path / "out.nii.gz", np.zeros((2, 2, 2)), grid)
    assert sorted(os.listdir(tmp_path)) == ["in.nii.gz"]


def test_float_image_to_seg_nrrd_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    grid = oblique_grid()
    probability = np.linspace(0.0, 1.0, int(np.prod(grid.shape)), dtype=np.float32).reshape(grid.shape)
    with pytest.raises(InputError, match=r"p\.seg\.nrrd: output: a \.seg\.nrrd holds a label map, not float32"):
        write_image(tmp_path / "p.seg.nrrd", probability, grid)
    assert list(tmp_path.iterdir()) == []
    labels = (probability * 3).astype(np.int16)  # integer labels still write one segment per label
    segments, _ = read_segmentation(write_image(tmp_path / "l.seg.nrrd", labels, grid))
    assert sorted(segments) == ["Segment_1", "Segment_2", "Segment_3"]
