"""A case folder (case.json + NIfTI volumes) from a folder of DICOM files: MR series, RTSTRUCT GTVs, RTDOSE.

Rules (docs/dicom.md):

* one patient; one frame of reference per session (the series of one date); sessions in another frame of reference
  than the planning scan's (the first timepoint with a GTV) are registered onto it: through a DICOM Spatial
  Registration object relating the two frames when the folder holds one, else estimated (``Preparation.register``:
  rigid by default; a session that will not register is refused with its measured quality);
* timepoints are the MR study dates (ISO dates in case.json; day 0 is the first study); studies on one date are one
  timepoint; per timepoint and modality the finest series is used (smallest voxel, then most slices, then the
  highest SeriesNumber);
* the case grid is the planning scan's FLAIR (else its first image in the order flair, t1ce, t1, t2, adc); each
  session's images are first put on its own session's grid that way, then every session is resampled onto the case
  grid (linear; GTVs by nearest neighbour) through its transform (the identity for the planning frame); voxels on
  the case grid are copied exactly;
* a timepoint's GTV is the union of the ROIs (with closed contours) of its structure set whose name matches
  ``roi_pattern`` (regular expression, case-insensitive), rasterized on its session's grid from the contours in
  patient mm (on the slices of the series they were drawn on, then nearest-neighbour, when they do not lie on the
  grid's slices); a structure set belongs to the date of the series it references (else its own study date) and
  must lie in its session's frame; timepoints without a GTV are left out and listed;
* each GTV's volume is checked against the volume its contour polygons enclose (:mod:`.contour_area`): both go to
  the structure set's record in ``import.json``, and a difference above 20 % of the contours' volume to its
  ``warnings`` (a contour convention that loses a thin GTV, contours on thicker slices than the case grid's);
* the RT dose (one RTDOSE, in the planning scan's frame) is resampled onto the case grid in Gy;
* a brain mask and tissue maps are derived from the planning scan (:mod:`gliomaforecast.preparation.anatomy`)
  unless ``Preparation.anatomy`` is ``none``; a derivation that fails is a warning, not an error;
* other objects (CT, RT plans, registrations...) are listed, not imported.

Nothing is written on error: the folder is built in a temporary sibling and renamed when complete. ``import.json``
lists every series and what became of it (paths relative to the DICOM folder).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset

from ..errors import InputError
from ..geometry import Grid, resample_to
from ..io.case import IMAGE_NAMES, MAX_DAY, SCHEMA, load_case
from ..io.images import atomic_output_dir, check_output_dir, write_image, write_text_atomic
from ..io.shown_paths import shown_path
from ..preparation.prepare import prepare, write_prepared
from .contour_area import MAX_VOLUME_DIFFERENCE, contour_volume_mm3, volume_difference
from .contours import OffGridContour, far_vertex, rasterize
from .dates import scan_date
from .files import Scan, Series, scan_folder
from .rtdose import dose_on_grid, read_dose
from .rtstruct_read import Roi, read_rois, referenced_series, structure_set_frames
from .series import IGNORE, classify, read_mapping, read_volume, series_grid
from .spatial_registration import registrations_in, session_transform

DEFAULT_ROI_PATTERN = "gtv"


@dataclass
class Timepoint:
    """One scan date: the chosen MR series by modality, and the GTV's source once found."""

    date: dt.date
    series: dict[str, Series] = field(default_factory=dict)
    gtv: np.ndarray | None = None
    gtv_source: dict[str, Any] | None = None
    frame: str = ""  # the session's FrameOfReferenceUID
    grid: Grid | None = None  # the session's grid: that of its first series in the order of IMAGE_NAMES

    @property
    def session_grid(self) -> Grid:
        """The session's grid (set by :func:`_check_frames`)."""
        assert self.grid is not None
        return self.grid


def _frame(series: Series) -> str:
    return series.text("FrameOfReferenceUID")


def _fineness(series: Series) -> tuple[float, int, int]:
    """Sort key: smaller voxel volume (mm^3) first, then more slices, then the higher SeriesNumber."""
    _, grid = series_grid(series)
    try:
        number = int(series.first.SeriesNumber)
    except (AttributeError, TypeError, ValueError):
        number = 0
    return float(np.prod(grid.spacing)), -grid.shape[0], -number


