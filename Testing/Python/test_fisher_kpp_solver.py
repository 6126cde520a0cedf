"""The Fisher-KPP solver (gliomaforecast.forecasters.fisher_kpp.solver) against known answers: the travelling-wave speed
2 sqrt(D rho) (mm/day) along both axes of an anisotropic grid, mass conservation with rho = 0 and no flux,
no growth across a zero-D barrier or outside the brain mask, and the tissue diffusivity map."""

from __future__ import annotations

import numpy as np
import pytest

from gliomaforecast.forecasters.fisher_kpp.solver import (GREY_RATIO, Integrator, crop_box, solve, stable_time_step,
                                                          tissue_diffusivity)


def _front(u: np.ndarray, h: float) -> float:
    """Position (mm) where the 1D profile u (decreasing) crosses 0.5, by linear interpolation."""
    i = int(np.flatnonzero(u < 0.5)[0])
    return h * (i - 1 + (u[i - 1] - 0.5) / (u[i - 1] - u[i]))


@pytest.mark.parametrize("axis", [0, 2])
def test_plane_wave_speed_is_two_sqrt_d_rho_on_an_anisotropic_grid(axis: int) -> None:
    spacing = (2.0, 1.0, 1.0)  # mm: the wave runs along z (2 mm) or along x (1 mm)
    d_w, rho = 4.0, 0.25  # mm^2/day, 1/day: v = 2 mm/day, lambda = 4 mm
    h = spacing[axis]
    n = int(520 / h)
    shape = [1, 1, 1]
    shape[axis] = n
    u0 = np.zeros(n, dtype=np.float32)
    u0[: int(12 / h)] = 1.0
    u0 = u0.reshape(shape)
    t1, t2 = 100.0, 200.0
    a, b = solve(u0, np.full(shape, d_w, np.float32), spacing, rho, [t1, t2])
    x1, x2 = _front(a.ravel(), h), _front(b.ravel(), h)
    v, lam = 2.0 * np.sqrt(d_w * rho), np.sqrt(d_w / rho)
    measured = (x2 - x1) / (t2 - t1)
    # Bramson's logarithmic delay of a pulled front: x(t) = v t - (3/2) lambda ln t + const
    expected = v - 1.5 * lam * np.log(t2 / t1) / (t2 - t1)
    assert measured == pytest.approx(expected, rel=0.03)
    assert measured == pytest.approx(v, rel=0.06)


def test_wave_speed_does_not_depend_on_the_axis_spacing() -> None:
    d_w, rho = 1.0, 0.25
    speeds = []
    for spacing, axis in (((1.0, 1.0, 2.0), 2), ((1.0, 1.0, 2.0), 1)):
        h = spacing[axis]
        n = int(200 / h)
        shape = [1, 1, 1]
        shape[axis] = n
        u0 = np.zeros(n, np.float32)
        u0[: int(8 / h)] = 1.0
        a, b = solve(u0.reshape(shape), np.full(shape, d_w, np.float32), spacing, rho, [60.0, 120.0])
        speeds.append((_front(b.ravel(), h) - _front(a.ravel(), h)) / 60.0)
    assert speeds[0] == pytest.approx(speeds[1], rel=0.03)
    assert speeds[0] == pytest.approx(2 * np.sqrt(d_w * rho), rel=0.08)


def _slab_case(shape=(20, 24, 24)):
    zz, yy, xx = np.indices(shape)
    brain = (zz - 10) ** 2 / 81 + (yy - 12) ** 2 / 121 + (xx - 12) ** 2 / 121 <= 1
    wm = np.where(brain, 0.8, 0.0).astype(np.float32)
    gm = np.where(brain, 0.2, 0.0).astype(np.float32)
    csf = np.zeros(shape, np.float32)
    barrier = brain & (xx >= 14) & (xx <= 15)
    wm[barrier], gm[barrier], csf[barrier] = 0.0, 0.0, 1.0
    return brain, wm, gm, csf, barrier, xx


def test_mass_is_conserved_with_no_growth_and_no_flux() -> None:
    brain, wm, gm, csf, _, _ = _slab_case()
    d, _ = tissue_diffusivity(0.5, brain.shape, wm=wm, gm=gm, csf=csf, brain=brain)
    rng = np.random.default_rng(1)
    u0 = (rng.random(brain.shape) * (d > 0)).astype(np.float32)
    u0[~brain] = 0.0
    for eps in (None, 1e-7):
        run = Integrator(u0, d, (2.0, 1.0, 1.5), 0.0, eps=eps)
        u = run.advance(200.0)
        assert run.steps > 100
        assert float(u.sum(dtype=np.float64)) == pytest.approx(float(u0.sum(dtype=np.float64)), rel=1e-5)
        assert u.min() >= 0 and u.max() <= 1
        assert np.array_equal(u[d == 0], u0[d == 0])


