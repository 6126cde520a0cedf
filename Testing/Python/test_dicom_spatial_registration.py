"""DICOM Spatial Registration objects (REG), written with pydicom: a known rotation and translation of a session's
frame onto the planning frame comes back as the ITK transform of the project's convention (planning point -> session
point), whichever frame the REG object registers to; matrix sequences compose in item order; two sessions
registered to a common frame chain; every bad input is one line naming the file and the attribute; REG objects in
an import folder are their own series, listed and not imported."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from scipy.spatial.transform import Rotation

from dicom_sample_data import write_tiny_patient
from gliomaforecast.cli import main
from gliomaforecast.dicom.files import scan_folder
from gliomaforecast.dicom.header import ds_strings
from gliomaforecast.dicom.spatial_registration import (
    DEFORMABLE_SPATIAL_REGISTRATION,
    SPATIAL_REGISTRATION,
    as_itk_transform,
    frame_matrix,
    read_spatial_registrations,
    registrations_in,
    session_transform,
)
from gliomaforecast.errors import InputError

PLANNING, SESSION, COMMON = (generate_uid() for _ in range(3))


def rigid(angles_deg, translation_mm) -> np.ndarray:
    """4x4: rotation (xyz Euler angles, degrees) then translation (mm)."""
    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()
    m[:3, 3] = translation_mm
    return m


def write_reg(
    path: Path,
    registered_frame: str,
    items: list[tuple[str | None, list[tuple[np.ndarray | list, str]]]],  # values: numbers or DS strings
    *,
    sop_class: str = SPATIAL_REGISTRATION,
    patient_id: str = "TINY-1",
    images: dict[int, list[str]] | None = None,
) -> Path:
    """A Spatial Registration object registering to ``registered_frame``: per item a source frame (None: leave
    FrameOfReferenceUID out) and its Matrix Sequence as (16 values or a 4x4 matrix, type); ``images``: item index ->
    SOPInstanceUIDs for its Referenced Image Sequence."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "REG"
    ds.PatientName = "Sample^Virtual"
    ds.PatientID = patient_id
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 50
    ds.InstanceNumber = 1
    ds.StudyDate = ds.ContentDate = "20240305"
    ds.ContentTime = "120000"
    ds.ContentLabel = "REG"
    ds.FrameOfReferenceUID = registered_frame
    sequence = []
    for i, (frame, matrices) in enumerate(items):
        item = Dataset()
        if frame is not None:
            item.FrameOfReferenceUID = frame
        if images and i in images:
            refs = []
            for uid in images[i]:
                ref = Dataset()
                ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
                ref.ReferencedSOPInstanceUID = uid
                refs.append(ref)
            item.ReferencedImageSequence = DicomSequence(refs)
        entries = []
        for values, kind in matrices:
            entry = Dataset()
            raw = isinstance(values, list) and isinstance(values[0], str)  # "nan": no number pydicom writes
            with warnings.catch_warnings():  # pydicom warns about a value DS does not allow: that is the point
                warnings.simplefilter("ignore")
                entry.FrameOfReferenceTransformationMatrix = values if raw else ds_strings(np.ravel(values))
            entry.FrameOfReferenceTransformationMatrixType = kind
            entries.append(entry)
        registration = Dataset()
        registration.RegistrationTypeCodeSequence = DicomSequence([])
        registration.MatrixSequence = DicomSequence(entries)
        item.MatrixRegistrationSequence = DicomSequence([registration])
        sequence.append(item)
    ds.RegistrationSequence = DicomSequence(sequence)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def mapped(transform, point) -> np.ndarray:
    return np.asarray(transform.TransformPoint(tuple(float(v) for v in point)))


POINTS = np.array([[0.0, 0.0, 0.0], [12.5, -40.0, 88.0], [-70.0, 33.0, -5.5]])  # mm, LPS


def test_known_rigid_motion_maps_planning_points_to_session_points(tmp_path):
    """The REG object registers the session's frame to the planning frame: M maps session coordinates to planning
    ones, so the ITK transform (fixed = planning) sends a planning point to inv(M) of it."""
    m = rigid([8.0, -5.0, 12.0], [14.0, -9.5, 3.25])
    path = write_reg(tmp_path / "reg.dcm", PLANNING, [(PLANNING, [(np.eye(4), "RIGID")]), (SESSION, [(m, "RIGID")])])
    (reg,) = read_spatial_registrations([path])  # the identity item of the planning frame itself is left out
    assert (reg.source_frame, reg.registered_frame, reg.matrix_type, reg.path) == (SESSION, PLANNING, "RIGID", path)
    transform = session_transform([reg], PLANNING, SESSION)
    session_points = POINTS  # the same anatomy, in the session's coordinates
    planning_points = session_points @ m[:3, :3].T + m[:3, 3]
    for planning_point, session_point in zip(planning_points, session_points):
        assert np.allclose(mapped(transform, planning_point), session_point, atol=1e-6)
    assert session_transform([reg], PLANNING, generate_uid()) is None
    identity = session_transform([reg], SESSION, SESSION)
    assert np.allclose(mapped(identity, POINTS[1]), POINTS[1])


