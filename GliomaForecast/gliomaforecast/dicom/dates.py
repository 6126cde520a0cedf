"""Study dates of DICOM series: the calendar date each scan was taken (day 0 of a case is its first study)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydicom.dataset import Dataset

from ..errors import InputError

DATE_KEYWORDS = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")


def parse_da(value: str, path: Path, keyword: str) -> dt.date:
    """A DICOM DA value (YYYYMMDD; the old YYYY.MM.DD form too) as a date."""
    text = str(value).strip().replace(".", "")
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        raise InputError(path, keyword, f"not a DICOM date (YYYYMMDD): {value!r}") from None


def scan_date(ds: Dataset, path: Path) -> dt.date:
    """The date of a scan: StudyDate, else SeriesDate, AcquisitionDate or ContentDate; none of them is an error."""
    for keyword in DATE_KEYWORDS:
        value = getattr(ds, keyword, None)
        if value:
            return parse_da(value, path, keyword)
    raise InputError(path, "StudyDate", "missing (and no SeriesDate, AcquisitionDate or ContentDate)")