def test_nothing_crosses_a_zero_d_barrier_nor_leaves_the_brain() -> None:
    brain, wm, gm, csf, barrier, xx = _slab_case()
    d, source = tissue_diffusivity(0.3, brain.shape, wm=wm, gm=gm, csf=csf, brain=brain)
    assert "tissue maps" in source and np.all(d[barrier] == 0) and np.all(d[~brain] == 0)
    u0 = np.zeros(brain.shape, np.float32)
    u0[8:12, 10:14, 6:10] = 1.0
    (u,) = solve(u0, d, (2.0, 1.0, 1.0), 0.1, [300.0])
    near = brain & (xx < 14)
    assert u[near].min() > 0.99  # the near side fills up
    assert np.all(u[brain & (xx > 15)] == 0)  # the far side never sees a cell
    assert np.all(u[~brain] == 0) and np.all(u[barrier] == 0)


def test_tissue_diffusivity_per_tissue_and_without_maps() -> None:
    shape = (2, 2, 2)
    wm = np.array([1, 0, 0, 0.5, 0.1, 0, 0, 0], np.float32).reshape(shape)
    gm = np.array([0, 1, 0, 0.5, 0.1, 0, 0, 0], np.float32).reshape(shape)
    d, _ = tissue_diffusivity(0.2, shape, wm=wm, gm=gm)
    assert d.ravel()[:5] == pytest.approx([0.2, 0.2 * GREY_RATIO, 0.0, 0.1 + 0.1 * GREY_RATIO, 0.0])
    brain = np.zeros(shape, bool)
    brain[0] = True
    d, source = tissue_diffusivity(0.2, shape, brain=brain)
    assert np.all(d[0] == np.float32(0.2)) and np.all(d[1] == 0) and "inside the brain mask" in source
    d, source = tissue_diffusivity(0.2, shape)
    assert np.all(d == np.float32(0.2)) and "whole grid" in source
    d, source = tissue_diffusivity(0.2, shape, csf=(wm > 0.6).astype(np.float32))
    assert d.ravel()[0] == 0 and d.ravel()[1] == np.float32(0.2) and "CSF" in source
    with pytest.raises(ValueError, match="d_white"):
        tissue_diffusivity(-1.0, shape)


def test_time_step_is_the_cfl_bound_on_the_anisotropic_grid() -> None:
    assert stable_time_step(0.1, (1.0, 1.0, 2.0), safety=1.0) == pytest.approx(1 / (2 * 0.1 * 2.25))
    assert stable_time_step(0.0, (1.0, 1.0, 1.0)) == np.inf
    run = Integrator(np.zeros((3, 3, 3)), np.full((3, 3, 3), 0.1, np.float32), (1.0, 1.0, 2.0), 0.03, dt_max=100.0)
    assert run.dt == pytest.approx(0.9 / (2 * 0.1 * 2.25))


def test_active_window_matches_the_whole_grid() -> None:
    shape = (30, 30, 30)
    u0 = np.zeros(shape, np.float32)
    u0[13:17, 13:17, 13:17] = 1.0
    d = np.full(shape, 0.2, np.float32)
    d[:, :, 20:] = 0.02
    a = Integrator(u0, d, (2.0, 2.0, 1.0), 0.05, eps=None).advance(150.0)
    b = Integrator(u0, d, (2.0, 2.0, 1.0), 0.05).advance(150.0)
    assert np.abs(a - b).max() < 1e-5
    assert (a >= 0.16).sum() > 8 * 64


def test_bad_arguments_and_crop_box() -> None:
    with pytest.raises(ValueError, match="rho"):
        solve(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), (1, 1, 1), -0.1, [1.0])
    with pytest.raises(ValueError, match="shape"):
        solve(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)), (1, 1, 1), 0.1, [1.0])
    with pytest.raises(ValueError, match="days"):
        solve(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), (1, 1, 1), 0.1, [-1.0])
    mask = np.zeros((20, 20, 20), bool)
    mask[8:10, 9, 9] = True
    assert crop_box(mask, (2.0, 1.0, 1.0), 4.0) == (slice(6, 12), slice(5, 14), slice(5, 14))
    assert crop_box(mask, (1.0, 1.0, 1.0), 100.0) == (slice(0, 20),) * 3
