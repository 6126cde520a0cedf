"""Calibration of the Fisher-KPP forecaster (gliomaforecast.forecasters.fisher_kpp.fit): the initial travelling-wave
density, and the front velocity (mm/day) recovered from a pair of scans made by the solver itself, on a
homogeneous brain and on one with grey matter and a CSF barrier; shrinking histories are clipped at 0."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gliomaforecast import sdf
from gliomaforecast.forecasters.fisher_kpp.fit import (LENGTH_PRIOR, U_VISIBLE, calibrate, fit_velocity,
                                                       initial_density, mean_boundary_shift, seeded_density)
from gliomaforecast.forecasters.fisher_kpp.solver import GREY_RATIO, solve

SPACING = (2.0, 2.0, 2.0)


def _ball(shape, center, radius_mm, spacing=SPACING) -> np.ndarray:
    grids = np.meshgrid(*[(np.arange(n) - c) * h for n, c, h in zip(shape, center, spacing)], indexing="ij")
    return sum(g ** 2 for g in grids) <= radius_mm ** 2


def _later(earlier: np.ndarray, f: np.ndarray, v: float, gap: float, spacing=SPACING) -> np.ndarray:
    """The later GTV made by the solver: v (mm/day) with D_w/rho = LENGTH_PRIOR^2, over gap days."""
    rho = v / (2 * LENGTH_PRIOR)
    u0 = seeded_density(earlier, sdf.signed_distance(earlier, spacing), f > 0, LENGTH_PRIOR)
    (u,) = solve(u0, (LENGTH_PRIOR ** 2 * rho * f).astype(np.float32), spacing, rho, [gap])
    return u >= U_VISIBLE


def test_initial_density_is_the_threshold_on_the_boundary_with_the_wave_tail() -> None:
    phi = np.array([-20.0, 0.0, 20.0, 22.0, 40.0])
    u = initial_density(phi, 2.0)
    assert u[1] == pytest.approx(U_VISIBLE) and u[0] > 0.99 and u[-1] < 1e-8
    assert u[3] / u[2] == pytest.approx(math.exp(-1.0), rel=0.01)  # exp(-phi / lambda) tail
    with pytest.raises(ValueError):
        initial_density(phi, 0.0)


@pytest.mark.parametrize("v_true, gap", [(0.05, 200.0), (0.15, 80.0)])
def test_fit_recovers_the_velocity_of_a_synthetic_pair(v_true: float, gap: float) -> None:
    shape = (40, 40, 40)
    brain = _ball(shape, (20, 20, 20), 38.0)
    f = brain.astype(np.float32)
    earlier = _ball(shape, (20, 20, 20), 10.0)
    later = _later(earlier, f, v_true, gap)
    fit = fit_velocity(earlier, later, gap, f, SPACING)
    assert not fit.clipped and fit.dice > 0.95
    assert fit.v == pytest.approx(v_true, rel=0.05)
    cal = calibrate([earlier, later], [100.0, 100.0 + gap], f, SPACING)
    assert cal.v == pytest.approx(fit.v)
    assert cal.rho == pytest.approx(cal.v / (2 * LENGTH_PRIOR))
    assert cal.d_white == pytest.approx(LENGTH_PRIOR ** 2 * cal.rho)
    assert 2 * math.sqrt(cal.d_white * cal.rho) == pytest.approx(cal.v)
    assert cal.v_boundary == pytest.approx(v_true, rel=0.2)
    assert 0 < cal.sigma_v < 0.5 * v_true
    assert not cal.notes


def test_a_short_gap_recovers_the_velocity_within_its_uncertainty() -> None:
    shape = (40, 40, 40)
    f = _ball(shape, (20, 20, 20), 38.0).astype(np.float32)
    earlier = _ball(shape, (20, 20, 20), 10.0)
    later = _later(earlier, f, 0.05, 60.0)  # 3 mm of growth on a 2 mm grid
    cal = calibrate([earlier, later], [0.0, 60.0], f, SPACING)
    assert abs(cal.v - 0.05) < cal.sigma_v < 0.05


def test_fit_uses_the_anatomy_grey_matter_and_a_barrier() -> None:
    shape = (40, 40, 40)
    brain = _ball(shape, (20, 20, 20), 38.0)
    f = brain.astype(np.float32)
    f[:, :, 23:] = GREY_RATIO  # grey matter on one side
    f[:, 14:16, :] = 0.0  # a CSF sheet on the other
    earlier = _ball(shape, (20, 20, 20), 8.0)
    later = _later(earlier, f, 0.12, 90.0)
    assert not later[:, :14].any()  # the barrier held in the synthetic scan
    fit = fit_velocity(earlier, later, 90.0, f, SPACING)
    assert fit.v == pytest.approx(0.12, rel=0.05)
    homogeneous = fit_velocity(earlier, later, 90.0, brain.astype(np.float32), SPACING)
    # ignoring the slow grey matter and the barrier underestimates v and matches the shape worse
    assert homogeneous.v < 0.9 * fit.v and homogeneous.dice < fit.dice - 0.03


def test_shrinking_history_is_clipped_at_zero_with_a_note() -> None:
    shape = (30, 30, 30)
    f = np.ones(shape, np.float32)
    earlier, later = _ball(shape, (15, 15, 15), 12.0), _ball(shape, (15, 15, 15), 8.0)
    cal = calibrate([earlier, later], [0.0, 60.0], f, SPACING, rt_start_day=20.0)
    assert cal.v == 0 and cal.rho == 0 and cal.d_white == 0 and cal.fit.clipped
    assert cal.v_boundary < 0 and cal.sigma_v >= abs(cal.v_boundary)
    assert any("clipped at 0" in n for n in cal.notes)
    assert any("radiotherapy started on day 20" in n for n in cal.notes)
    draws = cal.draw_velocities(16, seed=3)
    assert np.all(draws >= 0) and np.array_equal(draws, cal.draw_velocities(16, seed=3))
    assert not np.array_equal(draws, cal.draw_velocities(16, seed=4))


def test_mean_boundary_shift_of_concentric_balls() -> None:
    shape = (40, 40, 40)
    a, b = _ball(shape, (20, 20, 20), 10.0), _ball(shape, (20, 20, 20), 16.0)
    phi_a, phi_b = sdf.signed_distance(a, SPACING), sdf.signed_distance(b, SPACING)
    assert mean_boundary_shift(a, phi_a, phi_b) == pytest.approx(6.0, abs=1.0)
    assert mean_boundary_shift(a, phi_a, phi_a) == 0
    assert mean_boundary_shift(a, phi_a, phi_b, np.full(shape, 0.25)) == pytest.approx(
        2 * mean_boundary_shift(a, phi_a, phi_b))
