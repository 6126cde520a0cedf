"""DICOM test data written with pydicom from the sample patient: MR series (axial or oblique), RTDOSE with
DoseGridScaling and an RTSTRUCT with the GTV, so the DICOM tests need no external data."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from gliomaforecast.dicom.header import ds_strings
from gliomaforecast.dicom.rtstruct_write import rtstruct_dataset
from gliomaforecast.geometry import Grid

MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
RTDOSE_STORAGE = "1.2.840.10008.5.1.4.1.1.481.2"
DAY0 = dt.date(2024, 3, 5)
SEQUENCES = {  # modality -> (SeriesDescription, RepetitionTime ms, EchoTime ms, InversionTime ms or None, contrast)
    "flair": ("AX T2 FLAIR", 9000.0, 120.0, 2500.0, None),
    "t1ce": ("AX T1 MPRAGE POST GD", 2000.0, 3.0, 900.0, "GADOBUTROL"),
    "t1": ("AX T1 MPRAGE", 2000.0, 3.0, 900.0, None),
    "t2": ("AX T2 TSE", 5000.0, 100.0, None, None),
    "other": ("SAG 3D ISO", 1200.0, 40.0, None, None),  # no rule classifies it
}


def _date(day: float) -> str:
    return (DAY0 + dt.timedelta(days=int(day))).strftime("%Y%m%d")


def _base(modality: str, sop_class: str, patient_id: str, study_uid: str, series_uid: str, frame_uid: str,
          day: float, series_number: int, description: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    ds.PatientName = "Sample^Virtual"
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = ds.SeriesDate = _date(day)
    ds.StudyTime = "100000"
    ds.StudyID = f"S{int(day)}"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "GliomaForecast tests"
    return ds


def _save(ds: Dataset, path: Path) -> None:
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)


def write_mr_series(folder: Path, array: np.ndarray, grid: Grid, *, modality: str, day: float, study_uid: str,
                    frame_uid: str, patient_id: str = "VP-SAMPLE", series_number: int = 1,
                    description: str | None = None) -> list[Dataset]:
    """One MR series (one int16 file per slice of ``grid``, SequenceName and timing of ``modality``) in ``folder``;
    returns the datasets in slice order."""
    folder.mkdir(parents=True, exist_ok=True)
    desc, tr, te, ti, contrast = SEQUENCES[modality]
    d = grid.direction_matrix
    template = _base("MR", MR_STORAGE, patient_id, study_uid, generate_uid(), frame_uid, day, series_number,
                     description or desc)
    template.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    template.ScanningSequence = "SE"
    template.SequenceVariant = "NONE"
    template.MRAcquisitionType = "3D"
    template.RepetitionTime = tr
    template.EchoTime = te
    if ti is not None:
        template.InversionTime = ti
    if contrast:
        template.ContrastBolusAgent = contrast
    template.ImageOrientationPatient = ds_strings((*d[:, 0], *d[:, 1]))
    template.PixelSpacing = ds_strings(grid.spacing[1:])
    template.SliceThickness = ds_strings(grid.spacing[:1])[0]
    template.SamplesPerPixel = 1
    template.PhotometricInterpretation = "MONOCHROME2"
    template.Rows, template.Columns = grid.shape[1], grid.shape[2]
    template.BitsAllocated = template.BitsStored = 16
    template.HighBit = 15
    template.PixelRepresentation = 1
    out = []
    for k in range(grid.shape[0]):
        ds = copy.deepcopy(template)
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = ds_strings(grid.index_to_physical(np.array([k, 0, 0])))
        ds.PixelData = np.ascontiguousarray(array[k].astype(np.int16)).tobytes()
        _save(ds, folder / f"{modality}_{k:04d}.dcm")
        out.append(ds)
    return out


def write_rtdose(path: Path, dose_gy: np.ndarray, grid: Grid, *, study_uid: str, frame_uid: str, day: float,
                 patient_id: str = "VP-SAMPLE") -> float:
    """An RTDOSE file (uint32 frames, DoseGridScaling, relative GridFrameOffsetVector); returns the scaling (Gy)."""
    ds = _base("RTDOSE", RTDOSE_STORAGE, patient_id, study_uid, generate_uid(), frame_uid, day, 90, "PLAN DOSE")
    scaling = float(np.max(dose_gy)) / 4_000_000_000 if np.max(dose_gy) > 0 else 1.0
    d = grid.direction_matrix
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = ds_strings(grid.origin)
    ds.ImageOrientationPatient = ds_strings((*d[:, 0], *d[:, 1]))
    ds.PixelSpacing = ds_strings(grid.spacing[1:])
    ds.SliceThickness = ds_strings(grid.spacing[:1])[0]
    ds.NumberOfFrames = grid.shape[0]
    ds.FrameIncrementPointer = 0x3004000C
    ds.GridFrameOffsetVector = ds_strings(k * grid.spacing[0] for k in range(grid.shape[0]))
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = "PLAN"
    ds.DoseGridScaling = f"{scaling:.10g}"
    scaling = float(ds.DoseGridScaling)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = grid.shape[1], grid.shape[2]
    ds.BitsAllocated = ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    ds.PixelData = np.round(np.asarray(dose_gy, dtype=np.float64) / scaling).astype(np.uint32).tobytes()
    _save(ds, path)
    return scaling


def write_gtv_rtstruct(path: Path, gtv: np.ndarray, grid: Grid, mr: Sequence[Dataset], *, roi_name: str = "GTV",
                       frame_uid: str | None = None) -> Dataset:
    """An RTSTRUCT with one ROI (the GTV) contoured on the slices of the MR series ``mr`` (in slice order);
    ``frame_uid`` overrides the referenced frame of reference (a wrong one, for the bad-input tests)."""
    ds = rtstruct_dataset(mr, grid, {roi_name: gtv}, colors={roi_name: (1.0, 0.0, 0.0)},
                          interpreted_types={roi_name: "GTV"}, automatic={roi_name: False},
                          description="test GTV")
    if frame_uid is not None:
        ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = frame_uid
        for item in ds.StructureSetROISequence:
            item.ReferencedFrameOfReferenceUID = frame_uid
    ds.save_as(path, enforce_file_format=True)
    return ds


TINY_GRID = Grid((6, 16, 14), (3.0, 1.5, 1.5), (-10.0, -12.0, 20.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def tiny_ball(grid: Grid, radius_mm: float) -> np.ndarray:
    """A ball of ``radius_mm`` around the centre of ``grid`` (bool)."""
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(grid.shape, grid.spacing)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    return zz**2 + yy**2 + xx**2 <= radius_mm**2


def write_tiny_patient(root: Path, *, patient_id: str = "TINY-1", rtstruct_frame: str | None = None,
                       other_patient_series: bool = False) -> dict:
    """A small patient: scan 0 (day 0) with FLAIR, a coarser second FLAIR, T1CE, a localizer and a GTV structure set;
    scan 1 (day 60) with FLAIR, an unclassified series and a GTV; scan 2 (day 120) with a FLAIR but no structure set;
    an RTDOSE (uniform 2 Gy). ``rtstruct_frame`` puts the day-60 structure set on another frame of reference;
    ``other_patient_series`` writes the day-60 FLAIR under another PatientID. Returns what was written."""
    rng = np.random.default_rng(7)
    frame = generate_uid()
    grid = TINY_GRID
    out: dict = {"frame": frame, "grid": grid, "images": {}, "gtv": {}}
    for scan, day in enumerate((0, 60, 120)):
        study = generate_uid()
        folder = root / f"scan{scan}"
        flair = rng.integers(0, 900, grid.shape).astype(np.int16)
        pid = "OTHER-2" if other_patient_series and scan == 1 else patient_id
        ref = write_mr_series(folder / "flair", flair, grid, modality="flair", day=day, study_uid=study,
                              frame_uid=frame, patient_id=pid, series_number=2)
        out["images"][(scan, "flair")] = flair
        if scan == 0:
            coarse = Grid((3, *grid.shape[1:]), (6.0, *grid.spacing[1:]), grid.origin, grid.direction)
            write_mr_series(folder / "flair_coarse", flair[::2], coarse, modality="flair", day=day, study_uid=study,
                            frame_uid=frame, patient_id=patient_id, series_number=5)
            t1ce = rng.integers(0, 900, grid.shape).astype(np.int16)
            write_mr_series(folder / "t1ce", t1ce, grid, modality="t1ce", day=day, study_uid=study, frame_uid=frame,
                            patient_id=patient_id, series_number=3)
            out["images"][(scan, "t1ce")] = t1ce
            write_mr_series(folder / "localizer", flair[:1], Grid((1, *grid.shape[1:]), grid.spacing, grid.origin,
                                                                   grid.direction),
                            modality="t2", day=day, study_uid=study, frame_uid=frame, patient_id=patient_id,
                            series_number=1, description="3-plane localizer")
        if scan == 1:
            write_mr_series(folder / "other", flair, grid, modality="other", day=day, study_uid=study,
                            frame_uid=frame, patient_id=patient_id, series_number=7)
        if scan < 2:
            gtv = tiny_ball(grid, 4.0 + 2.0 * scan)
            write_gtv_rtstruct(folder / "rtstruct.dcm", gtv, grid, ref,
                               frame_uid=rtstruct_frame if scan == 1 else None)
            out["gtv"][scan] = gtv
        if scan == 0:
            out["dose_scaling"] = write_rtdose(root / "rtdose.dcm", np.full(grid.shape, 2.0), grid, study_uid=study,
                                               frame_uid=frame, day=day, patient_id=patient_id)
    return out
