"""Draw the clinical target volumes of a GTV: the standard margin CTV (Euclidean in mm, or geodesic
around a barrier mask) and, with a score map, the iso-volumetric forecast CTV of the same volume.

Writes ctv_standard.nii.gz, ctv_forecast.nii.gz (with --score), targets.seg.nrrd (segments "GTV",
"CTV standard", "CTV forecast") and targets.json (the standard plan's convention, seed, margin and volumes) into
--out, atomically, and prints the volumes in mL. Every input must share the GTV's grid. Both CTVs start from the seed
of the planning convention (--plan, gliomaforecast.targets.standard_plan: the tumour core of --labels + cavity for
estro-eano, the whole GTV + cavity for flair) with holes filled and have no interior holes (the rule of
gliomaforecast.targets.volumes); the forecast CTV's candidates are the brain-mask voxels that are not barrier.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..geometry import require_same_grid
from ..io.case import BRATS_LABELS, DEFAULT_GTV_LABELS
from ..io.images import (
    atomic_output_dir,
    existing_mode,
    read_image,
    read_labels,
    read_mask,
    write_image,
    write_segmentation,
)
from ..targets import ctv
from ..targets.standard_plan import CAVITY_LABEL, PlanError, plan_record, plan_seed
from ..targets.volumes import build_targets
from . import add_overwrite_argument, add_plan_argument

NAME = "ctv"
TARGETS_SCHEMA = "gliomaforecast.targets/1"
HELP = "standard (margin) and forecast (iso-volumetric) CTVs from a GTV and a score map"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gtv",
        type=Path,
        help="binary GTV mask (.nii, .nii.gz, .nrrd, .seg.nrrd); default with --labels: its labels 1, 2, 3",
    )
    p.add_argument(
        "--labels",
        type=Path,
        help="BraTS label map of the planning scan (1 necrosis, 2 edema, 3 enhancing, "
        "4 cavity): the estro-eano plan grows its core (1, 3) + cavity (4)",
    )
    p.add_argument("--score", type=Path, help="score map (e.g. forecast probability); higher = treat first")
    p.add_argument("--brain-mask", type=Path, help="binary brain mask: the targets stay inside it")
    p.add_argument(
        "--cavity",
        type=Path,
        help="resection cavity: a binary mask, or a BraTS label map (label 4); the CTVs start from GTV + cavity",
    )
    p.add_argument("--barrier", type=Path, help="binary barrier mask (ventricles, falx, ...): geodesic margin")
    p.add_argument("--margin-mm", type=float, default=ctv.DEFAULT_MARGIN_MM, help="CTV margin, mm (default 15)")
    add_plan_argument(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    add_overwrite_argument(p)


def run(args: argparse.Namespace) -> int:
    if not (math.isfinite(args.margin_mm) and args.margin_mm >= 0):
        raise InputError("--margin-mm", None, f"must be a finite distance >= 0 mm, got {args.margin_mm}")
    labels = grid = None
    if args.labels is not None:
        labels, grid = read_labels(args.labels, "labels", allowed=BRATS_LABELS)
    if args.gtv is not None:
        gtv, gtv_grid = read_mask(args.gtv, "gtv")
        if grid is not None:
            require_same_grid(grid, gtv_grid, str(args.labels), str(args.gtv))
        grid = gtv_grid
    elif labels is not None:
        gtv = np.isin(labels, DEFAULT_GTV_LABELS)
    else:
        raise InputError("--gtv", None, "a GTV mask (--gtv) or a BraTS label map (--labels) is required")
    source = args.gtv if args.gtv is not None else args.labels
    if grid.ndim != 3:
        raise InputError(source, "gtv", f"targets are drawn on 3D volumes, got a {grid.ndim}D image")
    if not gtv.any():
        raise InputError(source, "gtv", "mask is empty: there is no tumor to draw a target around")
    inputs = [p for p in (args.gtv, args.labels) if p is not None]
    brain = barrier = score = None
    if args.brain_mask is not None:
        brain, brain_grid = read_mask(args.brain_mask, "brain_mask")
        require_same_grid(brain_grid, grid, str(args.brain_mask), str(source))
        if not np.any(gtv & brain):
            raise InputError(args.brain_mask, "brain_mask", f"does not overlap the GTV of {source}")
        inputs.append(args.brain_mask)
    if args.barrier is not None:
        barrier, barrier_grid = read_mask(args.barrier, "barrier")
        require_same_grid(barrier_grid, grid, str(args.barrier), str(source))
        inputs.append(args.barrier)
    cavity = None
    if args.cavity is not None:
        cavity_map, cavity_grid = read_labels(args.cavity, "cavity", allowed=BRATS_LABELS)
        require_same_grid(cavity_grid, grid, str(args.cavity), str(source))
        if set(np.unique(cavity_map).tolist()) <= {0, 1}:
            cavity = cavity_map > 0
        elif labels is None:  # a BraTS label map given as --cavity: it is the planning scan's labels
            labels = cavity_map
        else:
            cavity = cavity_map == CAVITY_LABEL
        inputs.append(args.cavity)
    if args.score is not None:
        score, score_grid = read_image(args.score, "score")
        require_same_grid(score_grid, grid, str(args.score), str(source))
        inputs.append(args.score)

    try:
        plan = plan_seed(gtv, labels, args.plan)
    except PlanError as exc:
        raise InputError(args.labels or "--labels", "labels", str(exc)) from None
    if plan.cavity is not None:
        cavity = plan.cavity if cavity is None else cavity | plan.cavity
    try:
        targets = build_targets(
            plan.tumour, grid.spacing, args.margin_mm, score=score, cavity=cavity, brain_mask=brain, barrier=barrier
        )
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
        ml = grid.voxel_volume_ml
        record = {
            "schema": TARGETS_SCHEMA,
            "standard_plan": plan_record(plan.convention, args.margin_mm, float(standard.sum() * ml)),
            "warnings": [] if plan.warning is None else [plan.warning],
            "volumes_ml": {name: float(mask.sum() * ml) for name, mask in segments.items()},
        }
        (tmp / "targets.json").write_text(json.dumps(record, indent=2) + "\n")

    kind = "geodesic" if barrier is not None else "Euclidean"
    if plan.warning is not None:
        print(f"WARNING: {plan.warning}", file=sys.stderr)
    print(f"wrote {args.out}")
    print(f"GTV           {gtv.sum() * grid.voxel_volume_ml:9.2f} mL")
    print(
        f"CTV standard  {standard.sum() * grid.voxel_volume_ml:9.2f} mL ({plan.convention}: {plan.seed_name} + "
        f"{kind} margin {args.margin_mm:g} mm)"
    )
    if forecast is not None:
        print(
            f"CTV forecast  {forecast.sum() * grid.voxel_volume_ml:9.2f} mL (iso-volumetric top-k of {args.score.name})"
        )
    return 0
