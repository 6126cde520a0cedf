"""import-dicom with sessions in their own frames of reference (issue 30): the sample's last scan, moved by a known
rigid motion into another frame (as a second scanner visit would be), is registered onto the planning scan —
estimated without a DICOM Spatial Registration object, taken from one when the folder holds it — and the imported
case gets a derived brain mask; a session that will not register is refused with its measured quality."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pydicom.uid import generate_uid

from conftest import SAMPLE_CASE
from dicom_sample_data import write_gtv_rtstruct, write_mr_series
from gliomaforecast.cli import main
from gliomaforecast.evaluation import dice
from gliomaforecast.io.case import load_case
from gliomaforecast.preparation.motion import motion_matrix, moved_session, random_rigid_motion
from gliomaforecast.preparation.registration import read_transform, target_registration_error
from test_dicom_spatial_registration import write_reg

KINDS = ("flair", "t1")


def _matrix(motion) -> np.ndarray:
    """The 4x4 (LPS mm) of a linear ITK transform."""
    out = np.eye(4)
    out[:3, :3] = motion_matrix(motion)
    out[:3, 3] = motion.TransformPoint((0.0, 0.0, 0.0))
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """DICOM of the sample's first scan (frame A) and last scan moved by a known motion (frame B)."""
    sample = load_case(SAMPLE_CASE)
    root = tmp_path_factory.mktemp("sessions")
    frames = {0: generate_uid(), 3: generate_uid()}
    motion = random_rigid_motion(np.random.default_rng(30), sample.grid)
    last_series = {}
    for i in (0, 3):
        tp, study = sample.timepoints[i], generate_uid()
        series = {}
        for n, kind in enumerate(KINDS):
            image, grid = sample.image(tp, kind), sample.grid
            if i == 3:
                image, grid = moved_session(image, sample.grid, motion)
            series[kind] = write_mr_series(
                root / "dicom" / f"scan{i}" / kind,
                np.round(image),
                grid,
                modality=kind,
                day=tp.day,
                study_uid=study,
                frame_uid=frames[i],
                series_number=n + 1,
            )
        gtv, grid = sample.gtv(tp), sample.grid
        if i == 3:
            gtv, grid = moved_session(gtv.astype(np.uint8), sample.grid, motion, label=True)
            last_series = series
        write_gtv_rtstruct(root / "dicom" / f"scan{i}" / "rtstruct.dcm", gtv.astype(bool), grid, series["flair"])
    return SimpleNamespace(root=root, sample=sample, frames=frames, motion=motion, last=last_series)


def test_a_session_in_another_frame_is_registered_and_the_brain_derived(folders, capsys):
    out = folders.root / "case"
    assert main(["import-dicom", str(folders.root / "dicom"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "estimated rigid, quality" in printed and "brain mask: derived" in printed
    case = load_case(out / "case.json")
    sample = folders.sample
    assert case.grid.same_as(sample.grid)
    record = case.provenance()["registration"][0]
    assert record["source"] == "estimated" and record["quality"] > 0.75
    tre = target_registration_error(
        folders.motion, read_transform(out / record["transform"]), sample.grid, sample.brain_mask()
    )
    assert tre["median_mm"] < 0.5 and tre["max_mm"] < 1.5, tre
    assert dice(case.brain_mask(), sample.brain_mask()) >= 0.95
    last = case.gtv(case.timepoints[1])
    assert dice(last, sample.gtv(sample.timepoints[3])) > 0.85
    summary = json.loads((out / "import.json").read_text())
    assert summary["session_frames"] == {
        d: folders.frames[i] for d, i in zip(sorted(summary["session_frames"]), (0, 3))
    }
    assert set(summary["gtv_volumes_ml"]) == set(summary["session_frames"])


def test_a_spatial_registration_object_is_used_instead_of_estimating(folders, tmp_path, capsys):
    dicom = tmp_path / "dicom"
    shutil.copytree(folders.root / "dicom", dicom)
    # the REG object maps the session's (frame B) coordinates to the planning frame (A): the motion's inverse
    write_reg(
        dicom / "reg.dcm",
        folders.frames[0],
        [
            (folders.frames[0], [(np.eye(4), "RIGID")]),
            (folders.frames[3], [(np.linalg.inv(_matrix(folders.motion)), "RIGID")]),
        ],
        patient_id="VP-SAMPLE",
    )
    out = tmp_path / "case"
    assert main(["import-dicom", str(dicom), "--out", str(out), "--no-anatomy"]) == 0
    case = load_case(out / "case.json")
    record = case.provenance()["registration"][0]
    assert record["source"] == "dicom" and record["quality"] > 0.75
    given = read_transform(out / record["transform"])
    tre = target_registration_error(folders.motion, given, case.grid, folders.sample.brain_mask())
    assert tre["max_mm"] < 1e-3
    assert case.provenance()["brain_mask"] == {"source": "none"}


def test_a_session_that_will_not_register_is_refused_with_its_quality(folders, tmp_path, capsys):
    dicom = tmp_path / "dicom"
    shutil.copytree(folders.root / "dicom", dicom)
    rng = np.random.default_rng(4)
    for kind in KINDS:  # the second visit's images replaced by noise (same headers, same frame)
        for path in sorted((dicom / "scan3" / kind).iterdir()):
            import pydicom

            ds = pydicom.dcmread(path)
            ds.PixelData = rng.integers(0, 400, (ds.Rows, ds.Columns)).astype(np.int16).tobytes()
            ds.save_as(path, enforce_file_format=True)
    out = tmp_path / "case"
    assert main(["import-dicom", str(dicom), "--out", str(out), "--no-anatomy"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "quality" in errors[0] and "below 0.6" in errors[0], errors
    assert not out.exists()
