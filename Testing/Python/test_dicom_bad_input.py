"""import-dicom and export-dicom on bad input: one line naming the file and the field, exit 2, nothing written (no
output folder, no temporary sibling left), inputs untouched."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from dicom_sample_data import TINY_GRID, tiny_ball, write_mr_series, write_tiny_patient
from gliomaforecast.cli import main
from gliomaforecast.output.record import SEGMENT_COLORS, SEGMENT_TERMS
from gliomaforecast.io.images import write_segmentation


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dicom_good") / "dicom"
    write_tiny_patient(root)
    return root


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


def refused(argv: list[str], out: Path, capsys, inputs: Path) -> str:
    """Run the command; check exit 2, one stderr line, nothing written, inputs unchanged; return the line."""
    before = _digest(inputs)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert _digest(inputs) == before
    return err


def test_folder_without_mr(good, tmp_path, capsys):
    folder = tmp_path / "no_mr"
    folder.mkdir()
    shutil.copy(good / "rtdose.dcm", folder / "rtdose.dcm")
    shutil.copy(good / "scan0" / "rtstruct.dcm", folder / "rtstruct.dcm")
    err = refused(["import-dicom", str(folder), "--out", str(tmp_path / "case")], tmp_path / "case", capsys, folder)
    assert f"{folder}: Modality: no MR series found" in err and "RTDOSE, RTSTRUCT" in err


def test_rtstruct_on_another_frame_of_reference(tmp_path, capsys):
    folder = tmp_path / "dicom"
    other = generate_uid()
    write_tiny_patient(folder, rtstruct_frame=other)
    err = refused(["import-dicom", str(folder), "--out", str(tmp_path / "case")], tmp_path / "case", capsys, folder)
    assert f"{folder / 'scan1' / 'rtstruct.dcm'}: ReferencedFrameOfReferenceSequence.FrameOfReferenceUID" in err
    assert other in err


@pytest.mark.parametrize("damage, field", [("truncate", "PixelData"), ("garbage", "SOPClassUID"),
                                           ("preamble only", "SOPClassUID"), ("cut in the header", "SOPInstanceUID")])
def test_corrupt_file(good, tmp_path, capsys, damage, field):
    folder = tmp_path / "dicom"
    shutil.copytree(good, folder)
    victim = folder / "scan1" / "flair" / "flair_0003.dcm"
    data = victim.read_bytes()
    victim.write_bytes({"truncate": data[:-100], "garbage": data[:200] + b"\xff" * 50,
                        "preamble only": data[:132] + b"\x02\x00", "cut in the header": data[:400]}[damage])
    err = refused(["import-dicom", str(folder), "--out", str(tmp_path / "case")], tmp_path / "case", capsys, folder)
    assert err.startswith(f"gliomaforecast import-dicom: error: {victim}: {field}:")


def test_two_patients_are_named(tmp_path, capsys):
    folder = tmp_path / "dicom"
    write_tiny_patient(folder, other_patient_series=True)
    err = refused(["import-dicom", str(folder), "--out", str(tmp_path / "case")], tmp_path / "case", capsys, folder)
    assert ": PatientID: two patients" in err and "'TINY-1'" in err and "'OTHER-2'" in err


def test_mr_series_on_another_frame_of_reference(good, tmp_path, capsys):
    folder = tmp_path / "dicom"
    shutil.copytree(good, folder)
    write_mr_series(folder / "scan0" / "t1", np.zeros(TINY_GRID.shape, np.int16), TINY_GRID, modality="t1", day=0,
                    study_uid=generate_uid(), frame_uid=generate_uid(), patient_id="TINY-1")
    err = refused(["import-dicom", str(folder), "--out", str(tmp_path / "case")], tmp_path / "case", capsys, folder)
    # one date, two frames: a session has one frame of reference (sessions of other dates may have their own)
    assert "scan0/t1/t1_0000.dcm: FrameOfReferenceUID:" in err and "one session has one frame of reference" in err


def test_bad_mapping_file(good, tmp_path, capsys):
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"AX T2 FLAIR": "pd"}))
    err = refused(["import-dicom", str(good), "--out", str(tmp_path / "case"), "--mapping", str(mapping)],
                  tmp_path / "case", capsys, good)
    assert f"{mapping}: AX T2 FLAIR: maps to 'pd'" in err


@pytest.fixture
def targets_dir(tmp_path) -> Path:
    folder = tmp_path / "forecast"
    folder.mkdir()
    gtv = tiny_ball(TINY_GRID, 4.0)
    write_segmentation(folder / "targets.seg.nrrd", {"GTV": gtv, "CTV standard": tiny_ball(TINY_GRID, 7.0)},
                       TINY_GRID, colors=SEGMENT_COLORS, terminology=SEGMENT_TERMS)
    return folder


def test_export_refuses_another_patients_series(good, targets_dir, tmp_path, capsys):
    (targets_dir / "forecast.json").write_text(json.dumps({"patient_id": "SOMEONE-ELSE"}))
    out = tmp_path / "export"
    err = refused(["export-dicom", str(targets_dir), "--reference", str(good / "scan0" / "flair"), "--out", str(out)],
                  out, capsys, targets_dir)
    assert f"{targets_dir / 'forecast.json'}: patient_id: 'SOMEONE-ELSE' differs from PatientID 'TINY-1'" in err


def test_export_refuses_a_folder_of_several_series(good, targets_dir, tmp_path, capsys):
    out = tmp_path / "export"
    err = refused(["export-dicom", str(targets_dir), "--reference", str(good / "scan0"), "--out", str(out)],
                  out, capsys, targets_dir)
    assert f"{good / 'scan0'}: SeriesInstanceUID: 4 image series found" in err


def test_export_refuses_targets_outside_the_series(good, tmp_path, capsys):
    folder = tmp_path / "forecast"
    folder.mkdir()
    shifted = type(TINY_GRID)(TINY_GRID.shape, TINY_GRID.spacing, (100.0, -12.0, 20.0), TINY_GRID.direction)
    write_segmentation(folder / "targets.seg.nrrd", {"GTV": tiny_ball(shifted, 4.0)}, shifted,
                       colors=SEGMENT_COLORS, terminology=SEGMENT_TERMS)
    out = tmp_path / "export"
    err = refused(["export-dicom", str(folder), "--reference", str(good / "scan0" / "flair"), "--out", str(out)],
                  out, capsys, folder)
    assert f"{folder / 'targets.seg.nrrd'}: Segment 'GTV': reaches outside the reference series" in err


def test_export_without_targets(good, tmp_path, capsys):
    folder = tmp_path / "empty"
    folder.mkdir()
    out = tmp_path / "export"
    err = refused(["export-dicom", str(folder), "--reference", str(good / "scan0" / "flair"), "--out", str(out)],
                  out, capsys, folder)
    assert f"{folder}: targets.seg.nrrd: not found" in err


def test_import_never_replaces_the_dicom_folder(good, tmp_path, capsys):
    folder = tmp_path / "dicom"
    shutil.copytree(good, folder)
    before = _digest(folder)
    assert main(["import-dicom", str(folder), "--out", str(folder), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{folder}: output: holds an input" in err
    assert _digest(folder) == before


def test_missing_slice_is_named(good, tmp_path, capsys):
    folder = tmp_path / "dicom"
    shutil.copytree(good, folder)
    (folder / "scan1" / "flair" / "flair_0002.dcm").unlink()
    err = refused(["import-dicom", str(folder), "--out", str(tmp_path / "case")], tmp_path / "case", capsys, folder)
    assert "scan1/flair/flair_0003.dcm: ImagePositionPatient: slice spacing is not uniform (6 mm here, mean" in err
