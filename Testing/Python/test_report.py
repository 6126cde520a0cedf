"""The forecast report: files, a self-contained HTML page with the right volumes, reproducible bytes."""

from __future__ import annotations

import dataclasses
import html
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE_CASE
from gliomaforecast.io.case import load_case
from gliomaforecast.errors import InputError
from gliomaforecast.evaluation import volume_ml
from gliomaforecast.forecast import fit_case_growth, run_forecast
from gliomaforecast.growth.checks import parameters_at_bounds
from gliomaforecast.output.report import report_volumes, write_report
from gliomaforecast.geometry import Grid
from gliomaforecast.growth.plot import bound_note
from gliomaforecast.plausibility import forecast_warnings
from gliomaforecast.output.figures import (PROBABILITY_SHOWN_FROM, axial_levels, display_flips, edge_letters,
                                           probability_alpha, slice_position)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def forecast(make_case):
    path, _ = make_case(n_timepoints=3)
    return run_forecast(path, 200.0, "persistence", n_bootstrap=10, seed=3)


def test_report_files_and_self_contained_html(forecast, tmp_path: Path) -> None:
    out = tmp_path / "report"
    out.mkdir()
    paths = write_report(forecast, out)
    assert [p.name for p in paths] == ["growth.png", "overlays.png", "volumes.png", "preparation.png", "report.html"]
    for p in paths[:4]:
        assert p.read_bytes().startswith(PNG_SIGNATURE)
    page = paths[4].read_text(encoding="utf-8")
    # issue 30: where the registration, brain mask and tissue maps came from (this case: one frame, given by the user)
    assert "<h3>Preparation</h3>" in page and "the case was given on one frame of reference" in page
    # self-contained: no script, no stylesheet link, no URL; every image is an embedded PNG
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert not re.search(r"(https?|file|ftp)://", page)
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    # the volumes it must show (mL), with the CTVs as built by the forecast
    spacing = forecast.case.grid.spacing
    volumes = report_volumes(forecast)
    assert volumes["CTV standard"] == pytest.approx(volume_ml(forecast.ctv_standard, spacing))
    assert volumes["CTV forecast"] == pytest.approx(volume_ml(forecast.ctv_forecast, spacing))
    assert volumes["GTV (last scan)"] == pytest.approx(volume_ml(forecast.gtv, spacing))
    for name in ("GTV (last scan)", "CTV standard", "CTV forecast", "CTV overlap"):
        assert f"<td>{name}</td><td class=\"num\">{volumes[name]:.2f}</td>" in page
    median, lower, upper = (float(v[0]) for v in forecast.growth.predict([200.0]))
    assert f"{median:.2f} mL (95% band {lower:.2f}-{upper:.2f} mL)" in page
    # inputs, grid, forecaster, seed
    for tp in forecast.case.timepoints:  # file names, never the absolute path (issue 17, item 7)
        assert f"gtv: {tp.gtv.name}" in page and f"day {tp.day:g}" in page
    assert str(forecast.case.path.parent) not in page
    assert "12 x 20 x 20" in page and "2 x 2 x 2 mm" in page
    assert "persistence" in page and "runs no model" in page
    assert "<td>seed</td><td>3</td>" in page


def test_report_lists_models_with_sha256(forecast, tmp_path: Path) -> None:
    model = {"id": "evolution", "version": "1.2.3", "file": "evolution.onnx", "sha256": "ab" * 32,
             "provider": "CPUExecutionProvider"}
    with_model = dataclasses.replace(forecast, output=dataclasses.replace(forecast.output, models=[model]))
    page = write_report(with_model, tmp_path)[-1].read_text(encoding="utf-8")
    assert "ab" * 32 in page and "CPUExecutionProvider" in page and "1.2.3" in page
    assert "runs no model" not in page


