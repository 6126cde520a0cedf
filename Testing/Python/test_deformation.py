"""Runtime tumor-evolution module: warping in mm, extrapolation, Jacobian, vector-image output, and the
registered evolution model on growing tumors (numpy + onnxruntime only)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ball, oblique_grid

from gliomaforecast import deformation, sdf
from gliomaforecast.io.case import load_case
from gliomaforecast.errors import InputError
from gliomaforecast.io.images import read_vector_image
from gliomaforecast.models import load_model


@pytest.fixture(scope="module")
def model():
    return load_model("evolution", prefer_gpu=False)


def test_warp_constant_shift_in_mm_on_anisotropic_grid():
    spacing = (5.0, 0.8, 1.5)
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip((6, 20, 30), spacing)], indexing="ij")
    phi = (0.5 * z + 2 * y - x).astype(np.float32)
    disp = np.zeros(phi.shape + (3,), np.float32)
    disp[..., 1], disp[..., 2] = 1.6, -3.0  # mm
    out = deformation.warp(phi, disp, spacing)
    inner = (slice(None), slice(0, 17), slice(3, None))  # points that stay inside the grid
    np.testing.assert_allclose(out[inner], (phi + 2 * 1.6 + 3.0)[inner], atol=1e-4)
    with pytest.raises(ValueError, match="displacement must have shape"):
        deformation.warp(phi, disp[..., :2], spacing)


def test_extrapolate_scales_with_time():
    disp = np.random.default_rng(0).normal(size=(2, 3, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(deformation.extrapolate(disp, 50, 125), disp * 2.5, rtol=1e-6)
    np.testing.assert_array_equal(deformation.extrapolate(disp, 50, 0), 0)
    with pytest.raises(ValueError, match="gap_days"):
        deformation.extrapolate(disp, 0, 10)
    with pytest.raises(ValueError, match="target_gap_days"):
        deformation.extrapolate(disp, 10, -1)


def test_jacobian_determinant():
    spacing = (2.0, 1.0, 0.5)
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip((4, 5, 6), spacing)], indexing="ij")
    disp = np.stack([0 * z, 0.1 * y, 0.2 * x], axis=-1)
    np.testing.assert_allclose(deformation.jacobian_determinant(disp, spacing), 1.1 * 1.2, rtol=1e-5)
    disp[..., 2] = -1.5 * x  # x -> -0.5 x: the map folds everywhere
    assert np.all(deformation.jacobian_determinant(disp, spacing) < 0)


def test_resample_plane_round_trip():
    y, x = np.meshgrid(np.arange(30) * 0.9, np.arange(25) * 1.3, indexing="ij")
    planes = np.stack([y + 2 * x, y * x / 10]).astype(np.float32)
    coarse = deformation.resample_plane(planes, (0.9, 1.3), 2.0)
    assert coarse.shape == (2, 14, 16)  # extents 26.1 and 31.2 mm
    np.testing.assert_allclose(coarse[0, 3, 4], 3 * 2.0 + 2 * 4 * 2.0, atol=1e-4)
    back = deformation._restore_plane(coarse, 2.0, (0.9, 1.3), (30, 25))
    np.testing.assert_allclose(back[0][:26, :21], planes[0][:26, :21], atol=1e-3)  # linear data: exact inside


def test_vector_image_is_physical_lps(tmp_path):
    grid = oblique_grid()
    disp = np.zeros(grid.shape + (3,), np.float32)
    disp[..., 2] = 2.0  # 2 mm along the x index axis
    path = deformation.write_displacement(tmp_path / "displacement.nii.gz", disp, grid)
    vec, got = read_vector_image(path)
    assert got.same_as(grid) and vec.shape == grid.shape + (3,)
    np.testing.assert_allclose(vec[0, 0, 0], 2.0 * grid.direction_matrix[:, 0], atol=1e-5)
    np.testing.assert_allclose(deformation.from_physical(vec, grid), disp, atol=1e-5)


def test_field_reproduces_growth_and_is_smooth(model):
    spacing = (3.0, 1.0, 1.25)
    shape = (14, 100, 84)
    center = (7, 50, 42)
    gtv1 = ball(shape, center, 12.0, spacing)
    gtv2 = ball(shape, center, 18.0, spacing)
    phi1, phi2 = (sdf.signed_distance(m, spacing) for m in (gtv1, gtv2))
    field = deformation.evolution_field(phi1, phi2, 90.0, spacing, model)
    assert field.shape == shape + (3,) and field.dtype == np.float32
    assert np.all(field[..., 0] == 0)
    empty = [k for k in range(shape[0]) if not (gtv1[k].any() or gtv2[k].any())]
    assert empty and np.all(field[empty] == 0)
    warped = deformation.warp(phi1, field, spacing)

    def dice(a, b):
        return 2 * np.sum(a & b) / (a.sum() + b.sum())
    assert dice(warped <= 0, gtv2) > dice(gtv1, gtv2) + 0.1
    band = np.minimum(phi1, phi2) <= 20
    assert np.abs(phi2 - warped)[band].mean() < 0.6 * np.abs(phi2 - phi1)[band].mean()
    idx = deformation.tumor_slices(phi1, phi2)
    assert np.mean(deformation.jacobian_determinant(field[idx], spacing) <= 0) < 0.005
    half = deformation.warp(phi1, deformation.extrapolate(field, 90.0, 45.0), spacing) <= 0
    assert gtv1.sum() < half.sum() < (warped <= 0).sum()  # half the gap: a tumor in between


def test_model_rejects_sizes_it_cannot_run(model):
    with pytest.raises(InputError, match="model 'evolution': inputs: onnxruntime cannot run on phi \\(1, 2, 40, 40\\)"):
        model.run({"phi": np.zeros((1, 2, 40, 40), np.float32), "gap_days": np.ones(1, np.float32)})
    with pytest.raises(InputError, match="phi: shape: .*size 2 on axis 1"):
        model.run({"phi": np.zeros((1, 3, 32, 32), np.float32), "gap_days": np.ones(1, np.float32)})


def test_case_field_and_bad_gap(make_case, model):
    path, grid = make_case(3)
    case = load_case(path)
    field, gap = deformation.case_evolution_field(case, 0, 2, model)
    assert gap == 120 and field.shape == grid.shape + (3,)
    assert np.abs(field).max() > 0
    with pytest.raises(ValueError, match="gap_days"):
        deformation.evolution_field(np.ones((2, 3, 3)), np.ones((2, 3, 3)), -5, (1, 1, 1), model)
    with pytest.raises(ValueError, match="3D arrays of one shape"):
        deformation.evolution_field(np.ones((3, 3)), np.ones((3, 3)), 5, (1, 1), model)
