"""Issue 31 items 4 and 5: evaluate lists every patient folder it cannot read in skipped.csv and refuses two folders
sharing a patient_id; import-dicom opens only regular files (a FIFO is skipped and listed, never blocks), refuses a
DoseGridScaling that overflows, a contour vertex absurdly far from the image and dates outside the documented
200-year range (also in case.json); growth.json and evaluate's summary.json hold no absolute path, and a 2D case's
growth.json labels its burden mm^2. Each refusal: one line naming the file and field, exit 2, nothing written,
inputs unchanged."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicom_sample_data import write_tiny_patient
from gliomaforecast.cli import main
from gliomaforecast.errors import InputError
from gliomaforecast.geometry import Grid
from gliomaforecast.io.case import load_case
from gliomaforecast.io.images import write_image


def _digest(folder: Path) -> str:
    """Hash of every regular file under ``folder`` (names and bytes); FIFOs and links to nothing are not opened."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


def refused(argv: list[str], out: Path, capsys, inputs: Path) -> str:
    """Run the command; exit 2, one stderr line without a traceback, nothing written, inputs unchanged."""
    before = _digest(inputs)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp")]
    assert _digest(inputs) == before
    return err


# --- import-dicom ---------------------------------------------------------------------------------


@pytest.fixture
def dicom(tmp_path: Path) -> Path:
    root = tmp_path / "dicom"
    write_tiny_patient(root)
    return root


def _edit(path: Path, **values) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


