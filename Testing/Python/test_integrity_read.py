"""Fault injection on reading (issue 19 items 1, 3, 4, 9, 10): damaged copies of the sample patient's files are
refused with one line naming the file, never read as a different image."""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import zlib
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest

from conftest import SAMPLE_CASE
from gliomaforecast.io.case import load_case
from gliomaforecast.cli import main
from gliomaforecast.errors import InputError
from gliomaforecast.geometry import Grid, require_same_grid
from gliomaforecast.io.images import (read_image, read_labels, read_mask, read_segmentation, write_image,
                                      write_segmentation)
from gliomaforecast.models import load_registry

SAMPLE = SAMPLE_CASE.parent
GTV = "d231_gtv.nii.gz"


@pytest.fixture
def patient(tmp_path: Path) -> Path:
    """A copy of the sample patient (the shipped files are never touched)."""
    return Path(shutil.copytree(SAMPLE, tmp_path / "patient"))


def _sdf(mask: Path, out: Path, capsys) -> tuple[int, list[str], str]:
    code = main(["sdf", "--mask", str(mask), "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines(), captured.out


def _rewrite_nifti_header(src: Path, dst: Path, edit) -> None:
    """Copy a .nii.gz with its (uncompressed) NIfTI-1 header bytes changed by ``edit(bytearray)``."""
    raw = bytearray(gzip.decompress(src.read_bytes()))
    edit(raw)
    dst.write_bytes(gzip.compress(bytes(raw), mtime=0))


@pytest.mark.parametrize("keep", [1016, 0.3, 0.6, -8, -1])
def test_truncated_gzip_mask_is_refused(patient: Path, tmp_path: Path, capsys, keep) -> None:
    """A .nii.gz cut anywhere (inside the deflate data, or just its CRC/length trailer) is one line naming it;
    nothing is written. (It used to read as a partly empty mask: GTV 24.08 mL instead of 118.36, exit 0.)"""
    data = (patient / GTV).read_bytes()
    n = keep if isinstance(keep, int) and keep > 0 else (len(data) + keep if isinstance(keep, int) else int(len(data) * keep))
    cut = tmp_path / "t.nii.gz"
    cut.write_bytes(data[:n])
    code, err, _ = _sdf(cut, tmp_path / "p.nii.gz", capsys)
    assert code == 2 and len(err) == 1
    assert str(cut) in err[0] and "gtv" in err[0] and ("truncated" in err[0] or "damaged" in err[0])
    assert not (tmp_path / "p.nii.gz").exists()


def test_bad_gzip_crc_is_refused(patient: Path, tmp_path: Path, capsys) -> None:
    """A stream whose CRC does not match its data (a flipped bit anywhere) is refused."""
    data = bytearray((patient / GTV).read_bytes())
    data[-8] ^= 0xFF  # first byte of the CRC32 trailer
    bad = tmp_path / "crc.nii.gz"
    bad.write_bytes(bytes(data))
    code, err, _ = _sdf(bad, tmp_path / "p.nii.gz", capsys)
    assert code == 2 and len(err) == 1 and "crc" in err[0].lower() and str(bad) in err[0]


def test_header_promising_more_voxels_than_stored_is_refused(patient: Path, tmp_path: Path) -> None:
    """A header whose dimensions promise more voxels than the stream holds (a whole gzip stream of a truncated
    image) is refused naming the byte counts."""
    raw = gzip.decompress((patient / GTV).read_bytes())
    short = tmp_path / "short.nii.gz"
    short.write_bytes(gzip.compress(raw[: len(raw) - 5000], mtime=0))
    with pytest.raises(InputError, match=r"short\.nii\.gz: gtv: .*truncated.*of the \d+ its header promises"):
        read_mask(short, "gtv")
    plain = tmp_path / "short.nii"
    plain.write_bytes(raw[: len(raw) - 5000])
    with pytest.raises(InputError, match="truncated"):
        read_mask(plain, "gtv")


@pytest.mark.parametrize("offset,value", [(0, 1234), (40, 9), (70, 9999), (108, 1e9)])  # sizeof_hdr, dim[0], datatype, vox_offset
def test_corrupt_nifti_header_is_refused(patient: Path, tmp_path: Path, offset: int, value: float) -> None:
    bad = tmp_path / "hdr.nii.gz"
    packed = struct.pack({0: "<i", 108: "<f"}.get(offset, "<h"), value if offset == 108 else int(value))
    _rewrite_nifti_header(patient / GTV, bad, lambda raw: raw.__setitem__(slice(offset, offset + len(packed)), packed))
    with pytest.raises(InputError, match=r"hdr\.nii\.gz: gtv: cannot read image"):
        read_mask(bad, "gtv")


@pytest.mark.parametrize("suffix", [".nrrd", ".seg.nrrd"])
def test_truncated_nrrd_is_refused(tmp_path: Path, suffix: str) -> None:
    mask, grid = read_mask(SAMPLE / GTV)
    good = write_image(tmp_path / f"m{suffix}", mask.astype(np.uint8), grid)
    data = good.read_bytes()
    for n in (len(data) // 2, len(data) - 8):
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(data[:n])
        with pytest.raises(InputError, match=r"cut.*: gtv: cannot read"):
            read_mask(cut, "gtv")


def test_truncated_float_score_under_ctv(patient: Path, tmp_path: Path, capsys) -> None:
    """A truncated float image (the --score map) is one line, not a traceback."""
    data = (patient / "d231_flair.nii.gz").read_bytes()
    score = tmp_path / "score.nii.gz"
    score.write_bytes(data[: len(data) // 2])
    code = main(["ctv", "--gtv", str(patient / GTV), "--score", str(score), "--out", str(tmp_path / "ctv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(score) in err[0] and "score" in err[0]
    assert not (tmp_path / "ctv").exists()


def _replace(path: Path, array: np.ndarray, grid: Grid) -> None:
    """Overwrite a copied input file (this process read it, so io refuses to write it in place)."""
    fresh = write_image(path.parent.parent / f"new_{path.name}", array, grid)
    shutil.move(fresh, path)


def _with_label(patient: Path, value: int, dtype) -> Path:
    """The patient with its last label map rewritten as ``dtype`` holding one voxel of ``value`` (outside the GTV)
    and its last GTV taken from the labels (the manifest's ``gtv`` of that scan removed)."""
    labels, grid = read_labels(patient / "d231_seg.nii.gz")
    wide = labels.astype(dtype)
    wide[0, 0, 0] = value
    _replace(patient / "d231_seg.nii.gz", wide, grid)
    manifest = json.loads((patient / "case.json").read_text())
    del manifest["timepoints"][-1]["gtv"]
    (patient / "case.json").write_text(json.dumps(manifest))
    return patient / "case.json"


@pytest.mark.parametrize("value", [65537, 7])
def test_label_outside_the_declared_set_is_refused(patient: Path, value: int) -> None:
    """An int32 label 65537 used to wrap to 1 (necrosis: GTV 126.36 mL instead of 118.36); a label 7 (not BraTS,
    not in gtv_labels) was silently read. Both are errors naming the value and the file."""
    case = load_case(_with_label(patient, value, np.int32))
    with pytest.raises(InputError, match=rf"d231_seg\.nii\.gz: timepoints\[3\]\.labels: label value {value} "):
        case.gtv(case.timepoints[-1])


def test_declared_labels_include_gtv_labels(patient: Path) -> None:
    """A label declared in the manifest's gtv_labels is read (and counted in the GTV)."""
    path = _with_label(patient, 7, np.int16)
    manifest = json.loads(path.read_text())
    manifest["gtv_labels"] = [1, 2, 3, 7]
    path.write_text(json.dumps(manifest))
    case = load_case(path)
    assert case.gtv(case.timepoints[-1])[0, 0, 0]


def test_seg_nrrd_label_value_not_a_number(tmp_path: Path, capsys) -> None:
    mask, grid = read_mask(SAMPLE / GTV)
    seg = write_image(tmp_path / "m.seg.nrrd", mask.astype(np.uint8), grid)
    data, header = nrrd.read(str(seg), index_order="C")
    header["Segment0_ID"], header["Segment0_LabelValue"] = "GTV", "one"
    nrrd.write(str(seg), data, header, index_order="C")
    code, err, _ = _sdf(seg, tmp_path / "p.nii.gz", capsys)
    assert code == 2 and len(err) == 1 and "Segment0_LabelValue" in err[0] and "'one'" in err[0]
    header["Segment0_LabelValue"] = "2"  # the voxels hold 1, a label no segment declares
    nrrd.write(str(seg), data, header, index_order="C")
    with pytest.raises(InputError, match=r"m\.seg\.nrrd: .*label value 1 is not one of the declared labels 0, 2"):
        read_segmentation(seg, "gtv")


@pytest.mark.parametrize("pixdim", [0.0, -2.0, float("nan")])
def test_bad_spacing_is_refused_without_itk_warnings(patient: Path, tmp_path: Path, capsys, pixdim: float) -> None:
    """pixdim 0 used to be read as 1 mm (every volume halved: GTV 59.18 mL) with 90 ITK warning lines; negative
    pixdim was a traceback. Each is one line naming the file."""
    bad = tmp_path / "sp.nii.gz"
    _rewrite_nifti_header(patient / GTV, bad, lambda raw: raw.__setitem__(slice(80, 84), struct.pack("<f", pixdim)))
    code, err, _ = _sdf(bad, tmp_path / "p.nii.gz", capsys)
    assert code == 2 and len(err) == 1, err
    assert str(bad) in err[0] and "spacing" in err[0]
    assert not (tmp_path / "p.nii.gz").exists()


def test_bad_spacing_in_a_case_is_refused_at_load(patient: Path) -> None:
    _rewrite_nifti_header(SAMPLE / "d092_gtv.nii.gz", patient / "d092_gtv.nii.gz",
                          lambda raw: raw.__setitem__(slice(84, 88), struct.pack("<f", 0.0)))
    with pytest.raises(InputError, match=r"d092_gtv\.nii\.gz: timepoints\[1\]\.gtv: voxel spacing"):
        load_case(patient / "case.json")


def test_float64_image_beyond_float32_is_refused(patient: Path) -> None:
    flair, grid = read_image(patient / "d231_flair.nii.gz")
    big = flair.astype(np.float64)
    big[0, 0, 0] = 1e300
    _replace(patient / "d231_flair.nii.gz", big, grid)
    case = load_case(patient / "case.json")
    with pytest.raises(InputError, match=r"d231_flair\.nii\.gz: timepoints\[3\]\.images\.flair: .*float32"):
        case.image(case.timepoints[-1], "flair")


def _edit_manifest(patient: Path, edit) -> Path:
    manifest = json.loads((patient / "case.json").read_text())
    edit(manifest)
    (patient / "case.json").write_text(json.dumps(manifest))
    return patient / "case.json"


@pytest.mark.parametrize("key", ["dose", "brain_mask"])
def test_empty_path_in_manifest_is_an_error(patient: Path, key: str) -> None:
    """An empty "dose" or "brain_mask" used to be ignored (the CTV changed: 469.0 vs 446.9 mL)."""
    path = _edit_manifest(patient, lambda m: m.__setitem__(key, ""))
    with pytest.raises(InputError, match=rf"case\.json: {key}: must be a file path"):
        load_case(path)


@pytest.mark.parametrize("date", ["2025-04-03XYZ", "2025-04-03T10:00", 20250403, "20250403"])
def test_dates_must_be_exact_iso_dates(patient: Path, date) -> None:
    def edit(m: dict) -> None:
        for i, tp in enumerate(m["timepoints"]):
            tp["date"] = f"2025-0{i + 1}-01"
            del tp["day"]
        m["timepoints"][0]["date"] = date
        del m["rt_start_day"]
    with pytest.raises(InputError, match=r"timepoints\[0\]\.date: not an ISO date"):
        load_case(_edit_manifest(patient, edit))


@pytest.mark.parametrize("day", [1e308, 5e4 * 2, -1e6])
def test_manifest_day_out_of_range(patient: Path, tmp_path: Path, capsys, day: float) -> None:
    path = _edit_manifest(patient, lambda m: m["timepoints"][-1].__setitem__("day", day))
    code = main(["growth", str(path), "--out", str(tmp_path / "g"), "--n-bootstrap", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "timepoints[3].day" in err[0] and "out of range" in err[0]
    assert not (tmp_path / "g").exists()


def test_deeply_nested_manifest_is_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "case.json"
    path.write_text("[" * 100000 + "]" * 100000)
    code = main(["growth", str(path), "--out", str(tmp_path / "g")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(path) in err[0] and "nested" in err[0]


@pytest.mark.parametrize("file", ["../outside.onnx", "/etc/passwd", "sub/../../x.onnx"])
def test_model_file_outside_the_models_folder_is_refused(tmp_path: Path, file: str) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (tmp_path / "outside.onnx").write_bytes(b"x")
    (folder / "models.json").write_text(json.dumps({"schema": "gliomaforecast.models/1", "models": [
        {"id": "m", "version": "1", "file": file, "sha256": "0" * 64, "inputs": [{"name": "x", "shape": [1]}],
         "outputs": [{"name": "y", "shape": [1]}]}]}))
    schema = json.loads((SAMPLE.parents[1] / "Models" / "models.json").read_text())["schema"]
    (folder / "models.json").write_text((folder / "models.json").read_text().replace("gliomaforecast.models/1", schema))
    with pytest.raises(InputError, match=r"models\.json: models\[0\]\.file: .* must be a file inside the models folder"):
        load_registry(folder)


def test_grid_mismatch_names_the_directions() -> None:
    a = Grid.identity((4, 5, 6), (2.0, 2.0, 2.0))
    b = Grid(a.shape, a.spacing, a.origin, (-1, 0, 0, 0, -1, 0, 0, 0, 1))
    with pytest.raises(InputError, match=r"direction \[1 0 0 0 1 0 0 0 1\] vs \[-1 0 0 0 -1 0 0 0 1\]"):
        require_same_grid(a, b, "a.nii.gz", "b.nii.gz")


def test_2d_mask_size_in_square_mm(tmp_path: Path, capsys) -> None:
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:15] = 1  # 50 pixels of 2 x 3 mm = 300 mm^2
    path = write_image(tmp_path / "m2d.nii.gz", mask, Grid.identity((20, 30), (2.0, 3.0)))
    code, _, out = _sdf(path, tmp_path / "p.nii.gz", capsys)
    assert code == 0 and "GTV 300.00 mm^2" in out and "mL" not in out


def test_gzip_helpers_agree_with_zlib() -> None:
    """The fault injections above rely on the NIfTI-1 header layout: sizeof_hdr at byte 0, pixdim[1] at 80."""
    raw = gzip.decompress((SAMPLE / GTV).read_bytes())
    assert struct.unpack("<i", raw[:4])[0] == 348
    assert struct.unpack("<f", raw[80:84])[0] == pytest.approx(float(nib.load(SAMPLE / GTV).header["pixdim"][1]))
    assert zlib.crc32(raw) == struct.unpack("<I", (SAMPLE / GTV).read_bytes()[-8:-4])[0]


def test_segmentation_with_more_labels_than_a_uint8_layer_holds(tmp_path: Path) -> None:
    """300 disjoint segments: label 256 used to wrap to 0 in the uint8 layer (segment 256 lost, 257 read as 1)."""
    grid = Grid.identity((3, 10, 10), (1.0, 1.0, 1.0))
    segments = {}
    for i in range(300):
        mask = np.zeros(grid.shape, bool)
        mask[np.unravel_index(i, grid.shape)] = True
        segments[f"s{i}"] = mask
    path = write_segmentation(tmp_path / "many.seg.nrrd", segments, grid)
    back, _ = read_segmentation(path)
    assert list(back) == list(segments)
    assert all(np.array_equal(back[name], segments[name]) for name in segments)
