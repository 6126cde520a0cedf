"""The growth fit's record in full (issue 34): the model choice and its note on every branch, the values held for
each model, the parameter summary, the cap, the fit record's settings and the refusals' exact text. Each assertion
is one a wrong value in growth/fit.py would break (benchmarks/results/mutation.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gliomaforecast.errors import InputError
from gliomaforecast.growth import PARAM_NAMES, GrowthParams, burden, fit_growth
from gliomaforecast.growth.fit import choose_model, constant_fit
from gliomaforecast.growth.prior import prior_from_values

TRUE = GrowthParams(growth_rate=0.015, decay_rate=0.04, delay=25.0, slope=0.08, surviving_fraction=0.2,
                    initial_burden=10.0)
# two training patients (growth_rate, decay_rate, delay, slope): medians 0.02, 0.03, 15, 0.2
PRIOR = prior_from_values(np.array([[0.01, 0.02, 10.0, 0.1], [0.03, 0.04, 20.0, 0.3]]))


@pytest.mark.parametrize("days, rt, prior, frees, expected", [
    ([0, 30, 60], None, None, "scans",
     ("exponential", ("initial_burden", "growth_rate"), "exponential growth: no RT start given")),
    ([0, 30, 60], 60.0, PRIOR, "scans",
     ("exponential", ("initial_burden", "growth_rate"),
      "exponential growth: RT starts on day 60, not before the last scan (day 60), so its effect is not observed; "
      "predictions ignore RT")),
    ([0, 30], 20.0, PRIOR, "scans",
     ("radiotherapy", ("initial_burden", "surviving_fraction"),
      "radiotherapy model: two scans fit the initial burden and the surviving fraction; growth rate, decay rate, "
      "delay and slope held at the population prior (2 training patients' median; each bootstrap refit draws one "
      "patient's values)")),
    ([0, 30, 60], 20.0, PRIOR, "burden",
     ("radiotherapy", ("initial_burden", "surviving_fraction"),
      "radiotherapy model: 3 scans fit the initial burden and the surviving fraction; growth rate, decay rate, "
      "delay and slope held at the population prior (2 training patients' median; each bootstrap refit draws one "
      "patient's values)")),
    ([0, 30], 20.0, None, "scans",
     ("exponential", ("initial_burden", "growth_rate"),
      "exponential growth: two scans identify only the initial burden and one rate; the RT response is not "
      "modelled")),
    ([0, 30, 60, 90], 20.0, PRIOR, "scans",
     ("radiotherapy", ("initial_burden", "growth_rate", "surviving_fraction", "decay_rate"),
      "radiotherapy model: 4 free parameters for 4 scans; held at the population prior (2 training patients' "
      "median; each bootstrap refit draws one patient's values): delay = 15, slope = 0.2")),
    ([0, 30, 60, 90], 20.0, None, "scans",
     ("radiotherapy", ("initial_burden", "growth_rate", "surviving_fraction", "decay_rate"),
      "radiotherapy model: 4 free parameters for 4 scans; held at defaults: delay = 7, slope = 0.1")),
    ([0, 30, 60, 90, 120, 150, 180], 20.0, None, "scans",
     ("radiotherapy", ("initial_burden", "growth_rate", "surviving_fraction", "decay_rate", "delay", "slope"),
      "radiotherapy model: 6 free parameters for 7 scans")),
])
def test_the_model_choice_and_its_note_on_every_branch(days, rt, prior, frees, expected) -> None:
    assert choose_model(np.asarray(days, float), rt, prior, frees) == expected


def test_an_exponential_fit_reports_no_rt_response_and_its_free_parameters() -> None:
    days = np.array([0.0, 30.0, 60.0])
    fit = fit_growth(days, 5.0 * np.exp(0.02 * days), None, n_bootstrap=0)
    p = fit.params
    # the exponential model holds no decay, no delay, slope 1 and every cell surviving (what growth.json reports)
    assert (p.decay_rate, p.delay, p.slope, p.surviving_fraction) == (0.0, 0.0, 1.0, 1.0)
    assert fit.fixed == {}
    summary = fit.parameter_summary()
    assert {n: s["fixed"] for n, s in summary.items()} == {
        "growth_rate": False, "decay_rate": True, "delay": True, "slope": True, "surviving_fraction": True,
        "initial_burden": False}
    # without a bootstrap the band of every parameter is its value
    for name in PARAM_NAMES:
        value = float(getattr(p, name))
        assert summary[name] == {"value": value, "median": value, "lower_2.5": value, "upper_97.5": value,
                                 "fixed": summary[name]["fixed"]}


def test_the_parameter_summary_is_the_bootstraps_percentiles() -> None:
    days = np.array([0.0, 20.0, 60.0, 120.0, 180.0])
    fit = fit_growth(days, burden(days, TRUE, 21.0), 21.0, n_bootstrap=30, seed=2, prior=None)
    summary = fit.parameter_summary()
    assert list(summary) == list(PARAM_NAMES)
    for name in PARAM_NAMES:
        boot = np.ravel(getattr(fit.bootstrap, name))
        lo, med, hi = np.percentile(boot, [2.5, 50.0, 97.5])
        assert summary[name] == {"value": float(getattr(fit.params, name)), "median": float(med),
                                 "lower_2.5": float(lo), "upper_97.5": float(hi), "fixed": name not in fit.free}
    assert [n for n, s in summary.items() if s["fixed"]] == ["slope"]  # 5 scans: 5 free parameters
    assert summary["growth_rate"]["lower_2.5"] < summary["growth_rate"]["upper_97.5"]


def test_the_record_keeps_its_data_and_settings() -> None:
    fit = fit_growth([0, 30, 60], [2, 3, 5], None, n_bootstrap=7, noise=0.2, seed=5)
    assert fit.days.tolist() == [0.0, 30.0, 60.0] and fit.burdens.tolist() == [2.0, 3.0, 5.0]
    assert (fit.n_bootstrap, fit.noise, fit.seed) == (7, 0.2, 5)
    assert np.ravel(fit.bootstrap.growth_rate).size == 7


def test_the_band_is_the_bootstrap_curves_percentiles_and_the_cap_clips_every_curve() -> None:
    days = np.array([0.0, 30.0, 60.0, 90.0])
    fit = fit_growth(days, 2.0 * np.exp(0.02 * days), None, n_bootstrap=25, seed=1)
    query = np.array([0.0, 90.0, 200.0])
    curves = fit.bootstrap_curves(query)
    median, lower, upper = fit.predict(query)
    lo, _, hi = np.percentile(curves, [2.5, 50.0, 97.5], axis=0)
    np.testing.assert_array_equal(lower, lo)
    np.testing.assert_array_equal(upper, hi)
    uncapped = fit.curve(query)
    fit.cap = 20.0  # e.g. the brain's volume
    assert uncapped[-1] > 20.0 > uncapped[0]
    np.testing.assert_array_equal(fit.curve(query), np.minimum(uncapped, 20.0))
    np.testing.assert_array_equal(fit.bootstrap_curves(query), np.minimum(curves, 20.0))
    assert fit.predict(query)[2].max() == 20.0


def test_r_squared_is_nan_for_a_flat_series_and_exact_for_small_volumes() -> None:
    assert math.isnan(fit_growth([0, 30, 60], [3.0, 3.0, 3.0], None, n_bootstrap=0).r_squared)
    y = np.array([0.1, 0.3, 0.2])  # total sum of squares 0.02 mL^2, well under 1
    fit = fit_growth([0, 30, 60], y, None, n_bootstrap=0)
    central = fit.predict([0, 30, 60])[0]
    assert fit.r_squared == pytest.approx(1.0 - ((y - central) ** 2).sum() / ((y - y.mean()) ** 2).sum(), rel=1e-12)
    assert 0.0 < fit.r_squared < 1.0


def test_volumes_under_one_ml_are_a_series_to_fit() -> None:
    fit = fit_growth([0, 30], [0.5, 0.8], None, n_bootstrap=0)
    assert fit.params.growth_rate == pytest.approx(math.log(0.8 / 0.5) / 30, rel=1e-5)


@pytest.mark.parametrize("days, burdens, kwargs, message", [
    ([[0, 1], [2, 3]], [[1, 2], [3, 4]], {}, "burdens: need one burden per day, got (2, 2) burdens for (2, 2) days"),
    ([0, 0.5, 0.2], [1, 2, 3], {}, "days: unsorted days: day 0.2 follows day 0.5; days must be strictly increasing"),
    ([0, 5], [1, 2], {"noise": 1.5}, "noise: 1.5 is over the limit of 1 (a fraction)"),
    ([0, 5], [1, 2], {"prior_frees": "all"}, "prior_frees: must be 'scans' or 'burden', got 'all'"),
])
def test_more_refusals_in_full(days, burdens, kwargs, message) -> None:
    with pytest.raises(InputError) as err:
        fit_growth(days, burdens, source="lesion.json", **kwargs)
    assert str(err.value) == f"lesion.json: {message}"


def test_the_bootstrap_and_noise_limits_on_their_edges(monkeypatch) -> None:
    assert fit_growth([0, 5], [1, 2], noise=1.0, n_bootstrap=2).noise == 1.0  # the limit itself is allowed
    monkeypatch.setenv("GLIOMAFORECAST_MAX_BOOTSTRAP", "5")
    assert fit_growth([0, 5], [1, 2], n_bootstrap=5).n_bootstrap == 5
    with pytest.raises(InputError) as err:
        fit_growth([0, 5], [1, 2], n_bootstrap=6, source="lesion.json")
    assert str(err.value) == ("lesion.json: n_bootstrap: 6 bootstrap refits is over the limit of 5 "
                              "(set GLIOMAFORECAST_MAX_BOOTSTRAP to raise it)")


def test_a_one_scan_record_checks_its_rt_start() -> None:
    with pytest.raises(InputError) as err:
        constant_fit(30.0, 2.0, rt_start_day=float("inf"), source="case.json")
    assert str(err.value) == "case.json: rt_start_day: must be a finite day, got inf"
