"""Known rigid motions, to measure a registration against the truth: draw one (:func:`random_rigid_motion`: a
rotation about a random axis through the grid's centre, degrees, and a translation in a random direction, mm) and
move a session by it (:func:`moved_session`), as a scanner would have seen the head in another position, or a
whole case (:func:`write_moved_case`: the later sessions moved, without brain mask and tissue maps).

Convention (ITK, as :mod:`.registration`): the motion maps a physical point (mm) of the original session to the
point where the moved session shows the same anatomy, so the registration of the moved session onto the original
should find the motion itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import numpy as np
import SimpleITK as sitk

from ..geometry import Grid, resample_to
from ..io.case import Case, read_manifest
from ..io.images import write_image, write_text_atomic


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


def write_moved_case(
    case: Case, folder: str | Path, rng: np.random.Generator, *, keep_anatomy: bool = False
) -> dict[int, sitk.Euler3DTransform]:
    """Write ``case`` into the existing ``folder`` as a clinic would send it: every later session moved by its own
    :func:`random_rigid_motion` (images linearly, GTVs and labels by nearest neighbour; intensities scaled by a gain
    0.3..3 and an offset -100..300 drawn per session) on its own grid, the planning session and the dose as they are,
    and (unless ``keep_anatomy``) no brain mask and no tissue maps. Writes case.json; returns the motions by
    timepoint index (ITK convention: original point -> moved point, mm)."""
    folder = Path(folder)
    raw = read_manifest(case.path)
    motions: dict[int, sitk.Euler3DTransform] = {}
    timepoints = []
    for tp, tp_raw in zip(case.timepoints, raw["timepoints"]):
        entry = {k: tp_raw[k] for k in ("day", "date") if k in tp_raw}
        motion = None if tp.index == 0 else random_rigid_motion(rng, case.grid)
        gain, offset = (1.0, 0.0) if motion is None else (float(rng.uniform(0.3, 3.0)), float(rng.uniform(-100, 300)))
        volumes = {**{m: case.image(tp, m) for m in tp.images}, "gtv": case.gtv(tp), "labels": case.labels(tp)}
        for key, array in volumes.items():
            if array is None:
                continue
            label = key in ("gtv", "labels")
            moved, grid = (array, case.grid) if motion is None else moved_session(array, case.grid, motion, label=label)
            name = f"t{tp.index:02d}_{key}.nii.gz"
            write_image(folder / name, moved if label else moved * gain + offset, grid)
            if label:
                entry[key] = name
            else:
                entry.setdefault("images", {})[key] = name
        if motion is not None:
            motions[tp.index] = motion
        timepoints.append(entry)
    out = {k: raw[k] for k in ("schema", "patient_id", "rt_start_day", "rt_start_date", "gtv_labels") if k in raw}
    out["timepoints"] = timepoints
    dose = case.dose()
    if dose is not None:
        out["dose"] = "dose.nii.gz"
        write_image(folder / "dose.nii.gz", dose, case.grid)
    if keep_anatomy:
        brain = case.brain_mask()
        if brain is not None:
            out["brain_mask"] = "brain_mask.nii.gz"
            write_image(folder / "brain_mask.nii.gz", brain, case.grid)
        for k in case.tissue_paths:
            out.setdefault("tissue", {})[k] = f"{k}.nii.gz"
            write_image(folder / f"{k}.nii.gz", cast(np.ndarray, case.tissue(k)), case.grid)  # listed: given
    write_text_atomic(folder / "case.json", json.dumps(out, indent=1) + "\n")
    return motions
