"""Issue 31 item 3: resource limits stated and enforced before any allocation (timepoints per case, bootstrap
refits, samples, growth noise), and the inputs that used to end in a traceback (a 5000-digit integer in case.json or
summary.json, a string where the leaderboard wants a number, a NUL byte in a models.json file name, a 2D case in
``forecast``). Each is one line on stderr naming the file/flag and the field or limit, exit 2, nothing written,
inputs unchanged, and quick (the refusal comes before the work)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from gliomaforecast import defaults
from gliomaforecast.cli import main
from gliomaforecast.errors import InputError, parse_json
from gliomaforecast.geometry import Grid
from gliomaforecast.growth import fit_growth
from gliomaforecast.io.images import write_image

HUGE = "1" + "0" * 5000  # Python's int() refuses this (4300 digits) with a bare ValueError
SUMMARY = REPO / "benchmarks" / "results" / "latent_diffusion_horizon" / "summary.json"
TIMINGS = REPO / "benchmarks" / "results" / "latent_diffusion_horizon" / "timings.json"


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(capsys, argv: list[str], *needles: str, seconds: float = 20.0) -> str:
    """Run ``gliomaforecast argv`` in this process: exit 2, one stderr line holding every needle, quick."""
    start = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert elapsed < seconds, f"refusal took {elapsed:.1f} s"
    return lines[0]


@pytest.fixture
def case3(make_case, tmp_path: Path):
    path, _ = make_case()
    before = _digests(tmp_path)
    yield path
    assert _digests(tmp_path) == before  # inputs unchanged by every refusal


# --- limits ----------------------------------------------------------------------------------------------------------
def test_limits_are_documented() -> None:
    text = (REPO / "docs" / "guarantees.md").read_text()
    for name, value in defaults.LIMITS.items():
        assert defaults.limit_variable(name) in text
        assert f"{value:,}" in text or str(value) in text


def test_too_many_timepoints_is_refused_before_any_file_is_read(case3: Path, capsys) -> None:
    manifest = json.loads(case3.read_text())
    first = manifest["timepoints"][0]
    manifest["timepoints"] = [{**first, "day": float(i)} for i in range(defaults.LIMITS["timepoints"] + 1)]
    big = case3.parent / "many.json"
    big.write_text(json.dumps(manifest))
    out = case3.parent / "out"
    line = refused(capsys, ["growth", str(big), "--out", str(out)], str(big), "timepoints",
                   "201 timepoints is over the limit of 200", "GLIOMAFORECAST_MAX_TIMEPOINTS")
    assert line.startswith("gliomaforecast growth: error: ")
    assert not out.exists()
    big.unlink()


def test_the_timepoint_limit_is_raised_and_lowered_by_its_environment_variable(
    case3: Path, capsys, monkeypatch
) -> None:
    out = case3.parent / "out"
    monkeypatch.setenv("GLIOMAFORECAST_MAX_TIMEPOINTS", "2")
    refused(capsys, ["growth", str(case3), "--out", str(out), "--n-bootstrap", "0"], str(case3),
            "timepoints: 3 timepoints is over the limit of 2")
    assert not out.exists()
    monkeypatch.setenv("GLIOMAFORECAST_MAX_TIMEPOINTS", "3")
    assert main(["growth", str(case3), "--out", str(out), "--n-bootstrap", "0"]) == 0
    assert (out / "growth.json").is_file()
    shutil.rmtree(out)
    for bad in ("0", "-5", "many", HUGE):
        monkeypatch.setenv("GLIOMAFORECAST_MAX_TIMEPOINTS", bad)
        refused(capsys, ["growth", str(case3), "--out", str(out)], "GLIOMAFORECAST_MAX_TIMEPOINTS",
                "must be a positive integer")
        assert not out.exists()


def test_bootstrap_refits_over_the_limit_are_refused_at_once(case3: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    refused(capsys, ["growth", str(case3), "--out", str(out), "--n-bootstrap", "1000000000"],
            "--n-bootstrap", "1000000000 bootstrap refits is over the limit of 10000", "GLIOMAFORECAST_MAX_BOOTSTRAP")
    refused(capsys, ["evaluate", str(tmp_path), "--out", str(out), "--forecaster", "persistence", "--jobs", "1",
                     "--n-bootstrap", "1000000000"], "--n-bootstrap", "over the limit of 10000")
    assert not out.exists()
    # the core (forecast, evaluate, the Slicer module) refuses it before drawing any noise
    start = time.perf_counter()
    with pytest.raises(InputError, match="n_bootstrap: 1000000000 bootstrap refits is over the limit of 10000"):
        fit_growth([0, 60, 120], [1.0, 2.0, 3.0], None, n_bootstrap=10**9, source="case.json")
    assert time.perf_counter() - start < 5
    # the limit itself is allowed
    fit = fit_growth([0, 60, 120], [1.0, 2.0, 3.0], None, n_bootstrap=2)
    assert fit.n_bootstrap == 2


def test_samples_over_the_limit_are_refused_at_once(case3: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    refused(capsys, ["forecast", str(case3), "--day", "200", "--forecaster", "persistence", "--out", str(out),
                     "--samples", "100000"], "--samples", "100000 samples is over the limit of 256",
            "GLIOMAFORECAST_MAX_SAMPLES")
    refused(capsys, ["evaluate", str(tmp_path), "--out", str(out), "--forecaster", "persistence", "--jobs", "1",
                     "--samples", "100000"], "--samples", "over the limit of 256")
    assert not out.exists()


@pytest.mark.parametrize("noise", ["1e300", "2", "1.5"])
def test_growth_noise_beyond_one_is_refused(case3: Path, tmp_path: Path, capsys, noise: str) -> None:
    out = tmp_path / "out"
    refused(capsys, ["growth", str(case3), "--out", str(out), "--noise", noise], "--noise", "over the limit of 1")
    assert not out.exists()
    with pytest.raises(InputError, match="noise: .* over the limit of 1"):
        fit_growth([0, 60, 120], [1.0, 2.0, 3.0], None, n_bootstrap=2, noise=float(noise))


# --- tracebacks that are now one line ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("field", "text"), [
    ("rt_start_day", f'"rt_start_day": {HUGE}'),
    ("timepoints[1].day", f'"day": -{HUGE}'),
])
def test_a_5000_digit_integer_in_case_json_names_the_field(case3: Path, tmp_path: Path, capsys, field, text) -> None:
    manifest = json.loads(case3.read_text())
    if field == "rt_start_day":
        manifest["rt_start_day"] = "@"
    else:
        manifest["timepoints"][1]["day"] = "@"
    key = '"rt_start_day": "@"' if field == "rt_start_day" else '"day": "@"'
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps(manifest).replace(key, text))
    out = tmp_path / "out"
    refused(capsys, ["growth", str(huge), "--out", str(out)], f"{huge}: {field}: an integer of over 400 digits")
    assert not out.exists()
    huge.unlink()


def test_a_5000_digit_integer_in_case_json_is_one_line_in_a_real_process(case3: Path, tmp_path: Path) -> None:
    huge = tmp_path / "huge.json"
    huge.write_text(case3.read_text().replace('"rt_start_day": 21', f'"rt_start_day": {HUGE}'))
    proc = subprocess.run([sys.executable, "-m", "gliomaforecast", "growth", str(huge), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"gliomaforecast growth: error: {huge}: rt_start_day: an integer of over 400 digits is out of range"
    ]
    assert not (tmp_path / "o").exists()
    huge.unlink()


def test_parse_json_keeps_ordinary_integers() -> None:
    assert parse_json('{"a": [1, -2, 3.5, 12345678901234567890]}', "x.json") == {
        "a": [1, -2, 3.5, 12345678901234567890]
    }
    with pytest.raises(InputError, match=r"^x.json: a\[1\].b: an integer of over 400 digits"):
        parse_json('{"a": [0, {"b": ' + HUGE + "}]}", "x.json")


@pytest.fixture
def summary(tmp_path: Path) -> Path:
    path = tmp_path / "summary.json"
    shutil.copy(SUMMARY, path)
    return path


def test_leaderboard_still_renders_the_committed_summary(summary: Path, capsys) -> None:
    assert main(["leaderboard", str(summary), "--timings", str(TIMINGS)]) == 0
    assert "| persistence |" in capsys.readouterr().out


def test_a_5000_digit_integer_in_summary_json_names_the_field(summary: Path, capsys) -> None:
    summary.write_text(summary.read_text().replace('"n_cases": ', f'"n_cases": {HUGE}, "was": ', 1))
    before = summary.read_bytes()
    refused(capsys, ["leaderboard", str(summary)], f"{summary}: n_cases: an integer of over 400 digits")
    assert summary.read_bytes() == before


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(("change", "field"), [
    (lambda s: s["settings"].__setitem__("margin_mm", "fifteen"), "settings.margin_mm"),
    (lambda s: s["settings"].__setitem__("horizon_days", ["a", 365]), "settings.horizon_days"),
    (lambda s: s.__setitem__("n_cases", "many"), "n_cases"),
    (lambda s: next(iter(s["forecasters"]["persistence"]["gap_bins"].values())).__setitem__("rmse", "0.1"),
     "forecasters.persistence.gap_bins."),
])
def test_leaderboard_strings_where_numbers_belong_name_the_field(summary: Path, tmp_path: Path, capsys,
                                                                 change, field) -> None:
    _edit(summary, change)
    doc = tmp_path / "doc.md"
    doc.write_text("x\n<!-- leaderboard:start -->\nold\n<!-- leaderboard:end -->\n")
    before = doc.read_bytes()
    line = refused(capsys, ["leaderboard", str(summary), "--update", str(doc)], f"{summary}: {field}",
                   "must be a number")
    if field.endswith("."):
        assert line.split(": ")[3].endswith(".rmse"), line
    assert doc.read_bytes() == before


def test_leaderboard_timings_strings_name_the_field(summary: Path, tmp_path: Path, capsys) -> None:
    timings = tmp_path / "timings.json"
    shutil.copy(TIMINGS, timings)
    _edit(timings, lambda t: t["per_forecaster"]["persistence"].__setitem__("mean_s_per_patient", "0.2"))
    refused(capsys, ["leaderboard", str(summary), "--timings", str(timings)],
            f"{timings}: per_forecaster.persistence.mean_s_per_patient", "must be a number")


def test_a_nul_byte_in_a_models_json_file_name_is_one_line(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    registry = {"schema": "gliomaforecast.models/1", "models": [
        {"id": "m", "version": "1", "file": "a\u0000b.onnx", "sha256": "0" * 64,
         "inputs": [{"name": "x", "shape": [1], "dtype": "float32"}],
         "outputs": [{"name": "y", "shape": [1], "dtype": "float32"}]}]}
    (folder / "models.json").write_text(json.dumps(registry))
    before = _digests(folder)
    refused(capsys, ["models", "--models-dir", str(folder)], str(folder / "models.json"), "models[0].file",
            "NUL byte")
    assert _digests(folder) == before


def test_a_2d_case_in_forecast_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    grid = Grid.identity((20, 20), (2.0, 2.0))
    tps = []
    for i in range(3):
        gtv = np.zeros(grid.shape, np.uint8)
        gtv[8 - i:12 + i, 8 - i:12 + i] = 1
        write_image(tmp_path / f"d{i}_gtv.nii.gz", gtv, grid)
        write_image(tmp_path / f"d{i}_flair.nii.gz", np.full(grid.shape, 100, np.float32), grid)
        tps.append({"day": 60 * i, "images": {"flair": f"d{i}_flair.nii.gz"}, "gtv": f"d{i}_gtv.nii.gz"})
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"schema": "gliomaforecast.case/1", "patient_id": "P2D", "timepoints": tps}))
    before = _digests(tmp_path)
    out = tmp_path / "out"
    refused(capsys, ["forecast", str(case), "--day", "200", "--forecaster", "persistence", "--out", str(out)],
            "d0_flair.nii.gz: timepoints[0].images.flair: forecasts need 3D volumes; this case is 2D")
    assert not out.exists()
    assert _digests(tmp_path) == before
    assert main(["growth", str(case), "--out", str(out), "--n-bootstrap", "0"]) == 0  # growth still fits 2D cases


def test_limits_read_the_environment_each_time(monkeypatch) -> None:
    monkeypatch.delenv("GLIOMAFORECAST_MAX_SAMPLES", raising=False)
    assert defaults.limit("samples") == 256
    monkeypatch.setenv("GLIOMAFORECAST_MAX_SAMPLES", "1000")
    assert defaults.limit("samples") == 1000
    defaults.check_limit(1000, "samples", None, "samples", "samples")
    assert os.environ["GLIOMAFORECAST_MAX_SAMPLES"] == "1000"
