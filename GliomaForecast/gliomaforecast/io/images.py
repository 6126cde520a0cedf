"""Read and write NIfTI (.nii, .nii.gz) and NRRD (.nrrd, .seg.nrrd) volumes with exact geometry.

Every reader returns ``(array, Grid)`` with the array in (z, y, x) order, after the whole file has been
verified (:mod:`gliomaforecast.io.integrity`: gzip CRC and length, the voxel count the header promises,
positive finite spacing). Every writer is atomic (a temporary file in the destination folder, verified the
same way, then a rename), and refuses to overwrite a file that was read as input through this module in the
same process, or that the caller lists in ``inputs``. Output folders are built beside their destination and
renamed into place under a lock file, so a second concurrent writer is refused. Temporaries carry their
writer's pid, and those of dead writers are removed by the next write to the same place. Errors are
:class:`InputError` naming the file and the field; a failed write (full disk, file too large, read-only
folder) is one too. docs/guarantees.md states the guarantees.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import shutil
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import nrrd
import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..geometry import Grid, to_sitk
from .integrity import verify_image_file
from .write_guard import READ_PATHS as _READ_PATHS
from .write_guard import (
    check_replaceable,
    exchange,
    is_write_error,
    output_lock,
    remove_stale_temporaries,
    temporary_dir,
    temporary_file,
    write_error,
)

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".seg.nrrd", ".nrrd")


def suffix_of(path: str | Path) -> str:
    """The supported file suffix of ``path`` (``.nii.gz``, ``.nii``, ``.seg.nrrd`` or ``.nrrd``)."""
    name = str(path).lower()
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise InputError(path, "format", f"unsupported file type; expected one of {', '.join(IMAGE_SUFFIXES)}")


def _remember_input(path: Path) -> None:
    _READ_PATHS.add(os.path.realpath(path))


def _check_readable(path: Path, field: str) -> None:
    suffix_of(path)
    if not path.is_file():
        raise InputError(path, field, "file not found")


@contextlib.contextmanager
def _itk_quiet() -> Iterator[None]:
    """ITK's warnings (printed on stderr, not raised) switched off: every condition they report is checked and
    raised as an InputError by this module instead."""
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def _sitk_error(exc: RuntimeError) -> str:
    return next((ln for ln in str(exc).splitlines() if "ERROR" in ln or "rror" in ln), "unreadable").strip()[:160]


def _read_sitk(path: Path, field: str) -> sitk.Image:
    _check_readable(path, field)
    verify_image_file(path, field)
    try:
        with _itk_quiet():
            image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(path, field, f"cannot read image ({_sitk_error(exc)})") from None
    _remember_input(path)
    return image


def _grid(shape, spacing, origin, direction, path: Path, field: str) -> Grid:
    try:
        return Grid(shape, spacing, origin, direction)
    except ValueError as exc:
        raise InputError(path, field, str(exc)) from None


def header_grid(path: str | Path, field: str = "image") -> Grid:
    """The grid of an image file from its header, after the whole file has been verified (no voxel array kept)."""
    path = Path(path)
    _check_readable(path, field)
    if suffix_of(path) == ".seg.nrrd":
        return read_segmentation(path, field)[1]
    verify_image_file(path, field)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        with _itk_quiet():
            reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(path, field, f"cannot read image header ({_sitk_error(exc)})") from None
    if reader.GetDimension() not in (2, 3):
        raise InputError(path, field, f"{reader.GetDimension()}D images are not supported; expected a 2D or 3D volume")
    size = reader.GetSize()
    return _grid(
        tuple(reversed(size)),
        tuple(reversed(reader.GetSpacing())),
        reader.GetOrigin(),
        reader.GetDirection(),
        path,
        field,
    )


def _grid_and_array(image: sitk.Image, path: Path, field: str, vector: bool = False) -> tuple[np.ndarray, Grid]:
    dim = image.GetDimension()
    if dim not in (2, 3):
        raise InputError(path, field, f"{dim}D images are not supported; expected a 2D or 3D volume")
    ncomp = image.GetNumberOfComponentsPerPixel()
    if vector and ncomp != dim:
        raise InputError(path, field, f"expected a {dim}-component vector image, got {ncomp} components")
    if not vector and ncomp != 1:
        raise InputError(path, field, f"expected a scalar image, got {ncomp} components per voxel")
    grid = _grid(
        tuple(reversed(image.GetSize())),
        tuple(reversed(image.GetSpacing())),
        image.GetOrigin(),
        image.GetDirection(),
        path,
        field,
    )
    if image.HasMetaDataKey(_EXACT_KEY):
        grid = _exact_grid(image.GetMetaData(_EXACT_KEY), grid)
    return sitk.GetArrayFromImage(image), grid


_EXACT_KEY = "gliomaforecast_grid"


def _exact_grid_tag(grid: Grid) -> str:
    """Spacing, origin and direction as repr'd floats, stored in NRRD headers so that a grid written by
    this module reads back bit-exactly (NRRD itself stores only direction x spacing)."""
    return ";".join(" ".join(repr(v) for v in vals) for vals in (grid.spacing, grid.origin, grid.direction))


def _exact_grid(tag: str | None, header_grid: Grid) -> Grid:
    """The tagged exact grid when it agrees with the header's own geometry (to 1e-9), else the header's."""
    if not tag:
        return header_grid
    try:
        spacing, origin, direction = (tuple(float(v) for v in part.split()) for part in tag.split(";"))
        exact = Grid(header_grid.shape, spacing, origin, direction)
    except ValueError:
        return header_grid
    return exact if exact.same_as(header_grid, rtol=1e-9, atol=1e-9) else header_grid


def _count_nonfinite(array: np.ndarray) -> int:
    if not np.issubdtype(array.dtype, np.floating):
        return 0
    return int(np.size(array) - np.count_nonzero(np.isfinite(array)))


def _require_finite(array: np.ndarray, path: Path, field: str) -> None:
    """Refuse NaN/inf voxels, checked on the values used: ``array`` as read (after the header's scaling, in ITK's
    float32 for a scaled NIfTI, so a ``scl_slope``/``scl_inter`` that overflows float32 is refused naming them)
    and, for a float NIfTI, on the stored values too (ITK's NIfTI reader silently turns NaN into 0). The scaling
    fields themselves were checked finite before the read (:mod:`gliomaforecast.io.headers`)."""
    raw: Any = nib.load(str(path)) if suffix_of(path) in (".nii", ".nii.gz") else None
    if raw is not None and raw.get_data_dtype().kind == "f":
        bad = _count_nonfinite(np.asanyarray(raw.dataobj.get_unscaled()))
        if bad:
            raise InputError(path, field, f"{bad} voxels are NaN or infinite")
    bad = _count_nonfinite(array)
    if not bad:
        return
    slope, inter = (float(raw.dataobj.slope), float(raw.dataobj.inter)) if raw is not None else (1.0, 0.0)
    if slope != 1 or inter != 0:
        raise InputError(
            path, field, f"scl_slope {slope:g} and scl_inter {inter:g} make {bad} voxels overflow {array.dtype}"
        )
    raise InputError(path, field, f"{bad} voxels are NaN or infinite")


def read_image(path: str | Path, field: str = "image") -> tuple[np.ndarray, Grid]:
    """Read a scalar 2D/3D image (intensities, dose, probabilities) in its stored dtype.

    Raises InputError for unreadable/unsupported files, 4D or vector images and NaN/inf voxels.
    """
    path = Path(path)
    if suffix_of(path) == ".seg.nrrd":
        labels, grid, _ = read_segmentation_labels(path, field)
        return labels, grid
    array, grid = _grid_and_array(_read_sitk(path, field), path, field)
    _require_finite(array, path, field)
    return array, grid


def read_vector_image(path: str | Path, field: str = "displacement") -> tuple[np.ndarray, Grid]:
    """Read a vector image (e.g. a displacement field in mm) as an array (z, y, x, d)."""
    path = Path(path)
    array, grid = _grid_and_array(_read_sitk(path, field), path, field, vector=True)
    _require_finite(array, path, field)
    return array, grid


_INT16_MAX = int(np.iinfo(np.int16).max)
_UINT8_MAX = int(np.iinfo(np.uint8).max)  # labels per .seg.nrrd layer: a full layer starts a new one, never wraps
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def as_float32(array: np.ndarray, path: str | Path, field: str) -> np.ndarray:
    """``array`` as float32, refusing (naming the file) values float32 cannot hold instead of turning them into inf."""
    array = np.asarray(array)
    if array.dtype.itemsize > 4 or not np.issubdtype(array.dtype, np.floating):
        if array.size and float(np.max(np.abs(array), initial=0)) > _FLOAT32_MAX:
            raise InputError(path, field, f"values up to {float(np.max(np.abs(array))):.3g} exceed float32's range")
    return array.astype(np.float32)


def as_int16_labels(
    array: np.ndarray, path: str | Path, field: str, allowed: Iterable[int] | None = None
) -> np.ndarray:
    """``array`` as int16 labels, refusing (naming the value and the file) non-integer or negative values,
    values int16 cannot hold (no silent wrap-around: 65537 would become 1) and, when ``allowed`` is given,
    any value outside that declared set."""
    array = np.asarray(array)
    if array.dtype == bool:
        return array.astype(np.int16)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InputError(path, field, f"label map holds {array.dtype} values, not integers")
    if np.issubdtype(array.dtype, np.floating) and not np.all(array == np.round(array)):
        raise InputError(path, field, "label map has non-integer values")
    values = np.unique(array)
    if values.size and values[0] < 0:
        raise InputError(path, field, f"label map has negative labels (min {values[0]:g})")
    if allowed is not None:
        declared = sorted({int(v) for v in allowed} | {0})
        outside = values[~np.isin(values, declared)]
        if outside.size:
            raise InputError(
                path,
                field,
                f"label value {outside[0]:g} is not one of the declared labels {', '.join(str(v) for v in declared)}",
            )
    if values.size and values[-1] > _INT16_MAX:
        raise InputError(path, field, f"label value {values[-1]:g} exceeds the largest label {_INT16_MAX}")
    return array.astype(np.int16)


def read_labels(
    path: str | Path, field: str = "labels", allowed: Iterable[int] | None = None
) -> tuple[np.ndarray, Grid]:
    """Read an integer label map (e.g. BraTS labels) as int16; non-integer, negative or out-of-range values, and
    values outside ``allowed`` (when given; 0 is always allowed), are errors naming the value and the file."""
    path = Path(path)
    array, grid = read_image(path, field)
    return as_int16_labels(array, path, field, allowed), grid


def read_mask(path: str | Path, field: str = "gtv") -> tuple[np.ndarray, Grid]:
    """Read a binary mask (values 0 and 1 only) as bool. A .seg.nrrd must hold exactly one segment."""
    path = Path(path)
    if suffix_of(path) == ".seg.nrrd":
        segments, grid = read_segmentation(path, field)
        if len(segments) != 1:
            raise InputError(path, field, f"expected one segment, found {len(segments)} ({', '.join(segments)})")
        return next(iter(segments.values())), grid
    array, grid = read_image(path, field)
    values = np.unique(array)
    if not np.all(np.isin(values, (0, 1))):
        shown = ", ".join(f"{v:g}" for v in values[:6])
        raise InputError(path, field, f"mask is not binary (values {shown}{'...' if values.size > 6 else ''})")
    return array.astype(bool), grid


# --- Slicer segmentation files (.seg.nrrd) -------------------------------------------------------


def _grid_from_nrrd_header(header: Mapping, path: Path, field: str, spatial_axes: Sequence[int]) -> Grid:
    try:
        dirs = np.asarray(header["space directions"], dtype=float)
        origin = np.asarray(header["space origin"], dtype=float)
        sizes = [int(s) for s in header["sizes"]]
    except KeyError as exc:
        raise InputError(path, field, f"NRRD header lacks '{exc.args[0]}'") from None
    dirs = dirs[list(spatial_axes)]
    space = str(header.get("space", "left-posterior-superior")).lower()
    flip = {"left-posterior-superior": [1, 1, 1], "right-anterior-superior": [-1, -1, 1]}.get(space)
    if flip is None:
        raise InputError(path, field, f"unsupported NRRD space '{space}'")
    signs = np.asarray(flip, dtype=float)
    dirs = dirs * signs
    origin = origin * signs
    spacing = np.linalg.norm(dirs, axis=1)
    direction = (dirs / spacing[:, None]).T  # columns = index axes (ITK convention)
    shape = tuple(sizes[a] for a in reversed(spatial_axes))
    return Grid(shape, tuple(spacing[::-1]), tuple(origin), tuple(direction.ravel()))


def read_segmentation(path: str | Path, field: str = "segmentation") -> tuple[dict[str, np.ndarray], Grid]:
    """Read a Slicer .seg.nrrd (single- or multi-layer) as {segment name: bool mask (z, y, x)}."""
    labels_by_layer, grid, segments = _read_seg_nrrd(Path(path), field)
    out: dict[str, np.ndarray] = {}
    for seg in segments:
        out[seg["name"]] = labels_by_layer[seg["layer"]] == seg["label"]
    return out, grid


def read_segmentation_labels(path: str | Path, field: str = "labels") -> tuple[np.ndarray, Grid, list[dict]]:
    """Read a single-layer .seg.nrrd as its label map plus the segment list (name, label, color)."""
    path = Path(path)
    layers, grid, segments = _read_seg_nrrd(path, field)
    if len(layers) != 1:
        raise InputError(
            path, field, f"segmentation has {len(layers)} overlapping layers; read it with read_segmentation"
        )
    return layers[0], grid, segments


def _read_seg_nrrd(path: Path, field: str) -> tuple[list[np.ndarray], Grid, list[dict]]:
    _check_readable(path, field)
    verify_image_file(path, field)
    try:
        data, header = nrrd.read(str(path), index_order="C")
    except Exception as exc:  # pynrrd raises several types for corrupt files
        raise InputError(path, field, f"cannot read segmentation ({exc})") from None
    _remember_input(path)
    kinds = [str(k).lower() for k in header.get("kinds", ["domain"] * data.ndim)]
    if data.ndim == 3:
        layers, spatial = [data], [0, 1, 2]
    elif data.ndim == 4 and kinds[0] in ("list", "vector", "none"):
        layers, spatial = [data[..., i] for i in range(data.shape[-1])], [1, 2, 3]
    else:
        raise InputError(path, field, f"{data.ndim}D segmentation is not supported")
    grid = _exact_grid(header.get(_EXACT_KEY), _grid_from_nrrd_header(header, path, field, spatial))
    segments = []
    i = 0
    while f"Segment{i}_ID" in header:
        segments.append(
            {
                "id": header[f"Segment{i}_ID"],
                "name": header.get(f"Segment{i}_Name", header[f"Segment{i}_ID"]),
                "label": _header_int(header, f"Segment{i}_LabelValue", 1, path),
                "layer": _header_int(header, f"Segment{i}_Layer", 0, path),
                "color": _header_color(header, f"Segment{i}_Color", path),
            }
        )
        i += 1
    if not segments:  # a plain label map saved as .seg.nrrd: one segment per label value
        for value in np.unique(as_int16_labels(layers[0], path, field)):
            if value:
                segments.append(
                    {
                        "id": f"Segment_{value}",
                        "name": f"Segment_{value}",
                        "label": int(value),
                        "layer": 0,
                        "color": (0.5, 0.5, 0.5),
                    }
                )
    for seg in segments:
        if seg["layer"] >= len(layers):
            raise InputError(path, f"Segment {seg['name']}", f"layer {seg['layer']} does not exist")
    declared = [[seg["label"] for seg in segments if seg["layer"] == k] for k in range(len(layers))]
    return [as_int16_labels(layer, path, field, allowed) for layer, allowed in zip(layers, declared)], grid, segments


def _header_int(header: Mapping, key: str, default: int, path: Path) -> int:
    """A non-negative integer field of a .seg.nrrd header (a segment's label value or layer)."""
    value = str(header.get(key, default)).strip()
    if not value.isdigit():
        raise InputError(path, key, f"must be a non-negative integer, got {value!r}")
    return int(value)


def _header_color(header: Mapping, key: str, path: Path) -> tuple[float, ...]:
    """A segment's RGB color (three numbers in [0, 1]) from a .seg.nrrd header."""
    raw = str(header.get(key, "0.5 0.5 0.5"))
    try:
        color = tuple(float(c) for c in raw.split())
    except ValueError:
        raise InputError(path, key, f"must be three numbers (RGB), got {raw!r}") from None
    if len(color) != 3 or not all(math.isfinite(c) for c in color):
        raise InputError(path, key, f"must be three numbers (RGB), got {raw!r}")
    return color


# --- writing -------------------------------------------------------------------------------------


def _check_destination(path: Path, inputs: Iterable[str | Path]) -> None:
    suffix_of(path)
    real = os.path.realpath(path)
    protected = set(_READ_PATHS) | {os.path.realpath(p) for p in inputs}
    if real in protected:
        raise InputError(path, "output", "refusing to overwrite an input file")
    _check_file_place(path)


def _check_file_place(path: Path) -> None:
    """The destination of a file: its folder exists and is writable, and it is not itself a folder."""
    if not path.parent.is_dir():
        raise InputError(path, "output", f"folder {path.parent} does not exist")
    if path.is_dir():
        raise InputError(path, "output", "is a folder; give a file name")
    if not os.access(path.parent, os.W_OK):
        raise InputError(path, "output", f"folder {path.parent} is not writable")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffixes, so format-by-extension writers work, and the
    writer's pid in its name); on success the temporary is verified (an image: the whole file, see
    :mod:`gliomaforecast.io.integrity`) and renamed onto ``path`` with the usual permissions (0666 minus the
    umask). On any error, a short write among them (full disk, file too large: an InputError), it is removed and
    ``path`` is left as it was. Temporaries of dead writers in the folder are removed first."""
    path = Path(path)
    _check_file_place(path)
    remove_stale_temporaries(path.parent)
    try:
        tmp = temporary_file(path)
    except OSError as exc:
        raise write_error(exc, path) from None
    try:
        yield tmp
        try:
            verify_image_file(tmp, "output")
        except InputError as exc:
            detail = exc.message.removeprefix("cannot read image: ")
            raise InputError(
                path, "output", f"the written file is incomplete ({detail}): is the disk full? nothing was replaced"
            ) from None
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        if is_write_error(exc):
            raise write_error(exc, path) from None
        raise
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            os.unlink(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; the written size is checked before the rename."""
    data = text.encode("utf-8")
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)
        if tmp.stat().st_size != len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
    return Path(path)


