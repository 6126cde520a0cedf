"""Export the target volumes of a forecast (or ``ctv``) output folder as DICOM for a planning system: an RTSTRUCT and
a DICOM SEG of the segments of ``targets.seg.nrrd`` (GTV, CTV standard, CTV forecast), on the planning series.

Both objects reference the planning series (its frame of reference, study and every slice), copy its patient and
study, get new UIDs and a "research use only" series description. ROI colours and names are those of the
segmentation; RT ROI Interpreted Types and the SEG's codes come from its terminology (SCT 228791009 Gross Tumor Volume
-> GTV, SCT 228792002 Clinical Target Volume -> CTV). Masks on another grid than the planning series' are moved onto
it by nearest neighbour; a segment reaching outside the series is refused. Written atomically: nothing on error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nrrd
import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset

from ..errors import InputError
from ..geometry import Grid, resample_to
from ..io.images import atomic_output_dir, check_output_dir, read_segmentation
from ..io.write_guard import remember_inputs
from ..output.record import SEGMENT_TERMS
from ..targets.standard_plan import SEED_NAMES
from .files import scan_folder
from .geometry import physical_to_index, slice_order
from .rtstruct_write import rtstruct_dataset
from .seg_write import seg_dataset, terminology_codes

TARGETS_FILE = "targets.seg.nrrd"
RTSTRUCT_FILE = "targets_rtstruct.dcm"
SEG_FILE = "targets_seg.dcm"
INTERPRETED_TYPES = {"228791009": "GTV", "228792002": "CTV", "228793007": "PTV"}  # SCT target volume codes
DESCRIPTION = "GliomaForecast targets"


@dataclass
class Targets:
    """The segments of a targets.seg.nrrd: masks by name, their grid, colours (RGB 0-1) and terminology tags."""

    path: Path
    masks: dict[str, np.ndarray]
    grid: Grid
    colors: dict[str, tuple[float, ...]]
    tags: dict[str, str]


@dataclass
class Reference:
    """The planning series: headers in slice order, their files and the grid."""

    headers: list[Dataset]
    paths: list[Path]
    grid: Grid

    @property
    def patient_id(self) -> str:
        """PatientID of the series."""
        return str(getattr(self.headers[0], "PatientID", "") or "")


def read_targets(folder: str | Path) -> Targets:
    """The segments, colours and terminology of ``folder``/targets.seg.nrrd; a segment without terminology takes
    that of the forecast's segment of the same name."""
    path = Path(folder) / TARGETS_FILE
    if not path.is_file():
        raise InputError(folder, TARGETS_FILE, "not found: give a forecast (or ctv) output folder")
    masks, grid = read_segmentation(path, "targets")
    header = nrrd.read_header(str(path))
    colors, tags = {}, {}
    i = 0
    while f"Segment{i}_ID" in header:
        name = header.get(f"Segment{i}_Name", header[f"Segment{i}_ID"])
        colors[name] = tuple(float(c) for c in str(header.get(f"Segment{i}_Color", "0.5 0.5 0.5")).split())
        tag = str(header.get(f"Segment{i}_Tags", "") or "")
        tags[name] = tag if "TerminologyEntry:" in tag else SEGMENT_TERMS.get(name, "")
        if not tags[name]:
            raise InputError(path, f"Segment{i}_Tags", f"segment '{name}' has no terminology (category and type)")
        i += 1
    if not masks:
        raise InputError(path, "segments", "no segment to export")
    for name, mask in masks.items():
        if not mask.any():
            raise InputError(path, f"Segment '{name}'", "is empty")
    return Targets(path, masks, grid, colors, tags)


def read_reference(folder: str | Path) -> Reference:
    """The one image series (MR, CT...) of ``folder``, its headers in slice order and its grid."""
    scan = scan_folder(folder)
    images = [s for s in scan.series.values() if "ImageOrientationPatient" in s.first and s.modality != "RTDOSE"]
    if len(images) != 1:
        raise InputError(
            folder,
            "SeriesInstanceUID",
            f"{len(images)} image series found; give a folder with the planning series only",
        )
    series = images[0]
    if not series.text("FrameOfReferenceUID"):
        raise InputError(series.paths[0], "FrameOfReferenceUID", "missing")
    order, grid = slice_order(series.headers, series.paths)
    remember_inputs([folder, *series.paths])  # an --overwrite never replaces the folder holding the series
    return Reference([series.headers[i] for i in order], [series.paths[i] for i in order], grid)


def require_patient(patient_id: str, source: str | Path, reference: Reference) -> None:
    """Refuse to put a patient's targets on another patient's series: ``patient_id`` (from ``source``, a case or
    forecast record) must equal the series' PatientID."""
    if patient_id != reference.patient_id:
        raise InputError(
            source,
            "patient_id",
            f"'{patient_id}' differs from PatientID '{reference.patient_id}' of the "
            f"reference series ({reference.paths[0].name})",
        )


