"""Find the DICOM files under a folder and group them into series (pydicom headers).

A file without the DICOM preamble that pydicom cannot read is not DICOM (a README...), and a DICOMDIR is only an
index of the others: both are skipped and listed. Only regular files are opened: a FIFO, a device, a socket or a
dangling link is skipped (never opened: a FIFO would block the read) and listed with its kind. A file with the
preamble that cannot be read, that lacks the SOP and series UIDs or the modality, or whose pixel data is shorter than
its header says, is corrupt: an :class:`InputError` naming the file and the field.
Every file must belong to one patient (PatientID); two patients are refused with a line naming both IDs and a file of
each.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ..checks import special_file_kind
from ..errors import InputError

REQUIRED = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "Modality")
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"  # a DICOMDIR: an index of the files, not an object of its own


@dataclass
class Series:
    """One DICOM series: its UID, modality, headers (pixel data dropped) and file paths, in file-name order."""

    uid: str
    modality: str
    headers: list[Dataset] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)

    @property
    def first(self) -> Dataset:
        """The header of the series' first file."""
        return self.headers[0]

    def text(self, keyword: str) -> str:
        """A string attribute of the first header ('' when absent)."""
        return str(getattr(self.first, keyword, "") or "")


@dataclass
class Scan:
    """What a folder holds: series by SeriesInstanceUID, the files that are not DICOM, and the entries that are not
    regular files (path, kind), which were never opened."""

    folder: Path
    series: dict[str, Series]
    not_dicom: list[Path]
    not_regular: list[tuple[Path, str]] = field(default_factory=list)


def not_regular_kind(path: Path) -> str | None:
    """None for a regular file (or a link to one); else what ``path`` is: "FIFO", "device", "socket", "dangling
    link"... (decided from its status, without opening it)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return "dangling link" if os.path.islink(path) else f"unreadable ({exc.strerror})"
    kind = special_file_kind(mode)
    return "not a regular file" if kind in ("folder", "other") else kind


def _has_preamble(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(128)
        return fh.read(4) == b"DICM"


def _expected_pixel_bytes(ds: Dataset) -> int | None:
    """Bytes of uncompressed pixel data the header announces, or None when compressed / not computable."""
    if ds.file_meta.get("TransferSyntaxUID") is not None and ds.file_meta.TransferSyntaxUID.is_compressed:
        return None
    try:
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        n = int(ds.Rows) * int(ds.Columns) * int(getattr(ds, "SamplesPerPixel", 1)) * frames
        return n * int(ds.BitsAllocated) // 8
    except (AttributeError, TypeError, ValueError):
        return None


def read_header(path: Path) -> Dataset | None:
    """The header of a DICOM file (pixel data checked for length, then dropped), or None for a file that is not
    DICOM or is a DICOMDIR. A corrupt DICOM file is an InputError naming it."""
    try:
        with warnings.catch_warnings():  # pydicom warns about files it reads leniently; the checks below decide
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
    except InvalidDicomError:
        if _has_preamble(path):
            raise InputError(path, "header", "not a readable DICOM file") from None
        return None
    except Exception as exc:  # pydicom raises several types (EOFError, struct.error, ValueError...) on bad bytes
        raise InputError(path, "header", f"corrupt DICOM file ({type(exc).__name__}: {exc})") from None
    if ds.file_meta.get("MediaStorageSOPClassUID") == MEDIA_DIRECTORY:
        return None
    for keyword in REQUIRED:
        if not getattr(ds, keyword, None):
            raise InputError(path, keyword, "missing: a corrupt or incomplete DICOM file")
    if "PixelData" in ds:
        expected = _expected_pixel_bytes(ds)
        try:
            got = len(ds.PixelData)
        except Exception as exc:  # a truncated value can fail on access
            raise InputError(path, "PixelData", f"cannot be read ({type(exc).__name__})") from None
        if expected is not None and got < expected:
            raise InputError(path, "PixelData", f"{got} bytes, the header announces {expected}: truncated file")
        del ds.PixelData
    return ds


def scan_folder(folder: str | Path) -> Scan:
    """Every DICOM file under ``folder`` (recursively, files in sorted order), grouped by series; one patient only."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "folder", "not found or not a folder")
    series: dict[str, Series] = {}
    not_dicom: list[Path] = []
    not_regular: list[tuple[Path, str]] = []
    patient: tuple[str, Path] | None = None
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith("."):
                continue
            kind = not_regular_kind(path)
            if kind is not None:
                not_regular.append((path, kind))
                continue
            ds = read_header(path)
            if ds is None:
                not_dicom.append(path)
                continue
            pid = str(getattr(ds, "PatientID", "") or "")
            if patient is None:
                patient = (pid, path)
            elif pid != patient[0]:
                raise InputError(
                    path,
                    "PatientID",
                    f"two patients in {folder}: PatientID '{patient[0]}' ({patient[1].name}) and '{pid}' ({path.name})",
                )
            uid, modality = str(ds.SeriesInstanceUID), str(ds.Modality)
            entry = series.setdefault(uid, Series(uid, modality))
            if modality != entry.modality:
                raise InputError(path, "Modality", f"'{modality}' in a series of modality '{entry.modality}'")
            entry.headers.append(ds)
            entry.paths.append(path)
    return Scan(folder, series, not_dicom, not_regular)