def write_image(
    path: str | Path, array: np.ndarray, grid: Grid, *, inputs: Iterable[str | Path] = (), compress: bool = True
) -> Path:
    """Write a scalar or vector image atomically with ``grid``'s exact geometry. Bool arrays are
    written as uint8 0/1. A ``.seg.nrrd`` destination writes a label map with one segment per label."""
    path = Path(path)
    _check_destination(path, inputs)
    if suffix_of(path) == ".seg.nrrd":
        arr = np.asarray(array)
        if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)):
            raise InputError(
                path,
                "output",
                f"a .seg.nrrd holds a label map, not {arr.dtype} values; write images as .nii.gz or .nrrd",
            )
        return write_segmentation(path, {f"Segment_{v}": arr == v for v in np.unique(arr) if v}, grid, inputs=inputs)
    image = to_sitk(array, grid)
    if suffix_of(path) == ".nrrd":
        image.SetMetaData(_EXACT_KEY, _exact_grid_tag(grid))
    with atomic_file(path) as tmp, _c_stderr_silenced():
        sitk.WriteImage(image, str(tmp), useCompression=compress)
    return path


@contextlib.contextmanager
def _c_stderr_silenced() -> Iterator[None]:
    """The process's stderr (file descriptor 2) sent to the null device: ITK's NIfTI writer prints a short write
    ("wrote only 0 of N bytes") there instead of raising; the written file is verified afterwards instead, and
    a real ITK error still raises with its message."""
    with _STDERR_LOCK:  # one thread at a time swaps file descriptor 2, so each restores the real stderr
        sys.stderr.flush()
        saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(null)


