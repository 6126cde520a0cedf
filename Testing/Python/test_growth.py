"""Growth model: closed form vs numerical ODE integration, fitting, bootstrap band, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from gliomaforecast.errors import InputError
from gliomaforecast.growth import PARAM_NAMES, GrowthParams, burden, burden_jacobian, fit_growth, log_cosh
from gliomaforecast.growth.fit import DEFAULTS
from gliomaforecast.growth.prior import HELD, population_prior

RT = 21.0
TRUE = GrowthParams(growth_rate=0.015, decay_rate=0.04, delay=25.0, slope=0.08, surviving_fraction=0.2,
                    initial_burden=10.0)
DAYS = np.array([0.0, 20.0, 60.0, 120.0, 180.0, 240.0, 300.0])


def ode_burden(days: np.ndarray, p: GrowthParams, t_rt: float) -> np.ndarray:
    """The ODE system of docs/growth.md integrated numerically (tight tolerances)."""
    a_rt = solve_ivp(lambda t, y: [p.growth_rate * y[0]], (0.0, t_rt), [p.initial_burden],
                     rtol=1e-12, atol=1e-14).y[0, -1]

    def rhs(t, y):
        return [p.growth_rate * y[0], -np.tanh(p.slope * (t - t_rt - p.delay)) * p.decay_rate * y[1]]

    post = days[days >= t_rt]
    sol = solve_ivp(rhs, (t_rt, days[-1]), [p.surviving_fraction * a_rt, (1 - p.surviving_fraction) * a_rt],
                    t_eval=post, rtol=1e-12, atol=1e-14, method="DOP853")
    pre = p.initial_burden * np.exp(p.growth_rate * days[days < t_rt])
    return np.concatenate([pre, sol.y.sum(axis=0)])


@pytest.mark.parametrize("p", [TRUE,
                               GrowthParams(0.03, 0.15, 0.0, 0.5, 0.05, 3.0),
                               GrowthParams(0.0, 0.01, 120.0, 0.01, 0.9, 250.0),
                               GrowthParams(0.005, 0.2, 60.0, 1.0, 0.02, 1.0)])
def test_closed_form_matches_ode_integration(p):
    days = np.linspace(0.0, 400.0, 81)
    exact = ode_burden(days, p, RT)
    np.testing.assert_allclose(burden(days, p, RT), exact, rtol=1e-6)


def test_without_rt_is_exponential_and_rt_changes_the_curve():
    days = np.linspace(0, 200, 11)
    np.testing.assert_allclose(burden(days, TRUE, None), 10.0 * np.exp(0.015 * days))
    with_rt = burden(days, TRUE, RT)
    np.testing.assert_allclose(with_rt[days < RT], 10.0 * np.exp(0.015 * days[days < RT]))
    assert with_rt[-1] < 0.5 * burden(days[-1:], TRUE, None)[0]


def test_vectorised_over_parameter_sets():
    sets = [TRUE, GrowthParams(0.02, 0.1, 10.0, 0.3, 0.5, 2.0), GrowthParams(0.01, 0.0, 0.0, 1.0, 1.0, 5.0)]
    stacked = GrowthParams.stack(sets)
    many = burden(DAYS, stacked, RT)
    assert many.shape == (3, DAYS.size)
    for row, p in zip(many, sets):
        np.testing.assert_array_equal(row, burden(DAYS, p, RT))


def test_stable_for_large_arguments():
    assert np.isfinite(log_cosh(1e6)) and log_cosh(1e6) == pytest.approx(1e6 - np.log(2.0))
    p = GrowthParams(0.01, 0.2, 180.0, 1.0, 0.1, 1.0)  # slope * delay = 180, cosh overflows float64 at ~710
    values = burden(np.array([0.0, 1000.0, 5000.0]), p, 10.0)
    assert np.all(np.isfinite(values)) and np.all(values >= 0)
    np.testing.assert_allclose(burden(np.array([400.0]), p, 10.0), ode_burden(np.array([400.0]), p, 10.0), rtol=1e-6)


def test_jacobian_matches_central_differences():
    days = np.linspace(0, 300, 16)
    jac = burden_jacobian(days, TRUE, RT)
    for i, name in enumerate(PARAM_NAMES):
        h = 1e-6 * max(abs(float(getattr(TRUE, name))), 1e-3)
        hi = GrowthParams(**{**TRUE.as_dict(), name: getattr(TRUE, name) + h})
        lo = GrowthParams(**{**TRUE.as_dict(), name: getattr(TRUE, name) - h})
        fd = (burden(days, hi, RT) - burden(days, lo, RT)) / (2 * h)
        np.testing.assert_allclose(jac[:, i], fd, rtol=1e-5, atol=1e-7 * np.abs(fd).max())


def test_fit_recovers_noise_free_curve():
    y = burden(DAYS, TRUE, RT)
    fit = fit_growth(DAYS, y, RT, n_bootstrap=0)
    assert fit.model == "radiotherapy" and set(fit.free) == set(PARAM_NAMES)
    np.testing.assert_allclose(fit.curve(DAYS), y, rtol=1e-3)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-6)


def test_fit_bootstrap_band_and_predict():
    rng = np.random.default_rng(3)
    y = burden(DAYS, TRUE, RT) * (1 + 0.1 * rng.standard_normal(DAYS.size))
    fit = fit_growth(DAYS, y, RT, n_bootstrap=30, seed=1)
    med, lo, hi = fit.predict(DAYS)
    assert med.shape == lo.shape == hi.shape == DAYS.shape
    assert np.all(lo <= med) and np.all(med <= hi) and np.all(hi > lo)
    curves = fit.bootstrap_curves(DAYS)
    assert curves.shape == (30, DAYS.size)
    np.testing.assert_allclose(med, np.median(curves, axis=0))
    np.testing.assert_allclose(hi, np.percentile(curves, 97.5, axis=0))
    ss = ((y - med) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert fit.r_squared == pytest.approx(1 - ss)
    assert fit.r_squared > 0.9
    scalar = fit.predict(150.0)
    assert all(np.ndim(v) == 0 for v in scalar)
    summary = fit.parameter_summary()
    for name, s in summary.items():
        lo_b, hi_b = s["lower_2.5"], s["upper_97.5"]
        assert lo_b <= s["median"] <= hi_b, name


def test_fit_respects_bounds_and_is_deterministic():
    rng = np.random.default_rng(5)
    y = burden(DAYS, TRUE, RT) * (1 + 0.1 * rng.standard_normal(DAYS.size))
    a = fit_growth(DAYS, y, RT, n_bootstrap=15, seed=7)
    b = fit_growth(DAYS, y, RT, n_bootstrap=15, seed=7)
    c = fit_growth(DAYS, y, RT, n_bootstrap=15, seed=8)
    np.testing.assert_array_equal(a.predict(DAYS), b.predict(DAYS))
    assert not np.array_equal(a.predict(DAYS)[2], c.predict(DAYS)[2])
    s = np.ravel(a.bootstrap.surviving_fraction)
    assert np.all((s >= 0) & (s <= 1))
    assert np.all(np.ravel(a.bootstrap.decay_rate) >= 0) and np.all(np.ravel(a.bootstrap.slope) >= 0.005)


def test_bootstrap_noise_is_unbiased_not_clipped(monkeypatch):
    """The bootstrap data are burden * (1 + noise * N(0, 1)): values above and below the data, mean ~ data."""
    import gliomaforecast.growth.fit as gf
    seen = []
    original = gf._Problem.solve

    def spy(self, y, start):
        seen.append(np.array(y) * self.scale)
        return original(self, y, start)

    monkeypatch.setattr(gf._Problem, "solve", spy)
    y = np.array([10.0, 12.0, 15.0])
    gf.fit_growth([0, 30, 60], y, None, n_bootstrap=400, noise=0.3, seed=0)
    central, boot = seen[0], np.array(seen[1:])  # the central fit to the data first, then the refits
    np.testing.assert_allclose(central, y)
    assert boot.shape == (400, 3)
    ratio = boot / y
    assert ratio.max() > 1.5 and ratio.min() < 0.5
    np.testing.assert_allclose(ratio.mean(axis=0), 1.0, atol=0.05)
    np.testing.assert_allclose(ratio.std(axis=0), 0.3, rtol=0.15)


def test_no_rt_or_rt_after_scans_fits_exponential_and_says_so():
    days = np.array([0.0, 30.0, 60.0])
    y = 5.0 * np.exp(0.02 * days)
    none = fit_growth(days, y, None, n_bootstrap=5)
    late = fit_growth(days, y, 60.0, n_bootstrap=5)
    for fit in (none, late):
        assert fit.model == "exponential"
        assert fit.params.growth_rate == pytest.approx(0.02, rel=1e-4)
        assert fit.params.initial_burden == pytest.approx(5.0, rel=1e-4)
    assert "no RT" in none.note and "not before the last scan" in late.note
    assert late.model_rt_start_day is None and late.rt_start_day == 60.0


def test_two_points_fit_exponential_and_shrinkage_allowed():
    fit = fit_growth([10.0, 40.0], [8.0, 4.0], 20.0, n_bootstrap=5, prior=None)
    assert fit.model == "exponential" and "two scans" in fit.note
    assert fit.params.growth_rate == pytest.approx(np.log(0.5) / 30, rel=1e-4)
    np.testing.assert_allclose(fit.curve([10.0, 40.0]), [8.0, 4.0], rtol=1e-5)


def test_few_points_hold_unidentifiable_parameters_at_the_prior_or_defaults():
    y = burden(DAYS[:4], TRUE, RT)
    prior = population_prior()
    fit = fit_growth(DAYS[:4], y, RT, n_bootstrap=40, seed=3)
    assert fit.model == "radiotherapy" and len(fit.free) == 4
    assert set(fit.fixed) == {"delay", "slope"} and "held at the population prior" in fit.note
    assert fit.params.delay == fit.fixed["delay"] == prior.values["delay"]
    assert fit.params.slope == prior.values["slope"]
    # each bootstrap refit holds one training patient's delay and slope; the free parameters are refitted
    boot = fit.bootstrap
    rows = {tuple(r) for r in prior.patients[:, [HELD.index("delay"), HELD.index("slope")]].round(9)}
    drawn = {(round(float(d), 9), round(float(s), 9)) for d, s in zip(np.ravel(boot.delay), np.ravel(boot.slope))}
    assert drawn <= rows and len(drawn) > 1
    without = fit_growth(DAYS[:4], y, RT, n_bootstrap=3, prior=None)
    assert "held at defaults" in without.note and without.params.delay == DEFAULTS["delay"]
    assert set(np.round(np.ravel(without.bootstrap.delay), 9)) == {DEFAULTS["delay"]}


def test_time_origin_after_day_zero():
    days = DAYS + 500.0
    y = burden(days, TRUE, RT + 500.0)
    fit = fit_growth(days, y, RT + 500.0, n_bootstrap=0)
    np.testing.assert_allclose(fit.curve(days), y, rtol=1e-3)


@pytest.mark.parametrize("days, burdens, rt, field, text", [
    ([0, 30, 20], [1, 2, 3], None, "days", "unsorted"),
    ([0, 30, 30], [1, 2, 3], None, "days", "duplicate"),
    ([0, 30, 60], [1, -2, 3], None, "burdens", "negative"),
    ([0, 30, 60], [1, np.nan, 3], None, "burdens", "NaN"),
    ([0, 30, 60], [0, 0, 0], None, "burdens", "zero"),
    ([0], [1], None, "days", "at least two"),
    ([0, 30], [1, 2, 3], None, "burdens", "one burden per day"),
    ([0, np.nan], [1, 2], None, "days", "finite"),
    ([0, 30, 60], [1, 2, 3], np.inf, "rt_start_day", "finite"),
])
def test_bad_input_is_a_clear_input_error(days, burdens, rt, field, text):
    with pytest.raises(InputError) as err:
        fit_growth(days, burdens, rt, n_bootstrap=2, source="lesion.json")
    assert err.value.field == field and text in str(err.value)
    assert str(err.value).startswith("lesion.json: ")


def test_bad_bootstrap_settings():
    with pytest.raises(InputError, match="n_bootstrap"):
        fit_growth([0, 1], [1, 2], n_bootstrap=-1)
    with pytest.raises(InputError, match="noise"):
        fit_growth([0, 1], [1, 2], noise=float("nan"))


def _lmfit_solution(problem, y: np.ndarray, start: dict) -> dict:
    """The same fit through lmfit.minimize(method="least_squares"), its Parameters built here."""
    import lmfit

    from gliomaforecast.growth import fit as gf
    from gliomaforecast.growth.model import GrowthParams, burden_jacobian

    pars = lmfit.Parameters()
    x0, lo, hi, held = problem.free_start(start)
    for name, value, low, high in zip(problem.free, x0, lo, hi):
        pars.add(name, value=value, min=low, max=high)
    for name, value in held.items():
        pars.add(name, value=value, vary=False)

    def growth(p):
        return GrowthParams(**{n: float(v) for n, v in p.valuesdict().items()})

    result = lmfit.minimize(
        lambda p: burden(problem.t, growth(p), problem.rt) - y,
        pars,
        method="least_squares",
        jac=lambda p: burden_jacobian(problem.t, growth(p), problem.rt, problem.free),
        ftol=gf.FTOL,
        xtol=gf.FTOL,
        gtol=gf.FTOL,
    )
    return {n: float(result.params[n].value) for n in gf.RT_ORDER}


@pytest.mark.parametrize("n_scans, rt, prior", [(7, RT, None), (3, RT, "population"), (2, RT, "population"), (4, None, None)])
def test_fit_is_lmfits_least_squares_to_the_last_bit(n_scans: int, rt: float | None, prior: str | None) -> None:
    """The fit (central and every bootstrap refit) runs scipy's least_squares as lmfit's minimize does, without
    importing lmfit: the same solution, bit for bit, from the same data and start, for every model the fit chooses."""
    from gliomaforecast.growth import fit as gf

    rng = np.random.default_rng(11)
    days = DAYS[:n_scans]
    y = burden(days, TRUE, RT) * (1 + 0.1 * rng.standard_normal(days.size))
    held = gf.population_prior() if prior else None
    model, free, _ = gf.choose_model(days, rt, held)
    fixed = gf._held_values(model, free, held if model == "radiotherapy" else None)
    problem = gf._Problem(days, y, rt if model == "radiotherapy" else None, free, fixed)
    start = problem.start()
    for target in (problem.y, problem.y * (1 + 0.1 * rng.standard_normal(days.size))):
        assert problem.solve(target, start) == _lmfit_solution(problem, target, start)


def test_constant_fit_of_one_scan_holds_the_volume() -> None:
    from gliomaforecast.growth.fit import constant_fit

    fit = constant_fit(30.0, 12.5, rt_start_day=21.0, seed=4, source="case.json")
    assert (fit.model, fit.free, fit.fixed, fit.n_bootstrap, fit.noise, fit.seed) == ("exponential", (), {}, 0, 0.0, 4)
    assert fit.note == "one scan: burden held constant (no growth model can be fitted)"
    assert fit.days.tolist() == [30.0] and fit.burdens.tolist() == [12.5] and fit.rt_start_day == 21.0
    assert fit.bootstrap is None and fit.model_rt_start_day is None
    assert (fit.params.growth_rate, fit.params.initial_burden) == (0.0, 12.5)
    median, lower, upper = fit.predict([30.0, 400.0])
    assert median.tolist() == lower.tolist() == upper.tolist() == [12.5, 12.5]
    assert constant_fit(0.0, 3.0).rt_start_day is None
    with pytest.raises(InputError) as err:
        constant_fit(0.0, -1.0, source="case.json")
    assert str(err.value) == "case.json: burdens: negative burden -1"


@pytest.mark.parametrize("days, burdens, kwargs, message", [
    ([0, 1], [1, 2, 3], {}, "burdens: need one burden per day, got (3,) burdens for (2,) days"),
    ([0], [1], {}, "days: need at least two scans to fit growth, got 1"),
    ([0, float("nan")], [1, 2], {}, "days: days must be finite numbers"),
    ([0, 5, 5], [1, 2, 3], {}, "days: duplicate days: day 5 follows day 5; days must be strictly increasing"),
    ([0, 5, 3], [1, 2, 3], {}, "days: unsorted days: day 3 follows day 5; days must be strictly increasing"),
    ([0, 5], [1, float("inf")], {}, "burdens: burdens must be finite (NaN or infinite value given)"),
    ([0, 5], [0, 0], {}, "burdens: all burdens are zero: nothing to fit"),
    ([0, 5], [1, 2], {"rt_start_day": float("nan")}, "rt_start_day: must be a finite day, got nan"),
    ([0, 5], [1, 2], {"n_bootstrap": 2.5}, "n_bootstrap: must be a non-negative integer, got 2.5"),
    ([0, 5], [1, 2], {"n_bootstrap": True}, "n_bootstrap: must be a non-negative integer, got True"),
    ([0, 5], [1, 2], {"noise": -0.1}, "noise: must be a non-negative fraction, got -0.1"),
    (["a", 5], [1, 2], {}, "days: days and burdens must be numbers"),
])
def test_bad_series_are_refused_in_full(days, burdens, kwargs, message) -> None:
    with pytest.raises(InputError) as err:
        fit_growth(days, burdens, source="lesion.json", **kwargs)
    assert str(err.value) == f"lesion.json: {message}"
    fit_growth([0, 5], [0, 2], n_bootstrap=0)  # one zero burden is fine; no bootstrap is fine
