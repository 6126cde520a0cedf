"""Realism 3 of the virtual cohort (issue 29): the frozen generator (pinned hashes of a generated patient, realism 2
unchanged), and each mechanism on its own: the ESTRO-EANO dose target, radioresistant infiltration, the lower
enhancement density in irradiated brain, treatment-related FLAIR change, the FLAIR visible only from the GTV border,
the velocity cap, and the realism-3 calibration measures of ``cohort-realism``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from gliomaforecast.geometry import Grid
from gliomaforecast.io.case import load_case
from gliomaforecast.targets.volumes import standard_target
from gliomaforecast_training.cohort import imaging, realism3, treatment
from gliomaforecast_training.cohort.anatomy import Anatomy
from gliomaforecast_training.cohort.cohort import flair_band, generate_patient, measure_cohort_realism

# sha256 over (name, bytes) of every file of generate_patient(11, ..., 4.0, patient_id="VP-HASH", follow_up="dense",
# realism=N), in name order. Realism 2's was computed with the code before realism 3 existed (commit 918cf21).
REALISM2_HASH = "26ab8c25bfed2505d5bc820d804f266c9f8e03a03bbbc391e3a5aa1d8f2c6ca2"
REALISM3_HASH = "011dc2b3950ec3197f659746696adc8024465731a6c00102ed4779ee33ea6a26"


def _folder_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def patient3(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("r3") / "p"
    generate_patient(11, out, 4.0, patient_id="VP-HASH", follow_up="dense", realism=3)
    return out


def test_realism_2_regenerates_byte_for_byte(tmp_path):
    generate_patient(11, tmp_path / "p", 4.0, patient_id="VP-HASH", follow_up="dense", realism=2)
    assert _folder_hash(tmp_path / "p") == REALISM2_HASH


def test_realism_3_is_frozen(patient3):
    """The generator the realism-3 cohorts were made with (docs/cohort.md, "Realism 3"): any change to it shows."""
    assert _folder_hash(patient3) == REALISM3_HASH


def test_a_realism_3_patient_records_its_mechanisms(patient3):
    info = json.loads((patient3 / "simulation.json").read_text())["follow_up"]
    assert info["realism"] == 3 and info["dose_plan"] == "estro-eano"
    assert info["anatomy"]["template"] in realism3.TEMPLATE_NAMES
    lo, hi = realism3.ALPHA_INFILTRATIVE_RANGE
    assert lo <= info["alpha_infiltrative"] <= hi
    lo, hi = realism3.ALPHA_CORE_RANGE
    assert lo <= info["alpha_core"] <= hi
    par = json.loads((patient3 / "simulation.json").read_text())["parameters"]
    assert 2 * np.sqrt(par["d_white"] * par["rho"]) <= realism3.MAX_VELOCITY_MM_PER_DAY * (1 + 1e-6)


def _box(shape=(20, 24, 28), spacing=(2.0, 2.0, 2.0)):
    return Grid(shape, spacing, (0.0, 0.0, 0.0), np.eye(3))


def test_the_dose_target_is_the_core_standard_plan_not_the_flair_plan():
    grid = _box()
    labels = np.zeros(grid.shape, np.int16)
    labels[6:14, 8:16, 8:20] = imaging.EDEMA
    labels[9:11, 11:13, 12:14] = imaging.ENHANCING
    brain = np.ones(grid.shape, bool)
    target = realism3.dose_target(labels, grid.spacing, brain)
    core_plan = standard_target(labels == imaging.ENHANCING, grid.spacing, 15.0, brain_mask=brain)
    flair_plan = standard_target(labels > 0, grid.spacing, 15.0, brain_mask=brain)
    assert np.array_equal(target, core_plan) and target.sum() < flair_plan.sum()


def test_infiltrating_cells_survive_more_than_the_core_per_gray():
    density = np.array([0.3, 0.5, 0.95], np.float32)
    dose = np.full(3, 60.0, np.float32)
    sf = realism3.surviving_fraction_map(density, dose, 30, 0.12, 0.03, 10.0, hypoxic_oer=1.0)
    assert sf[0] == sf[1] > sf[2]  # oxic core: alpha 0.12 against 0.03
    expected = treatment.surviving_fraction(np.array([2.0]), 0.03, 10.0)[0]
    assert sf[0] == pytest.approx(expected, rel=1e-6)
    hypoxic = realism3.surviving_fraction_map(density, dose, 30, 0.12, 0.03, 10.0, hypoxic_oer=3.0)
    assert hypoxic[2] > sf[2] and hypoxic[0] == sf[0]


def test_irradiated_brain_enhances_at_a_lower_density_and_keeps_a_flair_change():
    dose = np.array([60.0, 50.0, 30.0, 0.0], np.float32)
    thr = realism3.enhancing_threshold_map(dose)
    assert list(thr[:2]) == [realism3.ENHANCING_THRESHOLD_IRRADIATED] * 2
    assert list(thr[2:]) == [imaging.ENHANCING_THRESHOLD] * 2
    planning = np.array([0.5, 0.5, 0.5, 0.1], np.float32)
    change = realism3.treatment_change(planning, dose, cavity=np.array([False, True, False, False]))
    assert list(change) == [True, False, False, False]  # >= 45 Gy, FLAIR-visible at planning, not the cavity
    labels = realism3.with_treatment_change(np.array([0, 0, 3, 0], np.int16), np.array([True, False, True, False]))
    assert list(labels) == [imaging.EDEMA, 0, 3, 0]


def test_the_velocity_cap_keeps_the_front_within_the_cited_range():
    for rho in (0.02, 0.035, 0.05):
        d = realism3.capped_d_white(0.65, rho)
        assert 2 * np.sqrt(d * rho) <= realism3.MAX_VELOCITY_MM_PER_DAY + 1e-12
    assert realism3.capped_d_white(0.05, 0.02) == 0.05  # a slow front is left alone


def test_the_synthetic_flair_shows_no_tumour_below_the_gtv_threshold():
    grid = _box((16, 16, 40))
    ones = np.ones(grid.shape, np.float32)
    anatomy = Anatomy(ones, ones, 0 * ones, 0 * ones, ones.astype(bool), grid)
    density = np.tile(np.linspace(0.0, 0.6, 40, dtype=np.float32), (16, 16, 1))
    labels = np.zeros(grid.shape, np.int16)
    kw = dict(noise_sd=0.0, bias_sd=0.0, blur_mm=0.0)
    new = imaging.synthesize(anatomy, density, labels, np.random.default_rng(0), visible_from=0.16, **kw)["flair"]
    old = imaging.synthesize(anatomy, density, labels, np.random.default_rng(0), **kw)["flair"]
    below = density[0, 0] < imaging.FLAIR_THRESHOLD
    normal = new[0, 0, 0]
    assert np.all(new[8, 8, below] == normal)  # invisible below the GTV threshold
    assert np.all(old[8, 8, below][-3:] > normal)  # the old rule showed a band there
    first_visible = np.argmax(~below)
    assert new[8, 8, first_visible] >= normal + 0.25 * realism3.FLAIR_STEP * normal  # a visible step at the border


def test_cohort_realism_reports_the_realism_3_calibration_figures(patient3, tmp_path):
    cohort = tmp_path / "c"
    cohort.mkdir()
    (cohort / "VP-HASH").symlink_to(patient3)
    entry = {"patient_id": "VP-HASH", "case": "VP-HASH/case.json"}
    (cohort / "cohort.json").write_text(json.dumps({"patients": [entry]}))
    report = measure_cohort_realism(cohort)
    rp = report["patients"][0]["recurrence_protocol"]
    summary = report["summary"]["recurrence_protocol"]
    assert summary["patients"] == 1 and summary["progressions"] == (rp["progression_day"] is not None)
    if rp["progression_day"] is not None and rp["enhancing_ml"] > 0:
        assert 0.0 <= rp["estro_eano_coverage"] <= rp["flair_coverage"] <= 1.0  # core + 15 mm lies in GTV + 15 mm
    case = load_case(patient3 / "case.json")
    band = flair_band(case, np.asarray(case.labels(case.timepoints[0])))
    assert band["contrast_sd"] is None or abs(band["contrast_sd"]) < 2.0
