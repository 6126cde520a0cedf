"""import-dicom: DICOM written from the sample patient (axial and oblique MR, RTSTRUCT GTV, RTDOSE with
DoseGridScaling) comes back as a case with the sample's voxels and geometry; series classification and choice."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from scipy.spatial.transform import Rotation

from conftest import SAMPLE_CASE
from dicom_sample_data import (DAY0, TINY_GRID, tiny_ball, write_gtv_rtstruct, write_mr_series, write_rtdose,
                               write_tiny_patient)
from gliomaforecast.io.case import load_case
from gliomaforecast.cli import main
from gliomaforecast.dicom.files import Series
from gliomaforecast.dicom.series import classify
from gliomaforecast.geometry import Grid
from gliomaforecast.io.images import read_image

SCANS = {0: ("flair", "t1ce", "t1", "t2"), 3: ("flair",)}  # first and last scan of the sample


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def max_geometry_difference(a: Grid, b: Grid) -> float:
    """Largest difference of spacing and origin (mm) and direction cosines between two grids of one shape."""
    assert a.shape == b.shape
    return float(max(np.max(np.abs(np.subtract(a.spacing, b.spacing))),
                     np.max(np.abs(np.subtract(a.origin, b.origin))),
                     np.max(np.abs(np.subtract(a.direction, b.direction)))))


@pytest.fixture(scope="module")
def sample():
    return load_case(SAMPLE_CASE)


@pytest.fixture(scope="module")
def axial(sample, tmp_path_factory):
    """The sample's first scan (FLAIR, T1CE, T1, T2) and last scan (FLAIR) as DICOM studies with a GTV structure
    set each, the RT dose as RTDOSE, imported with import-dicom."""
    root = tmp_path_factory.mktemp("dicom_axial")
    frame = generate_uid()
    for i, kinds in SCANS.items():
        tp = sample.timepoints[i]
        study = generate_uid()
        series = {kind: write_mr_series(root / f"scan{i}" / kind, sample.image(tp, kind), sample.grid, modality=kind,
                                        day=tp.day, study_uid=study, frame_uid=frame, series_number=n + 1)
                  for n, kind in enumerate(kinds)}
        write_gtv_rtstruct(root / f"scan{i}" / "rtstruct.dcm", sample.gtv(tp), sample.grid, series["flair"])
        if i == 0:
            scaling = write_rtdose(root / "rtdose.dcm", sample.dose(), sample.grid, study_uid=study, frame_uid=frame,
                                   day=tp.day)
    out = root / "case"
    rt_start = (DAY0 + dt.timedelta(days=int(sample.rt_start_day))).isoformat()
    rc = main(["import-dicom", str(root), "--out", str(out), "--rt-start-date", rt_start, "--no-anatomy"])
    return SimpleNamespace(rc=rc, out=out, scaling=scaling)


def test_axial_round_trip_gives_the_sample_voxels_and_geometry(sample, axial):
    assert axial.rc == 0
    case = load_case(axial.out / "case.json")
    assert case.patient_id == sample.patient_id
    assert case.days.tolist() == [sample.timepoints[i].day for i in SCANS]
    assert case.rt_start_day == sample.rt_start_day
    for tp, i in zip(case.timepoints, SCANS):
        assert sorted(tp.images) == sorted(SCANS[i])
        for kind in SCANS[i]:
            got, grid = read_image(tp.images[kind])
            want, want_grid = read_image(sample.timepoints[i].images[kind])
            assert got.dtype == want.dtype and np.array_equal(got, want), kind
            assert max_geometry_difference(grid, want_grid) <= 1e-4
        assert dice(case.gtv(tp), sample.gtv(sample.timepoints[i])) >= 0.98
    assert np.max(np.abs(case.dose() - sample.dose())) <= axial.scaling / 2 + 1e-5


def test_import_report_lists_every_series_and_no_absolute_path(axial):
    report = json.loads((axial.out / "import.json").read_text())
    used = {(r.get("date"), r.get("used_as")) for r in report["series"] if r["used"]}
    first, last = (DAY0 + dt.timedelta(days=d) for d in (0, 231))
    assert used == {(first.isoformat(), k) for k in (*SCANS[0], "gtv")} | {(last.isoformat(), k) for k in
                                                                            ("flair", "gtv")} | {(None, "dose")}
    assert str(axial.out.parent) not in (axial.out / "import.json").read_text()


@pytest.fixture(scope="module")
def oblique(sample, tmp_path_factory):
    """The sample's first FLAIR and GTV on an oblique grid (same voxels, rotated axes), and an RTDOSE on a coarser
    axial grid holding a dose that is linear in the patient position, imported with import-dicom."""
    root = tmp_path_factory.mktemp("dicom_oblique")
    tp = sample.timepoints[0]
    rotation = Rotation.from_euler("xyz", [14, -9, 23], degrees=True).as_matrix() @ sample.grid.direction_matrix
    grid = Grid(sample.grid.shape, sample.grid.spacing, (80.25, 121.5, -68.75), tuple(rotation.ravel()))
    frame, study = generate_uid(), generate_uid()
    flair = write_mr_series(root / "flair", sample.image(tp, "flair"), grid, modality="flair", day=0, study_uid=study,
                            frame_uid=frame)
    write_gtv_rtstruct(root / "rtstruct.dcm", sample.gtv(tp), grid, flair)
    corners = grid.index_to_physical(np.array([[z, y, x] for z in (0, grid.shape[0] - 1)
                                               for y in (0, grid.shape[1] - 1) for x in (0, grid.shape[2] - 1)]))
    low, high = corners.min(axis=0) - 10, corners.max(axis=0) + 10
    spacing = 3.0
    shape_xyz = np.ceil((high - low) / spacing).astype(int) + 1
    dose_grid = Grid(tuple(shape_xyz[::-1]), (spacing,) * 3, tuple(low), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    weights, offset = np.array([0.05, -0.03, 0.02]), 30.0  # Gy per mm (x, y, z) and Gy

    def linear_dose(g: Grid) -> np.ndarray:
        points = g.index_to_physical(np.indices(g.shape).reshape(3, -1).T)
        return (offset + points @ weights).reshape(g.shape)

    scaling = write_rtdose(root / "rtdose.dcm", linear_dose(dose_grid), dose_grid, study_uid=study, frame_uid=frame,
                           day=0)
    out = root / "case"
    rc = main(["import-dicom", str(root), "--out", str(out), "--no-anatomy"])
    return SimpleNamespace(rc=rc, out=out, grid=grid, expected_dose=linear_dose(grid), scaling=scaling)


def test_oblique_round_trip_keeps_voxels_and_oblique_geometry(sample, oblique):
    assert oblique.rc == 0
    case = load_case(oblique.out / "case.json")
    tp = case.timepoints[0]
    flair, grid = read_image(tp.images["flair"])
    assert np.array_equal(flair, read_image(sample.timepoints[0].images["flair"])[0])
    assert max_geometry_difference(grid, oblique.grid) <= 1e-4
    assert dice(case.gtv(tp), sample.gtv(sample.timepoints[0])) >= 0.98


def test_rtdose_is_resampled_onto_the_oblique_flair_grid_in_gy(oblique):
    dose = load_case(oblique.out / "case.json").dose()
    # linear interpolation reproduces a linear dose: what is left is DoseGridScaling and float32 rounding
    assert np.max(np.abs(dose - oblique.expected_dose)) < 1e-3
    assert 10 < dose.min() and dose.max() < 50


def _series(**attributes) -> Series:
    ds = Dataset()
    for key, value in attributes.items():
        setattr(ds, key, value)
    return Series(uid=attributes.get("SeriesInstanceUID", "1.2.3"), modality="MR", headers=[ds], paths=[Path("x")])


@pytest.mark.parametrize("attributes, expected", [
    ({"SeriesDescription": "AX T2 FLAIR"}, "flair"),
    ({"SeriesDescription": "t2_tirm_tra_dark-fluid"}, "flair"),
    ({"SeriesDescription": "T1 MPRAGE post Gd"}, "t1ce"),
    ({"SeriesDescription": "T1 MPRAGE", "ContrastBolusAgent": "Gadovist"}, "t1ce"),
    ({"SeriesDescription": "T1 MPRAGE"}, "t1"),
    ({"SeriesDescription": "t2_tse_tra"}, "t2"),
    ({"SeriesDescription": "ep2d_diff ADC"}, "adc"),
    ({"SeriesDescription": "localizer"}, "ignore"),
    ({"SeriesDescription": "ep2d DWI trace"}, "ignore"),
    ({"SeriesDescription": "series 5", "RepetitionTime": 9000, "EchoTime": 90, "InversionTime": 2500}, "flair"),
    ({"SeriesDescription": "series 6", "RepetitionTime": 500, "EchoTime": 10}, "t1"),
    ({"SeriesDescription": "series 7", "RepetitionTime": 4000, "EchoTime": 100}, "t2"),
    ({"SeriesDescription": "SAG 3D ISO", "RepetitionTime": 1200, "EchoTime": 40}, None),
])
def test_series_classification(attributes, expected):
    assert classify(_series(**attributes)) == expected


def test_mapping_overrides_the_classification():
    series = _series(SeriesDescription="AX T2 FLAIR", SeriesInstanceUID="1.2.9")
    assert classify(series, {"1.2.9": "t2"}) == "t2"
    assert classify(series, {"AX T2 FLAIR": "ignore"}) == "ignore"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicom_tiny")
    written = write_tiny_patient(root / "dicom")
    return SimpleNamespace(root=root, dicom=root / "dicom", written=written)


def test_several_series_per_study_missing_modalities_and_a_study_without_gtv(tiny, capsys):
    index = Dataset()  # a DICOMDIR, as on a CD: skipped and listed
    index.file_meta = FileMetaDataset()
    index.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    index.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    index.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    index.FileSetID = "CD"
    index.save_as(tiny.dicom / "DICOMDIR", enforce_file_format=True)
    (tiny.dicom / "README.txt").write_text("burnt by the PACS")
    out = tiny.root / "case"
    assert main(["import-dicom", str(tiny.dicom), "--out", str(out), "--no-anatomy"]) == 0
    case = load_case(out / "case.json")
    assert case.days.tolist() == [0, 60]  # the day-120 study has no structure set: left out
    assert sorted(case.timepoints[0].images) == ["flair", "t1ce"] and sorted(case.timepoints[1].images) == ["flair"]
    flair, grid = read_image(case.timepoints[0].images["flair"])
    assert np.array_equal(flair, tiny.written["images"][(0, "flair")])  # the finer of the two FLAIRs
    assert max_geometry_difference(grid, TINY_GRID) <= 1e-4
    for tp, scan in zip(case.timepoints, (0, 1)):
        assert np.array_equal(case.gtv(tp), tiny.written["gtv"][scan])
    assert np.allclose(case.dose(), 2.0, atol=tiny.written["dose_scaling"])
    report = json.loads((out / "import.json").read_text())
    why = {r["series_description"] + "|" + r["first_file"].split("/")[0]: r.get("why") for r in report["series"]
           if not r["used"]}
    assert why["SAG 3D ISO|scan1"].startswith("unclassified")
    assert why["3-plane localizer|scan0"].startswith("ignored")
    assert "finer" in why["AX T2 FLAIR|scan0"] and "left out" in why["AX T2 FLAIR|scan2"]
    assert "not used: MR 'SAG 3D ISO'" in capsys.readouterr().out
    assert report["not_dicom"] == ["DICOMDIR", "README.txt"]


def test_mapping_file_brings_in_an_unclassified_series(tiny):
    mapping = tiny.root / "mapping.json"
    mapping.write_text(json.dumps({"SAG 3D ISO": "t2"}))
    out = tiny.root / "mapped"
    assert main(["import-dicom", str(tiny.dicom), "--out", str(out), "--mapping", str(mapping), "--no-anatomy"]) == 0
    assert sorted(load_case(out / "case.json").timepoints[1].images) == ["flair", "t2"]


def test_gtv_drawn_on_another_series_goes_through_its_grid(tmp_path):
    """Contours drawn on a T1CE with twice the FLAIR's slices: those between FLAIR slices are rasterized on the
    T1CE grid, then moved onto the FLAIR grid (nearest neighbour), which keeps the T1CE slices the FLAIR shares."""
    frame, study = generate_uid(), generate_uid()
    fine = Grid((12, *TINY_GRID.shape[1:]), (1.5, *TINY_GRID.spacing[1:]), TINY_GRID.origin, TINY_GRID.direction)
    rng = np.random.default_rng(3)
    write_mr_series(tmp_path / "dicom" / "flair", rng.integers(0, 500, TINY_GRID.shape), TINY_GRID, modality="flair",
                    day=0, study_uid=study, frame_uid=frame, patient_id="TINY-1")
    t1ce = write_mr_series(tmp_path / "dicom" / "t1ce", rng.integers(0, 500, fine.shape), fine, modality="t1ce",
                           day=0, study_uid=study, frame_uid=frame, patient_id="TINY-1")
    gtv = tiny_ball(fine, 5.0)
    write_gtv_rtstruct(tmp_path / "dicom" / "rtstruct.dcm", gtv, fine, t1ce)
    assert main(["import-dicom", str(tmp_path / "dicom"), "--out", str(tmp_path / "case"), "--no-anatomy"]) == 0
    case = load_case(tmp_path / "case" / "case.json")
    assert np.array_equal(case.gtv(case.timepoints[0]), gtv[::2])
    t1ce_on_flair, _ = read_image(case.timepoints[0].images["t1ce"])
    assert t1ce_on_flair.shape == TINY_GRID.shape
    records = {r.get("used_as"): r for r in json.loads((tmp_path / "case" / "import.json").read_text())["series"]}
    assert records["t1ce"]["resampled"] is True and records["flair"]["resampled"] is False


def test_same_dicom_gives_identical_files(tiny, tmp_path):
    for name in ("a", "b"):
        assert main(["import-dicom", str(tiny.dicom), "--out", str(tmp_path / name), "--no-anatomy"]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
