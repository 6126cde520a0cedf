"""Forecast orchestration: CTVs, volume levelling, target-day and forecaster checks (persistence forecaster;
the evolution forecaster is exercised in test_forecast_cli.py with the shipped model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ball
from gliomaforecast import sdf
from gliomaforecast.ctv import standard_ctv
from gliomaforecast.errors import InputError
from gliomaforecast.forecast import run_forecast
from gliomaforecast.forecasters.base import probability_for_volume


def test_persistence_forecast_and_both_ctvs(make_case) -> None:
    path, grid = make_case()
    fc = run_forecast(path, 200.0, "persistence", n_bootstrap=20)
    last_gtv = fc.case.gtv(fc.case.timepoints[-1])
    np.testing.assert_array_equal(fc.output.probability, sdf.tumor_probability(last_gtv, grid.spacing))
    np.testing.assert_array_equal(fc.ctv_standard, standard_ctv(last_gtv, grid.spacing, 15.0, fc.case.brain_mask()))
    assert fc.ctv_forecast.sum() == fc.ctv_standard.sum()  # iso-volumetric
    assert np.all(fc.ctv_forecast[last_gtv])  # GTV always inside
    assert fc.growth.model in ("exponential", "radiotherapy")
    assert set(fc.timings) >= {"load_s", "growth_s", "forecaster_s", "ctv_s", "total_s"}


def test_same_seed_same_forecast(make_case) -> None:
    path, _ = make_case()
    a = run_forecast(path, 250.0, "persistence", n_bootstrap=20, seed=3)
    b = run_forecast(path, 250.0, "persistence", n_bootstrap=20, seed=3)
    np.testing.assert_array_equal(a.ctv_forecast, b.ctv_forecast)
    np.testing.assert_array_equal(a.growth.predict([250.0]), b.growth.predict([250.0]))


def test_probability_for_volume_hits_the_volume_inside_the_brain() -> None:
    spacing = (2.0, 1.0, 1.0)
    shape = (16, 40, 40)
    phi = sdf.signed_distance(ball(shape, (8, 20, 20), 6.0, spacing), spacing)
    brain = np.ones(shape, bool)
    brain[:, :, :18] = False  # the tumor may not grow into the left part
    p = probability_for_volume(phi, 3.0, spacing, brain)
    region = p > 1 / (1 + np.exp(0.1 * (0.0 - 15.0)))  # P above its value at phi = 0 <=> phi < 0
    assert region.sum() * 2e-3 == pytest.approx(3.0, abs=2e-3)  # 3 mL = 1500 voxels of 2 uL
    assert not region[~brain].any()
    assert probability_for_volume(phi, 0.0, spacing, brain).max() > 0.8  # never an empty tumor


@pytest.mark.parametrize("kwargs,match", [  # the core names the parameter; the CLI turns it into the flag
    ({"day": 100.0}, r"^day: target day 100 is not after the last scan \(day 120\)"),
    ({"day": 200.0, "forecaster": "oracle"}, "^forecaster: unknown forecaster 'oracle'; choose from"),
    ({"day": 200.0, "samples": 0}, "^samples: must be at least 1"),
    ({"day": 200.0, "device": "tpu"}, "^device: must be auto, cpu or cuda"),
])
def test_bad_requests(make_case, kwargs, match: str) -> None:
    path, _ = make_case()
    day = kwargs.pop("day")
    with pytest.raises(InputError, match=match):
        run_forecast(path, day, **{"forecaster": "persistence", **kwargs})


def test_single_scan_is_refused(make_case) -> None:
    path, _ = make_case(n_timepoints=1)
    with pytest.raises(InputError, match="timepoints: a forecast needs at least two scans"):
        run_forecast(path, 200.0, "persistence")


def _tumor_ml(probability: np.ndarray, spacing) -> float:
    """Volume (mL) of the forecast tumor region: P above its value at phi = 0."""
    return float((probability > 1 / (1 + np.exp(0.1 * (0.0 - 15.0)))).sum() * np.prod(spacing) / 1000)


def test_evolution_volumes_follow_their_source() -> None:
    from conftest import SAMPLE_CASE
    from gliomaforecast.case import load_case
    case = load_case(SAMPLE_CASE)
    day = float(case.days[-1]) + 60
    grown = run_forecast(case, day, "evolution", samples=3, n_bootstrap=20)
    median = float(grown.growth.predict([day])[0][0])
    assert _tumor_ml(grown.output.probability, case.grid.spacing) == pytest.approx(median, rel=0.01, abs=0.05)
    field = run_forecast(case, day, "evolution-field", samples=3, n_bootstrap=20)
    ml = _tumor_ml(field.output.probability, case.grid.spacing)
    assert f"field {ml:.2f} mL" in field.output.notes[0]
    np.testing.assert_array_equal(grown.output.displacement, field.output.displacement)  # the same field
    assert field.output.uncertainty.max() > 0 and grown.output.uncertainty.max() > 0


def test_brain_mask_that_misses_the_gtv_is_an_input_error(make_case, tmp_path) -> None:
    from gliomaforecast.io import write_image
    path, grid = make_case()
    brain = np.zeros(grid.shape, np.uint8)
    brain[:, :2] = 1  # far from the tumor ball at the grid centre
    write_image(tmp_path / "brain_far.nii.gz", brain, grid)
    manifest = json.loads(path.read_text())
    manifest["brain_mask"] = "brain_far.nii.gz"
    path.write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"brain_far\.nii\.gz: brain_mask: does not overlap the GTV of timepoints\[2\]"):
        run_forecast(path, 200.0, "persistence")
