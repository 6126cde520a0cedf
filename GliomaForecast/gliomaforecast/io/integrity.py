"""Whole-file checks of NIfTI (.nii, .nii.gz) and NRRD (.nrrd, .seg.nrrd) images, run before a file is read and
after a file is written (before it is renamed into place).

A file passes when its header parses and passes the header rules of :mod:`gliomaforecast.io.headers` (voxel
count limit, checked before anything is decompressed; spacing; NIfTI scaling and sform/qform fields), every
gzip/bzip2 stream decompresses to its end with a matching CRC and length, and the data hold at least the
voxel count the header promises (shape x bytes per voxel). ITK and nibabel read a truncated or corrupt file
without complaint (a truncated mask reads as a partly empty mask), so nothing is read before this check.
"""

from __future__ import annotations

import bz2
import gzip
import io
import math
import os
import zlib
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np

from ..errors import InputError
from .headers import check_nifti_geometry, check_nifti_scaling, check_spacing, check_voxel_count

_CHUNK = 1 << 20
_STREAM_ERRORS = (EOFError, OSError, zlib.error, ValueError)  # gzip.BadGzipFile is an OSError


def _stream_length(stream: io.BufferedIOBase) -> int:
    """Bytes a (decompressing) stream yields when read to its end; raises on a short or corrupt stream."""
    total = 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return total
        total += len(chunk)


def _check_length(have: int, need: int, path: Path, field: str, what: str) -> None:
    if have < need:
        raise InputError(
            path,
            field,
            f"cannot read image: truncated file, {what} holds {have} bytes of the {need} its header promises",
        )


def verify_nifti(path: Path, field: str) -> None:
    """Check a .nii/.nii.gz: header (voxel count, spacing, scaling and geometry rules of
    :mod:`gliomaforecast.io.headers`, all before anything is decompressed), then the whole gzip stream and the
    voxel byte count."""
    gz = path.name.lower().endswith(".gz")
    header = _read_nifti_header(path, field, gz)
    shape = header.get_data_shape()
    check_voxel_count(shape, path, field)
    spatial = min(len(shape), 3)
    check_spacing(np.asarray(header["pixdim"], dtype=float)[1 : 1 + spatial], path, field)
    check_nifti_scaling(header, path, field)
    check_nifti_geometry(header, spatial, path, field)
    if gz:
        try:
            with gzip.open(path, "rb") as stream:
                length = _stream_length(stream)
        except _STREAM_ERRORS as exc:
            raise InputError(path, field, f"cannot read image: damaged gzip stream ({exc})") from None
    else:
        length = path.stat().st_size
    need = int(header.get_data_offset()) + math.prod(int(n) for n in shape) * header.get_data_dtype().itemsize
    _check_length(length, need, path, field, "the decompressed image" if gz else "the file")


def _read_nifti_header(path: Path, field: str, gz: bool) -> nib.Nifti1Header:
    """The raw NIfTI header of ``path``, read from the first 540 bytes only (of the decompressed stream)."""
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as fh:
            block = fh.read(540)
    except _STREAM_ERRORS as exc:
        if isinstance(exc, OSError) and not isinstance(exc, gzip.BadGzipFile) and exc.errno is not None:
            raise  # not readable at all: reported by verify_image_file
        raise InputError(path, field, f"cannot read image: damaged gzip stream ({exc})") from None
    try:
        header = _raw_nifti_header(block)
        header.get_data_shape()
        header.get_data_dtype()
        header.get_data_offset()
    except Exception as exc:  # nibabel raises several types for a corrupt header
        raise InputError(
            path, field, f"cannot read image: corrupt NIfTI header ({type(exc).__name__}: {exc})"
        ) from None
    return header


def _raw_nifti_header(block: bytes) -> nib.Nifti1Header:
    """The NIfTI-1/2 header of ``block`` exactly as stored: nibabel's default load "fixes" zero or negative pixdim
    (and ITK reads them as 1 mm), which would hide the fault this module is here to find."""
    for klass in (nib.Nifti1Header, nib.Nifti2Header):
        size = klass.template_dtype.itemsize
        if len(block) >= size and klass.may_contain_header(block[:size]):
            header = klass(block[:size], check=False)
            if int(header["sizeof_hdr"]) == size:
                return header
    raise ValueError("sizeof_hdr is neither 348 (NIfTI-1) nor 540 (NIfTI-2)")


