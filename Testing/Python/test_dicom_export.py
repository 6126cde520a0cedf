"""export-dicom: the targets as RTSTRUCT and DICOM SEG on a planning series (axial and oblique) read back to the
masks (RTSTRUCT Dice >= 0.98 by two rasterizers, holes included; SEG exactly, by highdicom), reference the series,
carry the segmentation's names, colours and codes, and pass pydicom's and highdicom's checks; forecast
--dicom-reference writes the same into OUT/dicom."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import highdicom as hd
import numpy as np
import pydicom
import pytest
from scipy import ndimage
from highdicom._standard_utils import check_required_attributes, get_iod_module_map, get_sop_class_iod_map
from matplotlib.path import Path as PolygonPath
from pydicom import config
from pydicom.uid import generate_uid
from scipy.spatial.transform import Rotation

from conftest import SAMPLE_CASE
from dicom_sample_data import TINY_GRID, tiny_ball, write_mr_series, write_tiny_patient
from gliomaforecast import sdf
from gliomaforecast.io.case import load_case
from gliomaforecast.cli import main
from gliomaforecast.dicom.contours import rasterize
from gliomaforecast.dicom.rtstruct_read import read_rois
from gliomaforecast.dicom.rtstruct_write import rtstruct_dataset
from gliomaforecast.dicom.seg_write import terminology_codes
from gliomaforecast.output.record import SEGMENT_COLORS, SEGMENT_TERMS
from gliomaforecast.geometry import Grid
from gliomaforecast.io.images import read_segmentation, write_image, write_segmentation
from gliomaforecast.targets.standard_plan import plan_record
from gliomaforecast.targets.volumes import build_targets

NAMES = ("GTV", "CTV standard", "CTV forecast")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The sample's last FLAIR as an axial and an oblique planning series; targets (GTV, CTV standard, CTV forecast)
    built from its last GTV with a shifted forecast score, in a brain mask with a ball cut out next to the GTV (a
    ventricle-like hole in the CTVs); both exported."""
    case = load_case(SAMPLE_CASE)
    tp = case.timepoints[-1]
    gtv = case.gtv(tp)
    root = tmp_path_factory.mktemp("dicom_export")
    zz, yy, xx = np.nonzero(gtv)
    centre = np.array([zz.mean(), yy.mean(), xx.mean()])
    hole = np.linalg.norm((np.indices(gtv.shape).T - (centre + [0, 0, 14])).T * 2.0, axis=0) <= 5.0
    brain = case.brain_mask() & ~(hole & ~gtv)
    score = sdf.tumor_probability(np.roll(gtv, 3, axis=2), case.grid.spacing)
    targets = build_targets(gtv, case.grid.spacing, 15.0, score=score, brain_mask=brain)
    masks = {"GTV": gtv, "CTV standard": targets.standard, "CTV forecast": targets.forecast}
    rotation = Rotation.from_euler("xyz", [-11, 7, 18], degrees=True).as_matrix() @ case.grid.direction_matrix
    grids = {"axial": case.grid,
             "oblique": Grid(case.grid.shape, case.grid.spacing, (79.5, 120.25, -70.0), tuple(rotation.ravel()))}
    runs = {}
    for kind, grid in grids.items():
        reference = write_mr_series(root / kind / "planning", case.image(tp, "flair"), grid, modality="flair",
                                    day=tp.day, study_uid=generate_uid(), frame_uid=generate_uid(),
                                    patient_id=case.patient_id)
        forecast = root / kind / "forecast"
        forecast.mkdir()
        write_segmentation(forecast / "targets.seg.nrrd", masks, grid, colors=SEGMENT_COLORS, terminology=SEGMENT_TERMS)
        plan = plan_record("flair", 15.0, float(targets.standard.sum() * case.grid.voxel_volume_ml))  # GTV-seeded
        (forecast / "forecast.json").write_text(json.dumps({"patient_id": case.patient_id, "standard_plan": plan}))
        out = root / kind / "dicom"
        rc = main(["export-dicom", str(forecast), "--reference", str(root / kind / "planning"), "--out", str(out)])
        runs[kind] = SimpleNamespace(rc=rc, out=out, grid=grid, reference=reference,
                                     rtstruct=pydicom.dcmread(out / "targets_rtstruct.dcm"),
                                     seg_path=out / "targets_seg.dcm")
    return SimpleNamespace(masks=masks, runs=runs)


