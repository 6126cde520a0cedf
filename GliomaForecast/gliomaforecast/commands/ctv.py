"""Draw the clinical target volumes of a GTV: the standard margin CTV (Euclidean in mm, or geodesic
around a barrier mask) and, with a score map, the iso-volumetric forecast CTV of the same volume.

Writes ctv_standard.nii.gz, ctv_forecast.nii.gz (with --score) and targets.seg.nrrd (segments "GTV",
"CTV standard", "CTV forecast") into --out, atomically, and prints the volumes in mL. Every input must
share the GTV's grid. Both CTVs start from the GTV plus the resection cavity (--cavity) with holes filled and have
no interior holes (the rule of gliomaforecast.target_volumes); the forecast CTV's candidates are the brain-mask
voxels that are not barrier.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from .. import ctv
from ..errors import InputError
from ..geometry import require_same_grid
from ..io import (atomic_output_dir, existing_mode, read_image, read_labels, read_mask, write_image,
                  write_segmentation)
from ..case import BRATS_LABELS
from ..target_volumes import CAVITY_LABEL, build_targets
from . import add_overwrite_argument

NAME = "ctv"
HELP = "standard (margin) and forecast (iso-volumetric) CTVs from a GTV and a score map"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gtv", required=True, type=Path, help="binary GTV mask (.nii, .nii.gz, .nrrd, .seg.nrrd)")
    p.add_argument("--score", type=Path, help="score map (e.g. forecast probability); higher = treat first")
    p.add_argument("--brain-mask", type=Path, help="binary brain mask: the targets stay inside it")
    p.add_argument("--cavity", type=Path, help="resection cavity: a binary mask, or a BraTS label map (label 4); "
                                               "the CTVs start from GTV + cavity")
    p.add_argument("--barrier", type=Path, help="binary barrier mask (ventricles, falx, ...): geodesic margin")
    p.add_argument("--margin-mm", type=float, default=ctv.DEFAULT_MARGIN_MM, help="CTV margin, mm (default 15)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    add_overwrite_argument(p)


def run(args: argparse.Namespace) -> int:
    if not (math.isfinite(args.margin_mm) and args.margin_mm >= 0):
        raise InputError("--margin-mm", None, f"must be a finite distance >= 0 mm, got {args.margin_mm}")
    gtv, grid = read_mask(args.gtv, "gtv")
    if grid.ndim != 3:
        raise InputError(args.gtv, "gtv", f"targets are drawn on 3D volumes, got a {grid.ndim}D image")
    if not gtv.any():
        raise InputError(args.gtv, "gtv", "mask is empty: there is no tumor to draw a target around")
    inputs = [args.gtv]
    brain = barrier = score = None
    if args.brain_mask is not None:
        brain, brain_grid = read_mask(args.brain_mask, "brain_mask")
        require_same_grid(brain_grid, grid, str(args.brain_mask), str(args.gtv))
        if not np.any(gtv & brain):
            raise InputError(args.brain_mask, "brain_mask", f"does not overlap the GTV of {args.gtv}")
        inputs.append(args.brain_mask)
    if args.barrier is not None:
        barrier, barrier_grid = read_mask(args.barrier, "barrier")
        require_same_grid(barrier_grid, grid, str(args.barrier), str(args.gtv))
        inputs.append(args.barrier)
    cavity = None
    if args.cavity is not None:
        labels, cavity_grid = read_labels(args.cavity, "cavity", allowed=BRATS_LABELS)
        require_same_grid(cavity_grid, grid, str(args.cavity), str(args.gtv))
        values = set(np.unique(labels).tolist())
        cavity = labels > 0 if values <= {0, 1} else labels == CAVITY_LABEL
        inputs.append(args.cavity)
    if args.score is not None:
        score, score_grid = read_image(args.score, "score")
        require_same_grid(score_grid, grid, str(args.score), str(args.gtv))
        inputs.append(args.score)

    try:
        targets = build_targets(gtv, grid.spacing, args.margin_mm, score=score, cavity=cavity, brain_mask=brain,
                                barrier=barrier)
    except ValueError as exc:
        raise InputError(args.score, "score", str(exc)) from None
    standard = targets.standard
    segments = {"GTV": gtv, "CTV standard": standard}
    forecast = None
    if score is not None:
        forecast = targets.forecast
        segments["CTV forecast"] = forecast

    with atomic_output_dir(args.out, inputs=inputs, existing=existing_mode(args.overwrite)) as tmp:
        write_image(tmp / "ctv_standard.nii.gz", standard, grid, inputs=inputs)
        if forecast is not None:
            write_image(tmp / "ctv_forecast.nii.gz", forecast, grid, inputs=inputs)
        write_segmentation(tmp / "targets.seg.nrrd", segments, grid, inputs=inputs)

    kind = "geodesic" if barrier is not None else "Euclidean"
    print(f"wrote {args.out}")
    print(f"GTV           {gtv.sum() * grid.voxel_volume_ml:9.2f} mL")
    print(f"CTV standard  {standard.sum() * grid.voxel_volume_ml:9.2f} mL ({kind} margin {args.margin_mm:g} mm)")
    if forecast is not None:
        print(f"CTV forecast  {forecast.sum() * grid.voxel_volume_ml:9.2f} mL (iso-volumetric top-k of {args.score.name})")
    return 0
