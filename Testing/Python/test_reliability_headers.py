"""Issue 31, item 2: odd NIfTI headers are refused (one line naming the file and the field, exit 2, nothing
written, inputs unchanged) instead of giving silently wrong output: a scl_slope that overflows float32 (it used
to pass the check in nibabel's float64 and give "forecast tumor 0.00 mL"), a NaN scl_inter (a traceback), a
sheared sform (silently replaced by the qform), a NaN qoffset (origin 0), pixdim 1e30 ("GTV 1.5e91 mL") and a
0.97 MB file declaring 1000^3 voxels (342 s and 9.8 GB, then a MemoryError). Plus property tests of the header
reader."""

from __future__ import annotations

import gzip
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from conftest import oblique_grid
from gliomaforecast.cli import main
from gliomaforecast.errors import InputError
from gliomaforecast.io.headers import MAX_VOXELS, MAX_VOXELS_ENV
from gliomaforecast.io.images import header_grid, read_image, read_mask, write_image


def _patch(path: Path, **fields) -> None:
    """Set raw NIfTI-1 header ``fields`` of ``path`` in place (nibabel "fixes" scaling and geometry on save)."""
    gz = path.name.endswith(".gz")
    raw = bytearray(gzip.decompress(path.read_bytes()) if gz else path.read_bytes())
    header = nib.Nifti1Header(bytes(raw[:348]), check=False)
    for name, value in fields.items():
        header[name] = value
    raw[:348] = header.binaryblock
    path.write_bytes(gzip.compress(bytes(raw), mtime=0) if gz else bytes(raw))


def _resave(path: Path, data: np.ndarray, **fields) -> None:
    """Rewrite ``path`` with nibabel (same affine and codes, new voxel data and dtype), then ``_patch`` it."""
    img = nib.load(str(path))
    new = nib.Nifti1Image(data, img.affine, img.header)
    new.header.set_data_dtype(data.dtype)
    nib.save(new, str(path))
    _patch(path, **fields)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(argv: list[str], folder: Path, capsys) -> str:
    """Run the CLI; assert exit 2, one stderr line, no traceback and ``folder`` unchanged; return the line."""
    before = _snapshot(folder)
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    assert _snapshot(folder) == before
    return err[0]


def _sdf_refuses(mask: Path, tmp_path: Path, capsys) -> str:
    out = tmp_path / "out" / "p.nii.gz"
    out.parent.mkdir(exist_ok=True)
    line = _refused(["sdf", "--mask", str(mask), "--out", str(out)], mask.parent, capsys)
    assert str(mask) in line and "gtv" in line
    assert not any(out.parent.iterdir())
    return line


def _forecast_refuses(case: Path, tmp_path: Path, capsys) -> str:
    out = tmp_path.parent / f"{tmp_path.name}_forecast"
    argv = ["forecast", str(case), "--day", "200", "--forecaster", "persistence", "--out", str(out)]
    line = _refused(argv, case.parent, capsys)
    assert not out.exists()
    return line


@pytest.fixture
def mask(tmp_path: Path) -> Path:
    """A small valid oblique GTV mask written by this package (sform and qform code 1), alone in its folder."""
    array = np.zeros((6, 8, 10), np.uint8)
    array[2:4, 3:5, 4:7] = 1
    (tmp_path / "in").mkdir()
    return write_image(tmp_path / "in" / "gtv.nii.gz", array, oblique_grid())


# --- case 3: scaling --------------------------------------------------------------------------------------------


def test_scl_slope_overflowing_float32_is_refused_by_forecast(make_case, tmp_path: Path, capsys) -> None:
    """FLAIR stored as int16 around 1000 with scl_slope 1e36: nibabel's float64 holds 1e39, ITK's float32 (the
    values used) holds inf. It used to pass the check and give NaN probabilities; now it is refused, naming it."""
    case, _ = make_case()
    flair = case.parent / "d2_flair.nii.gz"
    _resave(flair, np.full((20, 20, 12), 1000, np.int16), scl_slope=1e36, scl_inter=0)
    line = _forecast_refuses(case, tmp_path, capsys)
    assert str(flair) in line and "flair" in line and "scl_slope 1e+36" in line and "overflow float32" in line


