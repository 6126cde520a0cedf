"""Planning-time inputs of the recurrence U-Net (PREDICT-GBM, "Custom U-Net"), shared by the core's forecaster
and the training package so that both see exactly the same channels.

Channels (float32, in this order, on a grid of ``PIXEL_MM`` mm voxels):

- ``tumor``: the planning GTV (the FLAIR abnormality, BraTS labels 1|2|3, or the ``gtv`` mask), 0/1;
- ``core``: necrosis + enhancing (labels 1|3), 0/1; zeros when the scan has no label map;
- ``cavity``: resection cavity (label 4), 0/1; zeros without labels;
- ``wm``, ``gm``, ``csf``: tissue probabilities (0-1); a missing ``csf`` map is the brain mask minus wm and gm
  (clipped at 0; the virtual cohort defines it so), a missing ``wm`` or ``gm`` is an InputError naming it;
- ``t1ce``, ``flair``, ``adc``: z-scores over the brain voxels (mean 0, sd 1, clipped to +-5); a modality the
  scan does not have is a zero channel (training drops image channels at random so the network tolerates it)
  and is listed in the notes.

The recurrence U-Net runs on a fixed cube of ``CROP_VOXELS`` voxels (2 mm: 128 mm) centred on the GTV's centre
of mass, the same size in training and at run time (instance normalisation sees the same field of view).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import EllipsisType
from typing import cast

import numpy as np
from scipy import ndimage

from ...errors import InputError
from ...io.case import Case, Timepoint

CHANNELS: tuple[str, ...] = ("tumor", "core", "cavity", "wm", "gm", "csf", "t1ce", "flair", "adc")
IMAGE_CHANNELS: tuple[str, ...] = ("t1ce", "flair", "adc")
PIXEL_MM = 2.0
CROP_VOXELS: tuple[int, int, int] = (64, 64, 64)
Z_CLIP = 5.0


@dataclass
class PlanningInputs:
    """The channels (C, z, y, x) on the working grid (``PIXEL_MM`` mm), the working-grid brain mask, the
    planning GTV there, the case-grid shape and spacing (mm) they came from, and notes for the user."""

    x: np.ndarray
    brain: np.ndarray
    gtv: np.ndarray
    case_shape: tuple[int, ...]
    case_spacing: tuple[float, ...]
    has_labels: bool
    has_enhancing: bool
    notes: list[str] = field(default_factory=list)


def zoom_factors(spacing: Sequence[float]) -> tuple[float, ...]:
    """Per-axis factors from a grid of ``spacing`` (mm) to ``PIXEL_MM`` mm voxels."""
    return tuple(float(s) / PIXEL_MM for s in spacing)


def to_working_grid(array: np.ndarray, spacing: Sequence[float], order: int) -> np.ndarray:
    """``array`` (case grid, ``spacing`` mm) resampled to ``PIXEL_MM`` mm voxels (identity at 2 mm isotropic);
    ``order`` 0 for masks, 1 for images."""
    factors = zoom_factors(spacing)
    if all(abs(f - 1.0) < 1e-6 for f in factors):
        return np.asarray(array)
    return ndimage.zoom(np.asarray(array, dtype=np.float32), factors, order=order, mode="nearest", grid_mode=True)


def to_case_grid(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A working-grid map (float32) resampled back onto the case grid of ``shape`` (linear)."""
    if tuple(array.shape) == tuple(shape):
        return np.asarray(array, dtype=np.float32)
    factors = [n / m for n, m in zip(shape, array.shape)]
    out = ndimage.zoom(np.asarray(array, dtype=np.float32), factors, order=1, mode="nearest", grid_mode=True)
    return out[tuple(slice(0, n) for n in shape)].astype(np.float32)


