"""The fisher-kpp forecaster through run_forecast on the sample patient (outputs on the case grid,
deterministic, no image nor displacement, notes with units), and its handling of bad or weak input."""

from __future__ import annotations

import numpy as np
import pytest

from gliomaforecast import sdf
from gliomaforecast.io.case import Case, load_case
from gliomaforecast.errors import InputError
from gliomaforecast.forecast import run_forecast
from gliomaforecast.forecasters import get_forecaster
from gliomaforecast.forecasters.base import ForecastRequest, no_progress
from gliomaforecast.geometry import Grid
from gliomaforecast.growth.fit import fit_growth

from conftest import SAMPLE_CASE, ball


def test_sample_patient_through_run_forecast_is_deterministic() -> None:
    case = load_case(SAMPLE_CASE)
    seen: list[float] = []
    a = run_forecast(case, 351, "fisher-kpp", samples=4, seed=5, n_bootstrap=5,
                     progress=lambda f, _m: seen.append(f))
    b = run_forecast(load_case(SAMPLE_CASE), 351, "fisher-kpp", samples=4, seed=5, n_bootstrap=5)
    out = a.output
    shape = case.grid.shape
    assert out.probability.shape == shape and out.uncertainty.shape == shape
    assert out.probability.dtype == np.float32 and out.uncertainty.dtype == np.float32
    assert out.image is None and out.displacement is None and out.models == []
    assert np.array_equal(out.probability, b.output.probability)
    assert np.array_equal(out.uncertainty, b.output.uncertainty)
    assert out.uncertainty.max() > 0
    text = " ".join(out.notes)
    for unit in ("mm^2/day", "/day", "mm/day", "D_w/rho", "sqrt(D_w/rho)", "tissue maps"):
        assert unit in text
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    # the forecast region holds the last GTV and grows inside the brain
    last = case.gtv(case.timepoints[-1])
    grown = out.probability > sdf.probability_from_signed_distance(np.float32(0.0))
    assert np.all(grown[last]) and grown.sum() > last.sum()
    assert not np.any(grown & ~case.brain_mask() & ~last)
    c = run_forecast(load_case(SAMPLE_CASE), 351, "fisher-kpp", samples=4, seed=6, n_bootstrap=5)
    assert np.array_equal(c.output.probability, out.probability)  # the point forecast ignores the seed
    assert not np.array_equal(c.output.uncertainty, out.uncertainty)


def _memory_case(radii, days=(0.0, 60.0), **kwargs) -> Case:
    grid = Grid.identity((30, 30, 30), (2.0, 2.0, 2.0))
    gtvs = [ball(grid.shape, (15, 15, 15), r, grid.spacing) for r in radii]
    return Case.from_arrays(grid, list(days), gtvs, **kwargs)


def _predict(case: Case, day: float, samples: int = 3):
    growth = fit_growth([0.0, 60.0], [1.0, 2.0], None, n_bootstrap=3, seed=0)  # unused by fisher-kpp
    request = ForecastRequest(case, day, growth, samples=samples, seed=0)
    return get_forecaster("fisher-kpp").predict(request, no_progress)


def test_shrinking_history_without_tissue_maps_holds_the_last_gtv_with_notes() -> None:
    case = _memory_case([12.0, 8.0], rt_start_day=20.0)
    out = _predict(case, 200.0)
    text = "\n".join(out.notes)
    assert "clipped at 0" in text and "no tissue maps" in text and "whole grid" in text
    assert "radiotherapy started on day 20" in text
    assert "v = 2 sqrt(D_w rho) = 0.0000 mm/day" in text
    last = case.gtv(case.timepoints[-1])
    assert np.array_equal(out.probability, sdf.tumor_probability(last, case.grid.spacing))
    assert out.image is None and out.displacement is None


def test_growing_ball_with_a_brain_mask_stays_inside_it() -> None:
    grid_shape = (30, 30, 30)
    brain = ball(grid_shape, (15, 15, 15), 20.0, (2.0, 2.0, 2.0))
    case = _memory_case([8.0, 11.0], brain_mask=brain)
    out = _predict(case, 300.0)
    assert "inside the brain mask" in " ".join(out.notes)
    region = out.probability > sdf.probability_from_signed_distance(np.float32(0.0))
    assert region.sum() > case.gtv(case.timepoints[-1]).sum() and not np.any(region & ~brain)


def test_bad_input_names_the_field() -> None:
    grid_shape = (30, 30, 30)
    wm = np.ones(grid_shape, np.float32)
    with pytest.raises(InputError, match="tissue.gm: the fisher-kpp forecaster needs both wm and gm"):
        _predict(_memory_case([8.0, 10.0], tissue={"wm": wm}), 200.0)
    with pytest.raises(InputError, match="timepoints: the fisher-kpp forecaster needs at least two"):
        _predict(_memory_case([8.0], days=(0.0,)), 200.0)
    with pytest.raises(InputError, match="timepoints: a forecast needs at least two scans"):
        run_forecast(_memory_case([8.0], days=(0.0,)), 200.0, "fisher-kpp")
