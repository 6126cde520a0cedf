"""DICOM Spatial Registration objects (Modality REG, SOP Class 1.2.840.10008.5.1.4.1.1.66.1): the rigid or affine
matrices that relate two frames of reference, and the ITK transform between a session's frame and the planning frame.

Semantics (DICOM PS3.3 C.20.2 and C.20.2.1.1): the REG object's own FrameOfReferenceUID is the Registered RCS. Each
item of its Registration Sequence names a source frame (its FrameOfReferenceUID, or that of the images it
references) and, in Matrix Registration Sequence > Matrix Sequence, 4x4 Frame of Reference Transformation Matrices
(16 values, row-major, mm) that map a point given in the source frame to the same point in the Registered RCS:
``(x_reg, y_reg, z_reg, 1) = M (x_src, y_src, z_src, 1)``. Several items of one Matrix Sequence compose in item order
(the first is applied first: ``M = M3 M2 M1``). An item for the Registered RCS itself carries the identity, as is
usual. Patient coordinates are LPS in DICOM and in ITK alike.

Conventions: :class:`FrameRegistration` keeps the DICOM direction (source -> registered). A transform in the project's
ITK convention (:mod:`..preparation.registration`) maps a point of the FIXED image (the planning scan's frame) to the
point of the MOVING image (the session's frame) that lies there; so when ``M`` maps session coordinates to planning
coordinates, the ITK transform is ``inv(M)`` (:func:`as_itk_transform`). :func:`session_transform` finds that
transform from the registrations read, directly or through a chain of frames (both registered to a third one:
``inv(M_planning) M_session``, PS3.3 Equation C.20.2-3); None when no registration relates the two frames.

Checks, each an :class:`~gliomaforecast.errors.InputError` naming the file and the attribute: a Deformable Spatial
Registration (1.2.840.10008.5.1.4.1.1.66.3) is not supported; a matrix must be 16 finite numbers, with last row
(0, 0, 0, 1), not singular; a RIGID matrix's 3x3 part must be a rotation (orthonormal within
:data:`ORTHONORMAL_TOL`, determinant +1); the type must be RIGID, RIGID_SCALE or AFFINE (RIGID_SCALE and AFFINE are
only checked for singularity). Two registrations that relate the same frames differently are refused.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset

from ..errors import InputError
from .files import Scan, read_header

SPATIAL_REGISTRATION = "1.2.840.10008.5.1.4.1.1.66.1"
DEFORMABLE_SPATIAL_REGISTRATION = "1.2.840.10008.5.1.4.1.1.66.3"
MATRIX_TYPES = ("RIGID", "RIGID_SCALE", "AFFINE")
ORTHONORMAL_TOL = 1e-3  # a RIGID matrix's 3x3 part: max |R^T R - I|
LAST_ROW_TOL = 1e-6  # max |last row - (0, 0, 0, 1)|
MAX_CONDITION = 1e6  # a 3x3 part with a larger condition number counts as singular
SAME_MATRIX_TOL = 1e-3  # two registrations of one pair of frames agree when their matrices differ by at most this


@dataclass(frozen=True, eq=False)
class FrameRegistration:
    """One item of a Spatial Registration object: ``matrix`` (4x4, mm) maps LPS coordinates of ``source_frame`` (the
    item's frame of reference) to those of ``registered_frame`` (the object's FrameOfReferenceUID); ``matrix_type``
    the most general type among the item's matrices (RIGID < RIGID_SCALE < AFFINE); ``path`` the file."""

    source_frame: str
    registered_frame: str
    matrix: np.ndarray
    matrix_type: str
    path: Path


def check_matrix(values: Any, matrix_type: Any, path: str | Path, field: str) -> np.ndarray:
    """The 4x4 matrix of a Frame of Reference Transformation Matrix (``values``: 16 numbers, row-major) of type
    ``matrix_type``; InputError (``path``, ``field``) unless it is 16 finite numbers with last row (0, 0, 0, 1), a
    non-singular 3x3 part and, for RIGID, a rotation (orthonormal within :data:`ORTHONORMAL_TOL`, no mirroring)."""
    kind = str(matrix_type or "")
    if kind not in MATRIX_TYPES:
        raise InputError(path, f"{field}Type", f"'{kind or 'missing'}': expected one of {', '.join(MATRIX_TYPES)}")
    try:
        several = isinstance(values, Iterable) and not isinstance(values, (str, bytes))
        numbers = [float(v) for v in (values if several else [values])]
    except (TypeError, ValueError):
        raise InputError(path, field, "missing or not numbers") from None
    if len(numbers) != 16:
        raise InputError(path, field, f"{len(numbers)} values: a 4x4 matrix needs 16 numbers (row-major)")
    if not all(np.isfinite(numbers)):
        k = next(i for i, v in enumerate(numbers) if not np.isfinite(v))
        raise InputError(path, field, f"value {k + 1} is {numbers[k]}: the 16 numbers must be finite")
    matrix = np.asarray(numbers).reshape(4, 4)
    if np.max(np.abs(matrix[3] - (0.0, 0.0, 0.0, 1.0))) > LAST_ROW_TOL:
        row = ", ".join(f"{v:g}" for v in matrix[3])
        raise InputError(path, field, f"last row ({row}) is not (0, 0, 0, 1): not an affine transform")
    linear = matrix[:3, :3]
    if not np.linalg.cond(linear) <= MAX_CONDITION:
        raise InputError(path, field, "its 3x3 part is singular: the matrix cannot be inverted")
    if kind == "RIGID":
        error = float(np.max(np.abs(linear.T @ linear - np.eye(3))))
        if error > ORTHONORMAL_TOL:
            raise InputError(
                path, field, f"type RIGID but its 3x3 part is not orthonormal (|R^T R - I| up to {error:.3g})"
            )
        if np.linalg.det(linear) < 0:
            raise InputError(path, field, "type RIGID but its 3x3 part mirrors (determinant -1): not a rotation")
    return matrix


