"""Physics of the Fisher-Kolmogorov solver and of the treatment model (training package)."""

import numpy as np
import pytest

from gliomaforecast_training.cohort import treatment
from gliomaforecast_training.cohort.tumor_growth import FisherKolmogorov, face_conductances, stable_time_step


def _front_mm(u: np.ndarray, h: float) -> float:
    x = u.ravel()
    i = int(np.argmax(x < 0.5))
    return (i - 1 + (x[i - 1] - 0.5) / (x[i - 1] - x[i])) * h


def test_front_speed_is_two_sqrt_d_rho():
    d, rho, h = 0.1, 0.1, 0.25  # mm^2/day, 1/day, mm
    solver = FisherKolmogorov(np.full((1, 1, 1600), d, np.float32), (1.0, 1.0, h), rho)
    u0 = np.zeros((1, 1, 1600), np.float32)
    u0[..., :8] = 1.0
    solver.seed(u0)
    solver.advance(300.0)
    x1 = _front_mm(solver.u, h)
    solver.advance(600.0)
    speed = (_front_mm(solver.u, h) - x1) / 300.0
    assert speed == pytest.approx(2 * np.sqrt(d * rho), rel=0.05)


def test_mass_is_conserved_without_proliferation_and_nothing_enters_csf():
    rng = np.random.default_rng(0)
    d = rng.uniform(0.05, 0.5, (24, 20, 22)).astype(np.float32)
    d[:, :, :3] = 0.0            # "outside the brain"
    d[8:12, 8:12, 8:12] = 0.0    # a CSF pocket
    solver = FisherKolmogorov(d, (2.0, 2.0, 3.0), rho=0.0)
    u0 = np.zeros_like(d)
    u0[12:15, 5:8, 10:13] = 0.9
    solver.seed(u0)
    mass0 = float(solver.u.sum(dtype=np.float64))
    solver.advance(400.0)
    assert float(solver.u.sum(dtype=np.float64)) == pytest.approx(mass0, rel=1e-4)
    assert solver.u[d == 0].max() == 0.0
    assert solver.u.max() < 0.9  # it did spread


def test_time_step_respects_stability_limit_on_anisotropic_grid():
    dt = stable_time_step(1.5, (5.0, 1.0, 1.0))
    assert dt <= 1.0 / (2 * 1.5 * (1 / 25 + 1 + 1)) + 1e-12
    solver = FisherKolmogorov(np.full((6, 6, 6), 1.5, np.float32), (5.0, 1.0, 1.0), 0.1)
    assert solver.dt == pytest.approx(min(1.0, dt))
    # the explicit update is a convex combination: a voxel's outgoing coefficients sum to <= 1
    faces = face_conductances(np.full((6, 6, 6), 1.5), (5.0, 1.0, 1.0), solver.dt)
    assert sum(2 * float(f.max()) for f in faces) <= 1.0


def test_density_stays_in_unit_interval_through_growth_rt_and_resection():
    rng = np.random.default_rng(1)
    d = rng.uniform(0.0, 1.0, (20, 20, 20)).astype(np.float32)
    d[d < 0.2] = 0.0
    solver = FisherKolmogorov(d, (2.0, 2.0, 2.0), rho=0.2, clearance_days=20.0)
    u0 = np.zeros_like(d)
    u0[8:12, 8:12, 8:12] = 1.0
    solver.seed(u0)
    sf = treatment.surviving_fraction(rng.uniform(0, 2.5, d.shape), alpha=0.1)
    for day in treatment.fraction_days(10.0, 30):
        solver.advance(day)
        solver.irradiate(sf)
        for arr in (solver.u, solver.k, solver.density):
            assert arr.min() >= 0.0 and arr.max() <= 1.0 + 1e-6
    cavity = np.zeros(d.shape, bool)
    cavity[9:11, 9:11, 9:11] = True
    solver.remove(cavity)
    solver.advance(200.0)
    assert solver.density.max() <= 1.0 + 1e-6 and solver.density.min() >= 0.0
    assert solver.u.max() > 0.5  # regrowth after RT