def test_import_dicom_skips_a_fifo_lists_it_and_does_not_block(dicom: Path, tmp_path: Path) -> None:
    """A FIFO inside DICOM_DIR used to block import-dicom forever (opened for reading, no writer)."""
    os.mkfifo(dicom / "scan0" / "pipe")
    out = tmp_path / "case"
    done = subprocess.run(
        [sys.executable, "-m", "gliomaforecast", "import-dicom", str(dicom), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "scan0/pipe (FIFO)" in done.stdout and "not a regular file" in done.stdout
    summary = json.loads((out / "import.json").read_text())
    assert summary["not_regular_files"] == [{"file": "scan0/pipe", "kind": "FIFO"}]
    assert "scan0/pipe" not in summary["not_dicom"]
    assert len(load_case(out / "case.json").timepoints) == 2


def test_import_dicom_refuses_a_fifo_as_mapping_without_blocking(dicom: Path, tmp_path: Path) -> None:
    """A FIFO given as --mapping would block the read (no writer): refused at once, one line, nothing written."""
    pipe = tmp_path / "mapping.json"
    os.mkfifo(pipe)
    out = tmp_path / "case"
    done = subprocess.run(
        [sys.executable, "-m", "gliomaforecast", "import-dicom", str(dicom), "--mapping", str(pipe), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "mapping: is not a regular file" in done.stderr and not out.exists()


def test_import_dicom_lists_a_dangling_link(dicom: Path, tmp_path: Path, capsys) -> None:
    (dicom / "gone.dcm").symlink_to(tmp_path / "nowhere.dcm")
    out = tmp_path / "case"
    assert main(["import-dicom", str(dicom), "--out", str(out), "--no-anatomy"]) == 0, capsys.readouterr().err
    assert json.loads((out / "import.json").read_text())["not_regular_files"] == [
        {"file": "gone.dcm", "kind": "dangling link"}
    ]


@pytest.mark.parametrize("scaling", ["1e38", "1000"])
def test_dose_grid_scaling_that_overflows_is_refused(dicom: Path, tmp_path: Path, capsys, scaling: str) -> None:
    """DoseGridScaling 1e38 used to give an all-inf rtdose.nii.gz (exit 0); 1000 gives ~4e12 Gy, no dose at all."""
    _edit(dicom / "rtdose.dcm", DoseGridScaling=scaling)
    out = tmp_path / "case"
    err = refused(["import-dicom", str(dicom), "--out", str(out)], out, capsys, dicom)
    assert f"{dicom / 'rtdose.dcm'}: DoseGridScaling: {float(scaling):g} gives a maximum dose of" in err
    assert "above 10000 Gy" in err


def test_contour_vertex_far_outside_the_image_is_refused(dicom: Path, tmp_path: Path, capsys) -> None:
    """One vertex at 1e30 mm used to inflate the GTV (its edges sweep across the slice) without a word."""
    path = dicom / "scan0" / "rtstruct.dcm"
    ds = pydicom.dcmread(path)
    contour = ds.ROIContourSequence[0].ContourSequence[0]
    points = [float(v) for v in contour.ContourData]
    points[0] = 1e30
    contour.ContourData = [f"{v:.6g}" for v in points]
    ds.save_as(path)
    out = tmp_path / "case"
    err = refused(["import-dicom", str(dicom), "--out", str(out)], out, capsys, dicom)
    assert f"{path}: ROI 'GTV' ContourData: contour 0 vertex 0 lies 1e+30 mm outside the case grid" in err


def test_contour_vertex_a_little_outside_the_image_still_imports(dicom: Path, tmp_path: Path, capsys) -> None:
    """A contour may reach beyond the image (within the tolerance): the import goes on as before."""
    path = dicom / "scan0" / "rtstruct.dcm"
    ds = pydicom.dcmread(path)
    contour = ds.ROIContourSequence[0].ContourSequence[0]
    points = [float(v) for v in contour.ContourData]
    points[0] = 20.0 + 14 * 1.5 + 10.0  # 10 mm beyond the last column of TINY_GRID (x origin 20, 14 x 1.5 mm)
    contour.ContourData = [f"{v:.6g}" for v in points]
    ds.save_as(path)
    out = tmp_path / "case"
    assert main(["import-dicom", str(dicom), "--out", str(out), "--no-anatomy"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("value", ["1800-01-01", "2300-01-01"])
def test_rt_start_date_outside_the_range_is_refused(dicom: Path, tmp_path: Path, capsys, value: str) -> None:
    out = tmp_path / "case"
    err = refused(["import-dicom", str(dicom), "--out", str(out), "--rt-start-date", value], out, capsys, dicom)
    assert f"error: --rt-start-date: {value} is" in err and "days from the first study (2024-03-05)" in err
    assert "within 73050 days (200 years) of day 0" in err


def test_rt_start_date_in_basic_format_is_refused(dicom: Path, tmp_path: Path, capsys) -> None:
    """20240401 parses with Python's fromisoformat but is not the YYYY-MM-DD a case.json needs."""
    out = tmp_path / "case"
    err = refused(["import-dicom", str(dicom), "--out", str(out), "--rt-start-date", "20240401"], out, capsys, dicom)
    assert "--rt-start-date: not an ISO date (YYYY-MM-DD): '20240401'" in err


def test_rt_start_date_in_range_is_written(dicom: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "case"
    assert main(["import-dicom", str(dicom), "--out", str(out), "--rt-start-date", "2024-04-01", "--no-anatomy"]) == 0
    assert load_case(out / "case.json").rt_start_day == 27.0


def test_study_dates_more_than_200_years_apart_are_refused(dicom: Path, tmp_path: Path, capsys) -> None:
    for path in sorted((dicom / "scan1").rglob("*.dcm")):
        _edit(path, StudyDate="18000101", SeriesDate="18000101")
    out = tmp_path / "case"
    err = refused(["import-dicom", str(dicom), "--out", str(out)], out, capsys, dicom)
    assert f"{dicom / 'scan0'}" in err and ": StudyDate: 2024-03-05 is 81878 days after the first study" in err
    assert "(1800-01-01)" in err and "200 years" in err


# --- case.json dates --------------------------------------------------------------------------------


def _write_case(folder: Path, pid: str, *, grid: Grid | None = None, n: int = 3, **overrides) -> Path:
    """A small case (GTV balls growing by 2 mm per scan, 60 days apart) in ``folder``; returns its case.json."""
    grid = grid or Grid.identity((10, 16, 16), (2.0, 2.0, 2.0))
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    axes = np.meshgrid(*[(np.arange(k) - k / 2) * s for k, s in zip(grid.shape, grid.spacing)], indexing="ij")
    radius = np.sqrt(sum(a**2 for a in axes))
    tps = []
    for i in range(n):
        write_image(folder / f"d{i}_flair.nii.gz", rng.normal(100, 5, grid.shape).astype(np.float32), grid)
        write_image(folder / f"d{i}_gtv.nii.gz", (radius <= 5.0 + 2.0 * i).astype(np.uint8), grid)
        tps.append({"day": 60 * i, "images": {"flair": f"d{i}_flair.nii.gz"}, "gtv": f"d{i}_gtv.nii.gz"})
    manifest = {"schema": "gliomaforecast.case/1", "patient_id": pid, "timepoints": tps, **overrides}
    (folder / "case.json").write_text(json.dumps(manifest))
    return folder / "case.json"


def _dated(path: Path, dates: list[str], **fields) -> None:
    manifest = json.loads(path.read_text())
    for tp, date in zip(manifest["timepoints"], dates):
        del tp["day"]
        tp["date"] = date
    manifest.update(fields)
    path.write_text(json.dumps(manifest))


def test_case_dates_more_than_200_years_apart_are_refused(tmp_path: Path, capsys) -> None:
    case = _write_case(tmp_path / "p", "P")
    _dated(case, ["1800-01-01", "2020-01-01", "2020-03-01"])
    message = r"timepoints\[1\]\.date: 2020-01-01 is 80353 days from day 0 \(1800-01-01\)"
    with pytest.raises(InputError, match=message):
        load_case(case)
    out = tmp_path / "growth"
    err = refused(["growth", str(case), "--out", str(out)], out, capsys, case.parent)
    assert f"{case}: timepoints[1].date:" in err and "within 73050 days (200 years) of day 0" in err


def test_case_rt_start_date_outside_the_range_is_refused(tmp_path: Path, capsys) -> None:
    case = _write_case(tmp_path / "p", "P")
    _dated(case, ["2020-01-01", "2020-03-01", "2020-05-01"], rt_start_date="1700-01-01")
    out = tmp_path / "growth"
    err = refused(["growth", str(case), "--out", str(out)], out, capsys, case.parent)
    assert f"{case}: rt_start_date: 1700-01-01 is -116877 days from day 0 (2020-01-01)" in err


def test_case_dates_within_the_range_still_load(tmp_path: Path) -> None:
    case = _write_case(tmp_path / "p", "P")
    _dated(case, ["1900-01-01", "2020-01-01", "2020-03-01"], rt_start_date="2020-02-01")
    loaded = load_case(case)
    assert loaded.days.tolist() == [0.0, 43829.0, 43889.0] and loaded.rt_start_day == 43860.0


# --- growth.json -----------------------------------------------------------------------------------


def test_growth_json_holds_no_absolute_path_and_labels_mL(tmp_path: Path, capsys) -> None:
    case = _write_case(tmp_path / "p", "P")
    out = tmp_path / "growth"
    assert main(["growth", str(case.resolve()), "--out", str(out), "--n-bootstrap", "5", "--day", "200"]) == 0
    text = (out / "growth.json").read_text()
    record = json.loads(text)
    assert str(tmp_path) not in text and record["case"] == "case.json"
    assert record["unit"] == "mL" and record["parameters"]["initial_burden"]["unit"] == "mL"
    assert " mL (95% band" in capsys.readouterr().out


def test_growth_json_of_a_2d_case_labels_its_burden_mm2(tmp_path: Path, capsys) -> None:
    """A 2D case's burden is an area (mm^2); growth.json used to label it mL."""
    grid = Grid.identity((24, 24), (1.0, 1.0))
    case = _write_case(tmp_path / "p", "P2D", grid=grid)
    out = tmp_path / "growth"
    assert main(["growth", str(case), "--out", str(out), "--n-bootstrap", "5", "--day", "200"]) == 0, (
        capsys.readouterr().err
    )
    record = json.loads((out / "growth.json").read_text())
    assert record["unit"] == "mm^2" and record["parameters"]["initial_burden"]["unit"] == "mm^2"
    assert record["observed"]["burdens"][0] == float(
        np.count_nonzero(np.hypot(*np.meshgrid(np.arange(24) - 12.0, np.arange(24) - 12.0, indexing="ij")) <= 5.0)
    )
    assert " mm^2 (95% band" in capsys.readouterr().out


# --- evaluate ----------------------------------------------------------------------------------------

EVALUATE = ["--forecaster", "persistence", "--jobs", "1", "--samples", "2", "--n-bootstrap", "0"]


def test_evaluate_lists_every_unreadable_patient_in_skipped_csv(tmp_path: Path, capsys) -> None:
    """A case.json that is a dangling link, a link loop, a folder or a FIFO used to vanish ("0 skipped entries")."""
    cohort = tmp_path / "cohort"
    _write_case(cohort / "A", "A")
    (cohort / "B-dangling").mkdir()
    (cohort / "B-dangling" / "case.json").symlink_to(tmp_path / "nowhere.json")
    (cohort / "C-loop").mkdir()
    (cohort / "C-loop" / "case.json").symlink_to("case.json")
    (cohort / "D-folder" / "case.json").mkdir(parents=True)
    (cohort / "E-fifo").mkdir()
    os.mkfifo(cohort / "E-fifo" / "case.json")
    (cohort / "F-gone").symlink_to(tmp_path / "no_such_folder")
    (cohort / "notes").mkdir()  # no case.json: not a patient
    (cohort / "README.txt").write_text("a cohort\n")
    out = tmp_path / "eval"
    assert main(["evaluate", str(cohort.resolve()), "--out", str(out), *EVALUATE]) == 0, capsys.readouterr().err
    assert "(5 skipped entries)" in capsys.readouterr().out
    with open(out / "skipped.csv") as fh:
        skipped = {row["patient_id"]: row["reason"] for row in csv.DictReader(fh)}
    assert skipped == {
        "B-dangling": "B-dangling/case.json: a dangling symbolic link",
        "C-loop": "C-loop/case.json: a symbolic link loop",
        "D-folder": "D-folder/case.json: a folder, not a file",
        "E-fifo": "E-fifo/case.json: a FIFO, not a file (never opened)",
        "F-gone": "F-gone: a dangling symbolic link",
    }
    with open(out / "patients.csv") as fh:
        assert {row["patient_id"] for row in csv.DictReader(fh)} == {"A"}
    text = (out / "summary.json").read_text()
    summary = json.loads(text)
    assert summary["cohort"] == "cohort" and summary["n_cases"] == 1 and len(summary["skipped"]) == 5
    assert str(tmp_path) not in text and str(tmp_path) not in (out / "skipped.csv").read_text()


def test_evaluate_skipped_reasons_hold_no_absolute_path(tmp_path: Path, capsys) -> None:
    """A damaged patient's reason names its file relative to the cohort, however the cohort folder was given."""
    cohort = tmp_path / "cohort"
    _write_case(cohort / "A", "A")
    bad = _write_case(cohort / "B", "B")
    (bad.parent / "d1_gtv.nii.gz").write_bytes(b"not a nifti")
    reasons = []
    for given, out in ((str(cohort.resolve()), tmp_path / "abs"), (os.path.relpath(cohort), tmp_path / "rel")):
        assert main(["evaluate", given, "--out", str(out), *EVALUATE]) == 0, capsys.readouterr().err
        text = (out / "summary.json").read_text()
        assert str(tmp_path) not in text and str(tmp_path) not in (out / "skipped.csv").read_text()
        reasons.append(json.loads(text)["skipped"])
    assert reasons[0] == reasons[1] and reasons[0][0]["reason"].startswith("B/d1_gtv.nii.gz: ")


def test_evaluate_refuses_two_folders_sharing_a_patient_id(tmp_path: Path, capsys) -> None:
    """Two folders with one patient_id used to collapse into one patient of the per-patient Wilcoxon tests."""
    cohort = tmp_path / "cohort"
    _write_case(cohort / "p1", "SAME")
    _write_case(cohort / "p2", "OTHER")
    _write_case(cohort / "p3", "SAME")
    out = tmp_path / "eval"
    err = refused(["evaluate", str(cohort), "--out", str(out), *EVALUATE], out, capsys, cohort)
    first, second = cohort / "p1" / "case.json", cohort / "p3" / "case.json"
    assert f"{second}: patient_id: 'SAME' is also the patient_id of {first}" in err
    assert "(folders p1 and p3)" in err


def test_evaluate_refuses_a_cohort_with_no_readable_patient(tmp_path: Path, capsys) -> None:
    cohort = tmp_path / "cohort"
    (cohort / "A").mkdir(parents=True)
    (cohort / "A" / "case.json").symlink_to("case.json")
    out = tmp_path / "eval"
    err = refused(["evaluate", str(cohort), "--out", str(out), *EVALUATE], out, capsys, cohort)
    assert "no patient folder with a case.json in the cohort folder (1 unreadable; first: A/case.json" in err
    assert "a symbolic link loop)" in err