def _is_ignored(series: Series, mapping: dict[str, str]) -> bool:
    return mapping.get(series.uid) == IGNORE or mapping.get(series.text("SeriesDescription")) == IGNORE


def _record(series: Series, folder: Path, **extra: Any) -> dict[str, Any]:
    return {
        "series_instance_uid": series.uid,
        "modality": series.modality,
        "series_description": series.text("SeriesDescription"),
        "files": len(series.paths),
        "first_file": shown_path(series.paths[0], folder),
        **extra,
    }


def _timepoints(scan: Scan, mapping: dict[str, str], report: list[dict]) -> list[Timepoint]:
    """MR series grouped by date, one series per modality (the finest); the others go to ``report``."""
    by_date: dict[dt.date, dict[str, list[Series]]] = {}
    for series in scan.series.values():
        if series.modality != "MR":
            continue
        kind = classify(series, mapping)
        if kind is None or kind == IGNORE:
            why = (
                "ignored (mapping file or localizer/diffusion series)"
                if kind == IGNORE
                else "unclassified: name its modality in the mapping file"
            )
            report.append(_record(series, scan.folder, used=False, why=why))
            continue
        date = scan_date(series.first, series.paths[0])
        by_date.setdefault(date, {}).setdefault(kind, []).append(series)
    timepoints = []
    for date in sorted(by_date):
        tp = Timepoint(date)
        for kind in IMAGE_NAMES:
            candidates = sorted(by_date[date].get(kind, []), key=_fineness)
            if not candidates:
                continue
            tp.series[kind] = candidates[0]
            report.append(_record(candidates[0], scan.folder, used=True, used_as=kind, date=date.isoformat()))
            for other in candidates[1:]:
                report.append(
                    _record(
                        other,
                        scan.folder,
                        used=False,
                        used_as=kind,
                        date=date.isoformat(),
                        why=f"another {kind} series of {date.isoformat()} is finer",
                    )
                )
        timepoints.append(tp)
    return timepoints


def _reference(timepoints: list[Timepoint]) -> tuple[str, Series]:
    first = timepoints[0]
    kind = next(k for k in IMAGE_NAMES if k in first.series)
    return kind, first.series[kind]


def _check_frames(timepoints: list[Timepoint]) -> str:
    """Each timepoint's frame of reference and grid (its first series in the order of IMAGE_NAMES); returns the
    planning (first) session's frame. InputError for a series without a FrameOfReferenceUID, or one date whose
    series lie in two frames (one session has one frame; map the odd series to ``ignore``)."""
    for tp in timepoints:
        first = tp.series[next(k for k in IMAGE_NAMES if k in tp.series)]
        tp.frame = _frame(first)
        tp.grid = series_grid(first)[1]
        for series in tp.series.values():
            if not _frame(series):
                raise InputError(series.paths[0], "FrameOfReferenceUID", "missing")
            if _frame(series) != tp.frame:
                raise InputError(
                    series.paths[0],
                    "FrameOfReferenceUID",
                    f"{_frame(series)} differs from {tp.frame} of {first.paths[0].name}, a series of the same date "
                    f"({tp.date.isoformat()}): one session has one frame of reference; ignore one of them in the "
                    "mapping file",
                )
    return timepoints[0].frame


def _rasterize_gtv(
    contours: list[np.ndarray], grid: Grid, scan: Scan, drawn_on: list[str], path: Path, roi: str
) -> np.ndarray:
    """The contours' mask on the case ``grid``; contours off its slices go through the grid of the series they
    were drawn on (nearest neighbour)."""
    try:
        return rasterize(contours, grid)
    except OffGridContour as first_error:
        for uid in drawn_on:
            series = scan.series.get(uid)
            if series is None or "ImageOrientationPatient" not in series.first:
                continue
            _, drawn_grid = series_grid(series)
            try:
                mask = rasterize(contours, drawn_grid)
            except OffGridContour:
                continue
            return resample_to(mask.astype(np.uint8), drawn_grid, grid, label=True).astype(bool)
        raise InputError(
            path,
            f"ROI '{roi}' ContourData",
            f"contour {first_error.index} {first_error} of the case grid, and the series it was drawn "
            "on is not in the folder",
        ) from None