def test_registration_in_the_sessions_frame_is_used_the_other_way(tmp_path):
    """A REG object in the session's frame registering the planning frame to it: M maps planning coordinates to
    session ones, which is the ITK transform itself."""
    m = rigid([-20.0, 4.0, 30.0], [-3.0, 22.0, 7.5])
    path = write_reg(tmp_path / "reg.dcm", SESSION, [(SESSION, [(np.eye(4), "RIGID")]), (PLANNING, [(m, "RIGID")])])
    transform = session_transform(read_spatial_registrations([path]), PLANNING, SESSION)
    for point in POINTS:
        assert np.allclose(mapped(transform, point), m[:3, :3] @ point + m[:3, 3], atol=1e-6)


def test_matrix_sequence_composes_in_item_order(tmp_path):
    """Items M1, M2 of one Matrix Sequence: M = M2 M1 (PS3.3 Equation C.20.2-2), here a rotation then a shift."""
    m1, m2 = rigid([0.0, 0.0, 90.0], [0.0, 0.0, 0.0]), rigid([0.0, 0.0, 0.0], [10.0, 0.0, 0.0])
    path = write_reg(tmp_path / "reg.dcm", PLANNING, [(SESSION, [(m1, "RIGID"), (m2, "AFFINE")])])
    (reg,) = read_spatial_registrations([path])
    assert np.allclose(reg.matrix, m2 @ m1) and reg.matrix_type == "AFFINE"
    assert np.allclose(
        reg.matrix[:3] @ [1.0, 0.0, 0.0, 1.0], [10.0, 1.0, 0.0]
    )  # (1, 0, 0) turned to (0, 1, 0), shifted


def test_two_sessions_registered_to_a_common_frame_chain(tmp_path):
    """Planning and session frames both registered to a third frame (two REG objects): the session -> planning
    matrix is inv(M_planning) M_session."""
    m_session = rigid([3.0, 10.0, -6.0], [5.0, 1.0, -2.0])
    m_planning = np.eye(4)
    m_planning[:3, :3] = np.diag([1.02, 0.98, 1.01]) @ Rotation.from_euler("z", 7, degrees=True).as_matrix()
    m_planning[:3, 3] = [-11.0, 4.0, 9.0]
    paths = [
        write_reg(tmp_path / "a.dcm", COMMON, [(SESSION, [(m_session, "RIGID")])]),
        write_reg(tmp_path / "b.dcm", COMMON, [(PLANNING, [(m_planning, "AFFINE")])]),
    ]
    registrations = read_spatial_registrations(paths)
    expected = np.linalg.inv(m_planning) @ m_session
    assert np.allclose(frame_matrix(registrations, SESSION, PLANNING), expected)
    transform = session_transform(registrations, PLANNING, SESSION)
    for point in POINTS:
        session_point = np.linalg.inv(expected)[:3] @ [*point, 1.0]
        assert np.allclose(mapped(transform, point), session_point, atol=1e-6)
    direct = as_itk_transform(expected)
    assert np.allclose(direct.GetMatrix(), transform.GetMatrix()) and np.allclose(
        direct.GetTranslation(), transform.GetTranslation()
    )


def test_two_files_that_disagree_are_refused(tmp_path):
    paths = [
        write_reg(tmp_path / "a.dcm", PLANNING, [(SESSION, [(rigid([0, 0, 5], [0, 0, 0]), "RIGID")])]),
        write_reg(tmp_path / "b.dcm", SESSION, [(PLANNING, [(rigid([0, 0, 5], [0, 0, 0]), "RIGID")])]),
    ]
    with pytest.raises(InputError, match=r"b\.dcm: RegistrationSequence: relates frames .* otherwise than a\.dcm"):
        session_transform(read_spatial_registrations(paths), PLANNING, SESSION)


