"""Read the ROIs of a DICOM RT Structure Set (pydicom): names, interpreted types, frames of reference, contours.

Only closed planar contours (CLOSED_PLANAR, CLOSEDPLANAR_XOR) describe volumes; points and open contours are left
out and counted. Contour Data is in patient mm (LPS). Errors name the file and the attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from ..errors import InputError

CLOSED_TYPES = ("CLOSED_PLANAR", "CLOSEDPLANAR_XOR")


@dataclass
class Roi:
    """One ROI: ``number`` (ROINumber), ``name``, RT ROI Interpreted Type, frame of reference UID, display colour
    (0-255 RGB or None), closed contours as (N, 3) LPS points in mm, and how many other contours were left out."""

    number: int
    name: str
    interpreted_type: str
    frame_of_reference: str
    color: tuple[int, int, int] | None = None
    contours: list[np.ndarray] = field(default_factory=list)
    skipped: int = 0


def structure_set_frames(ds: Dataset) -> list[str]:
    """The FrameOfReferenceUIDs the structure set references (ReferencedFrameOfReferenceSequence)."""
    return [
        str(item.FrameOfReferenceUID)
        for item in getattr(ds, "ReferencedFrameOfReferenceSequence", [])
        if getattr(item, "FrameOfReferenceUID", None)
    ]


def referenced_series(ds: Dataset) -> list[str]:
    """The SeriesInstanceUIDs of the images the structure set was drawn on."""
    out = []
    for frame in getattr(ds, "ReferencedFrameOfReferenceSequence", []):
        for study in getattr(frame, "RTReferencedStudySequence", []):
            for series in getattr(study, "RTReferencedSeriesSequence", []):
                if getattr(series, "SeriesInstanceUID", None):
                    out.append(str(series.SeriesInstanceUID))
    return out


def _contour_points(item: Dataset, path: Path, where: str) -> np.ndarray:
    try:
        data = np.asarray([float(v) for v in item.ContourData], dtype=float)
    except (AttributeError, TypeError, ValueError):
        raise InputError(path, f"{where}.ContourData", "missing or not numbers") from None
    if data.size % 3 or not np.all(np.isfinite(data)):
        raise InputError(path, f"{where}.ContourData", f"{data.size} values: not a list of finite (x, y, z) points")
    return data.reshape(-1, 3)


def read_rois(ds: Dataset, path: Path) -> list[Roi]:
    """Every ROI of an RTSTRUCT dataset with its contours, in StructureSetROISequence order."""
    if str(getattr(ds, "Modality", "")) != "RTSTRUCT":
        raise InputError(path, "Modality", f"'{getattr(ds, 'Modality', '')}' is not RTSTRUCT")
    if "StructureSetROISequence" not in ds:
        raise InputError(path, "StructureSetROISequence", "missing")
    rois: dict[int, Roi] = {}
    for i, item in enumerate(ds.StructureSetROISequence):
        try:
            number = int(item.ROINumber)
        except (AttributeError, TypeError, ValueError):
            raise InputError(path, f"StructureSetROISequence[{i}].ROINumber", "missing or not a number") from None
        rois[number] = Roi(
            number,
            str(getattr(item, "ROIName", "") or f"ROI {number}"),
            "",
            str(getattr(item, "ReferencedFrameOfReferenceUID", "") or ""),
        )
    for item in getattr(ds, "RTROIObservationsSequence", []):
        roi = rois.get(int(getattr(item, "ReferencedROINumber", -1)))
        if roi is not None:
            roi.interpreted_type = str(getattr(item, "RTROIInterpretedType", "") or "")
    for i, item in enumerate(getattr(ds, "ROIContourSequence", [])):
        where = f"ROIContourSequence[{i}]"
        roi = rois.get(int(getattr(item, "ReferencedROINumber", -1)))
        if roi is None:
            raise InputError(path, f"{where}.ReferencedROINumber", "names no ROI of StructureSetROISequence")
        if getattr(item, "ROIDisplayColor", None) is not None and len(item.ROIDisplayColor) == 3:
            red, green, blue = (int(v) for v in item.ROIDisplayColor)
            roi.color = (red, green, blue)
        for j, contour in enumerate(getattr(item, "ContourSequence", [])):
            kind = str(getattr(contour, "ContourGeometricType", ""))
            if kind not in CLOSED_TYPES:
                roi.skipped += 1
                continue
            roi.contours.append(_contour_points(contour, path, f"{where}.ContourSequence[{j}]"))
    return list(rois.values())
