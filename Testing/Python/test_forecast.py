"""Forecast orchestration: CTVs, volume levelling, target-day and forecaster checks (persistence forecaster;
the evolution forecaster is exercised in test_forecast_cli.py with the shipped model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import ball
from gliomaforecast import sdf
from gliomaforecast.targets.ctv import standard_ctv
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
    assert fc.growth.model == "radiotherapy"  # RT (day 21) starts between the scans (days 0, 60, 120)
    assert fc.growth.free == ("initial_burden", "growth_rate", "surviving_fraction")  # three scans: three free
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
    with pytest.raises(InputError, match="timepoints: a forecast needs at least two scans.*use persistence"):
        run_forecast(path, 200.0, "evolution-field")  # persistence accepts one scan (issue 17 item 9)


def _tumor_ml(probability: np.ndarray, spacing) -> float:
    """Volume (mL) of the forecast tumor region: P above its value at phi = 0."""
    return float((probability > 1 / (1 + np.exp(0.1 * (0.0 - 15.0)))).sum() * np.prod(spacing) / 1000)


def test_evolution_volumes_follow_their_source() -> None:
    from conftest import SAMPLE_CASE
    from gliomaforecast.io.case import load_case
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
    from gliomaforecast.io.images import write_image
    path, grid = make_case()
    brain = np.zeros(grid.shape, np.uint8)
    brain[:, :2] = 1  # far from the tumor ball at the grid centre
    write_image(tmp_path / "brain_far.nii.gz", brain, grid)
    manifest = json.loads(path.read_text())
    manifest["brain_mask"] = "brain_far.nii.gz"
    path.write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"brain_far\.nii\.gz: brain_mask: does not overlap the GTV of timepoints\[2\]"):
        run_forecast(path, 200.0, "persistence")


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 2.0, 2.0), (5.0, 1.0, 1.0)])
def test_persistence_tumor_volume_is_the_gtv_volume_on_any_voxel_size(tmp_path: Path, spacing) -> None:
    """Issue 17: the forecast tumor is phi <= 0. With 'P > 0.8', a 1 mm voxel just outside the GTV (P = 0.802)
    counted as tumor and persistence reported more than the GTV."""
    from gliomaforecast import sdf
    from gliomaforecast.forecast import forecast_tumor_ml
    from gliomaforecast.geometry import Grid
    from gliomaforecast.io.images import write_image

    shape = tuple(int(round(60 / s)) for s in spacing)
    grid = Grid.identity(shape, spacing)
    tps = []
    for i, (day, radius) in enumerate(((0, 10.0), (60, 14.0))):
        gtv = ball(shape, tuple(n // 2 for n in shape), radius, spacing)
        write_image(tmp_path / f"g{i}.nii.gz", gtv.astype(np.uint8), grid)
        tps.append({"day": day, "gtv": f"g{i}.nii.gz"})
    (tmp_path / "case.json").write_text(json.dumps({"schema": "gliomaforecast.case/1", "patient_id": "V",
                                                    "timepoints": tps}))
    fc = run_forecast(tmp_path / "case.json", 120.0, "persistence", samples=1, n_bootstrap=2)
    gtv_ml = fc.gtv.sum() * grid.voxel_volume_ml
    assert forecast_tumor_ml(fc) == pytest.approx(gtv_ml, abs=1e-9)
    assert np.array_equal(sdf.tumor_region(fc.output.probability), fc.gtv)
    if spacing[2] == 1.0:  # the old definition over-counts at 1 mm in-plane
        assert np.count_nonzero(fc.output.probability > 0.8) > fc.gtv.sum()


def test_target_day_beyond_ten_years_is_refused_as_by_the_cli(make_case) -> None:
    """Issue 28: one target-day rule. ``run_forecast`` (the Slicer and evaluate path) refuses a day more than
    ``MAX_HORIZON_DAYS`` (10 years) after the last scan with the error of ``Case.target_day`` (the forecast
    command's check of --day), for a manifest and for a case held in memory; the last allowed day is forecast."""
    from gliomaforecast.io.case import MAX_HORIZON_DAYS, Case, load_case
    path, grid = make_case()
    case = load_case(path)
    last = case.timepoints[-1].day
    with pytest.raises(InputError) as cli:
        case.target_day(last + MAX_HORIZON_DAYS + 1)
    with pytest.raises(InputError) as api:
        run_forecast(path, last + MAX_HORIZON_DAYS + 1, "persistence")
    assert str(api.value) == str(cli.value)
    assert str(api.value).startswith("day: day 3771 is out of range: forecasts reach at most 3650 days (10 years)")
    memory = Case.from_arrays(grid, case.days, [case.gtv(tp) for tp in case.timepoints])
    with pytest.raises(InputError, match="^day: day 3771 is out of range"):
        run_forecast(memory, last + MAX_HORIZON_DAYS + 1, "persistence")
    fc = run_forecast(memory, last + MAX_HORIZON_DAYS, "persistence", samples=1, n_bootstrap=2)
    assert fc.target_day == 3770.0
