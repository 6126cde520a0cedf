"""Draw the clinical target volumes of a GTV: the standard margin CTV (Euclidean in mm, or geodesic
around a barrier mask) and, with a score map, the iso-volumetric forecast CTV of the same volume.

Writes ctv_standard.nii.gz, ctv_forecast.nii.gz (with --score) and targets.seg.nrrd (segments "GTV",
"CTV standard", "CTV forecast") into --out, atomically, and prints the volumes in mL. Every input must
share the GTV's grid. The forecast CTV's candidates are the brain-mask voxels that are not barrier.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from .. import ctv
from ..errors import InputError
from ..geometry import require_same_grid
from ..io import atomic_output_dir, read_image, read_mask, write_image, write_segmentation

NAME = "ctv"
HELP = "standard (margin) and forecast (iso-volumetric) CTVs from a GTV and a score map"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gtv", required=True, type=Path, help="binary GTV mask (.nii, .nii.gz, .nrrd, .seg.nrrd)")
    p.add_argument("--score", type=Path, help="score map (e.g. forecast probability); higher = treat first")
    p.add_argument("--brain-mask", type=Path, help="binary brain mask: the targets stay inside it")
    p.add_argument("--barrier", type=Path, help="binary barrier mask (ventricles, falx, ...): geodesic margin")
    p.add_argument("--margin-mm", type=float, default=ctv.DEFAULT_MARGIN_MM, help="CTV margin, mm (default 15)")
    p.add_argument("--out", required=True, type=Path, help="output folder")


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
    if args.score is not None:
        score, score_grid = read_image(args.score, "score")
        require_same_grid(score_grid, grid, str(args.score), str(args.gtv))
        inputs.append(args.score)

    standard = ctv.standard_ctv(gtv, grid.spacing, args.margin_mm, brain_mask=brain, barrier=barrier)
    segments = {"GTV": gtv, "CTV standard": standard}
    forecast = None
    if score is not None:
        candidates = brain
        if barrier is not None:  # barrier voxels are never candidates unless they are GTV (as in standard_ctv)
            candidates = (~barrier if brain is None else brain & ~barrier) | gtv
        try:
            forecast = ctv.isovolumetric_ctv(score, int(standard.sum()), grid.spacing, gtv=gtv,
                                             brain_mask=candidates)
        except ValueError as exc:
            raise InputError(args.score, "score", str(exc)) from None
        segments["CTV forecast"] = forecast

    with atomic_output_dir(args.out, inputs=inputs) as tmp:
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