def _add_gtvs(
    scan: Scan,
    timepoints: list[Timepoint],
    pattern: re.Pattern,
    mapping: dict[str, str],
    report: list[dict],
) -> None:
    """Each timepoint's GTV from the structure sets of ``scan`` (see :func:`_add_structure_set`); ignored structure
    sets go to ``report``."""
    by_date = {tp.date: tp for tp in timepoints}
    for series in scan.series.values():
        if series.modality != "RTSTRUCT":
            continue
        if _is_ignored(series, mapping):
            report.append(_record(series, scan.folder, used=False, why="ignored (mapping file)"))
            continue
        for ds, path in zip(series.headers, series.paths):
            _add_structure_set(scan, series, ds, path, by_date, pattern, report)


def _add_structure_set(
    scan: Scan,
    series: Series,
    ds: Dataset,
    path: Path,
    by_date: dict[dt.date, Timepoint],
    pattern: re.Pattern,
    report: list[dict],
) -> None:
    """The GTV of the timepoint of the structure set ``ds`` (file ``path`` of ``series``): the union of its ROIs with
    closed contours whose name matches ``pattern``, rasterized on the case ``grid``; what became of it goes to
    ``report``. InputError for another frame of reference than ``frame``, a second GTV for one date, or an empty
    ROI."""
    rois = [roi for roi in read_rois(ds, path) if pattern.search(roi.name) and roi.contours]
    shown = shown_path(path, scan.folder)
    if not rois:
        why = f"no ROI with closed contours whose name matches '{pattern.pattern}'"
        report.append(_record(series, scan.folder, used=False, file=shown, why=why))
        return
    drawn_on = referenced_series(ds)
    dated = next((scan.series[uid] for uid in drawn_on if uid in scan.series), None)
    date = scan_date(dated.first, dated.paths[0]) if dated is not None else scan_date(ds, path)
    tp = by_date.get(date)
    if tp is None:
        report.append(_record(series, scan.folder, used=False, file=shown, why=f"no MR study on {date.isoformat()}"))
        return
    if tp.gtv is not None:
        assert tp.gtv_source is not None  # set with tp.gtv
        raise InputError(
            path,
            "StudyDate",
            f"a second structure set with a GTV for {date.isoformat()} "
            f"(the first: {tp.gtv_source['file']}); ignore one in the "
            "mapping file",
        )
    _check_structure_set_frames(ds, path, rois, tp.frame)
    grid = tp.session_grid
    tp.gtv = _gtv_mask(rois, grid, scan, drawn_on, path)
    tp.gtv_source = {"file": shown, "rois": [roi.name for roi in rois]}
    names = [roi.name for roi in rois]
    volumes = _gtv_volumes(rois, tp.gtv, grid, _single_plane_thickness(scan, drawn_on, grid))
    report.append(
        _record(series, scan.folder, used=True, used_as="gtv", date=date.isoformat(), file=shown, rois=names, **volumes)
    )


def _single_plane_thickness(scan: Scan, drawn_on: list[str], grid: Grid) -> float:
    """The slice thickness (mm) that contours all on one plane stand for: the slice spacing of the series they were
    drawn on, when it is in the folder and makes one stack, else of the case ``grid``."""
    for uid in drawn_on:
        series = scan.series.get(uid)
        if series is not None and "ImageOrientationPatient" in series.first:
            try:
                return series_grid(series)[1].spacing[0]
            except (InputError, ValueError):  # a series the import does not read (a tilted CT...): not worth failing
                continue
    return grid.spacing[0]


def _gtv_volumes(rois: list[Roi], mask: np.ndarray, grid: Grid, single_plane_thickness_mm: float) -> dict[str, Any]:
    """The GTV ``mask``'s volume on ``grid`` and the volume the ``rois``' contour polygons enclose (mL, rounded to
    0.1 mm^3), and the first's relative difference from the second (None without a contour volume)."""
    gtv_ml = float(np.count_nonzero(mask)) * grid.voxel_volume_ml
    contour_ml = contour_volume_mm3([roi.contours for roi in rois], single_plane_thickness_mm) / 1000.0
    difference = volume_difference(gtv_ml, contour_ml)
    return {
        "gtv_volume_ml": round(gtv_ml, 4),
        "contour_volume_ml": round(contour_ml, 4),
        "volume_difference": None if difference is None else round(difference, 4),
    }