def _item_frame(item: Dataset, frames_of_instances: Mapping[str, str], path: Path, where: str) -> str:
    """The source frame of a Registration Sequence item: its FrameOfReferenceUID, else that of the images it
    references (looked up in ``frames_of_instances``, SOPInstanceUID -> FrameOfReferenceUID)."""
    frame = str(getattr(item, "FrameOfReferenceUID", "") or "")
    if frame:
        return frame
    found = {
        frames_of_instances[str(ref.ReferencedSOPInstanceUID)]
        for ref in getattr(item, "ReferencedImageSequence", [])
        if str(getattr(ref, "ReferencedSOPInstanceUID", "")) in frames_of_instances
    }
    if len(found) != 1:
        why = "names no frame of the images found" if not found else "references images of several frames"
        raise InputError(path, f"{where}.FrameOfReferenceUID", f"missing, and the Referenced Image Sequence {why}")
    return found.pop()


def _item_matrix(item: Dataset, path: Path, where: str) -> tuple[np.ndarray, str]:
    """The composed matrix (first Matrix Sequence item applied first) and most general type of a Registration
    Sequence item."""
    registrations = getattr(item, "MatrixRegistrationSequence", None)
    if not registrations:
        raise InputError(path, f"{where}.MatrixRegistrationSequence", "missing or empty")
    where = f"{where}.MatrixRegistrationSequence[0]"
    matrices = getattr(registrations[0], "MatrixSequence", None)
    if not matrices:
        raise InputError(path, f"{where}.MatrixSequence", "missing or empty")
    total, kind = np.eye(4), "RIGID"
    for j, entry in enumerate(matrices):
        field = f"{where}.MatrixSequence[{j}].FrameOfReferenceTransformationMatrix"
        values = getattr(entry, "FrameOfReferenceTransformationMatrix", None)
        if values is None:
            raise InputError(path, field, "missing")
        matrix_type = getattr(entry, "FrameOfReferenceTransformationMatrixType", None)
        total = check_matrix(values, matrix_type, path, field) @ total
        kind = max(kind, str(matrix_type), key=MATRIX_TYPES.index)
    return total, kind


def read_spatial_registration(
    ds: Dataset, path: str | Path, frames_of_instances: Mapping[str, str] | None = None
) -> list[FrameRegistration]:
    """The registrations of the Spatial Registration dataset ``ds`` (read from ``path``), one per Registration
    Sequence item of another frame than the object's own (an item of its own frame must be the identity).
    ``frames_of_instances`` (SOPInstanceUID -> FrameOfReferenceUID) gives the frame of an item that names only
    images. InputError for another SOP class (a deformable registration is not supported) or a bad matrix."""
    path = Path(path)
    sop_class = str(getattr(ds, "SOPClassUID", "") or "")
    if sop_class == DEFORMABLE_SPATIAL_REGISTRATION:
        raise InputError(
            path,
            "SOPClassUID",
            f"Deformable Spatial Registration ({sop_class}) is not supported: only the rigid and affine matrices of "
            f"Spatial Registration objects ({SPATIAL_REGISTRATION}) are read",
        )
    if sop_class != SPATIAL_REGISTRATION:
        raise InputError(path, "SOPClassUID", f"'{sop_class}' is not a Spatial Registration ({SPATIAL_REGISTRATION})")
    registered = str(getattr(ds, "FrameOfReferenceUID", "") or "")
    if not registered:
        raise InputError(path, "FrameOfReferenceUID", "missing: the registered frame of reference is unknown")
    items = getattr(ds, "RegistrationSequence", None)
    if not items:
        raise InputError(path, "RegistrationSequence", "missing or empty")
    out = []
    for i, item in enumerate(items):
        where = f"RegistrationSequence[{i}]"
        source = _item_frame(item, frames_of_instances or {}, path, where)
        matrix, kind = _item_matrix(item, path, where)
        if source == registered:
            if np.max(np.abs(matrix - np.eye(4))) > SAME_MATRIX_TOL:
                raise InputError(path, where, f"registers frame {source} to itself by a matrix other than identity")
            continue
        out.append(FrameRegistration(source, registered, matrix, kind, path))
    return out


