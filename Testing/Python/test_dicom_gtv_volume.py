"""GTV volumes in import-dicom: the volume the contour polygons enclose (shoelace area per plane x plane spacing, in
mm) against analytic volumes (sphere, cylinder, holes, overlapping ROIs, oblique planes), and the import's check of
the rasterized GTV against it: a sphere imports without a warning, a GTV about one voxel wide drawn between voxel
centres and a GTV contoured on a series of thicker slices than the case grid's are flagged in import.json and in the
command's output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid
from scipy.spatial.transform import Rotation

from dicom_sample_data import DAY0, write_mr_series
from gliomaforecast.cli import main
from gliomaforecast.dicom.contour_area import (
    contour_volume_mm3,
    plane_area_mm2,
    plane_spacing_mm,
    polygon_area_mm2,
    region_area_mm2,
    shoelace_mm2,
    volume_difference,
)
from gliomaforecast.dicom.header import ds_strings
from gliomaforecast.dicom.rtstruct_write import rtstruct_dataset
from gliomaforecast.geometry import Grid


def circle(radius: float, n: int = 256, center=(0.0, 0.0)) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.column_stack([center[0] + radius * np.cos(t), center[1] + radius * np.sin(t)])


def on_plane(xy: np.ndarray, z: float, rotation: np.ndarray | None = None, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(N, 3) points (mm) of 2D points at height ``z``, rotated and shifted."""
    points = np.column_stack([xy, np.full(len(xy), z)])
    if rotation is not None:
        points = points @ rotation.T
    return points + np.asarray(shift)


def sphere_contours(radius: float, spacing: float, rotation=None, shift=(0.0, 0.0, 0.0)) -> list[np.ndarray]:
    """Circles on planes ``spacing`` apart, centred on the sphere's centre plane (the midpoint rule in z)."""
    out = []
    for z in np.arange(-np.floor(radius / spacing), np.floor(radius / spacing) + 1) * spacing:
        if radius**2 - z**2 > 0:
            out.append(on_plane(circle(float(np.sqrt(radius**2 - z**2))), float(z), rotation, shift))
    return out


