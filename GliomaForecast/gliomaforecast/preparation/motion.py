"""Known rigid motions, to measure a registration against the truth: draw one (:func:`random_rigid_motion`: a
rotation about a random axis through the grid's centre, degrees, and a translation in a random direction, mm) and
move a session by it (:func:`moved_session`), as a scanner would have seen the head in another position.

Convention (ITK, as :mod:`.registration`): the motion maps a physical point (mm) of the original session to the
point where the moved session shows the same anatomy, so the registration of the moved session onto the original
should find the motion itself.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..geometry import Grid, resample_to


def random_rigid_motion(
    rng: np.random.Generator, grid: Grid, max_degrees: float = 10.0, max_mm: float = 20.0
) -> sitk.Euler3DTransform:
    """A rigid motion: a rotation of up to ``max_degrees`` (degrees, uniform) about a random axis through the
    centre of ``grid`` (3D), then a translation of up to ``max_mm`` (mm, uniform length, random direction)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0.0, max_degrees))
    direction = rng.normal(size=3)
    shift = direction / np.linalg.norm(direction) * rng.uniform(0.0, max_mm)
    versor = sitk.VersorRigid3DTransform()
    versor.SetRotation(tuple(float(a) for a in axis), float(angle))
    motion = sitk.Euler3DTransform()
    motion.SetCenter(tuple(float(c) for c in grid_centre(grid)))
    motion.SetMatrix(versor.GetMatrix())
    motion.SetTranslation(tuple(float(t) for t in shift))
    return motion


def grid_centre(grid: Grid) -> np.ndarray:
    """The physical point (mm, LPS, x-y-z) at the centre of ``grid``."""
    return grid.index_to_physical((np.asarray(grid.shape, dtype=float) - 1.0) / 2.0)


def motion_size(motion: sitk.Transform, grid: Grid) -> tuple[float, float]:
    """The rotation angle (degrees) of a rigid ``motion`` and the shift (mm) it gives the centre of ``grid``."""
    matrix = motion_matrix(motion)
    cos = np.clip((np.trace(matrix) - 1.0) / 2.0, -1.0, 1.0)
    centre = grid_centre(grid)
    shift = np.asarray(motion.TransformPoint(tuple(float(c) for c in centre))) - centre
    return float(np.degrees(np.arccos(cos))), float(np.linalg.norm(shift))


def motion_matrix(motion: sitk.Transform) -> np.ndarray:
    """The 3 x 3 linear part of ``motion`` (its images of the unit vectors, mm, minus its image of the origin):
    the matrix of a linear (rigid or affine) transform."""
    origin = np.asarray(motion.TransformPoint((0.0, 0.0, 0.0)))
    return np.stack([np.asarray(motion.TransformPoint(tuple(e))) - origin for e in np.eye(3)], axis=1)


def moved_session(
    array: np.ndarray, grid: Grid, motion: sitk.Transform, pad_voxels: int = 8, label: bool = False
) -> tuple[np.ndarray, Grid]:
    """``array`` (on ``grid``) as seen after ``motion``: resampled through the motion's inverse (linear, or
    nearest neighbour for ``label``) onto a grid of the same spacing and axes, ``pad_voxels`` larger on each
    side and centred on the moved centre of ``grid``. Returns the moved array and its grid."""
    shape = tuple(s + 2 * int(pad_voxels) for s in grid.shape)
    centre = np.asarray(motion.TransformPoint(tuple(float(c) for c in grid_centre(grid))))
    half = (np.asarray(shape[::-1], dtype=float) - 1.0) / 2.0 * np.asarray(grid.spacing[::-1])
    moved_grid = Grid(shape, grid.spacing, tuple(centre - grid.direction_matrix @ half), grid.direction)
    moved = resample_to(array, grid, moved_grid, label=label, transform=motion.GetInverse())
    return moved, moved_grid