_STDERR_LOCK = threading.Lock()


DEFAULT_COLORS = [
    (0.87, 0.26, 0.24),
    (0.94, 0.78, 0.22),
    (0.27, 0.62, 0.86),
    (0.40, 0.75, 0.38),
    (0.62, 0.43, 0.78),
    (0.95, 0.55, 0.20),
]


def _place_segment(layers: list[np.ndarray], mask: np.ndarray, grid: Grid) -> tuple[int, int]:
    """Put ``mask`` into the first label layer (uint8, appended to ``layers`` when none fits) where it overlaps no
    other segment; returns its (layer, label value)."""
    layer = next((k for k, lab in enumerate(layers) if not np.any(lab[mask]) and lab.max() < _UINT8_MAX), None)
    if layer is None:
        layers.append(np.zeros(grid.shape, dtype=np.uint8))
        layer = len(layers) - 1
    label = int(layers[layer].max()) + 1
    layers[layer][mask] = label
    return layer, label


def _segment_fields(
    i: int, name: str, mask: np.ndarray, layer: int, label: int, color: Sequence[float], tags: str
) -> dict[str, str]:
    """The ``Segment<i>_*`` header fields of Slicer's .seg.nrrd for one segment: ID, name, colour (RGB in [0, 1]),
    label value, layer, extent (voxel index ranges) and terminology ``tags``."""
    nz = np.nonzero(mask)
    extent = " ".join(f"{int(a.min())} {int(a.max())}" for a in reversed(nz)) if nz[0].size else "0 -1 0 -1 0 -1"
    return {
        f"Segment{i}_ID": name.replace(" ", "_"),
        f"Segment{i}_Name": name,
        f"Segment{i}_NameAutoGenerated": "0",
        f"Segment{i}_Color": " ".join(f"{c:.6g}" for c in color),
        f"Segment{i}_ColorAutoGenerated": "0",
        f"Segment{i}_LabelValue": str(label),
        f"Segment{i}_Layer": str(layer),
        f"Segment{i}_Extent": extent,
        f"Segment{i}_Tags": tags,
    }