def square(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


# ------------------------------------------------------------------ the pure functions


@pytest.mark.parametrize("oblique", [False, True])
def test_sphere_contours_give_the_sphere_volume(oblique):
    rotation = Rotation.from_euler("xyz", [25, -40, 70], degrees=True).as_matrix() if oblique else None
    radius, spacing = 20.0, 2.5
    got = contour_volume_mm3([sphere_contours(radius, spacing, rotation, (-31.0, 12.5, 88.0))], 99.0)
    assert got == pytest.approx(4.0 / 3.0 * np.pi * radius**3, rel=0.01)


def test_cylinder_is_exact_and_a_gap_keeps_the_spacing():
    planes = [0.0, 3.0, 6.0, 9.0, 15.0, 18.0]  # 12 mm missing: the median spacing stays 3 mm
    got = contour_volume_mm3([[on_plane(circle(10.0, 2048), z) for z in planes]], 1.0)
    assert got == pytest.approx(len(planes) * np.pi * 100.0 * 3.0, rel=1e-4)
    assert plane_spacing_mm(planes, 1.0) == 3.0
    assert plane_spacing_mm([7.0], 2.5) == 2.5


def test_one_plane_takes_the_given_slice_thickness():
    contour = on_plane(square(0, 0, 10, 4), 12.0)
    assert contour_volume_mm3([[contour]], 2.5) == pytest.approx(100.0)


def test_shoelace_area_in_the_contours_plane():
    rotation = Rotation.from_euler("zyx", [10, 50, -30], degrees=True).as_matrix()
    points = on_plane(square(0, 0, 7, 3), 40.0, rotation, (5, 6, 7))
    assert polygon_area_mm2(points) == pytest.approx(21.0)
    assert polygon_area_mm2(points, rotation[:, 2]) == pytest.approx(21.0)
    assert shoelace_mm2(square(0, 0, 7, 3)) == pytest.approx(21.0)
    assert shoelace_mm2(square(0, 0, 7, 3)[::-1]) == pytest.approx(-21.0)


def test_holes_read_by_the_even_odd_rule_like_the_rasterizer():
    outer, hole, island = square(0, 0, 20, 20), square(5, 5, 15, 15), square(8, 8, 12, 12)
    normal = np.array([0.0, 0.0, 1.0])
    nested = [(0, on_plane(p, 0.0)) for p in (outer, hole, island)]
    assert plane_area_mm2(nested, normal) == pytest.approx(400 - 100 + 16)
    # a keyhole contour: round the outside, in along a cut, round the hole the other way, back out
    keyhole = np.array([(0, 5), (0, 0), (20, 0), (20, 20), (0, 20), (0, 5), (5, 5), (5, 15), (15, 15), (15, 5), (5, 5)])
    assert polygon_area_mm2(on_plane(keyhole.astype(float), 0.0)) == pytest.approx(300.0)
    # CLOSEDPLANAR_XOR of overlapping contours of one ROI: the overlap is out
    assert region_area_mm2([[square(0, 0, 10, 10), square(5, 5, 15, 15)]]) == pytest.approx(150.0)


def test_rois_of_one_gtv_are_united():
    a, b = circle(10.0, 512), circle(10.0, 512, center=(12.0, 0.0))
    # two discs 12 mm apart: the lens where they overlap, 2 r^2 acos(d / 2r) - d/2 sqrt(4 r^2 - d^2)
    lens = 2 * 100 * np.arccos(12 / 20) - 6 * np.sqrt(400 - 144)
    union = 2 * np.pi * 100 - lens
    assert region_area_mm2([[a], [b]]) == pytest.approx(union, rel=1e-3)
    rois = [[on_plane(a, z) for z in (0.0, 2.0)], [on_plane(b, z) for z in (0.0, 2.0)]]
    assert contour_volume_mm3(rois, 1.0) == pytest.approx(2 * 2.0 * union, rel=1e-3)
    assert region_area_mm2([[a, b]]) == pytest.approx(union - lens, rel=1e-3)  # one ROI: even-odd


def test_volume_difference_is_relative_to_the_contours():
    assert volume_difference(0.17, 3.36) == pytest.approx(-0.949, abs=1e-3)
    assert volume_difference(1.0, 0.0) is None
    assert contour_volume_mm3([[]], 1.0) == 0.0


# ------------------------------------------------------------------ import-dicom

FLAIR_GRID = Grid((20, 40, 40), (2.0, 1.0, 1.0), (-19.5, -20.5, -20.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def write_polygon_rtstruct(path: Path, mr: list[Dataset], grid: Grid, contours: list[np.ndarray]) -> None:
    """A structure set with one ROI 'GTV' drawn on the series ``mr`` (on ``grid``) whose contours are the given
    (N, 3) polygons in mm (CLOSED_PLANAR)."""
    ds = rtstruct_dataset(
        mr,
        grid,
        {"GTV": np.ones(grid.shape, bool)},
        colors={"GTV": (1.0, 0.0, 0.0)},
        interpreted_types={"GTV": "GTV"},
        automatic={"GTV": False},
        description="polygons",
    )
    items = []
    for i, points in enumerate(contours):
        item = Dataset()
        item.ContourGeometricType = "CLOSED_PLANAR"
        item.NumberOfContourPoints = len(points)
        item.ContourNumber = i + 1
        item.ContourData = ds_strings(np.asarray(points, dtype=float).ravel())
        items.append(item)
    ds.ROIContourSequence[0].ContourSequence = DicomSequence(items)
    ds.save_as(path, enforce_file_format=True)


def import_patient(root: Path, contours_on: str, contours: list[np.ndarray], capsys) -> tuple[dict, str]:
    """A FLAIR on ``FLAIR_GRID`` and a T1CE of 5x thicker slices (every fifth FLAIR slice) of one study, a structure
    set drawn on ``contours_on`` ('flair' or 't1ce') with ``contours``; import-dicom's import.json and stdout."""
    rng = np.random.default_rng(3)
    frame, study = generate_uid(), generate_uid()
    flair = write_mr_series(
        root / "dicom" / "flair",
        rng.integers(0, 900, FLAIR_GRID.shape),
        FLAIR_GRID,
        modality="flair",
        day=0,
        study_uid=study,
        frame_uid=frame,
        series_number=2,
    )
    thick = Grid((4, 40, 40), (10.0, 1.0, 1.0), FLAIR_GRID.origin, FLAIR_GRID.direction)
    t1ce = write_mr_series(
        root / "dicom" / "t1ce",
        rng.integers(0, 900, thick.shape),
        thick,
        modality="t1ce",
        day=0,
        study_uid=study,
        frame_uid=frame,
        series_number=3,
    )
    mr, grid = (flair, FLAIR_GRID) if contours_on == "flair" else (t1ce, thick)
    write_polygon_rtstruct(root / "dicom" / "rtstruct.dcm", mr, grid, contours)
    capsys.readouterr()
    assert main(["import-dicom", str(root / "dicom"), "--out", str(root / "case"), "--no-anatomy"]) == 0
    return json.loads((root / "case" / "import.json").read_text()), capsys.readouterr().out


def gtv_record(report: dict) -> dict:
    return next(r for r in report["series"] if r.get("used_as") == "gtv")


def test_sphere_imports_with_its_volume_and_no_warning(tmp_path, capsys):
    radius, center = 13.0, np.array([1.0, -2.0, 0.5])  # mm; contours on every FLAIR slice (z = -20 + 2 k mm)
    contours = []
    for z in FLAIR_GRID.origin[2] + 2.0 * np.arange(FLAIR_GRID.shape[0]):
        r2 = radius**2 - (z - center[2]) ** 2
        if r2 > 0:
            contours.append(on_plane(circle(float(np.sqrt(r2)), 128, center[:2]), float(z)))
    report, out = import_patient(tmp_path, "flair", contours, capsys)
    record, analytic_ml = gtv_record(report), 4.0 / 3.0 * np.pi * radius**3 / 1000.0
    assert record["contour_volume_ml"] == pytest.approx(analytic_ml, rel=0.02)
    assert record["gtv_volume_ml"] == pytest.approx(analytic_ml, rel=0.03)
    assert abs(record["volume_difference"]) < 0.03
    assert report["warnings"] == [] and "warning:" not in out
    assert f"GTV {record['gtv_volume_ml']:.3g} mL" in out


def test_gtv_one_voxel_wide_between_voxel_centres_is_flagged(tmp_path, capsys):
    """Strips 1.4 voxels wide, their edges between voxel centres: the rasterizer keeps the one column of centres
    inside, 1/1.4 of the polygons' area."""
    index = [
        np.array([[k, y, x] for y, x in ((4.5, 19.3), (4.5, 20.7), (24.5, 20.7), (24.5, 19.3))]) for k in range(6, 14)
    ]
    report, out = import_patient(tmp_path, "flair", [FLAIR_GRID.index_to_physical(i) for i in index], capsys)
    record = gtv_record(report)
    assert record["contour_volume_ml"] == pytest.approx(8 * 1.4 * 20 * 2.0 / 1000.0)
    assert record["gtv_volume_ml"] == pytest.approx(8 * 20 * 2.0 / 1000.0)
    assert record["volume_difference"] == pytest.approx(-0.4 / 1.4, abs=1e-3)
    date = DAY0.isoformat()
    assert report["warnings"] == [
        f"{date} GTV: rasterized 0.32 mL vs 0.448 mL from the contour polygons (-29 %): check the contour "
        "convention / slice thickness"
    ]
    assert f"  warning: {report['warnings'][0]}" in out.splitlines()


def test_gtv_contoured_on_thicker_slices_is_flagged(tmp_path, capsys):
    """Contours on the planes of a T1CE of 10 mm slices, which are FLAIR slices (2 mm): rasterized on the case grid,
    each fills one FLAIR slice, a fifth of the slab it stands for."""
    square_yx = [(9.5, 9.5), (9.5, 29.5), (29.5, 29.5), (29.5, 9.5)]  # 20 x 20 voxel centres
    thick = Grid((4, 40, 40), (10.0, 1.0, 1.0), FLAIR_GRID.origin, FLAIR_GRID.direction)
    contours = [thick.index_to_physical(np.array([[k, y, x] for y, x in square_yx])) for k in (1, 2)]
    report, out = import_patient(tmp_path, "t1ce", contours, capsys)
    record = gtv_record(report)
    assert record["contour_volume_ml"] == pytest.approx(2 * 400 * 10.0 / 1000.0)
    assert record["gtv_volume_ml"] == pytest.approx(2 * 400 * 2.0 / 1000.0)
    assert record["volume_difference"] == pytest.approx(-0.8)
    assert len(report["warnings"]) == 1 and "(-80 %)" in report["warnings"][0]
    assert any(line.startswith("  warning: ") and "-80 %" in line for line in out.splitlines())