def test_killed_cells_clear_with_their_mean_life():
    solver = FisherKolmogorov(np.full((4, 4, 4), 0.1, np.float32), (2.0, 2.0, 2.0), rho=0.0, clearance_days=30.0)
    solver.seed(np.full((4, 4, 4), 0.8, np.float32))
    solver.irradiate(np.full((4, 4, 4), 0.25, np.float32))
    assert solver.k.mean() == pytest.approx(0.6) and solver.u.mean() == pytest.approx(0.2)
    solver.advance(30.0)
    assert solver.k.mean() == pytest.approx(0.6 * np.exp(-1.0), rel=1e-3)


def test_lq_survival_and_schedule():
    sf = treatment.surviving_fraction(np.array([0.0, 2.0]), alpha=0.05, alpha_beta=10.0)
    assert sf[0] == 1.0 and sf[1] == pytest.approx(np.exp(-0.1 - 0.02))
    days = treatment.fraction_days(21.0, 30)
    assert len(days) == 30 and days[0] == 21 and days[-1] == 21 + 39
    assert all((day - 21) % 7 < 5 for day in days)  # no weekend fractions


def test_dose_map_prescription_and_penumbra_in_mm():
    z, y, x = np.ogrid[:30, :60, :60]
    for spacing in ((2.0, 1.0, 1.0), (5.0, 1.0, 1.0)):
        ctv = ((z - 15) * spacing[0]) ** 2 + (y - 30) ** 2 + (x - 30) ** 2 <= 12.0 ** 2  # 12 mm sphere
        dose = treatment.dose_map(ctv, spacing, 60.0)
        assert dose.max() <= 60.0 + 1e-3
        assert np.percentile(dose[ctv], 5) > 0.9 * 60.0 and dose[ctv].min() > 0.85 * 60.0  # CTV covered
        assert dose[15, 30, 30 - 12 - 15] < 0.05 * 60.0  # 15 mm outside the CTV: out of the field


def test_hypoxic_core_is_radioresistant_by_the_oer():
    density = np.array([0.1, 0.8, 0.9, 1.0], np.float32)
    oer = treatment.oxygen_enhancement_ratio(density, 3.0)
    np.testing.assert_allclose(oer, [1.0, 1.0, 2.0, 3.0], atol=1e-5)  # oxic below the onset, then linear
    sf = treatment.surviving_fraction(2.0 / oer, alpha=0.1)
    assert sf[0] == sf[1] < sf[2] < sf[3]
    assert sf[3] == pytest.approx(np.exp(-0.1 * 2 / 3 - 0.01 * (2 / 3) ** 2))  # alpha / OER, beta / OER^2


def test_image_blur_is_isotropic_in_mm_on_an_anisotropic_grid():
    from gliomaforecast.geometry import Grid
    from gliomaforecast_training.cohort.anatomy import Anatomy
    from gliomaforecast_training.cohort.imaging import synthesize

    grid = Grid.identity((25, 49, 25), (1.0, 0.5, 1.0))
    gm = np.ones(grid.shape, np.float32)
    zero = np.zeros(grid.shape, np.float32)
    anatomy = Anatomy(t1=gm, wm=zero, gm=gm, csf=zero, brain=np.ones(grid.shape, bool), grid=grid)
    density = zero.copy()
    density[12, 24, 12] = 1.0  # one voxel of edema signal: the image is the blur's impulse response
    flair = synthesize(anatomy, density, np.zeros(grid.shape, np.uint8), np.random.default_rng(0), noise_sd=0.0,
                       bias_sd=0.0, scale=30000.0, blur_mm=1.5)["flair"].astype(float)
    bump = flair - flair[0, 0, 0]
    variances_mm2 = []
    for axis, h in enumerate(grid.spacing):
        profile = bump.sum(axis=tuple(a for a in range(3) if a != axis))
        x_mm = (np.arange(profile.size) - profile.size // 2) * h
        variances_mm2.append(float((profile * x_mm**2).sum() / profile.sum()))
    np.testing.assert_allclose(variances_mm2, 1.5**2, rtol=0.05)