def _segment_layers(
    segments: Mapping[str, np.ndarray],
    grid: Grid,
    colors: Mapping[str, Sequence[float]] | None,
    terminology: Mapping[str, str] | None,
) -> tuple[list[np.ndarray], dict]:
    """The label layers (uint8; at least one) holding ``segments`` without overlap and their segment header fields."""
    layers: list[np.ndarray] = []
    header: dict = {}
    for i, (name, mask) in enumerate(segments.items()):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != grid.shape:
            raise ValueError(f"segment {name!r} has shape {mask.shape}, grid is {grid.shape}")
        layer, label = _place_segment(layers, mask, grid)
        color = (colors or {}).get(name, DEFAULT_COLORS[i % len(DEFAULT_COLORS)])
        header.update(_segment_fields(i, name, mask, layer, label, color, (terminology or {}).get(name, "|")))
    if not layers:
        layers.append(np.zeros(grid.shape, dtype=np.uint8))
    return layers, header


def _segmentation_fields(grid: Grid, n_layers: int) -> dict:
    """The geometry (LPS origin and axes, mm) and representation fields of a .seg.nrrd of ``n_layers`` layers: a
    3D label map for one, a 4D list of layers for several."""
    dirs = (grid.direction_matrix * np.asarray(grid.spacing[::-1])[None, :]).T  # rows = index axes
    single = n_layers == 1
    return {
        "space": "left-posterior-superior",
        "space origin": np.asarray(grid.origin, dtype=float),
        "encoding": "gzip",
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
        "Segmentation_ReferenceImageExtentOffset": "0 0 0",
        "Segmentation_ConversionParameters": "",
        _EXACT_KEY: _exact_grid_tag(grid),
        "space directions": dirs if single else np.vstack([np.full((1, 3), np.nan), dirs]),
        "kinds": ["domain"] * 3 if single else ["list", "domain", "domain", "domain"],
    }