def _record(folder: Path) -> tuple[Path, dict] | None:
    """forecast.json (a forecast folder) or targets.json (a ``ctv`` folder) of ``folder``, read; None when neither
    is there (an older ``ctv`` folder)."""
    for name in ("forecast.json", "targets.json"):
        path = folder / name
        if path.is_file():
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raise InputError(path, None, "cannot be read as JSON") from None
            if not isinstance(record, dict):
                raise InputError(path, None, "is not a JSON object")
            return path, record
    return None


def _check_forecast_patient(folder: Path, reference: Reference) -> None:
    """forecast.json's patient_id against the series (a ``ctv`` output folder has no forecast.json: not checked)."""
    found = _record(folder)
    if found is None or found[0].name != "forecast.json":
        return
    path, record = found
    if "patient_id" not in record:
        raise InputError(path, "patient_id", "cannot be read")
    require_patient(str(record["patient_id"]), path, reference)


def roi_descriptions(folder: Path) -> dict[str, str]:
    """The CTVs' RTSTRUCT ROI Generation Description and DICOM SEG Segment Description (64 characters at most), naming
    the standard plan's convention of forecast.json / targets.json (``standard_plan``), e.g. "GliomaForecast CTV
    standard: estro-eano core+cavity + 15 mm"; empty when the folder records no convention."""
    found = _record(folder)
    plan = found[1].get("standard_plan") if found is not None else None
    if not (isinstance(plan, dict) and plan.get("convention") in SEED_NAMES):
        return {}
    convention, margin = plan["convention"], float(plan.get("margin_mm", 0.0))
    return {
        "CTV standard": f"GliomaForecast CTV standard: {convention} {SEED_NAMES[convention]} + {margin:g} mm"[:64],
        "CTV forecast": f"GliomaForecast CTV forecast: iso-volumetric to {convention} plan"[:64],
    }


def _on_reference(targets: Targets, reference: Reference) -> dict[str, np.ndarray]:
    if targets.grid.same_as(reference.grid):
        return targets.masks
    out = {}
    n = np.asarray(reference.grid.shape)
    for name, mask in targets.masks.items():
        centres = targets.grid.index_to_physical(np.argwhere(mask))
        index = physical_to_index(reference.grid, centres)
        if np.any(index < -0.5) or np.any(index > n - 0.5):
            raise InputError(
                targets.path, f"Segment '{name}'", f"reaches outside the reference series ({reference.grid.describe()})"
            )
        out[name] = resample_to(mask.astype(np.uint8), targets.grid, reference.grid, label=True).astype(bool)
    return out


def interpreted_type(name: str, tag: str) -> str:
    """RT ROI Interpreted Type of a segment: from its terminology type code, else from its name (GTV..., CTV...)."""
    code = terminology_codes(tag)["type"].value
    if code in INTERPRETED_TYPES:
        return INTERPRETED_TYPES[code]
    prefix = name[:3].upper()
    return prefix if prefix in ("GTV", "CTV", "PTV") else "ORGAN"


def export_dicom(
    forecast_dir: str | Path, reference: str | Path | Reference, out: str | Path, *, existing: str = "refuse"
) -> dict[str, Any]:
    """Write ``out``/targets_rtstruct.dcm and targets_seg.dcm on the planning series ``reference`` (a folder, or one
    read by :func:`read_reference`); returns a summary (segments, volumes in mL, whether the masks were resampled,
    the new series UIDs)."""
    forecast_dir, out = Path(forecast_dir), Path(out)
    check_output_dir(out, existing)
    targets = read_targets(forecast_dir)
    if not isinstance(reference, Reference):
        reference = read_reference(reference)
    _check_forecast_patient(forecast_dir, reference)
    masks = _on_reference(targets, reference)
    types = {name: interpreted_type(name, targets.tags[name]) for name in masks}
    automatic = {name: types[name] != "GTV" for name in masks}  # the GTV is the case's own, not made here
    descriptions = roi_descriptions(forecast_dir)
    rtstruct = rtstruct_dataset(
        reference.headers,
        reference.grid,
        masks,
        colors=targets.colors,
        interpreted_types=types,
        automatic=automatic,
        description=DESCRIPTION,
        roi_descriptions=descriptions,
    )
    seg = seg_dataset(
        reference.headers,
        masks,
        tags=targets.tags,
        colors=targets.colors,
        automatic=automatic,
        description=DESCRIPTION,
        segment_texts=descriptions,
    )
    with atomic_output_dir(out, inputs=[targets.path, *reference.paths], existing=existing) as tmp:
        dcmwrite(tmp / RTSTRUCT_FILE, rtstruct, enforce_file_format=True)
        seg.save_as(tmp / SEG_FILE)
    ml = reference.grid.voxel_volume_ml
    return {
        "patient_id": reference.patient_id,
        "reference_series": str(reference.headers[0].SeriesInstanceUID),
        "resampled": not targets.grid.same_as(reference.grid),
        "segments": {
            name: {"interpreted_type": types[name], "volume_ml": float(mask.sum() * ml)} for name, mask in masks.items()
        },
        "rtstruct_series": str(rtstruct.SeriesInstanceUID),
        "seg_series": str(seg.SeriesInstanceUID),
        "files": [RTSTRUCT_FILE, SEG_FILE],
    }