KINDS = ("axial", "oblique")


def independent_masks(rtstruct: pydicom.Dataset, reference: list[pydicom.Dataset],
                      combine: str) -> dict[str, np.ndarray]:
    """Rasterize the RTSTRUCT from the DICOM attributes of each contour's referenced slice (Image Position and
    Orientation, Pixel Spacing) with matplotlib's point-in-polygon, the contours of a slice combined by ``xor``
    (even-odd) or ``or`` (their union, as a planning system that knows no holes would); also check that every point
    lies in its slice's plane."""
    index = {str(ds.SOPInstanceUID): k for k, ds in enumerate(reference)}
    rows, cols = int(reference[0].Rows), int(reference[0].Columns)
    rr, cc = np.mgrid[0:rows, 0:cols]
    centres = np.column_stack([rr.ravel(), cc.ravel()])
    names = {int(r.ROINumber): str(r.ROIName) for r in rtstruct.StructureSetROISequence}
    out = {}
    for roi in rtstruct.ROIContourSequence:
        mask = np.zeros((len(reference), rows, cols), dtype=bool)
        for contour in roi.ContourSequence:
            assert contour.ContourGeometricType == "CLOSED_PLANAR"
            k = index[str(contour.ContourImageSequence[0].ReferencedSOPInstanceUID)]
            ds = reference[k]
            ipp = np.array([float(v) for v in ds.ImagePositionPatient])
            iop = np.array([float(v) for v in ds.ImageOrientationPatient]).reshape(2, 3)
            row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
            points = np.array([float(v) for v in contour.ContourData]).reshape(-1, 3) - ipp
            assert len(points) == int(contour.NumberOfContourPoints)
            assert np.max(np.abs(points @ np.cross(iop[0], iop[1]))) < 1e-3  # mm off the slice plane
            polygon = np.column_stack([points @ iop[1] / row_mm, points @ iop[0] / col_mm])
            inside = PolygonPath(polygon).contains_points(centres).reshape(rows, cols)
            mask[k] = mask[k] ^ inside if combine == "xor" else mask[k] | inside
        out[names[int(roi.ReferencedROINumber)]] = mask
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_rtstruct_reads_back_to_the_masks(exported, kind):
    run = exported.runs[kind]
    assert run.rc == 0
    rois = {roi.name: roi for roi in read_rois(run.rtstruct, run.out / "targets_rtstruct.dcm")}
    assert list(rois) == list(NAMES)
    even_odd = independent_masks(run.rtstruct, run.reference, "xor")
    union = independent_masks(run.rtstruct, run.reference, "or")
    for name in NAMES:
        want = exported.masks[name]
        assert dice(rasterize(rois[name].contours, run.grid), want) >= 0.98
        assert dice(even_odd[name], want) >= 0.98 and dice(union[name], want) >= 0.98
        assert np.array_equal(even_odd[name], want)  # voxel centres lie 0.35 voxel or more from the contours
        assert np.array_equal(union[name], want)  # keyhole contours: no contour inside another


def test_holes_are_keyhole_contours_on_their_slice(exported):
    """Slices where the CTV has a hole carry it in a keyhole contour: the hole's voxels lie inside no contour."""
    run = exported.runs["axial"]
    standard = exported.masks["CTV standard"]
    holes = [k for k in range(standard.shape[0])
             if np.any(ndimage.binary_fill_holes(standard[k]) & ~standard[k])]
    assert holes, "the ball cut out of the brain should leave holes in the CTV"
    union = independent_masks(run.rtstruct, run.reference, "or")["CTV standard"]
    for k in holes:
        hole = ndimage.binary_fill_holes(standard[k]) & ~standard[k]
        assert not union[k][hole].any()