def write_segmentation(
    path: str | Path,
    segments: Mapping[str, np.ndarray],
    grid: Grid,
    *,
    colors: Mapping[str, Sequence[float]] | None = None,
    terminology: Mapping[str, str] | None = None,
    inputs: Iterable[str | Path] = (),
) -> Path:
    """Write named boolean masks as a Slicer segmentation (.seg.nrrd), atomically.

    Overlapping segments go to separate layers (a 4D file, as Slicer writes it); otherwise a single
    label map. ``colors`` are RGB in [0, 1]; ``terminology`` maps a segment name to Slicer's
    ``SegmentN_Tags`` terminology entry.
    """
    path = Path(path)
    if suffix_of(path) != ".seg.nrrd":
        raise InputError(path, "output", "a segmentation must be written as .seg.nrrd")
    _check_destination(path, inputs)
    if grid.ndim != 3:
        raise ValueError("segmentations are written for 3D grids only")
    layers, header = _segment_layers(segments, grid, colors, terminology)
    header.update(_segmentation_fields(grid, len(layers)))
    data = layers[0] if len(layers) == 1 else np.stack(layers, axis=-1)
    with atomic_file(path) as tmp:
        nrrd.write(str(tmp), data, header, index_order="C")
        raw = tmp.read_bytes()  # drop pynrrd's time-stamp comment: same inputs give identical bytes
        tmp.write_bytes(re.sub(rb"\n# on [^\n]*\(GMT\)\.\n", b"\n", raw, count=1))
    return path