def read_spatial_registrations(paths: Iterable[str | Path]) -> list[FrameRegistration]:
    """The registrations of the Spatial Registration files ``paths`` (:func:`read_spatial_registration`), in order.
    InputError for a file that is not a readable DICOM Spatial Registration object."""
    out: list[FrameRegistration] = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "header", "file not found")
        ds = read_header(path)  # InputError for a corrupt DICOM file
        if ds is None:
            raise InputError(path, "header", "not a DICOM file")
        out += read_spatial_registration(ds, path)
    return out


def registrations_in(scan: Scan) -> list[FrameRegistration]:
    """The registrations of every REG object of a scanned folder (:func:`~.files.scan_folder`); an item that names
    only images gets the frame of those images when they are in the folder."""
    frames = {
        str(ds.SOPInstanceUID): str(ds.FrameOfReferenceUID)
        for series in scan.series.values()
        for ds in series.headers
        if getattr(ds, "FrameOfReferenceUID", None)
    }
    out: list[FrameRegistration] = []
    for series in scan.series.values():
        if series.modality == "REG":
            for ds, path in zip(series.headers, series.paths):
                out += read_spatial_registration(ds, path, frames)
    return out


def _links(registrations: Sequence[FrameRegistration]) -> dict[str, dict[str, tuple[np.ndarray, Path]]]:
    """{frame a: {frame b: (matrix mapping a's coordinates to b's, file)}} in both directions; InputError when two
    files relate the same frames differently."""
    links: dict[str, dict[str, tuple[np.ndarray, Path]]] = {}
    for reg in registrations:
        for a, b, matrix in (
            (reg.source_frame, reg.registered_frame, reg.matrix),
            (reg.registered_frame, reg.source_frame, np.linalg.inv(reg.matrix)),
        ):
            known = links.setdefault(a, {}).get(b)
            if known is not None and np.max(np.abs(known[0] - matrix)) > SAME_MATRIX_TOL:
                raise InputError(
                    reg.path,
                    "RegistrationSequence",
                    f"relates frames {reg.source_frame} and {reg.registered_frame} otherwise than {known[1].name}",
                )
            links[a].setdefault(b, (matrix, reg.path))
    return links


def frame_matrix(registrations: Sequence[FrameRegistration], from_frame: str, to_frame: str) -> np.ndarray | None:
    """The 4x4 matrix (mm) that maps coordinates of ``from_frame`` to those of ``to_frame`` through the fewest
    ``registrations`` (directly, in either direction, or through common frames); the identity for one frame; None
    when no chain of registrations relates them."""
    if from_frame == to_frame:
        return np.eye(4)
    links = _links(registrations)
    reached: dict[str, np.ndarray] = {from_frame: np.eye(4)}
    queue = deque([from_frame])
    while queue:
        frame = queue.popleft()
        for other, (matrix, _) in links.get(frame, {}).items():
            if other not in reached:
                reached[other] = matrix @ reached[frame]
                if other == to_frame:
                    return reached[other]
                queue.append(other)
    return None


def as_itk_transform(moving_to_fixed: np.ndarray) -> sitk.AffineTransform:
    """The ITK transform (maps a FIXED physical point, mm LPS, to the MOVING point that lies there) of the 4x4
    matrix ``moving_to_fixed`` that maps moving-frame coordinates to fixed-frame ones (a DICOM registration of the
    moving session onto the planning frame): its inverse, as an AffineTransform centred at the origin."""
    inverse = np.linalg.inv(np.asarray(moving_to_fixed, dtype=float).reshape(4, 4))
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(float(v) for v in inverse[:3, :3].ravel()))
    transform.SetTranslation(tuple(float(v) for v in inverse[:3, 3]))
    return transform


def session_transform(
    registrations: Sequence[FrameRegistration], planning_frame: str, session_frame: str
) -> sitk.AffineTransform | None:
    """The ITK transform from the planning scan's frame (fixed) to a session's frame (moving) given by
    ``registrations`` (:func:`frame_matrix` from the session's frame to the planning frame, inverted by
    :func:`as_itk_transform`); the identity when the frames are one; None when no registration relates them."""
    matrix = frame_matrix(registrations, session_frame, planning_frame)
    return None if matrix is None else as_itk_transform(matrix)
