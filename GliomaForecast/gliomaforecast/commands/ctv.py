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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..geometry import Grid, require_same_grid
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
from ..targets.standard_plan import CAVITY_LABEL, PlanError, PlanSeed, plan_record, plan_seed
from ..targets.volumes import Targets, build_targets
from . import add_overwrite_argument, add_plan_argument, output_path

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
    p.add_argument("--out", required=True, type=output_path, help="output folder")
    add_overwrite_argument(p)


@dataclass(frozen=True)
class _Inputs:
    """The checked inputs of the command, all on ``grid``: the GTV (bool, read from ``source``), the planning scan's
    BraTS labels, the brain mask, the barrier, the resection cavity (bool) and the score map (each None when not
    given), and every input file (``files``)."""

    grid: Grid
    source: Path
    gtv: np.ndarray
    labels: np.ndarray | None
    brain: np.ndarray | None
    barrier: np.ndarray | None
    cavity: np.ndarray | None
    score: np.ndarray | None
    files: list[Path]


def _read_gtv(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None, Grid, Path]:
    """The GTV (``--gtv``, else labels 1, 2, 3 of ``--labels``), the labels, their grid and the GTV's file; the GTV
    must be a non-empty 3D mask."""
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
    assert grid is not None  # read with the GTV or the labels
    source = args.gtv if args.gtv is not None else args.labels
    if grid.ndim != 3:
        raise InputError(source, "gtv", f"targets are drawn on 3D volumes, got a {grid.ndim}D image")
    if not gtv.any():
        raise InputError(source, "gtv", "mask is empty: there is no tumor to draw a target around")
    return gtv, labels, grid, source


def _read_on_grid(read: Callable, path: Path, name: str, grid: Grid, source: Path) -> np.ndarray:
    """The volume ``path`` read by ``read`` (field ``name``), which must lie on the GTV's ``grid``."""
    array, array_grid = read(path, name)
    require_same_grid(array_grid, grid, str(path), str(source))
    return array


def _read_cavity(
    path: Path, labels: np.ndarray | None, grid: Grid, source: Path
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The cavity mask and the planning labels from ``--cavity``: a binary mask is the cavity; a BraTS label map is
    the planning scan's labels when ``--labels`` is not given (its label 4 then serves as cavity through the plan),
    else its label 4 is the cavity."""
    cavity_map, cavity_grid = read_labels(path, "cavity", allowed=BRATS_LABELS)
    require_same_grid(cavity_grid, grid, str(path), str(source))
    if set(np.unique(cavity_map).tolist()) <= {0, 1}:
        return cavity_map > 0, labels
    if labels is None:  # a BraTS label map given as --cavity: it is the planning scan's labels
        return None, cavity_map
    return cavity_map == CAVITY_LABEL, labels


def _read_inputs(args: argparse.Namespace) -> _Inputs:
    """Every input volume of the command, read and checked against the GTV's grid (the brain mask must overlap the
    GTV)."""
    gtv, labels, grid, source = _read_gtv(args)
    brain = barrier = cavity = score = None
    if args.brain_mask is not None:
        brain = _read_on_grid(read_mask, args.brain_mask, "brain_mask", grid, source)
        if not np.any(gtv & brain):
            raise InputError(args.brain_mask, "brain_mask", f"does not overlap the GTV of {source}")
    if args.barrier is not None:
        barrier = _read_on_grid(read_mask, args.barrier, "barrier", grid, source)
    if args.cavity is not None:
        cavity, labels = _read_cavity(args.cavity, labels, grid, source)
    if args.score is not None:
        score = _read_on_grid(read_image, args.score, "score", grid, source)
    given = (args.gtv, args.labels, args.brain_mask, args.barrier, args.cavity, args.score)
    return _Inputs(grid, source, gtv, labels, brain, barrier, cavity, score, [p for p in given if p is not None])


def _plan_targets(args: argparse.Namespace, inputs: _Inputs) -> tuple[PlanSeed, Targets]:
    """The standard plan's seed (``--plan``) and both CTVs grown from it (``--margin-mm``, mm)."""
    try:
        plan = plan_seed(inputs.gtv, inputs.labels, args.plan)
    except PlanError as exc:
        raise InputError(args.labels or "--labels", "labels", str(exc)) from None
    cavity = inputs.cavity
    if plan.cavity is not None:
        cavity = plan.cavity if cavity is None else cavity | plan.cavity
    try:
        targets = build_targets(
            plan.tumour,
            inputs.grid.spacing,
            args.margin_mm,
            score=inputs.score,
            cavity=cavity,
            brain_mask=inputs.brain,
            barrier=inputs.barrier,
        )
    except ValueError as exc:
        raise InputError(args.score, "score", str(exc)) from None
    return plan, targets


def _write_outputs(args: argparse.Namespace, inputs: _Inputs, plan: PlanSeed, segments: dict[str, np.ndarray]) -> None:
    """ctv_standard.nii.gz, ctv_forecast.nii.gz (with a score), targets.seg.nrrd and targets.json (volumes in mL),
    written into ``--out`` atomically."""
    grid, files = inputs.grid, inputs.files
    with atomic_output_dir(args.out, inputs=files, existing=existing_mode(args.overwrite)) as tmp:
        write_image(tmp / "ctv_standard.nii.gz", segments["CTV standard"], grid, inputs=files)
        if "CTV forecast" in segments:
            write_image(tmp / "ctv_forecast.nii.gz", segments["CTV forecast"], grid, inputs=files)
        write_segmentation(tmp / "targets.seg.nrrd", segments, grid, inputs=files)
        ml = grid.voxel_volume_ml
        record = {
            "schema": TARGETS_SCHEMA,
            "standard_plan": plan_record(plan.convention, args.margin_mm, float(segments["CTV standard"].sum() * ml)),
            "warnings": [] if plan.warning is None else [plan.warning],
            "volumes_ml": {name: float(mask.sum() * ml) for name, mask in segments.items()},
        }
        (tmp / "targets.json").write_text(json.dumps(record, indent=2) + "\n")


def _print_volumes(args: argparse.Namespace, inputs: _Inputs, plan: PlanSeed, segments: dict[str, np.ndarray]) -> None:
    """The plan's warning on stderr, then what was written and the volumes (mL)."""
    ml = inputs.grid.voxel_volume_ml
    kind = "geodesic" if inputs.barrier is not None else "Euclidean"
    if plan.warning is not None:
        print(f"WARNING: {plan.warning}", file=sys.stderr)
    print(f"wrote {args.out}")
    print(f"GTV           {segments['GTV'].sum() * ml:9.2f} mL")
    print(
        f"CTV standard  {segments['CTV standard'].sum() * ml:9.2f} mL ({plan.convention}: {plan.seed_name} + "
        f"{kind} margin {args.margin_mm:g} mm)"
    )
    if "CTV forecast" in segments:
        print(
            f"CTV forecast  {segments['CTV forecast'].sum() * ml:9.2f} mL (iso-volumetric top-k of {args.score.name})"
        )


def run(args: argparse.Namespace) -> int:
    if not (math.isfinite(args.margin_mm) and args.margin_mm >= 0):
        raise InputError("--margin-mm", None, f"must be a finite distance >= 0 mm, got {args.margin_mm}")
    inputs = _read_inputs(args)
    plan, targets = _plan_targets(args, inputs)
    segments = {"GTV": inputs.gtv, "CTV standard": targets.standard}
    if inputs.score is not None:
        segments["CTV forecast"] = targets.forecast
    _write_outputs(args, inputs, plan, segments)
    _print_volumes(args, inputs, plan, segments)
    return 0