def _volume_warnings(report: list[dict]) -> list[str]:
    """A line per GTV of ``report`` whose rasterized volume differs from its contours' by more than
    ``MAX_VOLUME_DIFFERENCE`` of theirs."""
    out = []
    for r in report:
        difference = r.get("volume_difference") if r.get("used_as") == "gtv" else None
        if difference is not None and abs(difference) > MAX_VOLUME_DIFFERENCE:
            out.append(
                f"{r['date']} GTV: rasterized {r['gtv_volume_ml']:.3g} mL vs {r['contour_volume_ml']:.3g} mL from "
                f"the contour polygons ({100 * difference:+.0f} %): check the contour convention / slice thickness"
            )
    return out


def _check_structure_set_frames(ds: Dataset, path: Path, rois: list[Roi], frame: str) -> None:
    """InputError unless the structure set ``ds`` and each of its ``rois`` reference the MR series' ``frame``."""
    frames = structure_set_frames(ds)
    if frame not in frames:
        raise InputError(
            path,
            "ReferencedFrameOfReferenceSequence.FrameOfReferenceUID",
            f"{', '.join(frames) or 'missing'} differs from the MR series' {frame}",
        )
    for roi in rois:
        if roi.frame_of_reference and roi.frame_of_reference != frame:
            raise InputError(
                path,
                f"ROI '{roi.name}' ReferencedFrameOfReferenceUID",
                f"{roi.frame_of_reference} differs from the MR series' {frame}",
            )


def _gtv_mask(rois: list[Roi], grid: Grid, scan: Scan, drawn_on: list[str], path: Path) -> np.ndarray:
    """The union (bool, on ``grid``) of the ``rois`` rasterized (:func:`_rasterize_gtv`); InputError for a ROI with
    no contour inside the grid or a vertex absurdly far from it (:func:`far_vertex`)."""
    mask = np.zeros(grid.shape, dtype=bool)
    for roi in rois:
        far = far_vertex(roi.contours, grid)
        if far is not None:
            raise InputError(path, f"ROI '{roi.name}' ContourData", far)
        roi_mask = _rasterize_gtv(roi.contours, grid, scan, drawn_on, path, roi.name)
        if not roi_mask.any():
            raise InputError(path, f"ROI '{roi.name}'", "no contour inside the case grid: the GTV is empty")
        mask |= roi_mask
    return mask


def _dose(scan: Scan, grid: Grid, frame: str, mapping: dict[str, str], report: list[dict]) -> np.ndarray | None:
    files = []
    for series in scan.series.values():
        if series.modality != "RTDOSE":
            continue
        if _is_ignored(series, mapping):
            report.append(_record(series, scan.folder, used=False, why="ignored (mapping file)"))
            continue
        files += [(series, ds, path) for ds, path in zip(series.headers, series.paths)]
    if not files:
        return None
    if len(files) > 1:
        raise InputError(
            files[1][2],
            "Modality",
            f"a second RTDOSE (the first: {files[0][2].name}); ignore all but one series in the mapping file",
        )
    series, ds, path = files[0]
    if str(getattr(ds, "FrameOfReferenceUID", "")) != frame:
        raise InputError(
            path,
            "FrameOfReferenceUID",
            f"{getattr(ds, 'FrameOfReferenceUID', 'missing')} differs from the MR series' {frame}",
        )
    dose, dose_grid = read_dose(ds, path)
    report.append(
        _record(
            series,
            scan.folder,
            used=True,
            used_as="dose",
            resampled=not dose_grid.same_as(grid),
            dose_summation_type=str(getattr(ds, "DoseSummationType", "")),
        )
    )
    return dose_on_grid(dose, dose_grid, grid)


def _image_on_grid(series: Series, grid: Grid) -> tuple[np.ndarray, bool]:
    array, series_grid_ = read_volume(series)
    if series_grid_.same_as(grid):
        return array, False
    return resample_to(array, series_grid_, grid), True


