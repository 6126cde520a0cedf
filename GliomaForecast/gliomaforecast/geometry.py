"""Image grids in physical space (mm) and resampling onto a reference grid.

Conventions
-----------
* Arrays are numpy in (z, y, x) order (SimpleITK's ``GetArrayFromImage``, Slicer's ``arrayFromVolume``).
* ``Grid.shape`` and ``Grid.spacing`` follow the array order: (z, y, x), spacing in mm.
* ``Grid.origin`` is the physical position (mm, LPS, ITK order x, y, z) of the centre of voxel (0, 0, 0).
* ``Grid.direction`` is ITK's direction matrix (row-major, d x d): column ``i`` is the unit physical
  direction of ITK index axis ``i`` (i = x, j = y, k = z).

The same conventions hold for 2D grids (shape (y, x)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .errors import InputError


@dataclass(frozen=True)
class Grid:
    """A voxel grid: ``shape`` and ``spacing`` (mm) in array order, ``origin`` (mm) and ``direction`` in ITK order."""

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    def __post_init__(self) -> None:
        d = len(self.shape)
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(s) for s in self.origin))
        object.__setattr__(self, "direction", tuple(float(s) for s in np.asarray(self.direction).ravel()))
        if d not in (2, 3):
            raise ValueError(f"grid must be 2D or 3D, got {d} dimensions")
        if len(self.spacing) != d or len(self.origin) != d or len(self.direction) != d * d:
            raise ValueError("grid shape, spacing, origin and direction disagree in dimension")
        if any(s <= 0 or not np.isfinite(s) for s in self.spacing):
            raise ValueError(f"grid spacing must be positive and finite, got {self.spacing} mm")

    @property
    def ndim(self) -> int:
        """2 or 3."""
        return len(self.shape)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL (1 mL = 1000 mm^3); for a 2D grid, the area in mm^2."""
        v = float(np.prod(self.spacing))
        return v / 1000.0 if self.ndim == 3 else v

    @property
    def direction_matrix(self) -> np.ndarray:
        """The direction as a d x d matrix; column i is the unit physical direction of ITK index axis i."""
        return np.asarray(self.direction, dtype=float).reshape(self.ndim, self.ndim)

    @classmethod
    def identity(cls, shape: Sequence[int], spacing: Sequence[float] | None = None) -> Grid:
        """An axis-aligned grid at the origin; ``spacing`` (mm, array order) defaults to 1."""
        d = len(shape)
        spacing = tuple(spacing) if spacing is not None else (1.0,) * d
        return cls(tuple(shape), spacing, (0.0,) * d, tuple(np.eye(d).ravel()))

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Set this grid's spacing, origin and direction on a SimpleITK image of the same size."""
        if tuple(reversed(image.GetSize())) != self.shape:
            raise ValueError(f"image size {image.GetSize()} does not match grid shape {self.shape}")
        image.SetSpacing(tuple(reversed(self.spacing)))
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def index_to_physical(self, index_zyx: np.ndarray) -> np.ndarray:
        """Physical LPS points (mm, x-y-z order) of array indices given as (..., d) in (z, y, x) order."""
        idx = np.asarray(index_zyx, dtype=float)[..., ::-1]
        scaled = idx * np.asarray(self.spacing[::-1])
        return scaled @ self.direction_matrix.T + np.asarray(self.origin)

    def same_as(self, other: Grid, rtol: float = 1e-6, atol: float = 1e-4) -> bool:
        """True when both grids sample the same voxels: same shape, and spacing, origin (mm) and
        direction equal within the tolerances (float32 header precision of NIfTI is accepted)."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, rtol=rtol, atol=atol)
            and np.allclose(self.origin, other.origin, rtol=rtol, atol=atol)
            and np.allclose(self.direction, other.direction, rtol=rtol, atol=atol)
        )

    def describe(self) -> str:
        """One line for error messages: shape, spacing (mm) and origin (mm)."""
        sp = "x".join(f"{s:g}" for s in self.spacing)
        return f"shape {self.shape}, spacing {sp} mm, origin {tuple(round(o, 3) for o in self.origin)}"


def _direction_text(grid: Grid) -> str:
    return " ".join(f"{v:.4g}" for v in grid.direction)


def require_same_grid(a: Grid, b: Grid, name_a: str, name_b: str) -> None:
    """Raise an :class:`InputError` naming both sources when two grids differ."""
    if not a.same_as(b):
        detail = f"{a.describe()} vs {b.describe()}"
        if not np.allclose(a.direction, b.direction, rtol=1e-6, atol=1e-4):
            detail += f"; direction [{_direction_text(a)}] vs [{_direction_text(b)}]"
        raise InputError(name_a, "grid", f"differs from {name_b} ({detail})")


def to_sitk(array: np.ndarray, grid: Grid) -> sitk.Image:
    """A SimpleITK image of ``array`` (z, y, x order) carrying ``grid``."""
    arr = np.asarray(array)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if tuple(arr.shape[: grid.ndim]) != grid.shape:
        raise ValueError(f"array shape {arr.shape} does not match grid shape {grid.shape}")
    is_vector = arr.ndim == grid.ndim + 1
    image = sitk.GetImageFromArray(arr, isVector=is_vector)
    return grid.apply_to(image)


def resample_to(
    array: np.ndarray,
    grid: Grid,
    reference: Grid,
    *,
    label: bool = False,
    default_value: float = 0.0,
    transform: sitk.Transform | None = None,
) -> np.ndarray:
    """Resample ``array`` on ``grid`` onto ``reference``: linear for images, nearest neighbour for
    labels (``label=True``). Points outside the source take ``default_value``. Returns an array
    of ``reference.shape`` with the input dtype for labels and float32 for images. ``transform`` (ITK
    convention: it maps a physical point of ``reference`` to the point of ``grid`` sampled there, mm) defaults
    to the identity."""
    src = to_sitk(np.asarray(array) if label else np.asarray(array, dtype=np.float32), grid)
    ref = to_sitk(np.zeros(reference.shape, dtype=np.uint8), reference)
    interp = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    tx = sitk.Transform() if transform is None else transform
    out = sitk.Resample(src, ref, tx, interp, float(default_value), src.GetPixelID())
    result = sitk.GetArrayFromImage(out)
    return result.astype(np.asarray(array).dtype) if label else result.astype(np.float32)