def test_scl_slope_overflow_is_refused_by_the_reader(mask: Path) -> None:
    _resave(mask, np.full((10, 8, 6), 7, np.int16), scl_slope=1e38, scl_inter=0)
    with pytest.raises(
        InputError, match=r"gtv\.nii\.gz: gtv: scl_slope 1e\+38 and scl_inter 0 make 480 voxels overflow"
    ):
        read_image(mask, "gtv")


@pytest.mark.parametrize(
    "name,value", [("scl_inter", np.nan), ("scl_slope", np.nan), ("scl_slope", np.inf), ("scl_inter", -np.inf)]
)
def test_non_finite_scaling_is_refused_by_sdf(mask: Path, tmp_path: Path, capsys, name: str, value: float) -> None:
    """scl_inter NaN used to be a HeaderDataError traceback (nibabel); ITK ignored it."""
    _patch(mask, scl_slope=2.0, scl_inter=0.0)
    _patch(mask, **{name: value})
    line = _sdf_refuses(mask, tmp_path, capsys)
    assert f"{name} is not finite" in line


def test_nan_scl_inter_is_refused_by_forecast(make_case, tmp_path: Path, capsys) -> None:
    case, _ = make_case()
    flair = case.parent / "d2_flair.nii.gz"
    _patch(flair, scl_slope=1.0, scl_inter=np.nan)
    line = _forecast_refuses(case, tmp_path, capsys)
    assert str(flair) in line and "timepoints[2].images.flair" in line and "scl_inter is not finite" in line


def test_zero_slope_with_an_intercept_is_refused(mask: Path) -> None:
    """scl_slope 0 means "no scaling" (nibabel), but ITK still adds scl_inter: the two readers disagree."""
    _patch(mask, scl_slope=0.0, scl_inter=3.0)
    with pytest.raises(InputError, match=r"gtv: NIfTI header scl_slope is 0 \(no scaling\) but scl_inter is 3"):
        read_mask(mask, "gtv")


def test_valid_scaling_is_applied_as_before(tmp_path: Path) -> None:
    path = tmp_path / "s.nii"
    nib.save(nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.diag([2.0, 2.0, 2.0, 1.0])), path)
    _patch(path, scl_slope=2.0, scl_inter=1.0)
    array, grid = read_image(path)
    assert array.dtype == np.float32 and grid.spacing == (2.0, 2.0, 2.0)
    np.testing.assert_array_equal(array, (np.arange(24).reshape(2, 3, 4).T * 2 + 1).astype(np.float32))


def test_nan_voxel_in_scaled_float_data_is_refused(tmp_path: Path) -> None:
    """ITK reads a stored NaN as 0: the stored values of a float NIfTI are checked too."""
    data = np.full((2, 3, 4), 5.0, np.float32)
    data[1, 1, 1] = np.nan
    path = tmp_path / "n.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    _patch(path, scl_slope=2.0, scl_inter=0.0)
    with pytest.raises(InputError, match=r"n\.nii\.gz: image: 1 voxels are NaN or infinite"):
        read_image(path)


# --- case 5: geometry -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("qform_code", [0, 1])
def test_sheared_sform_is_refused(mask: Path, tmp_path: Path, capsys, qform_code: int) -> None:
    """With a qform, ITK used to replace a sheared sform by the qform silently (its warning switched off); without
    one it failed with a generic ITK message. Both are one line naming the sform."""
    img = nib.load(str(mask))
    sheared = img.affine.copy()
    sheared[0, 1] += 0.5
    _patch(mask, srow_x=sheared[0], sform_code=1, qform_code=qform_code)
    line = _sdf_refuses(mask, tmp_path, capsys)
    assert "sform" in line and "sheared" in line


def test_nan_qoffset_is_refused(mask: Path, tmp_path: Path, capsys) -> None:
    """A NaN qoffset with only a qform used to become origin 0."""
    _patch(mask, qoffset_y=np.nan, sform_code=0, qform_code=1)
    line = _sdf_refuses(mask, tmp_path, capsys)
    assert "qoffset_y is not finite" in line