@pytest.mark.parametrize("kind", KINDS)
def test_rtstruct_references_the_planning_series(exported, kind):
    run = exported.runs[kind]
    ds, ref = run.rtstruct, run.reference[0]
    assert ds.Modality == "RTSTRUCT" and "research use" in ds.SeriesDescription
    assert (ds.PatientID, ds.StudyInstanceUID, ds.FrameOfReferenceUID) == (ref.PatientID, ref.StudyInstanceUID,
                                                                           ref.FrameOfReferenceUID)
    assert ds.SeriesInstanceUID != ref.SeriesInstanceUID
    assert ds.SOPInstanceUID not in {str(r.SOPInstanceUID) for r in run.reference}
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == ref.FrameOfReferenceUID
    series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == ref.SeriesInstanceUID
    assert [i.ReferencedSOPInstanceUID for i in series.ContourImageSequence] == [r.SOPInstanceUID
                                                                                 for r in run.reference]
    types = {int(o.ReferencedROINumber): o.RTROIInterpretedType for o in ds.RTROIObservationsSequence}
    assert [types[int(r.ROINumber)] for r in ds.StructureSetROISequence] == ["GTV", "CTV", "CTV"]
    colors = [list(roi.ROIDisplayColor) for roi in ds.ROIContourSequence]
    assert colors == [[round(255 * c) for c in SEGMENT_COLORS[n]] for n in NAMES]
    assert all(r.ReferencedFrameOfReferenceUID == ref.FrameOfReferenceUID for r in ds.StructureSetROISequence)


@pytest.mark.parametrize("kind", KINDS)
def test_seg_reads_back_exactly_with_its_codes(exported, kind):
    run = exported.runs[kind]
    seg = hd.seg.segread(run.seg_path)
    uids = [str(r.SOPInstanceUID) for r in run.reference]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1, 2, 3],
                                               assert_missing_frames_are_empty=True)
    for i, name in enumerate(NAMES):
        assert np.array_equal(pixels[..., i].astype(bool), exported.masks[name]), name
        description = seg.get_segment_description(i + 1)
        assert description.segment_label == name
        codes = terminology_codes(SEGMENT_TERMS[name])
        assert description.segmented_property_type == codes["type"]
        assert description.segmented_property_category == codes["category"]
        assert description.anatomic_regions[0] == codes["region"]
        rgb = hd.color.CIELabColor.from_dicom_value(tuple(description.RecommendedDisplayCIELabValue)).to_rgb()
        assert np.max(np.abs(np.subtract(rgb, [255 * c for c in SEGMENT_COLORS[name]]))) <= 1.5
    ref = run.reference[0]
    assert (seg.StudyInstanceUID, seg.FrameOfReferenceUID, seg.PatientID) == (ref.StudyInstanceUID,
                                                                              ref.FrameOfReferenceUID, ref.PatientID)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ref.SeriesInstanceUID
    assert "research use" in seg.SeriesDescription and seg.ContentQualification == "RESEARCH"
    texts = [seg.get_segment_description(i + 1).get("SegmentDescription") for i in range(3)]
    assert texts == [None, "GliomaForecast CTV standard: flair gtv+cavity + 15 mm",
                     "GliomaForecast CTV forecast: iso-volumetric to flair plan"]


def test_descriptions_name_the_standard_plan(exported):
    """The RTSTRUCT's ROI Generation Descriptions name the convention of forecast.json's standard_plan."""
    ds = exported.runs["axial"].rtstruct
    texts = {r.ROIName: r.ROIGenerationDescription for r in ds.StructureSetROISequence}
    assert texts["CTV standard"] == "GliomaForecast CTV standard: flair gtv+cavity + 15 mm"
    assert texts["CTV forecast"] == "GliomaForecast CTV forecast: iso-volumetric to flair plan"
    assert texts["GTV"].startswith("GliomaForecast GTV - research use")


def _check_iod(ds: pydicom.Dataset) -> None:
    """Every mandatory module of the object's IOD has its type 1 and 2 attributes (highdicom's tables). The
    functional-group macros of multi-frame objects are conditional, which the tables do not say: their top level is
    checked, and the per-frame items by hand."""
    iod = get_sop_class_iod_map()[ds.SOPClassUID]
    for module in get_iod_module_map()[iod]:
        if module["usage"] == "M":
            recursive = "functional-groups" not in module["key"]
            check_required_attributes(ds, module["key"], recursive=recursive)
    for frame in getattr(ds, "PerFrameFunctionalGroupsSequence", []):
        for keyword in ("DerivationImageSequence", "FrameContentSequence", "PlanePositionSequence",
                        "SegmentIdentificationSequence"):
            assert keyword in frame, keyword


