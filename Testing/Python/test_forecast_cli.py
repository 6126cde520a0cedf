"""`gliomaforecast forecast` / `demo` end to end: the output folder of docs/architecture.md, exact geometry,
reproducibility, and the catalogue of broken cases (one line, exit code 2, no partial output)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE_CASE, ball
from gliomaforecast.io.case import load_case
from gliomaforecast.deformation import from_physical
from gliomaforecast.io.images import read_image, read_mask, read_segmentation, read_vector_image, write_image

EXPECTED = {"probability_d{d}.nii.gz", "uncertainty_d{d}.nii.gz", "flair_warped_d{d}.nii.gz", "displacement.nii.gz",
            "ctv_standard.nii.gz", "ctv_forecast.nii.gz", "targets.seg.nrrd", "growth.json", "growth.png",
            "report.html", "forecast.json"}


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gliomaforecast", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.name != "forecast.json"}


@pytest.fixture(scope="module")
def sample_forecast(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fc") / "out"
    proc = _cli("forecast", str(SAMPLE_CASE), "--day", "450", "--out", str(out), "--samples", "4",
                "--forecaster", "evolution-field")
    assert proc.returncode == 0, proc.stderr
    return out


def test_output_folder_is_complete_with_the_case_geometry(sample_forecast: Path) -> None:
    out = sample_forecast
    names = {p.name for p in out.iterdir()}
    assert {n.format(d=450) for n in EXPECTED} <= names
    case = load_case(SAMPLE_CASE)
    grid = case.grid
    for name in ("probability_d450.nii.gz", "uncertainty_d450.nii.gz", "flair_warped_d450.nii.gz"):
        array, got = read_image(out / name)
        assert got == grid and array.dtype == np.float32
    prob = read_image(out / "probability_d450.nii.gz")[0]
    assert prob.min() >= 0 and prob.max() <= 1
    assert read_image(out / "uncertainty_d450.nii.gz")[0].max() > 0  # the growth band gives uncertainty
    standard, g1 = read_mask(out / "ctv_standard.nii.gz")
    forecast, g2 = read_mask(out / "ctv_forecast.nii.gz")
    assert g1 == grid and g2 == grid and standard.sum() == forecast.sum()
    segments, g3 = read_segmentation(out / "targets.seg.nrrd")
    assert list(segments) == ["GTV", "CTV standard", "CTV forecast"] and g3.same_as(grid)
    np.testing.assert_array_equal(segments["CTV forecast"], forecast)
    np.testing.assert_array_equal(segments["GTV"], case.gtv(case.timepoints[-1]))
    field, g4 = read_vector_image(out / "displacement.nii.gz")
    assert g4 == grid and np.abs(from_physical(field, grid)).max() > 0  # the evolution model moved the tumor
    record = json.loads((out / "forecast.json").read_text())
    assert record["forecaster"] == "evolution-field" and record["seed"] == 0
    assert record["models"][0]["id"] == "evolution" and len(record["models"][0]["sha256"]) == 64
    assert record["provider"] in ("CPUExecutionProvider", "CUDAExecutionProvider")
    ml = grid.voxel_volume_ml
    assert record["volumes_ml"]["ctv_forecast"] == pytest.approx(forecast.sum() * ml)
    growth = json.loads((out / "growth.json").read_text())
    assert growth["predictions"][0]["day"] == 450
    html = (out / "report.html").read_text()
    assert "VP-SAMPLE" in html and "http" not in re.sub(r'xmlns="http[^"]*"', "", html)


def test_same_inputs_and_seed_give_identical_files(sample_forecast: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    proc = _cli("forecast", str(SAMPLE_CASE), "--day", "450", "--out", str(again), "--samples", "4",
                "--forecaster", "evolution-field")
    assert proc.returncode == 0, proc.stderr
    assert _digests(again) == _digests(sample_forecast)
    a = json.loads((again / "forecast.json").read_text())
    b = json.loads((sample_forecast / "forecast.json").read_text())
    a.pop("timings"), b.pop("timings")
    assert a == b


def _small_case(tmp: Path) -> Path:
    """A three-scan case on a small grid, written into ``tmp``."""
    from gliomaforecast.geometry import Grid
    grid = Grid.identity((16, 32, 32), (2.0, 2.0, 2.0))
    rng = np.random.default_rng(0)
    tps = []
    for i in range(3):
        write_image(tmp / f"d{i}_flair.nii.gz", rng.normal(100, 5, grid.shape).astype(np.float32), grid)
        write_image(tmp / f"d{i}_gtv.nii.gz", ball(grid.shape, (8, 16, 16), 6.0 + 2 * i, grid.spacing).astype(np.uint8),
                    grid)
        tps.append({"day": 60 * i, "images": {"flair": f"d{i}_flair.nii.gz"}, "gtv": f"d{i}_gtv.nii.gz"})
    write_image(tmp / "brain.nii.gz", np.ones(grid.shape, np.uint8), grid)
    (tmp / "case.json").write_text(json.dumps({"schema": "gliomaforecast.case/1", "patient_id": "S",
                                               "timepoints": tps, "brain_mask": "brain.nii.gz"}))
    return tmp / "case.json"


def _break_missing_file(case: Path) -> list[str]:
    (case.parent / "d1_flair.nii.gz").unlink()
    return []


def _break_grid(case: Path) -> list[str]:
    from gliomaforecast.geometry import Grid
    write_image(case.parent / "brain.nii.gz", np.ones((16, 32, 30), np.uint8), Grid.identity((16, 32, 30), (2, 2, 2)))
    return []


def _break_empty_gtv(case: Path) -> list[str]:
    from gliomaforecast.geometry import Grid
    write_image(case.parent / "d2_gtv.nii.gz", np.zeros((16, 32, 32), np.uint8), Grid.identity((16, 32, 32), (2, 2, 2)))
    return []


def _tampered_models(case: Path) -> list[str]:
    models = case.parent / "models"
    shutil.copytree(Path(__file__).resolve().parents[2] / "Resources" / "Models", models)
    onnx = models / "evolution.onnx"  # the evolution-field forecaster's model
    data = bytearray(onnx.read_bytes())
    data[-1] ^= 0xFF
    onnx.write_bytes(bytes(data))
    return [f"GLIOMAFORECAST_MODELS_DIR={models}"]


def _missing_model(case: Path) -> list[str]:
    models = case.parent / "models"
    shutil.copytree(Path(__file__).resolve().parents[2] / "Resources" / "Models", models)
    (models / "evolution.onnx").unlink()
    return [f"GLIOMAFORECAST_MODELS_DIR={models}"]


BROKEN = [
    (_break_missing_file, [], r"timepoints\[1\].images.flair: file not found"),
    (_break_grid, [], r"brain.nii.gz \(brain_mask\): grid: differs from"),
    (_break_empty_gtv, [], r"d2_gtv.nii.gz: timepoints\[2\].gtv: GTV is empty"),
    (None, ["--day", "100"], r"--day: target day 100 is not after the last scan \(day 120\)"),
    (None, ["--forecaster", "oracle"], r"--forecaster: unknown forecaster 'oracle'"),
    (_tampered_models, ["--forecaster", "evolution-field"], r"sha256"),
    (_missing_model, ["--forecaster", "evolution-field"], r"evolution.*(not found|missing)"),
    (None, ["--out", "/proc/forbidden/out"], r"output: folder /proc/forbidden does not exist"),
    (None, ["--samples", "0"], r"--samples: must be at least 1"),
    (None, [], r"timepoints\[1\]\.images\.t1ce: multitask-diffusion needs T1CE .*--forecaster evolution-field"),
]


@pytest.mark.parametrize("breaker,args,match", BROKEN)
def test_broken_cases_give_one_line_and_no_output(tmp_path: Path, breaker, args, match: str) -> None:
    case = _small_case(tmp_path)
    env_pairs = breaker(case) if breaker else []
    env = dict(pair.split("=", 1) for pair in env_pairs)
    out = tmp_path / "out"
    argv = ["forecast", str(case), "--day", "200", "--out", str(out), *args]
    if "--out" in args:
        argv = ["forecast", str(case), "--day", "200", *args]
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = _cli(*argv, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert re.search(match, lines[0]), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output folder, no temporary left


def test_output_that_is_a_file_is_refused_and_kept(tmp_path: Path) -> None:
    case = _small_case(tmp_path)
    target = tmp_path / "out"
    target.write_text("keep me")
    proc = _cli("forecast", str(case), "--day", "200", "--out", str(target))
    assert proc.returncode == 2 and "output: exists and is not a folder" in proc.stderr
    assert target.read_text() == "keep me"


def test_resample_flag_puts_a_mismatched_file_on_the_reference_grid(tmp_path: Path) -> None:
    from gliomaforecast.geometry import Grid
    case = _small_case(tmp_path)
    coarse = Grid((8, 16, 15), (4.0, 4.0, 4.0), (1.0, 1.0, 1.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    write_image(tmp_path / "brain.nii.gz", np.ones(coarse.shape, np.uint8), coarse)  # covers x < 61 mm only
    out = tmp_path / "out"
    assert _cli("forecast", str(case), "--day", "200", "--out", str(out), "--forecaster", "persistence").returncode == 2
    proc = _cli("forecast", str(case), "--day", "200", "--out", str(out), "--forecaster", "persistence", "--resample")
    assert proc.returncode == 0, proc.stderr
    standard, grid = read_mask(out / "ctv_standard.nii.gz")
    assert grid == read_image(tmp_path / "d0_flair.nii.gz")[1]  # outputs on the first FLAIR's grid
    xs = np.nonzero(standard.any(axis=(0, 1)))[0]
    assert xs.max() * 2.0 <= 61.0 + 1e-6  # clipped to the resampled brain mask (nearest neighbour, in mm)


def _forecast_parser():
    from gliomaforecast.cli import build_parser
    from gliomaforecast.commands import COMMANDS

    parser = build_parser("gliomaforecast", "", "gliomaforecast", COMMANDS)
    return next(a for a in parser._actions if a.dest == "command").choices["forecast"]


def test_forecaster_setting_flags_follow_the_registry_declarations() -> None:
    from gliomaforecast.forecasters.registry import OUTCOME, distinct_settings, setting_help

    sub = _forecast_parser()
    flags = {a.dest: a for a in sub._actions}
    for setting in distinct_settings():  # one flag per distinct setting, named for it
        action = flags[setting.name]
        assert action.option_strings == [f"--{setting.name.replace('_', '-')}"]
        assert list(action.choices) == list(setting.choices) and action.default is None
        assert action.help == setting_help(setting)
    assert flags["outcome"].option_strings == ["--outcome"] and list(flags["outcome"].choices) == list(OUTCOME.choices)


def test_only_the_settings_given_as_flags_reach_the_forecaster() -> None:
    from gliomaforecast.commands.forecast import chosen_settings

    sub = _forecast_parser()
    base = ["case.json", "--day", "120", "--out", "out"]
    assert chosen_settings(sub.parse_args([*base, "--forecaster", "persistence"])) is None  # the forecaster's defaults
    chosen = sub.parse_args([*base, "--forecaster", "latent-diffusion", "--outcome", "both"])
    assert chosen_settings(chosen) == {"outcome": "both"}
