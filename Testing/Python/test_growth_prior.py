"""The growth model's population prior: two scans around the RT start fit S, the rest held at the prior."""

import json

import numpy as np
import pytest

from gliomaforecast.errors import InputError
from gliomaforecast.growth.fit import DEFAULTS, fit_growth
from gliomaforecast.growth.model import GrowthParams, burden
from gliomaforecast.growth.prior import HELD, load_prior, population_prior, prior_from_values, prior_path, prior_record

ROWS = np.array([[0.010, 0.10, 5.0, 0.3], [0.020, 0.05, 10.0, 0.2], [0.015, 0.08, 7.0, 0.5]])
PRIOR = prior_from_values(ROWS)


def test_two_scans_around_rt_fit_surviving_fraction_and_regrow():
    rt = 20.0
    truth = GrowthParams(0.015, 0.08, 7.0, 0.3, 0.05, 30.0)  # the prior's medians, S = 0.05: 30 -> 7.9 mL
    days = np.array([0.0, 110.0])
    y = burden(days, truth, rt)
    fit = fit_growth(days, y, rt, n_bootstrap=40, prior=PRIOR)
    assert fit.model == "radiotherapy" and fit.free == ("initial_burden", "surviving_fraction")
    assert fit.fixed == {n: pytest.approx(v) for n, v in zip(HELD, np.median(ROWS, axis=0))}
    np.testing.assert_allclose(fit.curve(days), y, rtol=1e-4)
    assert fit.params.surviving_fraction == pytest.approx(0.05, abs=1e-4)
    # after the nadir the surviving part regrows: the forecast rises above the last scan, as the truth does
    later = np.array([200.0, 300.0])
    np.testing.assert_allclose(fit.curve(later), burden(later, truth, rt), rtol=1e-3)
    assert fit.curve([300.0])[0] > y[-1]
    # each bootstrap refit holds one training patient's values: the band carries the population's spread
    drawn = np.stack([np.ravel(getattr(fit.bootstrap, n)) for n in HELD], axis=1)
    assert all(any(np.allclose(d, r) for r in ROWS) for d in drawn)
    assert len({tuple(d) for d in drawn}) == len(ROWS)
    med, lo, hi = fit.predict([300.0])
    assert lo[0] < med[0] < hi[0] and (hi[0] - lo[0]) > 0.2 * med[0]
    # without the prior the same two scans extrapolate the RT response for ever
    plain = fit_growth(days, y, rt, n_bootstrap=0, prior=None)
    assert plain.model == "exponential" and plain.curve([300.0])[0] < y[-1]


def test_prior_changes_nothing_where_it_does_not_apply():
    days, y = np.array([0.0, 50.0, 100.0]), np.array([10.0, 14.0, 20.0])
    for rt, d, v in ((None, days[:2], y[:2]), (120.0, days[:2], y[:2]), (None, days, y)):
        a = fit_growth(d, v, rt, n_bootstrap=5, prior=PRIOR)
        b = fit_growth(d, v, rt, n_bootstrap=5, prior=None)
        assert a.model == b.model and a.params == b.params
        np.testing.assert_array_equal(a.bootstrap_curves([150.0]), b.bootstrap_curves([150.0]))


def test_three_scans_around_rt_hold_the_unidentified_parameters_at_the_prior():
    days, y = np.array([0.0, 50.0, 100.0]), np.array([10.0, 6.0, 9.0])
    a = fit_growth(days, y, 20.0, n_bootstrap=5, prior=PRIOR)
    b = fit_growth(days, y, 20.0, n_bootstrap=5, prior=None)
    assert a.model == b.model == "radiotherapy" and a.free == b.free and "decay_rate" not in a.free
    for name in ("decay_rate", "delay", "slope"):
        assert a.fixed[name] == getattr(a.params, name) == PRIOR.values[name]
        assert b.fixed[name] == DEFAULTS[name]
    assert a.params != b.params
    assert "population prior" in a.note and "defaults" in b.note


def test_same_seed_same_fit():
    a, b = (fit_growth([0.0, 100.0], [30.0, 8.0], 20.0, n_bootstrap=20, seed=3, prior=PRIOR) for _ in range(2))
    np.testing.assert_array_equal(a.bootstrap_curves([250.0]), b.bootstrap_curves([250.0]))