@pytest.mark.parametrize("name,index", [("srow_z", 3), ("srow_x", 0), ("quatern_b", None)])
def test_non_finite_affine_fields_are_refused(mask: Path, name: str, index: int | None) -> None:
    header = nib.load(str(mask)).header
    value = np.array(header[name], dtype=np.float32)
    if index is None:
        value = np.float32(np.inf)
    else:
        value[index] = np.nan
    _patch(mask, **{name: value})
    with pytest.raises(InputError, match=rf"gtv\.nii\.gz: gtv: NIfTI header {name} is not finite"):
        header_grid(mask, "gtv")


def test_absurd_pixdim_is_refused(mask: Path, tmp_path: Path, capsys) -> None:
    """pixdim 1e30 used to give "GTV 1.5e91 mL"."""
    _patch(mask, pixdim=[1.0, 1e30, 0.9, 5.0, 1.0, 0.0, 0.0, 0.0], sform_code=0)
    line = _sdf_refuses(mask, tmp_path, capsys)
    assert "voxel spacing 1e+30 x 0.9 x 5 mm" in line and "between 0.001 and 1000 mm" in line


def test_pixdim_disagreeing_with_the_sform_is_refused(mask: Path) -> None:
    """ITK takes the spacing from pixdim and only warns ("unexpected scales in sform"): refused instead."""
    _patch(mask, pixdim=[1.0, 1.5, 0.9, 5.0, 1.0, 0.0, 0.0, 0.0])
    with pytest.raises(InputError, match=r"gtv: NIfTI pixdim 1\.5 x 0\.9 x 5 mm disagrees with the sform"):
        read_mask(mask, "gtv")


# --- voxel-count limit ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def huge_mask(tmp_path_factory) -> Path:
    """A 0.97 MB .nii.gz declaring a 1000^3 uint8 mask (written in chunks, never allocated whole)."""
    header = nib.Nifti1Header()
    header.set_data_shape((1000, 1000, 1000))
    header.set_data_dtype(np.uint8)
    header.set_sform(np.eye(4), 1)
    header.set_qform(np.eye(4), 1)
    path = tmp_path_factory.mktemp("huge") / "huge.nii.gz"
    zeros = bytes(1 << 24)
    with gzip.open(path, "wb") as fh:
        fh.write(header.binaryblock + bytes(4))
        left = 1000**3
        while left:
            fh.write(zeros[: min(left, len(zeros))])
            left -= min(left, len(zeros))
    return path


def test_huge_header_is_refused_before_reading(huge_mask: Path, tmp_path: Path, capsys) -> None:
    """It used to take 342 s and 9.8 GB, then a MemoryError traceback."""
    assert huge_mask.stat().st_size < 1_100_000
    start = time.monotonic()
    line = _sdf_refuses(huge_mask, tmp_path, capsys)
    assert time.monotonic() - start < 5
    assert f"1000000000 voxels, more than the limit of {MAX_VOXELS}" in line and MAX_VOXELS_ENV in line


def test_voxel_limit_is_overridable(mask: Path, monkeypatch) -> None:
    monkeypatch.setenv(MAX_VOXELS_ENV, "479")
    with pytest.raises(InputError, match=r"gtv: header declares 10 x 8 x 6 = 480 voxels, more than the limit of 479"):
        read_mask(mask, "gtv")
    monkeypatch.setenv(MAX_VOXELS_ENV, "480")
    assert read_mask(mask, "gtv")[0].sum() == 12
    other = mask.with_name("other.nii.gz")
    other.write_bytes(mask.read_bytes())
    for text in ("lots", "0", "-5"):
        monkeypatch.setenv(MAX_VOXELS_ENV, text)
        with pytest.raises(InputError, match=rf"^{MAX_VOXELS_ENV}: must be a positive integer, got '{text}'$"):
            read_mask(other, "gtv")


@pytest.mark.parametrize("suffix", [".nrrd", ".seg.nrrd"])
def test_voxel_limit_applies_to_nrrd(tmp_path: Path, monkeypatch, suffix: str) -> None:
    path = write_image(tmp_path / f"m{suffix}", np.ones((6, 8, 10), np.uint8), oblique_grid())
    monkeypatch.setenv(MAX_VOXELS_ENV, "100")
    with pytest.raises(InputError, match=r"more than the limit of 100"):
        read_mask(path, "gtv")


