"""The single-scan Fisher-KPP infiltration tail: the white-matter-equivalent distance by fast marching (against the
Euclidean distance transform, grey-matter slowing, CSF barriers, anisotropic spacing), the density, and the
``fisher-kpp-tail`` forecaster (its CTV prefers white matter; determinism; bad input)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from gliomaforecast.io.case import Case, load_case
from gliomaforecast.errors import InputError
from gliomaforecast.evaluation.protocols import prefix_case
from gliomaforecast.forecast import run_forecast
from gliomaforecast.forecasters.fisher_kpp.infiltration import tail_density, tissue_travel_distance

SAMPLE = Path(__file__).resolve().parents[2] / "Resources" / "SampleData" / "sample_patient"


def _ball(shape, centre, radius_vox):
    z, y, x = np.indices(shape)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius_vox ** 2


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 2.0), (3.0, 1.0, 1.5)])
def test_homogeneous_white_matter_gives_the_euclidean_distance_in_mm(spacing):
    shape = (30, 40, 36)
    seed = _ball(shape, (15, 20, 18), 3)
    t = tissue_travel_distance(seed, np.ones(shape), spacing)
    edt = ndimage.distance_transform_edt(~seed, sampling=spacing)
    far = edt > 3 * max(spacing)
    # measured from the seed's edge, half a voxel in front of its voxel centres: T = EDT - about half a voxel
    err = (edt - t)[far]
    assert np.all(t[seed] == 0) and np.all(np.isfinite(t))
    assert abs(np.median(err) - 0.5 * np.mean(spacing)) < 0.5 * max(spacing)
    assert np.all(np.abs(err) < max(spacing)) and np.corrcoef(t[far], edt[far])[0, 1] > 0.999


def test_grey_matter_slows_the_front_by_sqrt_ten_and_csf_stops_it():
    shape = (12, 12, 80)
    seed = np.zeros(shape, bool)
    seed[:, :, :4] = True
    f = np.ones(shape)
    f[:, :, 40:] = 0.1  # grey matter beyond x = 40
    t = tissue_travel_distance(seed, f, (1.0, 1.0, 1.0))
    line = t[6, 6]
    wm_rate = (line[35] - line[15]) / 20
    gm_rate = (line[70] - line[50]) / 20
    assert wm_rate == pytest.approx(1.0, rel=0.03) and gm_rate / wm_rate == pytest.approx(np.sqrt(10), rel=0.05)
    walled = f.copy()
    walled[:, :, 20] = 0.0  # a CSF sheet across the whole domain
    t2 = tissue_travel_distance(seed, walled, (1.0, 1.0, 1.0))
    assert np.all(np.isinf(t2[:, :, 20:])) and np.all(np.isfinite(t2[:, :, 4:20]))
    d = tail_density(t2, 1.73, 0.16)
    assert np.all(d[seed] == 1) and np.all(d[:, :, 20:] == 0) and 0 < d[6, 6, 10] < 0.16
    assert np.all(np.diff(d[6, 6, 4:20]) < 0)  # falls with the distance


def test_tail_bad_input():
    seed = np.zeros((5, 5, 5), bool)
    with pytest.raises(ValueError, match="seed"):
        tissue_travel_distance(seed, np.ones((5, 5, 5)), (1, 1, 1))
    seed[2, 2, 2] = True
    with pytest.raises(ValueError, match="shape"):
        tissue_travel_distance(seed, np.ones((5, 5, 4)), (1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        tissue_travel_distance(seed, np.ones((5, 5, 5)), (1, 0, 1))
    with pytest.raises(ValueError, match="length"):
        tail_density(np.zeros((2, 2, 2)), 0.0, 0.16)


def test_forecaster_ctv_prefers_white_matter_and_is_deterministic():
    planning = prefix_case(load_case(SAMPLE / "case.json"), 1)
    fc = run_forecast(planning, 200, "fisher-kpp-tail", n_bootstrap=0, samples=4)
    again = run_forecast(planning, 500, "fisher-kpp-tail", n_bootstrap=0, samples=4)
    p, u = fc.output.probability, fc.output.uncertainty
    gtv = planning.gtv(planning.timepoints[-1])
    assert np.array_equal(p, again.output.probability) and np.array_equal(u, again.output.uncertainty)
    assert p.dtype == np.float32 and np.all(p[gtv] == 1) and 0 < p[~gtv].max() <= 0.16
    assert np.all(u[gtv] == 0) and u.max() > 0
    brain = planning.brain_mask()
    assert not p[~brain & ~gtv].any()
    # iso-volumetric: the same volume as the standard CTV, moved from grey matter and CSF towards white matter
    assert fc.ctv_forecast.sum() == fc.ctv_standard.sum()
    wm = planning.tissue("wm")
    gained, lost = fc.ctv_forecast & ~fc.ctv_standard, fc.ctv_standard & ~fc.ctv_forecast
    assert gained.any() and wm[gained].mean() > 0.5 > wm[lost].mean()


def test_forecaster_bad_input_names_the_field():
    case = prefix_case(load_case(SAMPLE / "case.json"), 1)
    with pytest.raises(InputError, match="samples"):
        run_forecast(case, 200, "fisher-kpp-tail", n_bootstrap=0, samples=0)
    wm_only = Case.from_arrays(case.grid, [0.0], [case.gtv(case.timepoints[0])], patient_id="wm-only",
                               tissue={"wm": case.tissue("wm")})
    with pytest.raises(InputError, match=r"tissue\.gm"):
        run_forecast(wm_only, 200, "fisher-kpp-tail", n_bootstrap=0)