def test_shipped_prior_is_read_and_used_by_default(tmp_path, monkeypatch):
    shipped = population_prior()
    assert shipped is not None and shipped.patients.shape[1] == len(HELD) and len(shipped.patients) >= 10
    assert json.loads(prior_path().read_text())["cohort_seed"] == 2024  # the training cohort, not validation
    fit = fit_growth([0.0, 100.0], [30.0, 8.0], 20.0, n_bootstrap=0)
    assert fit.model == "radiotherapy" and fit.fixed["growth_rate"] == pytest.approx(shipped.values["growth_rate"])
    monkeypatch.setenv("GLIOMAFORECAST_MODELS_DIR", str(tmp_path))  # no prior there: the exponential model
    assert population_prior() is None
    assert fit_growth([0.0, 100.0], [30.0, 8.0], 20.0, n_bootstrap=0).model == "exponential"


@pytest.mark.parametrize("edit, field", [
    (lambda r: r.update(schema="other"), "schema"),
    (lambda r: r.update(held=["growth_rate"]), "held"),
    (lambda r: r.update(patients=[[0.01, 0.1, 5.0]]), "patients"),
    (lambda r: r.update(patients=[[0.01, 0.1, float("nan"), 0.3]]), "patients"),
    (lambda r: r.update(patients=[[0.01, -0.1, 5.0, 0.3]]), "patients"),
    (lambda r: r.pop("patients"), "patients"),
])
def test_bad_prior_file_names_file_and_field(tmp_path, edit, field):
    record = prior_record(PRIOR, cohort="x")
    edit(record)
    path = tmp_path / "growth_prior.json"
    path.write_text(json.dumps(record))
    with pytest.raises(InputError) as exc:
        load_prior(path)
    assert exc.value.field == field and "growth_prior.json" in str(exc.value)


def test_prior_record_round_trip(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(prior_record(PRIOR, cohort="c")))
    back = load_prior(path)
    assert back.values == PRIOR.values
    np.testing.assert_array_equal(back.patients, ROWS)


def test_training_patient_values_recover_the_held_parameters():
    from gliomaforecast_training.cohort.growth_population import patient_values
    truth = GrowthParams(0.012, 0.06, 10.0, 0.2, 0.1, 40.0)
    days = np.array([0.0, 25.0, 35.0, 50.0, 70.0, 110.0, 160.0, 220.0, 280.0, 340.0])
    values = patient_values(days, burden(days, truth, 20.0), 20.0)
    np.testing.assert_allclose(values, [0.012, 0.06, 10.0, 0.2], rtol=1e-3)
    assert patient_values(days[:4], burden(days[:4], truth, 20.0), 20.0) is None  # delay and slope not identified
    assert patient_values(days, burden(days, truth, None), None) is None  # no RT: nothing about its response


def test_growth_prior_command_without_identifying_cases_is_one_line(tmp_path, capsys):
    """A cohort whose cases cannot free all four held parameters (the sample patient has four scans): one line
    naming the cohort, exit 2, nothing written."""
    from pathlib import Path

    from gliomaforecast_training.cli import main
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    sample = Path(__file__).resolve().parents[2] / "Resources" / "SampleData" / "sample_patient"
    (cohort / "P1").symlink_to(sample, target_is_directory=True)
    out = tmp_path / "prior.json"
    assert main(["growth-prior", str(cohort), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(cohort) in err[0] and "six scans" in err[0]
    assert not out.exists()


def test_prior_frees_burden_fits_only_a0_and_s_whatever_the_number_of_scans():
    days, y = np.array([0.0, 50.0, 100.0, 150.0]), np.array([10.0, 6.0, 9.0, 14.0])
    burden_only = fit_growth(days, y, 20.0, n_bootstrap=5, prior=PRIOR, prior_frees="burden")
    many = fit_growth(days, y, 20.0, n_bootstrap=5, prior=PRIOR, prior_frees="scans")
    assert burden_only.free == ("initial_burden", "surviving_fraction") and len(many.free) == 4
    for name in HELD:
        assert getattr(burden_only.params, name) == PRIOR.values[name]
    assert "4 scans fit the initial burden and the surviving fraction" in burden_only.note
    with pytest.raises(InputError, match="prior_frees"):
        fit_growth(days, y, 20.0, n_bootstrap=0, prior=PRIOR, prior_frees="all")
