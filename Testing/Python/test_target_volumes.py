"""Issue 17 items 1-2: both CTVs start from GTV + resection cavity, have no interior holes, and honour the barrier in
every path (forecast API, `forecast` CLI, `ctv` CLI, Slicer compute)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from conftest import ball
from gliomaforecast.io.case import load_case
from gliomaforecast.cli import main
from gliomaforecast.forecasters import registry
from gliomaforecast.forecast import run_forecast
from gliomaforecast.geometry import Grid
from gliomaforecast.io.images import read_image, read_mask, write_image
from gliomaforecast.targets.volumes import build_targets, fill_holes, target_seed

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "Resources" / "SampleData" / "sample_patient" / "case.json"


def _holes(mask: np.ndarray, keep_out: np.ndarray | None = None) -> int:
    return int(np.count_nonzero(fill_holes(mask, keep_out) & ~mask))


@pytest.fixture(scope="module")
def sample_forecast():
    return run_forecast(SAMPLE, 351.0, "evolution-field", samples=2, n_bootstrap=5)


def test_sample_forecast_ctvs_contain_the_cavity_and_have_no_holes(sample_forecast) -> None:
    fc = sample_forecast
    case = load_case(SAMPLE)
    cavity = case.labels(case.timepoints[-1]) == 4
    assert cavity.sum() > 3000  # 26 mL of resection cavity at the last scan
    brain = case.brain_mask()
    for name, target in (("standard", fc.ctv_standard), ("forecast", fc.ctv_forecast)):
        assert target[cavity & brain].all(), name  # the old forecast CTV left 748 cavity voxels out
        assert _holes(target, ~brain) == 0, name
    assert fc.ctv_forecast.sum() == fc.ctv_standard.sum() and fc.forecast_shortfall == 0
    assert fc.cavity_ml == pytest.approx(cavity.sum() * case.grid.voxel_volume_ml)


def test_synthetic_cavity_inside_a_gtv_shell() -> None:
    spacing = (2.0, 1.0, 1.0)
    shape = (20, 40, 40)
    centre = (10, 20, 20)
    outer, inner = ball(shape, centre, 12.0, spacing), ball(shape, centre, 7.0, spacing)
    gtv, cavity = outer & ~inner, inner
    seed = target_seed(gtv, cavity)
    assert np.array_equal(seed, outer)  # GTV + cavity, nothing enclosed left out
    assert np.array_equal(target_seed(gtv), outer)  # an enclosed cavity is filled even when unlabelled
    score = np.zeros(shape, np.float32)
    score[ball(shape, (10, 20, 34), 4.0, spacing)] = 1.0  # a ring of candidates away from the cavity
    t = build_targets(gtv, spacing, 5.0, score=score, cavity=cavity)
    for target in (t.standard, t.forecast):
        assert target[inner].all() and _holes(target) == 0
    assert t.forecast.sum() == t.standard.sum()


def test_a_margin_that_closes_an_opening_has_its_enclosed_pocket_filled() -> None:
    spacing = (1.0, 1.0, 1.0)
    shape = (40, 40, 40)
    gtv = np.zeros(shape, bool)
    gtv[4:36, 4:36, 4:36] = True
    gtv[6:34, 6:34, 6:34] = False  # a hollow box (2 mm wall) ...
    gtv[18:22, 18:22, 34:36] = False  # ... with a 4 mm window: no enclosed hole in the GTV itself
    assert np.array_equal(target_seed(gtv), gtv)
    raw = ndimage.distance_transform_edt(~gtv) <= 3.0  # a 3 mm margin closes the window, the pocket is 14 mm deep
    assert _holes(raw) > 0
    t = build_targets(gtv, spacing, 3.0)
    assert _holes(t.standard) == 0 and _holes(t.forecast) == 0
    assert t.standard[20, 20, 20] and t.forecast[20, 20, 20]
    assert t.forecast.sum() == t.standard.sum()


def test_barrier_voxels_stay_out_even_when_enclosed() -> None:
    spacing = (1.0, 1.0, 1.0)
    shape = (20, 40, 40)
    gtv = ball(shape, (10, 20, 20), 6.0, spacing)
    barrier = ball(shape, (10, 20, 30), 2.0, spacing)  # a small ventricle inside the margin
    t = build_targets(gtv, spacing, 12.0, barrier=barrier)
    assert not (t.standard & barrier).any() and not (t.forecast & barrier).any()
    assert _holes(t.standard, barrier) == 0


def test_forecast_honours_the_barrier_in_api_and_cli(sample_forecast, tmp_path: Path) -> None:
    case = load_case(SAMPLE)
    csf = case.tissue("csf")
    last = case.timepoints[-1]
    barrier = (csf > 0.5) & ~case.gtv(last)
    with_barrier = run_forecast(case, 351.0, "evolution-field", samples=2, n_bootstrap=5, barrier=barrier)
    assert with_barrier.ctv_standard.sum() < sample_forecast.ctv_standard.sum()
    off = barrier & ~target_seed(case.gtv(last), case.labels(last) == 4)  # the seed (GTV + cavity) always stays
    assert not (with_barrier.ctv_standard & off).any() and not (with_barrier.ctv_forecast & off).any()
    write_image(tmp_path / "barrier.nii.gz", barrier.astype(np.uint8), case.grid)
    out = tmp_path / "out"
    assert main(["forecast", str(SAMPLE), "--day", "351", "--samples", "2", "--barrier",
                 str(tmp_path / "barrier.nii.gz"), "--out", str(out)]) == 0
    standard, _ = read_mask(out / "ctv_standard.nii.gz")
    assert np.array_equal(standard, with_barrier.ctv_standard)
    record = json.loads((out / "forecast.json").read_text())
    assert record["targets"]["barrier"] is True and record["targets"]["cavity_ml"] > 20


def test_forecast_cli_refuses_a_barrier_on_another_grid(tmp_path: Path, capsys) -> None:
    write_image(tmp_path / "b.nii.gz", np.zeros((4, 5, 6), np.uint8), Grid.identity((4, 5, 6), (1.0, 1.0, 1.0)))
    out = tmp_path / "out"
    code = main(["forecast", str(SAMPLE), "--day", "351", "--barrier", str(tmp_path / "b.nii.gz"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "b.nii.gz (barrier)" in err and err.count("\n") == 1 and not out.exists()


def test_ctv_cli_takes_the_cavity(tmp_path: Path) -> None:
    case = load_case(SAMPLE)
    last = case.timepoints[-1]
    out = tmp_path / "ctv"
    assert main(["ctv", "--gtv", str(last.gtv), "--cavity", str(last.labels), "--brain-mask",
                 str(case.brain_mask_path), "--score", str(last.gtv), "--out", str(out)]) == 0
    standard, _ = read_mask(out / "ctv_standard.nii.gz")
    forecast, _ = read_mask(out / "ctv_forecast.nii.gz")
    cavity = (case.labels(last) == 4) & case.brain_mask()
    assert standard[cavity].all() and forecast[cavity].all() and forecast.sum() == standard.sum()


def test_an_existing_output_folder_is_refused_unless_overwrite_replaces_it_whole(tmp_path: Path, capsys) -> None:
    """Issue 17 item 6: a re-run must not leave probability_d400 beside a day-300 forecast."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "probability_d400.nii.gz").write_bytes(b"stale")
    args = ["forecast", str(SAMPLE), "--day", "300", "--samples", "1", "--forecaster", "persistence", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "out: output: folder exists and is not empty; give --overwrite" in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == ["probability_d400.nii.gz"]
    assert main([*args, "--overwrite"]) == 0
    names = {p.name for p in out.iterdir()}
    assert "probability_d400.nii.gz" not in names and "probability_d300.nii.gz" in names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temporary folder left
    growth = tmp_path / "growth"
    growth.mkdir()
    (growth / "x.txt").write_text("x")
    assert main(["growth", str(SAMPLE), "--n-bootstrap", "2", "--out", str(growth)]) == 2
    assert main(["growth", str(SAMPLE), "--n-bootstrap", "2", "--out", str(growth), "--overwrite"]) == 0
    assert not (growth / "x.txt").exists() and (growth / "growth.json").exists()


def test_overwrite_never_replaces_a_folder_holding_an_input(tmp_path: Path, capsys) -> None:
    import shutil
    case_dir = tmp_path / "case"
    shutil.copytree(SAMPLE.parent, case_dir)
    before = sorted(p.name for p in case_dir.iterdir())
    code = main(["growth", str(case_dir / "case.json"), "--n-bootstrap", "2", "--out", str(case_dir), "--overwrite"])
    assert code == 2 and "holds an input" in capsys.readouterr().err
    assert sorted(p.name for p in case_dir.iterdir()) == before


def _dated_case(tmp_path: Path, n_scans: int, labels_only: bool = False) -> Path:
    grid = Grid.identity((20, 30, 30), (2.0, 2.0, 2.0))
    tps = []
    for i, (date, radius) in enumerate((("2026-01-05", 8.0), ("2026-03-06", 10.0), ("2026-06-04", 11.0))[:n_scans]):
        labels = np.zeros(grid.shape, np.int16)
        labels[ball(grid.shape, (10, 15, 15), radius, grid.spacing)] = 2  # edema only: no enhancing tumour
        write_image(tmp_path / f"s{i}.nii.gz", labels, grid)
        tp = {"date": date, "labels": f"s{i}.nii.gz"}
        if not labels_only:
            write_image(tmp_path / f"f{i}.nii.gz", (100.0 + 30 * (labels > 0)).astype(np.float32), grid)
            tp["images"] = {"flair": f"f{i}.nii.gz"}
        tps.append(tp)
    (tmp_path / "case.json").write_text(json.dumps({"schema": "gliomaforecast.case/1", "patient_id": "D",
                                                    "timepoints": tps}))
    return tmp_path / "case.json"


def test_day_as_an_iso_date_when_the_case_gives_dates(tmp_path: Path, capsys) -> None:
    """Issue 17 item 8: --day 2026-09-02 on a dated case is day 240; outputs show the date beside the day."""
    (tmp_path / "c").mkdir()
    case = _dated_case(tmp_path / "c", 3)
    out = tmp_path / "out"
    assert main(["forecast", str(case), "--day", "2026-09-02", "--forecaster", "persistence", "--samples", "1",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "forecast at day 240 (2026-09-02)" in printed
    record = json.loads((out / "forecast.json").read_text())
    assert record["target_day"] == 240 and record["target_date"] == "2026-09-02"
    assert (out / "probability_d240.nii.gz").exists()
    code = main(["forecast", str(SAMPLE), "--day", "2026-09-02", "--out", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert code == 2 and "--day: 2026-09-02 is a date but" in err and "gives days, not dates" in err
    assert main(["forecast", str(case), "--day", "soon", "--out", str(tmp_path / "o3")]) == 2
    assert "--day: expected a number of days or an ISO date" in capsys.readouterr().err


def test_a_single_scan_case_is_forecast_by_persistence_and_others_name_it(tmp_path: Path, capsys) -> None:
    """Issue 17 item 9, on a labels-only case whose scans hold no enhancing tumour (the GTV includes edema)."""
    (tmp_path / "c").mkdir()
    case = _dated_case(tmp_path / "c", 1, labels_only=True)
    out = tmp_path / "out"
    assert main(["forecast", str(case), "--day", "90", "--forecaster", "persistence", "--out", str(out)]) == 0
    assert (out / "ctv_forecast.nii.gz").exists()
    code = main(["forecast", str(case), "--day", "90", "--forecaster", "evolution-field", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "needs at least two scans with the evolution-field forecaster; the case has 1" in err
    one_scan = [e.name for e in registry.REGISTRY if e.min_scans <= 1]  # the forecasters that can, from the registry
    assert "persistence" in one_scan and f"use {' or '.join(one_scan)} with 1" in err
    (tmp_path / "c3").mkdir()
    three = _dated_case(tmp_path / "c3", 3, labels_only=True)
    assert main(["forecast", str(three), "--day", "200", "--forecaster", "evolution-field", "--samples", "1",
                 "--out", str(tmp_path / "ev")]) == 0