@pytest.mark.parametrize("kind", KINDS)
def test_validation_raises_nothing(exported, kind, monkeypatch):
    monkeypatch.setattr(config.settings, "reading_validation_mode", config.RAISE)
    run = exported.runs[kind]
    for path in (run.out / "targets_rtstruct.dcm", run.seg_path):
        ds = pydicom.dcmread(path)
        pydicom.dataset.validate_file_meta(ds.file_meta, enforce_standard=True)
        for element in ds.iterall():  # converting each value validates its VR in RAISE mode
            element.value
        _check_iod(ds)


def test_forecast_with_dicom_reference_writes_the_same_targets(tmp_path, capsys):
    dicom = tmp_path / "dicom"
    write_tiny_patient(dicom)
    assert main(["import-dicom", str(dicom), "--out", str(tmp_path / "case"), "--no-anatomy"]) == 0
    out = tmp_path / "forecast"
    argv = ["forecast", str(tmp_path / "case" / "case.json"), "--day", "150", "--forecaster", "persistence",
            "--samples", "2", "--out", str(out), "--dicom-reference", str(dicom / "scan1" / "flair")]
    assert main(argv) == 0
    assert "RTSTRUCT and SEG on series" in capsys.readouterr().out
    masks, _ = read_segmentation(out / "targets.seg.nrrd")
    seg = hd.seg.segread(out / "dicom" / "targets_seg.dcm")
    uids = [str(ds.SOPInstanceUID) for ds in sorted((pydicom.dcmread(p) for p in (dicom / "scan1" / "flair").iterdir()),
                                                    key=lambda ds: float(ds.ImagePositionPatient[2]))]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1, 2, 3],
                                               assert_missing_frames_are_empty=True)
    for i, name in enumerate(NAMES):
        assert np.array_equal(pixels[..., i].astype(bool), masks[name])