@dataclass(frozen=True)
class Preparation:
    """How :func:`import_dicom` prepares the sessions (:func:`gliomaforecast.preparation.prepare.prepare`):
    ``register`` (rigid, affine or none) for sessions in another frame of reference than the planning scan's and no
    DICOM Spatial Registration object relating them, the ``template`` of the derived brain mask and tissue maps, and
    ``anatomy`` (``try``: derive them, a failure is a warning; ``none``: do not)."""

    register: str = "rigid"
    template: str = "sri24"
    anatomy: str = "try"


def import_dicom(
    dicom_dir: str | Path,
    out: str | Path,
    *,
    mapping: str | Path | None = None,
    roi_pattern: str = DEFAULT_ROI_PATTERN,
    rt_start_date: str | None = None,
    existing: str = "refuse",
    preparation: Preparation = Preparation(),
) -> dict[str, Any]:
    """Write the case folder ``out`` from the DICOM files under ``dicom_dir``; returns the import report (also
    written as ``import.json``). See the module docstring for the rules."""
    dicom_dir, out = Path(dicom_dir), Path(out)
    pattern = _check_options(roi_pattern, rt_start_date)
    check_output_dir(out, existing)
    series_map = read_mapping(mapping)
    scan = scan_folder(dicom_dir)
    report: list[dict] = []
    timepoints = _mr_timepoints(scan, dicom_dir, series_map, report)
    _check_frames(timepoints)
    _add_gtvs(scan, timepoints, pattern, series_map, report)
    kept = _with_gtv(timepoints, report, dicom_dir, roi_pattern)
    _check_dates(kept, rt_start_date)
    ref_kind, reference = _reference(kept)
    frame, grid = kept[0].frame, kept[0].session_grid
    dose = _dose(scan, grid, frame, series_map, report)
    given = _given_transforms(scan, kept)
    report += [
        _record(s, scan.folder, used=False, why=f"{s.modality or 'unknown'} objects are not imported")
        for s in scan.series.values()
        if s.modality not in ("MR", "RTSTRUCT", "RTDOSE")
    ]
    manifest, summary = _manifest_and_summary(
        dicom_dir, scan, timepoints, kept, (ref_kind, reference), report, rt_start_date
    )
    inputs = [dicom_dir, *(p for series in scan.series.values() for p in series.paths)]  # never replaced
    with atomic_output_dir(out, inputs=inputs, existing=existing) as tmp:
        _write_case(tmp, kept, dose, manifest, summary, given, preparation)
    return summary