_NRRD_TYPES = {
    "int8": "i1",
    "signed char": "i1",
    "int8_t": "i1",
    "uchar": "u1",
    "unsigned char": "u1",
    "uint8": "u1",
    "uint8_t": "u1",
    "short": "i2",
    "short int": "i2",
    "signed short": "i2",
    "signed short int": "i2",
    "int16": "i2",
    "int16_t": "i2",
    "ushort": "u2",
    "unsigned short": "u2",
    "unsigned short int": "u2",
    "uint16": "u2",
    "uint16_t": "u2",
    "int": "i4",
    "signed int": "i4",
    "int32": "i4",
    "int32_t": "i4",
    "uint": "u4",
    "unsigned int": "u4",
    "uint32": "u4",
    "uint32_t": "u4",
    "longlong": "i8",
    "long long": "i8",
    "long long int": "i8",
    "signed long long": "i8",
    "signed long long int": "i8",
    "int64": "i8",
    "int64_t": "i8",
    "ulonglong": "u8",
    "unsigned long long": "u8",
    "unsigned long long int": "u8",
    "uint64": "u8",
    "uint64_t": "u8",
    "float": "f4",
    "double": "f8",
    "block": None,
}


def _nrrd_spacing(header: dict, path: Path, field: str) -> None:
    if "space directions" in header:
        dirs = [row for row in np.asarray(header["space directions"], dtype=float) if not np.all(np.isnan(row))]
        check_spacing([float(np.linalg.norm(row)) for row in dirs], path, field)
    elif "spacings" in header:
        check_spacing([s for s in np.asarray(header["spacings"], dtype=float) if not np.isnan(s)], path, field)


def verify_nrrd(path: Path, field: str) -> None:
    """Check a .nrrd/.seg.nrrd: header, spacing, and (raw, gzip or bzip2 data, attached or detached) the whole
    stream and the voxel byte count."""
    try:
        with open(path, "rb") as fh:
            header = nrrd.read_header(fh)
            data_start = fh.tell()
    except Exception as exc:  # pynrrd raises several types for a corrupt header
        raise InputError(path, field, f"cannot read image: corrupt NRRD header ({type(exc).__name__}: {exc})") from None
    _nrrd_spacing(header, path, field)
    try:
        sizes = [int(s) for s in header["sizes"]]
        kind = _NRRD_TYPES[str(header["type"]).strip().lower()]
    except (KeyError, TypeError, ValueError):
        raise InputError(path, field, "NRRD header lacks a valid 'sizes' or 'type'") from None
    check_voxel_count(sizes, path, field)
    encoding = str(header.get("encoding", "raw")).strip().lower()
    if kind is None or encoding not in ("raw", "gzip", "gz", "bzip2", "bz2"):
        return  # block types and text encodings: the reader's own parse is the check
    detached = header.get("data file", header.get("datafile"))
    if detached is not None:
        source, start = path.parent / str(detached), 0
        if not source.is_file():
            raise InputError(path, field, f"detached data file {source} not found")
    else:
        source, start = path, data_start
    need = math.prod(sizes) * np.dtype(kind).itemsize
    with open(source, "rb") as fh:
        fh.seek(start)
        if encoding == "raw":
            _check_length(max(0, source.stat().st_size - start), need, path, field, "the data")
            return
        try:
            length = _stream_length(gzip.GzipFile(fileobj=fh) if encoding in ("gzip", "gz") else bz2.BZ2File(fh))
        except _STREAM_ERRORS as exc:
            raise InputError(path, field, f"cannot read image: damaged {encoding} stream ({exc})") from None
    _check_length(length, need, path, field, "the decompressed data")


_VERIFIED: dict[str, tuple[int, int, int, int]] = {}  # real path -> (device, inode, size, mtime ns) when it passed


def _signature(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def verify_image_file(path: str | Path, field: str = "image") -> None:
    """Raise an InputError naming ``path`` and ``field`` unless the image file is whole (see the module docstring).
    A file that passed is not verified again while its inode, size and modification time stay the same (a case's
    files are verified when it is loaded and read later)."""
    path = Path(path)
    name = path.name.lower()
    try:
        key, before = os.path.realpath(path), _signature(path)
        if _VERIFIED.get(key) == before:
            return
        if name.endswith((".nii", ".nii.gz")):
            verify_nifti(path, field)
        elif name.endswith(".nrrd"):
            verify_nrrd(path, field)
        if _signature(path) == before:
            _VERIFIED[key] = before
    except OSError as exc:  # not readable at all (permissions, I/O error)
        raise InputError(path, field, f"cannot read image ({exc.strerror or exc})") from None
