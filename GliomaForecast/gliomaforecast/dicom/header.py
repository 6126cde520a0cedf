"""What every DICOM object GliomaForecast writes shares: the patient and study copied from the planning series it
references, new series and instance UIDs, the equipment, and the "research use" series description."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pydicom.dataset import Dataset
from pydicom.valuerep import format_number_as_ds

from .. import __version__

MANUFACTURER = "GliomaForecast"
MODEL_NAME = "gliomaforecast"
RESEARCH_USE = "research use only, not for clinical use"
PATIENT_STUDY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


def series_description(what: str) -> str:
    """A SeriesDescription (64 characters at most) that says what the object is and that it is for research use."""
    return f"{what} - {RESEARCH_USE}"[:64]


def copy_patient_and_study(source: Dataset, target: Dataset) -> None:
    """Copy the Patient and General Study attributes (type 2: empty when the source lacks them) and the character
    set from ``source`` (a planning image) to ``target``."""
    if "SpecificCharacterSet" in source:
        target.SpecificCharacterSet = source.SpecificCharacterSet
    for keyword in PATIENT_STUDY_KEYWORDS:
        setattr(target, keyword, getattr(source, keyword, "") or "")


def set_equipment(target: Dataset) -> None:
    """General Equipment: GliomaForecast and its version."""
    target.Manufacturer = MANUFACTURER
    target.ManufacturerModelName = MODEL_NAME
    target.SoftwareVersions = __version__


def now() -> tuple[str, str]:
    """(DA, TM) of the present moment, for creation dates."""
    moment = dt.datetime.now()
    return moment.strftime("%Y%m%d"), moment.strftime("%H%M%S")


def ds_strings(values: Iterable[float]) -> list[str]:
    """Numbers as DS strings (16 characters at most, full precision within that)."""
    return [format_number_as_ds(float(v)) for v in values]
