"""Cohort evaluation: metric values against direct calls, Wilcoxon output, time-gap bins, skipped
patients, determinism across --jobs, and the evaluate command's bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from skimage import metrics as skm

from conftest import ball
from gliomaforecast import evaluation, sdf
from gliomaforecast.cli import main
from gliomaforecast.targets.ctv import standard_ctv
from gliomaforecast.evaluation.cohort import (COLUMNS, CohortResult, EvaluationSettings, evaluate_cohort, gap_bin,
                                              summarize)
from gliomaforecast.errors import InputError
from gliomaforecast.geometry import Grid
from gliomaforecast.io.images import read_image, write_image

GRID = Grid.identity((10, 30, 30), (3.0, 2.0, 2.0))


def _labels(center, radius_mm: float) -> np.ndarray:
    """BraTS-like labels: necrotic core (1) in an enhancing shell (3) in edema (2)."""
    labels = np.zeros(GRID.shape, np.int16)
    labels[ball(GRID.shape, center, radius_mm, GRID.spacing)] = 2
    labels[ball(GRID.shape, center, 0.7 * radius_mm, GRID.spacing)] = 3
    labels[ball(GRID.shape, center, 0.35 * radius_mm, GRID.spacing)] = 1
    return labels


def _patient(root: Path, pid: str, days: list[int], radii: list[float], centers: list[tuple],
             last_labels: bool) -> None:
    folder = root / pid
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(pid) + days[-1])
    tps = []
    for i, (day, radius, center) in enumerate(zip(days, radii, centers)):
        gtv = ball(GRID.shape, center, radius, GRID.spacing)
        write_image(folder / f"d{i}_flair.nii.gz", (rng.normal(100, 5, GRID.shape) + 40 * gtv).astype(np.float32), GRID)
        tp = {"day": day, "images": {"flair": f"d{i}_flair.nii.gz"}}
        if i == len(days) - 1 and last_labels:
            write_image(folder / f"d{i}_seg.nii.gz", _labels(center, radius), GRID)
            tp["labels"] = f"d{i}_seg.nii.gz"
        else:
            write_image(folder / f"d{i}_gtv.nii.gz", gtv.astype(np.uint8), GRID)
            tp["gtv"] = f"d{i}_gtv.nii.gz"
        tps.append(tp)
    brain = np.zeros(GRID.shape, np.uint8)
    brain[1:-1, 1:-1, 1:-1] = 1
    write_image(folder / "brain.nii.gz", brain, GRID)
    (folder / "case.json").write_text(json.dumps({"schema": "gliomaforecast.case/1", "patient_id": pid,
                                                  "rt_start_day": 14, "timepoints": tps,
                                                  "brain_mask": "brain.nii.gz"}))


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    root = tmp_path / "cohort"
    _patient(root, "VP-B", [0, 50, 130], [5.0, 6.0, 10.0], [(5, 10, 10), (5, 10, 10), (5, 17, 17)], True)
    _patient(root, "VP-A", [0, 40, 90, 500], [5.0, 6.0, 7.0, 9.0], [(5, 14, 14)] * 3 + [(5, 16, 16)], False)
    _patient(root, "VP-C", [0], [5.0], [(5, 11, 11)], False)  # one scan, no truth: skipped (persistence needs 1 + 1)
    return root


def _settings(**kw) -> EvaluationSettings:
    return EvaluationSettings(("persistence",), **{"seed": 1, "n_bootstrap": 5, **kw})


def test_gap_bins() -> None:
    assert [gap_bin(d) for d in (0, 60, 60.5, 61, 120, 121, 180, 181, 280, 281, 365, 366, 1000)] == [
        "0-60", "0-60", "61-120", "61-120", "61-120", "121-180", "121-180", "181-280", "181-280", "281-365",
        "281-365", ">365", ">365"]
    with pytest.raises(ValueError):
        gap_bin(-1)


def test_rows_match_direct_metric_calls(cohort: Path) -> None:
    result = evaluate_cohort(cohort, _settings())
    assert result.n_cases == 3
    assert [r["patient_id"] for r in result.rows] == ["VP-A", "VP-B"]  # sorted by id
    assert [(s["patient_id"], s["forecaster"]) for s in result.skipped] == [("VP-C", None)]
    assert "at least 2" in result.skipped[0]["reason"]
    a, b = result.rows
    assert list(a) == list(COLUMNS)
    assert (a["gap_days"], a["gap_bin"], a["recurrence_source"], a["n_priors"]) == (410, ">365", "gtv", 3)
    assert (b["gap_days"], b["gap_bin"], b["recurrence_source"], b["n_priors"]) == (80, "61-120", "labels", 2)

    # VP-B by hand: persistence = the last prior GTV's logistic map; truth = the last labels' GTV (1, 2, 3)
    spacing = GRID.spacing
    prior = ball(GRID.shape, (5, 10, 10), 6.0, spacing)
    labels = _labels((5, 17, 17), 10.0)
    truth_gtv = labels > 0
    brain = np.zeros(GRID.shape, bool)
    brain[1:-1, 1:-1, 1:-1] = True
    p, q = sdf.tumor_probability(prior, spacing), sdf.tumor_probability(truth_gtv, spacing)
    assert b["rmse"] == pytest.approx(evaluation.rmse(p, q, brain))
    assert b["bce"] == pytest.approx(evaluation.bce(p, q, brain))
    assert b["kl"] == pytest.approx(evaluation.kl_divergence(p, q, brain))
    assert b["ece"] == pytest.approx(evaluation.expected_calibration_error(p, q, 10, brain))
    # the forecast tumor is the map's region phi <= 0 (issue 17: not P > 0.8, which depends on the voxel size)
    assert b["dice_tumor"] == pytest.approx(evaluation.dice(prior & brain, truth_gtv & brain))
    assert b["hd95_mm"] == pytest.approx(evaluation.hd95(prior, truth_gtv, spacing))
    assert b["volume_truth_ml"] == pytest.approx(evaluation.volume_ml(truth_gtv, spacing))
    standard = standard_ctv(prior, spacing, 15.0, brain_mask=brain)
    enh, enh_nec = labels == 3, np.isin(labels, (1, 3))
    assert b["coverage_standard_enhancing"] == pytest.approx(evaluation.coverage(standard, enh))
    assert b["coverage_standard_enhancing_necrosis"] == pytest.approx(evaluation.coverage(standard, enh_nec))
    assert b["coverage_standard_gtv"] == pytest.approx(evaluation.coverage(standard, truth_gtv))
    assert 0 < b["coverage_standard_enhancing"] < 1  # the shifted, grown tumor escapes the margin
    assert b["ctv_volume_ml"] == pytest.approx(evaluation.volume_ml(standard, spacing))
    # pooled calibration = one reliability diagram over the brain voxels of both patients
    prior_a = ball(GRID.shape, (5, 14, 14), 7.0, spacing)
    truth_a = ball(GRID.shape, (5, 16, 16), 9.0, spacing)
    p_a, q_a = sdf.tumor_probability(prior_a, spacing), sdf.tumor_probability(truth_a, spacing)
    direct = evaluation.reliability_diagram(np.concatenate([p_a[brain], p[brain]]),
                                            np.concatenate([q_a[brain], q[brain]]), 10)
    pooled = summarize(result)["forecasters"]["persistence"]["calibration"]
    assert pooled["counts"] == direct.counts.tolist()
    assert pooled["pooled_ece"] == pytest.approx(direct.ece)
    assert a["ece"] == pytest.approx(evaluation.expected_calibration_error(p_a, q_a, 10, brain))
    # without labels the future GTV is the recurrence for both definitions
    assert a["coverage_standard_enhancing"] == a["coverage_standard_enhancing_necrosis"] == a["coverage_standard_gtv"]
    # FLAIR: persistence's image is the last FLAIR, so it scores exactly as the baseline; both by hand on the slices
    # holding the last input or the target GTV, inside the brain's box
    flair_last = read_image(cohort / "VP-B" / "d1_flair.nii.gz")[0]
    flair_truth = read_image(cohort / "VP-B" / "d2_flair.nii.gz")[0]
    slices = np.nonzero((prior | truth_gtv).any(axis=(1, 2)))[0]
    box = (slices, slice(1, 29), slice(1, 29))
    rng = float(flair_truth[box].max() - flair_truth[box].min())
    assert b["last_flair_psnr_db"] == pytest.approx(skm.peak_signal_noise_ratio(flair_truth[box].astype(float),
                                                                                flair_last[box].astype(float),
                                                                                data_range=rng))
    ssim = np.mean([skm.structural_similarity(t, f, data_range=rng)
                    for t, f in zip(flair_truth[box].astype(float), flair_last[box].astype(float))])
    assert b["last_flair_ssim"] == pytest.approx(ssim)
    assert (b["flair_psnr_db"], b["flair_ssim"]) == (b["last_flair_psnr_db"], b["last_flair_ssim"])
    bins = summarize(result)["forecasters"]["persistence"]["gap_bins"]
    assert bins["61-120"]["n_images"] == 1 and bins["61-120"]["flair_ssim"] == pytest.approx(ssim)


def test_summary_wilcoxon_and_bins() -> None:
    cov_f = [0.9, 0.8, 0.95, 0.7, 1.0, math.nan]
    cov_s = [0.8, 0.82, 0.9, 0.6, 0.9, 0.5]
    rows = []
    for i, (f, s) in enumerate(zip(cov_f, cov_s)):
        row = {c: 0.1 * i for c in COLUMNS}
        row.update(patient_id=f"P{i}", forecaster="persistence", gap_bin=gap_bin(40 * i), gap_days=40 * i,
                   coverage_forecast_enhancing=f, coverage_standard_enhancing=s,
                   coverage_forecast_enhancing_necrosis=s, coverage_standard_enhancing_necrosis=s)
        rows.append(row)
    result = CohortResult(Path("c"), _settings(), 6, rows, [], [], [])
    summary = summarize(result)
    test = summary["forecasters"]["persistence"]["coverage"]["enhancing"]["wilcoxon"]
    ref = evaluation.compare_plans(cov_f, cov_s, [r["patient_id"] for r in rows])
    assert test["p_value"] == pytest.approx(ref.p_value) and test["statistic"] == pytest.approx(ref.statistic)
    assert (test["n"], test["n_excluded"]) == (5, 1)
    assert test["effect_size"] == pytest.approx(ref.effect_size)
    undefined = summary["forecasters"]["persistence"]["coverage"]["enhancing+necrosis"]["wilcoxon"]
    assert undefined["p_value"] is None and "no patient has a coverage difference" in undefined["reason"]
    bins = summary["forecasters"]["persistence"]["gap_bins"]
    assert list(bins) == ["0-60", "61-120", "121-180", "181-280", "281-365", ">365"]
    assert [bins[k]["n"] for k in bins] == [2, 2, 1, 1, 0, 0]
    assert bins["0-60"]["rmse"] == pytest.approx(0.05)  # mean of rows 0 and 1
    assert bins["281-365"]["rmse"] is None
    stats = summary["forecasters"]["persistence"]["metrics"]["rmse"]
    assert stats["n"] == 6 and stats["mean"] == pytest.approx(0.25)
    json.dumps(summary, allow_nan=False)  # NaN never reaches the JSON


def test_cli_results_identical_across_jobs(cohort: Path, tmp_path: Path, capsys) -> None:
    outs = []
    for jobs in (1, 2):
        out = tmp_path / f"out{jobs}"
        assert main(["evaluate", str(cohort), "--forecaster", "persistence", "--jobs", str(jobs), "--seed", "1",
                     "--n-bootstrap", "5", "--out", str(out)]) == 0
        outs.append(out)
    files = ["patients.csv", "skipped.csv", "summary.json", "boxplots.png", "calibration_persistence.png"]
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    assert sorted(p.name for p in outs[0].iterdir()) == sorted(files + ["timings.json"])
    summary = json.loads((outs[0] / "summary.json").read_text())
    assert summary["n_cases"] == 3 and summary["forecasters"]["persistence"]["n_scored"] == 2
    assert summary["skipped"][0]["patient_id"] == "VP-C"
    assert (outs[0] / "patients.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    timings = json.loads((outs[1] / "timings.json").read_text())
    per = timings["per_forecaster"]["persistence"]
    cpu = [t["cpu_seconds"] for t in timings["timings"]]
    assert per["n_forecasts"] == len(cpu) == 2 and all(c > 0 for c in cpu)  # the workers' own CPU time
    assert per["total_cpu_s"] == pytest.approx(sum(cpu))


@pytest.mark.parametrize("case", ["missing dir", "unknown forecaster", "no cases", "nothing scored", "bad jobs",
                                  "no output parent"])
def test_cli_bad_input_is_one_line_and_writes_nothing(case: str, cohort: Path, tmp_path: Path, capsys) -> None:
    target = cohort
    extra: list[str] = []
    if case == "missing dir":
        target = tmp_path / "nowhere"
    elif case == "unknown forecaster":
        extra = ["--forecaster", "oracle"]
    elif case == "no cases":
        target = tmp_path / "empty"
        target.mkdir()
    elif case == "nothing scored":
        for pid in ("VP-A", "VP-B"):
            (cohort / pid / "case.json").unlink()
    elif case == "bad jobs":
        extra = ["--jobs", "0"]
    out = tmp_path / ("missing/results" if case == "no output parent" else "results")
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["evaluate", str(target), "--forecaster", "persistence", *extra, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("gliomaforecast evaluate: error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output folder, no temporary leftovers


def test_api_rejects_unknown_forecaster_and_bad_jobs(cohort: Path) -> None:
    with pytest.raises(InputError, match="unknown forecaster"):
        evaluate_cohort(cohort, EvaluationSettings(("nope",)))
    with pytest.raises(InputError, match="^jobs: must be at least 1"):  # the core names the field; the CLI the flag
        evaluate_cohort(cohort, _settings(), jobs=0)