EXISTING = ("merge", "refuse", "replace")


def existing_mode(overwrite: bool) -> str:
    """The commands' policy for an existing output folder: ``replace`` with ``--overwrite``, else ``refuse``."""
    return "replace" if overwrite else "refuse"


def check_output_dir(out_dir: str | Path, existing: str = "merge") -> Path:
    """Check, before any work is done, that ``out_dir`` can be created or replaced: its parent folder
    exists and is writable, and it is not a file. ``existing`` says what an existing non-empty folder gets:
    ``merge`` (new files added, same names replaced), ``refuse`` (an InputError: the commands without
    ``--overwrite``, so no stale file of an earlier run sits beside the new ones) or ``replace`` (the whole
    folder replaced atomically). An empty path, a symbolic link, and (see
    :func:`gliomaforecast.io.write_guard.check_replaceable`) a folder to be replaced that is a root, the current or
    home folder or holds or lies inside an input are refused."""
    if existing not in EXISTING:
        raise ValueError(f"existing must be one of {EXISTING}, got {existing!r}")
    if not str(out_dir).strip():
        raise InputError("--out", None, "is empty (an unset shell variable?); give a folder name")
    out_dir = Path(out_dir)
    if os.path.islink(out_dir):
        raise InputError(
            out_dir, "output", f"is a symbolic link (to {os.readlink(out_dir)}); give the folder itself as --out"
        )
    _check_removal(out_dir, existing, _READ_PATHS)
    parent = out_dir.resolve().parent
    if not parent.is_dir():
        raise InputError(out_dir, "output", f"folder {parent} does not exist")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "output", "exists and is not a folder")
    if not os.access(parent, os.W_OK) or (out_dir.exists() and not os.access(out_dir, os.W_OK)):
        raise InputError(out_dir, "output", "folder is not writable")
    if existing == "refuse" and out_dir.is_dir() and any(out_dir.iterdir()):
        raise InputError(out_dir, "output", "folder exists and is not empty; give --overwrite to replace it whole")
    return out_dir