FIELD = (
    r"RegistrationSequence\[0\]\.MatrixRegistrationSequence\[0\]\.MatrixSequence\[0\]"
    r"\.FrameOfReferenceTransformationMatrix"
)
SCALED = np.diag([1.01, 1.0, 1.0, 1.0])
MIRROR = np.diag([-1.0, 1.0, 1.0, 1.0])
BAD_MATRICES = {
    "15 values": (list(range(15)), "AFFINE", f"{FIELD}: 15 values: a 4x4 matrix needs 16 numbers"),
    "not finite": (
        ["nan", *ds_strings(np.eye(4).ravel()[1:])],
        "AFFINE",
        f"{FIELD}: value 1 is nan: the 16 numbers must be",
    ),
    "singular": (np.diag([1.0, 1.0, 0.0, 1.0]), "AFFINE", f"{FIELD}: its 3x3 part is singular"),
    "not orthonormal": (SCALED, "RIGID", rf"{FIELD}: type RIGID but its 3x3 part is not orthonormal \(\|R\^T R - I\|"),
    "mirror": (MIRROR, "RIGID", rf"{FIELD}: type RIGID but its 3x3 part mirrors"),
    "last row": (np.eye(4) + np.eye(4)[[3]].T @ np.eye(4)[[2]], "AFFINE", rf"{FIELD}: last row \(0, 0, 1, 1\)"),
    "type": (np.eye(4), "PERSPECTIVE", rf"{FIELD}Type: 'PERSPECTIVE': expected one of RIGID, RIGID_SCALE, AFFINE"),
}


@pytest.mark.parametrize("case", sorted(BAD_MATRICES))
def test_bad_matrix_is_one_line_naming_file_and_field(tmp_path, case):
    values, kind, message = BAD_MATRICES[case]
    path = write_reg(tmp_path / "reg.dcm", PLANNING, [(SESSION, [(values, kind)])])
    with pytest.raises(InputError) as info:
        read_spatial_registrations([path])
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{path}: ")
    assert re.search(message, text), text


def test_the_same_scaled_matrix_is_accepted_as_rigid_scale(tmp_path):
    path = write_reg(tmp_path / "reg.dcm", PLANNING, [(SESSION, [(SCALED, "RIGID_SCALE")])])
    assert np.allclose(read_spatial_registrations([path])[0].matrix, SCALED)


def test_deformable_and_other_objects_are_refused(tmp_path):
    deformable = write_reg(
        tmp_path / "dreg.dcm", PLANNING, [(SESSION, [(np.eye(4), "RIGID")])], sop_class=DEFORMABLE_SPATIAL_REGISTRATION
    )
    with pytest.raises(InputError, match=r"dreg\.dcm: SOPClassUID: Deformable Spatial Registration .* not supported"):
        read_spatial_registrations([deformable])
    mr = write_reg(
        tmp_path / "mr.dcm", PLANNING, [(SESSION, [(np.eye(4), "RIGID")])], sop_class="1.2.840.10008.5.1.4.1.1.4"
    )
    with pytest.raises(InputError, match=r"mr\.dcm: SOPClassUID: .* is not a Spatial Registration"):
        read_spatial_registrations([mr])
    with pytest.raises(InputError, match=r"self\.dcm: RegistrationSequence\[0\]: registers frame .* to itself"):
        read_spatial_registrations([write_reg(tmp_path / "self.dcm", PLANNING, [(PLANNING, [(SCALED, "AFFINE")])])])
    (tmp_path / "notes.txt").write_text("not DICOM")
    with pytest.raises(InputError, match=r"notes\.txt: header: not a DICOM file"):
        read_spatial_registrations([tmp_path / "notes.txt"])


def test_reg_objects_in_an_import_folder_are_listed_and_not_taken_for_mr(tmp_path, capsys):
    """A tiny patient with a REG object registering its frame to another one, the session's item naming only its
    images (no FrameOfReferenceUID): the folder scan keeps the REG as its own series and finds the item's frame from
    the images; import-dicom still imports the MR series alone and lists the REG as not imported."""
    written = write_tiny_patient(tmp_path / "dicom")
    flair_uids = [str(pydicom.dcmread(p).SOPInstanceUID) for p in sorted((tmp_path / "dicom/scan1/flair").iterdir())]
    m = rigid([2.0, 0.0, -3.0], [1.0, 2.0, 3.0])
    write_reg(tmp_path / "dicom" / "reg.dcm", PLANNING, [(None, [(m, "RIGID")])], images={0: flair_uids[:2]})
    scan = scan_folder(tmp_path / "dicom")
    reg_series = [s for s in scan.series.values() if s.modality == "REG"]
    assert len(reg_series) == 1 and reg_series[0].paths == [tmp_path / "dicom" / "reg.dcm"]
    (reg,) = registrations_in(scan)
    assert (reg.source_frame, reg.registered_frame) == (written["frame"], PLANNING)
    assert np.allclose(reg.matrix, m)
    assert main(["import-dicom", str(tmp_path / "dicom"), "--out", str(tmp_path / "case"), "--no-anatomy"]) == 0
    report = json.loads((tmp_path / "case" / "import.json").read_text())
    (record,) = [r for r in report["series"] if r["modality"] == "REG"]
    assert record["used"] is False and record["why"] == "REG objects are not imported"
    assert all(r["modality"] != "REG" for r in report["series"] if r.get("used"))