# --- property tests of the NIfTI header reader ------------------------------------------------------------------


def _nifti(folder: str, affine: np.ndarray, shape=(3, 4, 5)) -> Path:
    path = Path(folder) / "p.nii"
    img = nib.Nifti1Image(np.ones(shape, np.uint8), affine)
    img.header.set_sform(affine, 1)
    img.header.set_qform(affine, 1)
    nib.save(img, path)
    return path


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    quat=st.tuples(*[st.floats(-1, 1, allow_subnormal=False)] * 4).filter(lambda q: sum(v * v for v in q) > 0.1),
    spacing=st.tuples(*[st.floats(0.0625, 20, width=32, allow_subnormal=False)] * 3),
    origin=st.tuples(*[st.floats(-500, 500, width=32, allow_subnormal=False)] * 3),
)
def test_valid_affines_round_trip(quat, spacing, origin) -> None:
    """Any rotation, spacing and origin stored as NIfTI reads back: spacing and origin exactly (as float32, LPS),
    the direction to float32 precision."""
    rotation = Rotation.from_quat(quat).as_matrix()
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.asarray(spacing)
    affine[:3, 3] = origin
    with tempfile.TemporaryDirectory() as folder:
        grid = header_grid(_nifti(folder, affine))
    stored = affine.astype(np.float32).astype(float)
    assert grid.spacing == tuple(float(np.float32(s)) for s in spacing[::-1])
    assert grid.origin == (-stored[0, 3], -stored[1, 3], stored[2, 3])
    lps = rotation * np.array([[-1.0], [-1.0], [1.0]])
    np.testing.assert_allclose(grid.direction_matrix, lps, atol=2e-6)


_BAD_VALUES = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e30, 1e-9, 3e38])
_FIELDS = st.sampled_from(
    [
        "scl_slope",
        "scl_inter",
        "pixdim",
        "quatern_b",
        "quatern_d",
        "qoffset_x",
        "qoffset_z",
        "srow_x",
        "srow_y",
        "srow_z",
        "shear",
        "dim",
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=_FIELDS,
    value=_BAD_VALUES,
    index=st.integers(0, 3),
    sform_code=st.sampled_from([0, 1, 2]),
    qform_code=st.sampled_from([0, 1]),
)
def test_invalid_header_values_are_refused_with_input_error(field, value, index, sform_code, qform_code) -> None:
    """A header made invalid in any one field is an InputError from every reader, never another exception; when
    the value happens to be valid for the field (e.g. scl_inter 0, an unused sform), the read succeeds with finite
    values and geometry."""
    affine = np.diag([1.5, 0.9, 2.0, 1.0])
    affine[:3, 3] = [10.0, -20.0, 30.0]
    with tempfile.TemporaryDirectory() as folder:
        path = _nifti(folder, affine)
        header = nib.Nifti1Header(path.read_bytes()[:348], check=False)
        fields: dict = {"sform_code": sform_code, "qform_code": qform_code}
        if field == "shear":
            fields["srow_x"] = np.array([1.5, value if np.isfinite(value) else 0.7, 0.0, 10.0])
        elif field == "dim":
            fields["dim"] = [3, 32767, 32767, 32767, 1, 1, 1, 1]
        elif field in ("pixdim", "srow_x", "srow_y", "srow_z"):
            array = np.array(header[field], dtype=float)
            array[index + (1 if field == "pixdim" else 0)] = value
            fields[field] = array
        else:
            fields[field] = value
        _patch(path, **fields)
        for reader in (read_image, header_grid, read_mask):
            try:
                result = reader(path)
            except InputError as exc:
                assert str(path) in str(exc) and "\n" not in str(exc)
                continue
            grid = result if reader is header_grid else result[1]
            assert all(np.isfinite(grid.origin)) and all(np.isfinite(grid.direction))
            assert all(1e-3 <= s <= 1e3 for s in grid.spacing)
            if reader is read_image:
                assert np.all(np.isfinite(result[0]))