def test_report_bytes_are_reproducible(forecast, make_case, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    first = write_report(forecast, a)
    again = run_forecast(forecast.case.path, 200.0, "persistence", n_bootstrap=10, seed=3)
    second = write_report(again, b)
    for x, y in zip(first, second):
        assert x.read_bytes() == y.read_bytes(), x.name
    assert b"Software" not in first[1].read_bytes()  # no software metadata in our PNGs


def test_report_needs_an_existing_folder(forecast, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="report folder does not exist"):
        write_report(forecast, tmp_path / "missing")
    assert not (tmp_path / "missing").exists()


def test_axial_levels_spread_over_the_mask() -> None:
    mask = np.zeros((20, 4, 4), bool)
    mask[5:16, 1, 1] = True
    levels = axial_levels(mask, 4)
    assert levels == sorted(set(levels)) and len(levels) == 4
    assert all(5 < z < 15 for z in levels)
    mask[:] = False
    mask[7:9, 2, 2] = True
    assert axial_levels(mask, 4) == [7, 8]
    assert axial_levels(np.zeros((9, 3, 3), bool)) == [4]


def test_display_flips_give_the_radiological_view() -> None:
    assert display_flips(np.eye(3).ravel()) == (False, False)  # LPS: +y posterior (down), +x left (right)
    assert display_flips(np.diag([-1.0, -1.0, 1.0]).ravel()) == (True, True)  # RAS-like index axes
    assert display_flips(np.diag([1.0, -1.0, 1.0]).ravel()) == (True, False)


def test_report_has_the_research_notice_warnings_and_marks_bound_parameters(forecast, tmp_path: Path) -> None:
    page = write_report(forecast, tmp_path)[-1].read_text(encoding="utf-8")
    assert "Research use only, not for clinical decisions" in page
    assert page.count("AT ITS ") == len(parameters_at_bounds(forecast.growth))
    warnings = forecast_warnings(forecast)
    assert ("<h2>Warnings</h2>" in page) == bool(warnings)
    for line in warnings:
        assert html.escape(line) in page


def test_sample_report_marks_decay_rate_at_its_bound_in_the_table_and_the_plot(tmp_path: Path) -> None:
    fit = fit_case_growth(load_case(SAMPLE_CASE), n_bootstrap=20)
    note = bound_note(fit)
    assert note.startswith("fitted at a bound") and "decay_rate = 0.2 1/day at its upper bound" in note


def test_orientation_letters_and_slice_positions_in_ras_mm() -> None:
    lps = np.eye(3).ravel()
    assert edge_letters(lps, display_flips(lps)) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    ras_like = np.diag([-1.0, -1.0, 1.0]).ravel()  # index axes along R, A: flipped for display, same letters
    assert edge_letters(ras_like, display_flips(ras_like)) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert edge_letters(lps, (False, False))["right"] == "L"
    grid = Grid((10, 4, 6), (2.0, 1.0, 1.0), (5.0, -3.0, -20.0), tuple(np.eye(3).ravel()))
    # slice centre of z = 3: LPS (5 + 2.5, -3 + 1.5, -20 + 6) -> RAS S = -14
    assert slice_position(grid, 3) == "S -14.0 mm"


def test_probability_overlay_is_transparent_where_negligible() -> None:
    p = np.array([0.0, 0.05, PROBABILITY_SHOWN_FROM - 1e-6, PROBABILITY_SHOWN_FROM, 0.5, 1.0])
    alpha = probability_alpha(p)
    assert np.all(alpha[:3] == 0) and np.all(alpha[3:] > 0) and np.all(np.diff(alpha[3:]) > 0)


@pytest.mark.parametrize("failing", ["probability", "report"])
def test_a_failed_write_publishes_nothing(failing: str, forecast, tmp_path: Path, monkeypatch) -> None:
    """The volumes are written in a second thread while the report draws: a failure on either side (here the
    probability map's write, or the report) raises, and neither the output folder nor a temporary one is left."""
    from gliomaforecast.output import writer

    real_write_image = writer.write_image

    def write_image(path, *args, **kwargs):
        if Path(path).name.startswith("probability_"):
            raise InputError(path, "output", "disk full")
        return real_write_image(path, *args, **kwargs)

    def write_report(*args, **kwargs):
        raise InputError("report.html", "output", "disk full")

    if failing == "probability":
        monkeypatch.setattr(writer, "write_image", write_image)
    else:
        monkeypatch.setattr(writer, "write_report", write_report)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    with pytest.raises(InputError, match="disk full"):
        writer.write_forecast(forecast, outputs / "o")
    assert list(outputs.iterdir()) == []