def _check_removal(out_dir: Path, existing: str, protected: Iterable[str]) -> None:
    """An existing ``out_dir`` that the write would remove (``replace``; or an empty one, renamed over) must be
    replaceable (:func:`gliomaforecast.io.write_guard.check_replaceable`; inputs only with ``replace``)."""
    if not out_dir.is_dir():
        return
    if existing == "replace":
        check_replaceable(out_dir, protected)
    elif not any(out_dir.iterdir()):
        check_replaceable(out_dir)


@contextlib.contextmanager
def atomic_output_dir(
    out_dir: str | Path, *, inputs: Iterable[str | Path] = (), existing: str = "merge"
) -> Iterator[Path]:
    """Build an output folder atomically: yields a temporary sibling folder; on success it takes the place of
    ``out_dir`` whole when ``out_dir`` does not exist or is empty; an existing non-empty ``out_dir`` is swapped for
    it in one step with ``existing="replace"`` (Linux; elsewhere two renames, the old folder put back by the next
    write if a kill falls between them), refused with ``existing="refuse"`` (see :func:`check_output_dir`, checked
    again at the end), or gets the new files moved in with ``existing="merge"``. The folder's lock
    (:func:`gliomaforecast.io.write_guard.output_lock`) is held throughout, so a concurrent writer is refused; stale
    temporaries of dead writers beside it are removed first. On any error the temporary folder is removed and
    ``out_dir`` is left as it was; a failed write (full disk, ...) is an InputError. A folder that holds or lies
    inside an input (``inputs``, or read or remembered by :func:`~.write_guard.remember_inputs` in this process)
    is never replaced."""
    out_dir = check_output_dir(out_dir, existing)
    target = Path(os.path.abspath(out_dir))
    protected = set(_READ_PATHS) | {os.path.realpath(p) for p in inputs}
    _check_removal(out_dir, existing, protected)
    with output_lock(target):
        if remove_stale_temporaries(target.parent):
            check_output_dir(out_dir, existing)  # a dead writer's old folder may have been put back
        try:
            tmp = temporary_dir(target)
        except OSError as exc:
            raise write_error(exc, out_dir) from None
        try:
            os.chmod(tmp, 0o777 & ~_umask())
            yield tmp
            for item in tmp.iterdir():
                if os.path.realpath(target / item.name) in protected:
                    raise InputError(out_dir / item.name, "output", "refusing to overwrite an input file")
            _commit_dir(tmp, target, out_dir, existing)
        except InputError as exc:
            inside = str(tmp) + os.sep
            if exc.source and exc.source.startswith(inside):  # name the file in out_dir, not in the temporary
                raise InputError(out_dir / exc.source[len(inside) :], exc.field, exc.message) from None
            raise
        except OSError as exc:
            if is_write_error(exc):
                raise write_error(exc, out_dir) from None
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _commit_dir(tmp: Path, target: Path, out_dir: Path, existing: str) -> None:
    """Put the finished folder ``tmp`` in place of ``target`` (see :func:`atomic_output_dir`)."""
    if not os.path.lexists(target) or (target.is_dir() and not any(target.iterdir())):
        os.replace(tmp, target)  # onto nothing or an empty folder: one rename
    elif existing == "refuse":
        raise InputError(
            out_dir, "output", "folder was filled by another run meanwhile; give --overwrite to replace it whole"
        )
    elif existing == "replace":
        if exchange(tmp, target):
            return  # tmp now holds the old folder, removed by the caller
        old = temporary_dir(target, "old")
        os.replace(target, old / target.name)
        try:
            os.replace(tmp, target)
        except OSError:
            os.replace(old / target.name, target)  # put the old folder back
            raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
    else:
        for item in sorted(tmp.iterdir()):
            os.replace(item, target / item.name)
