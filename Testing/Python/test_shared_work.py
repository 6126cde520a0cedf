"""Work shared between the forecasts of one case (an evaluation forecasts each input prefix with several forecasters
and at several target days): derived volumes are computed once per case object, returned read-only, never leak
from a longer case into its prefix, and sharing them changes no result."""

from __future__ import annotations

import numpy as np
import pytest

from gliomaforecast import models, sdf
from gliomaforecast.io.case import load_case
from gliomaforecast.deformation import case_evolution_field
from gliomaforecast.evaluation.protocols import prefix_case
from gliomaforecast.forecast import fit_case_growth, run_forecast
from gliomaforecast.targets.volumes import build_targets, standard_target


def test_derived_is_computed_once_and_read_only(make_case):
    path, grid = make_case(3)
    case = load_case(path)
    calls = []

    def compute() -> np.ndarray:
        calls.append(1)
        return np.arange(4.0)

    first = case.derived(("probe", 0), compute)
    again = case.derived(("probe", 0), compute)
    assert len(calls) == 1 and again is first
    with pytest.raises(ValueError):
        first[0] = 1.0
    phi = case.gtv_distance(case.timepoints[1])
    np.testing.assert_array_equal(phi, sdf.signed_distance(case.gtv(case.timepoints[1]), grid.spacing))
    assert not phi.flags.writeable


def test_prefix_does_not_inherit_volumes_derived_from_later_scans(make_case):
    path, _ = make_case(3)
    case = load_case(path)
    late_field, late_gap = case_evolution_field(case, -2, -1)  # scans 1 -> 2
    case.gtv_distance(case.timepoints[0])
    prefix = prefix_case(case, 2)
    assert not any(key[0] == "derived" for key in prefix._cache)
    field, gap = case_evolution_field(prefix, -2, -1)  # scans 0 -> 1: its own field, not the longer case's
    assert gap == 60.0 and late_gap == 60.0
    assert not np.array_equal(field, late_field)
    again, _ = case_evolution_field(prefix, -2, -1)
    assert again is field


def test_shared_volumes_change_no_forecast(make_case):
    """Two forecasters at two days on one prefix object (sharing its derived volumes) give exactly the maps and CTVs
    of forecasts on fresh copies of the case."""
    path, _ = make_case(3)
    shared = prefix_case(load_case(path), 3)
    growth = fit_case_growth(shared, 20, 0)
    for name in ("evolution-field", "fisher-kpp"):
        for day in (200.0, 300.0):
            a = run_forecast(shared, day, name, samples=2, n_bootstrap=20, growth=growth)
            b = run_forecast(load_case(path), day, name, samples=2, n_bootstrap=20)
            np.testing.assert_array_equal(a.output.probability, b.output.probability)
            np.testing.assert_array_equal(a.output.uncertainty, b.output.uncertainty)
            np.testing.assert_array_equal(a.ctv_standard, b.ctv_standard)
            np.testing.assert_array_equal(a.ctv_forecast, b.ctv_forecast)
    assert any(key[:2] == ("derived", "standard_ctv") for key in shared._cache)


def test_build_targets_with_a_given_standard_ctv_equals_building_it(make_case):
    path, grid = make_case(3)
    case = load_case(path)
    gtv = case.gtv(case.timepoints[-1])
    brain = np.ones(grid.shape, bool)
    brain[:, :, :3] = False
    score = sdf.tumor_probability(case.gtv(case.timepoints[0]) | gtv, grid.spacing)
    built = build_targets(gtv, grid.spacing, 10.0, score=score, brain_mask=brain)
    standard = standard_target(gtv, grid.spacing, 10.0, brain_mask=brain)
    given = build_targets(gtv, grid.spacing, 10.0, score=score, brain_mask=brain, standard=standard)
    np.testing.assert_array_equal(built.standard, standard)
    np.testing.assert_array_equal(given.forecast, built.forecast)


def test_one_session_per_model_file_content():
    a = models.load_model("evolution", threads=1)
    b = models.load_model("evolution", threads=1)
    c = models.load_model("evolution", threads=2)
    assert a.session is b.session
    assert c.session is not a.session


def test_evaluation_workers_share_the_cores(monkeypatch):
    """Sessions opened without a thread count take $GLIOMAFORECAST_ORT_THREADS (evaluate --jobs N sets each worker's
    share of the cores); a bad value names the variable."""
    from gliomaforecast.evaluation import cohort as cohort_evaluation
    from gliomaforecast.errors import InputError

    monkeypatch.setenv(models.THREADS_VAR, "1")
    one = models.load_model("evolution")
    assert one.session.get_session_options().intra_op_num_threads == 1
    monkeypatch.setenv(models.THREADS_VAR, "two")
    with pytest.raises(InputError, match="GLIOMAFORECAST_ORT_THREADS"):
        models.load_model("evolution")
    monkeypatch.delenv(models.THREADS_VAR)
    cohort_evaluation._share_cores(64)
    assert models._check_threads(None) == 1  # never fewer than one thread per worker
    monkeypatch.delenv(models.THREADS_VAR)
    monkeypatch.setenv(models.THREADS_VAR, "3")
    cohort_evaluation._share_cores(1)  # a value the user set is kept
    assert models._check_threads(None) == 3