def test_forecast_with_another_patients_series_is_refused_before_any_work(tmp_path, capsys):
    dicom = tmp_path / "dicom"
    write_tiny_patient(dicom)
    other = tmp_path / "other"
    write_tiny_patient(other, patient_id="TINY-2")
    assert main(["import-dicom", str(dicom), "--out", str(tmp_path / "case"), "--no-anatomy"]) == 0
    out = tmp_path / "forecast"
    argv = ["forecast", str(tmp_path / "case" / "case.json"), "--day", "150", "--forecaster", "persistence",
            "--out", str(out), "--dicom-reference", str(other / "scan1" / "flair")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "case.json: patient_id: 'TINY-1' differs from PatientID 'TINY-2'" in err[0]
    assert not out.exists()


def test_ctv_output_folder_exports_with_the_forecast_terminology(tmp_path, capsys):
    """A ``ctv`` command's folder: targets.seg.nrrd without terminology tags and no forecast.json."""
    dicom = tmp_path / "dicom"
    write_tiny_patient(dicom)
    gtv = tiny_ball(TINY_GRID, 4.0)
    write_image(tmp_path / "gtv.nii.gz", gtv.astype(np.uint8), TINY_GRID)
    assert main(["ctv", "--gtv", str(tmp_path / "gtv.nii.gz"), "--margin-mm", "3", "--out", str(tmp_path / "ctv")]) == 0
    out = tmp_path / "export"
    assert main(["export-dicom", str(tmp_path / "ctv"), "--reference", str(dicom / "scan0" / "flair"),
                 "--out", str(out)]) == 0
    assert "CTV standard   CTV" in capsys.readouterr().out
    seg = hd.seg.segread(out / "targets_seg.dcm")
    masks, _ = read_segmentation(tmp_path / "ctv" / "targets.seg.nrrd")
    assert [seg.get_segment_description(i).segment_label for i in (1, 2)] == ["GTV", "CTV standard"]
    assert seg.get_segment_description(2).segmented_property_type == terminology_codes(
        SEGMENT_TERMS["CTV standard"])["type"]
    rtstruct = pydicom.dcmread(out / "targets_rtstruct.dcm")
    rois = {roi.name: roi for roi in read_rois(rtstruct, out / "targets_rtstruct.dcm")}
    for name in ("GTV", "CTV standard"):
        assert np.array_equal(rasterize(rois[name].contours, TINY_GRID), masks[name])


def test_two_exports_differ_only_in_identity_and_creation_time(tmp_path):
    dicom = tmp_path / "dicom"
    write_tiny_patient(dicom)
    forecast = tmp_path / "forecast"
    forecast.mkdir()
    write_segmentation(forecast / "targets.seg.nrrd", {"GTV": tiny_ball(TINY_GRID, 4.0)}, TINY_GRID,
                       colors=SEGMENT_COLORS, terminology=SEGMENT_TERMS)
    runs = []
    for name in ("a", "b"):
        assert main(["export-dicom", str(forecast), "--reference", str(dicom / "scan0" / "flair"),
                     "--out", str(tmp_path / name)]) == 0
        runs.append(pydicom.dcmread(tmp_path / name / "targets_rtstruct.dcm"))
    a, b = runs
    assert a.SOPInstanceUID != b.SOPInstanceUID and a.SeriesInstanceUID != b.SeriesInstanceUID
    for keyword in ("ReferencedFrameOfReferenceSequence", "StructureSetROISequence", "ROIContourSequence",
                    "RTROIObservationsSequence", "PatientID", "StudyInstanceUID", "SeriesDescription"):
        assert a[keyword] == b[keyword], keyword


def test_a_long_contour_is_written_whole(tmp_path):
    """A contour of more than 64 kB of Contour Data (explicit VR could not hold it) keeps its VR and its points."""
    rotation = Rotation.from_euler("z", 17, degrees=True).as_matrix()
    grid = Grid((1, 600, 600), (2.0, 0.5, 0.5), (-103.123456789, 98.987654321, 11.5), tuple(rotation.ravel()))
    yy, xx = np.mgrid[0:600, 0:600] - 299.5
    wavy = (np.hypot(yy, xx) <= 250 + 30 * np.sin(60 * np.arctan2(yy, xx)))[None]  # one contour, many vertices
    slice_ = pydicom.Dataset()
    slice_.SOPClassUID, slice_.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.4", generate_uid()
    slice_.StudyInstanceUID, slice_.SeriesInstanceUID, slice_.FrameOfReferenceUID = (generate_uid() for _ in range(3))
    slice_.PatientID = "LONG"
    ds = rtstruct_dataset([slice_], grid, {"CTV": wavy}, colors={"CTV": (0, 1, 0)}, interpreted_types={"CTV": "CTV"},
                          automatic={"CTV": True}, description="long contour")
    pydicom.dcmwrite(tmp_path / "rs.dcm", ds, enforce_file_format=True)
    back = pydicom.dcmread(tmp_path / "rs.dcm")
    contour = back.ROIContourSequence[0].ContourSequence[0]
    text = "\\".join(str(v) for v in contour.ContourData)
    assert contour["ContourData"].VR == "DS" and len(text) > 64 * 1024
    assert len(contour.ContourData) == 3 * int(contour.NumberOfContourPoints)
    roi = read_rois(back, tmp_path / "rs.dcm")[0]
    assert len(roi.contours) == 1 and np.array_equal(rasterize(roi.contours, grid), wavy)


def test_targets_on_another_grid_are_moved_onto_the_planning_series(tmp_path, capsys):
    """Targets on the 3 mm FLAIR grid, planning series with every other slice (6 mm): nearest neighbour keeps the
    slices both share."""
    dicom = tmp_path / "dicom"
    write_tiny_patient(dicom)
    forecast = tmp_path / "forecast"
    forecast.mkdir()
    gtv, ctv = tiny_ball(TINY_GRID, 4.0), tiny_ball(TINY_GRID, 7.0)
    write_segmentation(forecast / "targets.seg.nrrd", {"GTV": gtv, "CTV standard": ctv}, TINY_GRID,
                       colors=SEGMENT_COLORS, terminology=SEGMENT_TERMS)
    out = tmp_path / "export"
    assert main(["export-dicom", str(forecast), "--reference", str(dicom / "scan0" / "flair_coarse"),
                 "--out", str(out)]) == 0
    assert "masks moved onto it (nearest)" in capsys.readouterr().out
    coarse = sorted((pydicom.dcmread(p) for p in (dicom / "scan0" / "flair_coarse").iterdir()),
                    key=lambda ds: float(ds.ImagePositionPatient[2]))
    pixels = hd.seg.segread(out / "targets_seg.dcm").get_pixels_by_source_instance(
        source_sop_instance_uids=[str(ds.SOPInstanceUID) for ds in coarse], segment_numbers=[1, 2],
        assert_missing_frames_are_empty=True)
    assert np.array_equal(pixels[..., 0].astype(bool), gtv[::2])
    assert np.array_equal(pixels[..., 1].astype(bool), ctv[::2])
