"""An RT Structure Set (pydicom) of named masks drawn on a planning image series.

Each ROI's contours are traced on every slice of the reference series the mask touches (:mod:`dicom_contours`:
closed planar polygons in patient mm that hold exactly the mask's voxel centres; a hole is joined to its outer
contour by a keyhole channel, DICOM PS3.3 C.8.8.6.3) and reference that slice's SOP instance. The structure set
references the series' frame of reference, study, series and every slice (Contour Image Sequence), carries the ROI
display colours and RT ROI Interpreted Types (GTV, CTV...), is UNAPPROVED, and gets new UIDs. It is encoded in
implicit VR little endian (the DICOM default), which has no 64 kB limit on a contour's data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ImplicitVRLittleEndian, generate_uid

from ..geometry import Grid
from .contours import mask_contours
from .header import copy_patient_and_study, ds_strings, now, series_description, set_equipment

RTSTRUCT_STORAGE = UID("1.2.840.10008.5.1.4.1.1.481.3")
STUDY_COMPONENT_CLASS = "1.2.840.10008.3.1.2.3.1"  # the SOP class RTReferencedStudySequence items name (PS3.3 C.8.8.5)
SERIES_NUMBER = 901


def _image_ref(ds: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    return item


def _frame_reference(reference: Sequence[Dataset]) -> Dataset:
    first = reference[0]
    series = Dataset()
    series.SeriesInstanceUID = first.SeriesInstanceUID
    series.ContourImageSequence = DicomSequence([_image_ref(ds) for ds in reference])
    study = Dataset()
    study.ReferencedSOPClassUID = STUDY_COMPONENT_CLASS
    study.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study.RTReferencedSeriesSequence = DicomSequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame.RTReferencedStudySequence = DicomSequence([study])
    return frame


def _contour_data(points: np.ndarray) -> DataElement:
    """Contour Data (DS, mm) given as its text: pydicom's conversion of each value would cost seconds per structure
    set."""
    return DataElement("ContourData", "DS", "\\".join(ds_strings(points.ravel())), already_converted=True)


def _roi_contours(mask: np.ndarray, grid: Grid, reference: Sequence[Dataset]) -> list[Dataset]:
    items: list[Dataset] = []
    for k, polygons in mask_contours(mask, grid).items():
        for polygon in polygons:
            contour = Dataset()
            contour.ContourImageSequence = DicomSequence([_image_ref(reference[k])])
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(polygon)
            contour.ContourNumber = len(items) + 1
            contour.add(_contour_data(polygon))
            items.append(contour)
    return items


def rtstruct_dataset(
    reference: Sequence[Dataset],
    grid: Grid,
    masks: Mapping[str, np.ndarray],
    *,
    colors: Mapping[str, Sequence[float]],
    interpreted_types: Mapping[str, str],
    automatic: Mapping[str, bool],
    description: str,
    label: str = "GliomaForecast",
    roi_descriptions: Mapping[str, str] | None = None,
) -> Dataset:
    """The RTSTRUCT of ``masks`` (name -> bool array on ``grid``) on the reference series ``reference`` (its
    headers in slice order: ``reference[k]`` is slice k of ``grid``). ``colors`` are RGB in [0, 1];
    ``interpreted_types`` RT ROI Interpreted Types; ``automatic`` says which ROIs GliomaForecast made (the others are
    MANUAL: the input GTV); ``description`` goes into the research-use SeriesDescription."""
    if len(reference) != grid.shape[0]:
        raise ValueError(f"{len(reference)} reference slices for a grid of {grid.shape[0]} slices")
    ds = _structure_set(reference, description, label)
    rois, contours, observations = [], [], []
    for number, (name, mask) in enumerate(masks.items(), start=1):
        text = (roi_descriptions or {}).get(name)
        roi, contour, observation = _roi_items(
            number,
            name,
            mask,
            grid,
            reference,
            color=colors[name],
            interpreted_type=interpreted_types[name],
            automatic=automatic[name],
            generation=series_description(f"GliomaForecast {name}") if text is None else text[:64],
        )
        rois.append(roi)
        contours.append(contour)
        observations.append(observation)
    ds.StructureSetROISequence = DicomSequence(rois)
    ds.ROIContourSequence = DicomSequence(contours)
    ds.RTROIObservationsSequence = DicomSequence(observations)
    ds.ApprovalStatus = "UNAPPROVED"
    return ds


def _structure_set(reference: Sequence[Dataset], description: str, label: str) -> Dataset:
    """The structure set without its ROIs: file meta, the patient and study of ``reference`` (the planning series'
    headers), new SOP instance and series UIDs, equipment, frame of reference, the structure set's ``label`` and
    ``description`` (research use), creation date and time (now) and the referenced slices."""
    first = reference[0]
    date, time = now()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RTSTRUCT_STORAGE
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian  # explicit VR caps a value at 64 kB: too short a contour
    copy_patient_and_study(first, ds)
    ds.SOPClassUID = RTSTRUCT_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = SERIES_NUMBER
    ds.SeriesDescription = series_description(description)
    ds.OperatorsName = ""
    set_equipment(ds)
    ds.FrameOfReferenceUID = first.FrameOfReferenceUID
    ds.PositionReferenceIndicator = ""
    ds.InstanceNumber = 1
    ds.StructureSetLabel = label[:16]
    ds.StructureSetName = label[:64]
    ds.StructureSetDescription = series_description(description)
    ds.StructureSetDate, ds.StructureSetTime = date, time
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([_frame_reference(reference)])
    return ds


def _roi_items(
    number: int,
    name: str,
    mask: np.ndarray,
    grid: Grid,
    reference: Sequence[Dataset],
    *,
    color: Sequence[float],
    interpreted_type: str,
    automatic: bool,
    generation: str,
) -> tuple[Dataset, Dataset, Dataset]:
    """(Structure Set ROI, ROI Contour, RT ROI Observations) items of ROI ``number`` named ``name``: ``mask`` (bool
    on ``grid``) traced on the ``reference`` slices, displayed in ``color`` (RGB in [0, 1]), of RT ROI Interpreted
    Type ``interpreted_type``, AUTOMATIC or MANUAL with the generation description ``generation``."""
    roi = Dataset()
    roi.ROINumber = number
    roi.ReferencedFrameOfReferenceUID = reference[0].FrameOfReferenceUID
    roi.ROIName = name
    roi.ROIGenerationAlgorithm = "AUTOMATIC" if automatic else "MANUAL"
    roi.ROIGenerationDescription = generation
    contour = Dataset()
    contour.ROIDisplayColor = [int(round(255 * float(c))) for c in color]
    contour.ContourSequence = DicomSequence(_roi_contours(mask, grid, reference))
    contour.ReferencedROINumber = number
    observation = Dataset()
    observation.ObservationNumber = number
    observation.ReferencedROINumber = number
    observation.RTROIInterpretedType = interpreted_type
    observation.ROIInterpreter = ""
    return roi, contour, observation