def _manifest_and_summary(
    dicom_dir: Path,
    scan: Scan,
    timepoints: list[Timepoint],
    kept: list[Timepoint],
    ref: tuple[str, Series],
    report: list[dict],
    rt_start_date: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The case manifest's header (patient, description, RT start) and the import report (``summary``): frames,
    reference series, grid, what was left out and why, every series' record and the GTV volume warnings."""
    ref_kind, reference = ref
    frame, grid = kept[0].frame, kept[0].session_grid
    patient_id = reference.text("PatientID") or "unknown"
    manifest: dict[str, Any] = {
        "schema": SCHEMA,
        "patient_id": patient_id,
        "description": "imported from DICOM by gliomaforecast import-dicom; see import.json",
    }
    if rt_start_date is not None:
        manifest["rt_start_date"] = rt_start_date
    summary = {
        "dicom_folder": dicom_dir.name,
        "patient_id": patient_id,
        "frame_of_reference_uid": frame,
        "session_frames": {tp.date.isoformat(): tp.frame for tp in kept},
        "reference": {"modality": ref_kind, "series_instance_uid": reference.uid},
        "grid": {
            "shape_zyx": list(grid.shape),
            "spacing_mm_zyx": list(grid.spacing),
            "origin_mm_lps": list(grid.origin),
            "direction": list(grid.direction),
        },
        "timepoints_without_gtv": [tp.date.isoformat() for tp in timepoints if tp.gtv is None],
        "not_dicom": [shown_path(p, dicom_dir) for p in scan.not_dicom],
        "not_regular_files": [{"file": shown_path(p, dicom_dir), "kind": kind} for p, kind in scan.not_regular],
        "series": report,
        "warnings": _volume_warnings(report),
    }
    return manifest, summary


def _given_transforms(scan: Scan, kept: list[Timepoint]) -> dict[int, tuple[sitk.Transform, str]]:
    """The transforms (ITK convention: planning point -> session point, mm) that need no estimation, by timepoint
    index: the identity for a session in the planning scan's frame of reference, a DICOM Spatial Registration
    object's (:mod:`.spatial_registration`) for one in another frame that it relates to the planning frame."""
    planning = kept[0].frame
    registrations = None
    given: dict[int, tuple[sitk.Transform, str]] = {}
    for i, tp in enumerate(kept[1:], start=1):
        if tp.frame == planning:
            given[i] = (sitk.Euler3DTransform(), "none")
            continue
        if registrations is None:
            registrations = registrations_in(scan)
        transform = session_transform(registrations, planning, tp.frame)
        if transform is not None:
            given[i] = (transform, "dicom")
    return given


def _check_options(roi_pattern: str, rt_start_date: str | None) -> re.Pattern:
    """The compiled ``roi_pattern`` (case-insensitive); InputError for a bad regular expression or an
    ``rt_start_date`` that is not an ISO date."""
    try:
        pattern = re.compile(roi_pattern, re.IGNORECASE)
    except re.error as exc:
        raise InputError("--roi-pattern", None, f"not a regular expression ({exc})") from None
    if rt_start_date is not None:
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", rt_start_date):
                raise ValueError
            dt.date.fromisoformat(rt_start_date)
        except ValueError:
            raise InputError("--rt-start-date", None, f"not an ISO date (YYYY-MM-DD): {rt_start_date!r}") from None
    return pattern


def _check_dates(kept: list[Timepoint], rt_start_date: str | None) -> None:
    """InputError when a study date of ``kept`` or ``rt_start_date`` lies more than ``MAX_DAY`` days (200 years)
    from the first study, day 0 (the range in which a case's days are read, :mod:`..io.case`)."""
    day0 = kept[0].date
    for tp in kept[1:]:
        days = (tp.date - day0).days
        if days > MAX_DAY:
            first = next(iter(tp.series.values())).paths[0]
            raise InputError(
                first,
                "StudyDate",
                f"{tp.date.isoformat()} is {days} days after the first study ({day0.isoformat()}): study dates lie "
                f"within {MAX_DAY:g} days (200 years) of day 0",
            )
    if rt_start_date is not None:
        days = (dt.date.fromisoformat(rt_start_date) - day0).days
        if abs(days) > MAX_DAY:
            raise InputError(
                "--rt-start-date",
                None,
                f"{rt_start_date} is {days} days from the first study ({day0.isoformat()}): the RT start lies "
                f"within {MAX_DAY:g} days (200 years) of day 0",
            )


def _mr_timepoints(scan: Scan, dicom_dir: Path, mapping: dict[str, str], report: list[dict]) -> list[Timepoint]:
    """The MR timepoints of ``scan`` (:func:`_timepoints`); InputError when the folder holds no MR series, or none
    recognised as an image the case uses."""
    if not any(s.modality == "MR" for s in scan.series.values()):
        found = sorted({s.modality or "?" for s in scan.series.values()})
        raise InputError(dicom_dir, "Modality", f"no MR series found (found: {', '.join(found) or 'no DICOM file'})")
    timepoints = _timepoints(scan, mapping, report)
    if not timepoints:
        raise InputError(
            dicom_dir,
            "SeriesDescription",
            "no MR series recognised as FLAIR, T1CE, T1, T2 or ADC; name them in a mapping file (--mapping)",
        )
    return timepoints


def _with_gtv(timepoints: list[Timepoint], report: list[dict], dicom_dir: Path, roi_pattern: str) -> list[Timepoint]:
    """The timepoints with a GTV; the series of the others are marked left out in ``report``. InputError when no
    timepoint has one."""
    kept = [tp for tp in timepoints if tp.gtv is not None]
    for tp in timepoints:
        if tp.gtv is None:
            for series in tp.series.values():
                record = next(r for r in report if r["series_instance_uid"] == series.uid)
                record.update(used=False, why=f"no GTV structure set for {tp.date.isoformat()}: timepoint left out")
    if not kept:
        raise InputError(
            dicom_dir,
            "RTSTRUCT",
            f"no structure set with a ROI matching '{roi_pattern}' on an MR study date: every timepoint needs a GTV",
        )
    return kept


def _write_sessions(
    raw: Path, kept: list[Timepoint], dose: np.ndarray | None, manifest: dict[str, Any], report: list[dict]
) -> Path:
    """Write each ``kept`` timepoint's images and GTV on its session's grid (files named by the day, dNNN, days
    since the first), the dose (Gy, on the planning grid) and case.json (``manifest`` plus the files) into the
    folder ``raw``; the series records of ``report`` get ``resampled``. Returns the case.json path."""
    day0 = kept[0].date
    entries = []
    for tp in kept:
        tag, grid = f"d{int((tp.date - day0).days):03d}", tp.session_grid
        images = {}
        for kind, series in tp.series.items():
            array, resampled = _image_on_grid(series, grid)
            write_image(raw / f"{tag}_{kind}.nii.gz", array, grid)
            images[kind] = f"{tag}_{kind}.nii.gz"
            on_planning = tp is kept[0] or (tp.frame == kept[0].frame and grid.same_as(kept[0].session_grid))
            record = next(r for r in report if r["series_instance_uid"] == series.uid)
            record["resampled"] = resampled or not on_planning
        assert tp.gtv is not None  # kept: the timepoints with a GTV
        write_image(raw / f"{tag}_gtv.nii.gz", tp.gtv.astype(np.uint8), grid)
        entries.append({"date": tp.date.isoformat(), "images": images, "gtv": f"{tag}_gtv.nii.gz"})
    case = {**manifest, "timepoints": entries}
    if dose is not None:
        write_image(raw / "rtdose.nii.gz", dose, kept[0].session_grid)
        case["dose"] = "rtdose.nii.gz"
    return write_text_atomic(raw / "case.json", json.dumps(case, indent=1) + "\n")


_SESSION_FIELD = re.compile(r"timepoints\[(\d+)\]\.images\.(\w+)")


def _named_series(exc: InputError, kept: list[Timepoint]) -> InputError:
    """``exc`` about a session image of the scratch case (``timepoints[i].images.<modality>``) reworded to name the
    DICOM series it came from (its first file, date, modality and description); other errors unchanged."""
    found = _SESSION_FIELD.search(f"{exc.source} {exc.field}")
    if found is None or int(found.group(1)) >= len(kept) or found.group(2) not in kept[int(found.group(1))].series:
        return exc
    tp = kept[int(found.group(1))]
    series = tp.series[found.group(2)]
    what = f"{tp.date.isoformat()} {found.group(2)} series '{series.text('SeriesDescription')}'"
    return InputError(series.paths[0], what, exc.message)


def _write_case(
    tmp: Path,
    kept: list[Timepoint],
    dose: np.ndarray | None,
    manifest: dict[str, Any],
    summary: dict[str, Any],
    given: dict[int, tuple[sitk.Transform, str]],
    preparation: Preparation,
) -> None:
    """Write the case into the folder ``tmp``: the sessions as imported (:func:`_write_sessions`, in a scratch folder
    removed before the end), then prepared (:func:`gliomaforecast.preparation.prepare.prepare`: every later session
    onto the planning grid, through the identity, a DICOM registration or an estimated one; the brain mask and tissue
    maps derived as ``preparation`` says), case.json and import.json (``summary`` with the preparation and its
    warnings); the written case must load."""
    raw = tmp / ".sessions"
    raw.mkdir()
    try:
        case_json = _write_sessions(raw, kept, dose, manifest, summary["series"])
        try:
            prepared = prepare(
                case_json,
                register=preparation.register,
                template=preparation.template,
                given=given,
                anatomy=preparation.anatomy,
            )
        except InputError as exc:
            raise _named_series(exc, kept) from None
        write_prepared(prepared, tmp)
    finally:
        shutil.rmtree(raw, ignore_errors=True)
    summary["preparation"] = {
        "registration": [
            {**r.record(None), "date": kept[r.timepoint].date.isoformat()} for r in prepared.registrations
        ],
        **prepared.provenance,
    }
    summary["gtv_volumes_ml"] = {tp.date.isoformat(): round(ml, 4) for tp, ml in zip(kept, prepared.gtv_volumes_ml())}
    summary["warnings"] += prepared.warnings()
    write_text_atomic(tmp / "import.json", json.dumps(summary, indent=1) + "\n")
    load_case(tmp / "case.json")  # the written case must load: grids agree, GTVs non-empty
