"""The out-of-distribution guard (issue 35 item 3): the scan features on scans whose values are known, their
invariance to a scanner's gain, the score against a reference, the reference file's checks, and the guard's record
and warning in a forecast."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import ball
from gliomaforecast.errors import InputError
from gliomaforecast.geometry import Grid
from gliomaforecast.input_shift import (
    FEATURES,
    SCHEMA,
    InputReference,
    load_reference,
    reference_stats,
    robust_spread,
    scan_features,
    shift_score,
    z_scores,
)
from gliomaforecast.io.case import Case

GRID = Grid.identity((24, 40, 40), (2.0, 2.0, 2.0))


def _case(flair: np.ndarray, grid: Grid = GRID, brain: np.ndarray | None = None, t1ce: bool = True) -> Case:
    gtv = ball(grid.shape, (12, 20, 20), 10.0, grid.spacing)
    images = {"flair": flair}
    if t1ce:
        images["t1ce"] = 0.5 * flair
    return Case.from_arrays(grid, [0.0], [gtv], images=[images], brain_mask=brain)


def _two_tone(grid: Grid = GRID) -> tuple[np.ndarray, np.ndarray]:
    brain = ball(grid.shape, (12, 20, 20), 30.0, grid.spacing)
    gtv = ball(grid.shape, (12, 20, 20), 10.0, grid.spacing)
    flair = np.where(brain, 100.0, 0.0).astype(np.float32)
    flair[gtv] = 160.0
    return flair, brain


def test_the_features_of_a_two_tone_scan() -> None:
    flair, brain = _two_tone()
    f = scan_features(_case(flair, brain=brain))
    assert set(f) == set(FEATURES)
    assert (f["slice_mm"], f["inplane_mm"]) == (2.0, 2.0)
    assert f["brain_ml"] == pytest.approx(np.count_nonzero(brain) * 0.008)
    # the tumour holds more than 1 % of the brain: the intensity scale (99th percentile) is the tumour's 160
    for m in ("flair", "t1ce"):
        assert f[f"{m}_p10"] == f[f"{m}_p50"] == f[f"{m}_p90"] == pytest.approx(100 / 160)
        assert f[f"{m}_contrast"] == pytest.approx(1.6)
        assert f[f"{m}_noise"] == 0.0  # neighbouring voxels differ only at the tumour's border
        assert f[f"{m}_bias"] == pytest.approx(0.0, abs=1e-6)
    # without a brain mask the FLAIR's positive voxels are the brain
    assert scan_features(_case(flair))["brain_ml"] == f["brain_ml"]
    assert "t1ce_p50" not in scan_features(_case(flair, brain=brain, t1ce=False))


def test_a_gain_changes_nothing_but_noise_a_bias_field_and_slices_do() -> None:
    flair, brain = _two_tone()
    rng = np.random.default_rng(0)
    base = scan_features(_case(flair, brain=brain))
    gained = scan_features(_case(3.7 * flair, brain=brain))
    for key in base:
        assert gained[key] == pytest.approx(base[key], rel=1e-5, abs=1e-6), key
    noisy = scan_features(_case(flair * (1 + 0.05 * rng.standard_normal(flair.shape)).astype(np.float32), brain=brain))
    assert noisy["flair_noise"] > 0.02 and noisy["flair_bias"] < 0.005
    x = np.arange(GRID.shape[2], dtype=np.float32) / GRID.shape[2]
    biased = scan_features(_case(flair * (0.7 + 0.6 * x)[None, None, :], brain=brain))
    assert biased["flair_bias"] > 0.015 and biased["flair_noise"] < 0.02
    thick = Grid.identity((12, 40, 40), (4.0, 2.0, 2.0))
    flair_t, brain_t = _two_tone(thick)
    assert scan_features(_case(flair_t, thick, brain_t))["slice_mm"] == 4.0


def _reference(features: list[dict[str, float]], threshold: float = 3.0) -> InputReference:
    return InputReference.from_stats("ref.json", reference_stats(features), threshold)


def test_the_score_is_the_largest_robust_z_and_names_its_feature() -> None:
    rows = [{"slice_mm": 2.0, "flair_noise": v} for v in (0.02, 0.03, 0.025, 0.021, 0.029)]
    ref = _reference(rows)
    assert ref.median == {"slice_mm": 2.0, "flair_noise": 0.025}
    assert ref.spread["slice_mm"] == pytest.approx(0.1)  # constant in training: 5 % of the median
    assert ref.spread["flair_noise"] == pytest.approx(1.4826 * 0.004)
    score, name = shift_score({"slice_mm": 3.0, "flair_noise": 0.025, "t2_whatever": 9.0}, ref)
    assert (name, score) == ("slice_mm", pytest.approx(10.0))
    assert z_scores({"flair_noise": 0.0}, ref) == {"flair_noise": pytest.approx(-0.025 / (1.4826 * 0.004))}
    assert robust_spread(np.zeros(4), 0.0) == 1e-6


def _write(tmp_path: Path, record: dict) -> Path:
    (tmp_path / "ref.json").write_text(json.dumps(record))
    return tmp_path


@pytest.mark.parametrize("change, field", [
    ({"schema": "other/1"}, "schema"),
    ({"features": {}}, "features"),
    ({"features": {"slice_mm": {"median": 2.0, "spread": 0.0}}}, "features.slice_mm"),
    ({"features": {"volume": {"median": 2.0, "spread": 1.0}}}, "features.volume"),
    ({"threshold": -1}, "threshold"),
])
def test_a_bad_reference_file_is_named_with_its_field(tmp_path: Path, change: dict, field: str) -> None:
    good = {"schema": SCHEMA, "features": {"slice_mm": {"median": 2.0, "spread": 0.1}}, "threshold": 3.0}
    ref = load_reference("ref.json", _write(tmp_path, good))
    assert (ref.threshold, ref.median, ref.name) == (3.0, {"slice_mm": 2.0}, "ref.json")
    with pytest.raises(InputError) as err:
        load_reference("ref.json", _write(tmp_path, {**good, **change}))
    assert err.value.field == field and str(err.value).startswith(str(tmp_path / "ref.json"))


def test_every_learned_forecaster_that_reads_images_has_a_shipped_reference() -> None:
    from gliomaforecast.forecasters import REGISTRY

    names = {e.name: e.input_reference for e in REGISTRY if e.input_reference}
    assert set(names) == {"multitask-diffusion", "guided-ddim", "latent-diffusion", "recurrence-unet"}
    for name, file in names.items():
        ref = load_reference(file)
        assert ref.threshold >= 3.0 and set(ref.median) >= {"slice_mm", "flair_p50", "flair_noise"}, name


def test_a_forecast_records_its_input_shift_and_warns_above_the_threshold(tmp_path: Path, monkeypatch) -> None:
    """A guarded forecaster (persistence underneath, its reference written here) on the sample: the score and every
    feature in forecast.json; above the threshold the warning line in the warnings; below it none."""
    import dataclasses

    from gliomaforecast.forecast import run_forecast
    from gliomaforecast.forecasters import registry
    from gliomaforecast.output.record import forecast_record
    from gliomaforecast.plausibility import forecast_warnings

    sample = Path(__file__).resolve().parents[2] / "Resources" / "SampleData" / "sample_patient" / "case.json"
    guarded = dataclasses.replace(registry.entry("persistence"), name="guarded", input_reference="ref.json")
    monkeypatch.setattr(registry, "REGISTRY", (*registry.REGISTRY, guarded))
    monkeypatch.setenv("GLIOMAFORECAST_MODELS_DIR", str(tmp_path))
    stats = {"slice_mm": {"median": 1.0, "spread": 0.1}, "flair_p50": {"median": 0.55, "spread": 0.05}}
    for threshold, flagged in ((3.0, True), (50.0, False)):
        _write(tmp_path, {"schema": SCHEMA, "features": stats, "threshold": threshold})
        fc = run_forecast(sample, 351.0, "guarded", samples=1, n_bootstrap=2)
        shift = fc.input_shift
        assert shift.feature == "slice_mm" and shift.score == pytest.approx(10.0)  # 2 mm scans, 1 mm reference
        assert shift.flagged is flagged and shift.reference == "ref.json"
        warnings = forecast_warnings(fc)
        line = ("inputs unlike the scans guarded was trained on: out-of-distribution score 10.0 > 3.0 (slice_mm is "
                "+10.0 robust SD from the training scans' median; docs/input-shift.md)")
        assert (line in warnings) is flagged
        record = forecast_record(fc, warnings)["input_shift"]
        assert record["flagged"] is flagged and record["features"]["slice_mm"] == 2.0
        assert set(record["z"]) == {"slice_mm", "flair_p50"} and "input_shift_s" in fc.timings
    assert run_forecast(sample, 351.0, "persistence", samples=1, n_bootstrap=2).input_shift is None
    (tmp_path / "ref.json").unlink()  # a models folder of one's own training: no guard, and the forecast says so
    fc = run_forecast(sample, 351.0, "guarded", samples=1, n_bootstrap=2)
    assert fc.input_shift is None and forecast_record(fc, [])["input_shift"] is None
    assert fc.output.notes[-1] == ("input shift: no ref.json in the models folder, so the inputs were not compared "
                                   "with guarded's training scans")


def _cohort(root: Path, n: int, noise: float, seed: int) -> Path:
    from gliomaforecast.io.images import write_image

    rng = np.random.default_rng(seed)
    for p in range(n):
        folder = root / f"P{p}"
        folder.mkdir(parents=True)
        flair, brain = _two_tone()
        tps = []
        for i in range(2):
            image = (flair * (1 + noise * rng.standard_normal(flair.shape))).astype(np.float32)
            write_image(folder / f"d{i}_flair.nii.gz", image, GRID)
            write_image(folder / f"d{i}_gtv.nii.gz", ball(GRID.shape, (12, 20, 20), 8.0 + i, GRID.spacing)
                        .astype(np.uint8), GRID)
            tps.append({"day": 60 * i, "images": {"flair": f"d{i}_flair.nii.gz"}, "gtv": f"d{i}_gtv.nii.gz"})
        write_image(folder / "brain.nii.gz", brain.astype(np.uint8), GRID)
        (folder / "case.json").write_text(json.dumps({"schema": "gliomaforecast.case/1", "patient_id": f"P{p}",
                                                      "timepoints": tps, "brain_mask": "brain.nii.gz"}))
    return root


def test_the_training_command_writes_a_reference_the_core_reads(tmp_path: Path, capsys) -> None:
    from gliomaforecast_training.cli import main

    train, val = _cohort(tmp_path / "train", 3, 0.05, 1), _cohort(tmp_path / "val", 2, 0.05, 2)
    out = tmp_path / "models" / "ref.json"
    out.parent.mkdir()
    assert main(["input-reference", "--train", str(train), "--validation", str(val), "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["source"]["train_scans"] == 6 and record["source"]["validation_scans"] == 4
    assert record["features"]["flair_contrast"]["n"] == 6 and "t1ce_p50" not in record["features"]
    ref = load_reference("ref.json", out.parent)
    assert ref.threshold >= 3.0  # the validation quantile, at least 3 robust SDs
    noisy = _cohort(tmp_path / "noisy", 1, 0.3, 3)  # six times the noise: flagged on flair_noise
    from gliomaforecast.io.case import load_case

    score, feature = shift_score(scan_features(load_case(noisy / "P0" / "case.json")), ref)
    assert feature == "flair_noise" and score > ref.threshold
    assert main(["input-reference", "--train", str(train), "--validation", str(val), "--quantile", "1.5",
                 "--out", str(tmp_path / "bad.json")]) == 2
    assert capsys.readouterr().err.strip().endswith("quantile: must lie in [0.5, 1), got 1.5")
    assert not (tmp_path / "bad.json").exists()