def zscore(image: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """``image`` standardised over the brain voxels (mean 0, sd 1), clipped to +-``Z_CLIP``, zero outside."""
    values = image[brain]
    sd = float(values.std()) if values.size else 0.0
    if sd <= 0:
        return np.zeros(image.shape, dtype=np.float32)
    out = np.clip((image - float(values.mean())) / sd, -Z_CLIP, Z_CLIP)
    return np.where(brain, out, 0.0).astype(np.float32)


def tissue_maps(case: Case, brain: np.ndarray | None) -> tuple[dict[str, np.ndarray], list[str]]:
    """wm, gm, csf probabilities (case grid, 0-1) and notes. wm and gm are required (InputError naming the
    missing ``tissue.<name>`` field); csf, when missing, is the brain mask minus wm and gm."""
    maps = {name: case.tissue(name) for name in ("wm", "gm", "csf")}
    missing = [f"tissue.{n}" for n in ("wm", "gm") if maps[n] is None]
    if missing:
        raise InputError(
            case.path,
            missing[0],
            "the recurrence-unet forecaster needs the white- and grey-matter "
            f"probability maps; missing: {', '.join(missing)}",
        )
    wm, gm = cast(np.ndarray, maps["wm"]), cast(np.ndarray, maps["gm"])  # present: checked above
    notes = []
    if maps["csf"] is None:
        if brain is None:
            raise InputError(
                case.path,
                "tissue.csf",
                "the recurrence-unet forecaster needs a csf map, or a brain_mask to derive it (brain - wm - gm)",
            )
        maps["csf"] = np.clip(brain.astype(np.float32) - wm - gm, 0.0, 1.0)
        notes.append("recurrence-unet: csf derived as brain mask - wm - gm (no tissue.csf map)")
    return cast(dict[str, np.ndarray], maps), notes


def planning_inputs(case: Case, tp: Timepoint | None = None) -> PlanningInputs:
    """The U-Net channels of scan ``tp`` (default: the case's last scan, the planning scan of a forecast)."""
    tp = tp if tp is not None else case.timepoints[-1]
    spacing = case.grid.spacing
    gtv = case.gtv(tp)
    brain_case = case.brain_mask()
    labels = case.labels(tp)
    notes: list[str] = []
    tissues, tissue_notes = tissue_maps(case, brain_case)
    notes += tissue_notes
    if brain_case is None:
        brain_case = (tissues["wm"] + tissues["gm"] + tissues["csf"] > 0.05) | gtv
        notes.append("recurrence-unet: no brain mask; brain = tissue probability > 0.05 or GTV")
    if labels is None:
        core = np.zeros(gtv.shape, dtype=bool)
        cavity = core
        notes.append(
            "recurrence-unet: no label map at the planning scan (core and cavity channels zero): can score "
            "the gtv (whole-tumour) recurrence; cannot score enhancing or enhancing+necrosis (no core input)"
        )
    else:
        core, cavity = np.isin(labels, (1, 3)), labels == 4
    has_enhancing = labels is not None and bool(np.any(labels == 3))
    if labels is not None and not has_enhancing:
        notes.append(
            "recurrence-unet: the planning labels have no enhancing class (3): can score the gtv "
            "(whole-tumour) recurrence; cannot score enhancing or enhancing+necrosis (trained on planning "
            "scans with an enhancing core)"
        )
    channels: dict[str, np.ndarray] = {"tumor": gtv, "core": core, "cavity": cavity, **tissues}
    brain = to_working_grid(brain_case, spacing, 0) > 0.5
    out = []
    for name in CHANNELS:
        if name in IMAGE_CHANNELS:
            if name in tp.images:
                image = to_working_grid(case.image(tp, name), spacing, 1).astype(np.float32)
                out.append(zscore(image, brain))
            else:
                out.append(np.zeros(brain.shape, dtype=np.float32))
                if name != "adc":
                    notes.append(f"recurrence-unet: no {name} at the planning scan: zero channel")
            continue
        order = 0 if channels[name].dtype == bool else 1
        out.append(np.asarray(to_working_grid(channels[name].astype(np.float32), spacing, order), dtype=np.float32))
    x = np.stack(out).astype(np.float32)
    x[:, ~brain] = 0.0
    gtv_w = to_working_grid(gtv.astype(np.float32), spacing, 0) > 0.5
    return PlanningInputs(x, brain, gtv_w, tuple(gtv.shape), tuple(spacing), labels is not None, has_enhancing, notes)


def crop_box(center: Sequence[float], shape: Sequence[int], size: Sequence[int] = CROP_VOXELS) -> tuple[slice, ...]:
    """A box of ``size`` voxels centred on ``center`` (voxel index); it may extend beyond ``shape`` (see
    :func:`take_crop`)."""
    starts = [int(round(c)) - s // 2 for c, s in zip(center, size)]
    return tuple(slice(a, a + s) for a, s in zip(starts, size))


def take_crop(array: np.ndarray, box: Sequence[slice]) -> np.ndarray:
    """``array[..., box]`` with zero padding where the box leaves the grid (the last len(box) axes)."""
    lead = array.shape[: array.ndim - len(box)]
    out = np.zeros(lead + tuple(b.stop - b.start for b in box), dtype=array.dtype)
    src, dst = [], []
    for b, n in zip(box, array.shape[-len(box) :]):
        lo, hi = max(b.start, 0), min(b.stop, n)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - b.start, hi - b.start))
    at_dst: tuple[EllipsisType | slice, ...] = (Ellipsis, *dst)
    at_src: tuple[EllipsisType | slice, ...] = (Ellipsis, *src)
    out[at_dst] = array[at_src]
    return out


def paste_crop(crop: np.ndarray, box: Sequence[slice], shape: Sequence[int]) -> np.ndarray:
    """A zero array of ``shape`` holding ``crop`` at ``box`` (the parts inside the grid)."""
    out = np.zeros(tuple(shape), dtype=crop.dtype)
    src, dst = [], []
    for b, n in zip(box, shape):
        lo, hi = max(b.start, 0), min(b.stop, n)
        if hi <= lo:
            return out
        dst.append(slice(lo, hi))
        src.append(slice(lo - b.start, hi - b.start))
    out[tuple(dst)] = crop[tuple(src)]
    return out


def gtv_center(gtv: np.ndarray) -> tuple[float, ...]:
    """Centre of mass of a mask (voxel index)."""
    return tuple(float(c) for c in ndimage.center_of_mass(gtv.astype(np.float32)))
