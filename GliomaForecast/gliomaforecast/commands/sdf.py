"""Write the tumor-presence probability map (or the signed distance in mm) of a binary GTV mask."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .. import sdf
from ..errors import InputError
from ..io.images import read_mask, write_image
from . import output_path

NAME = "sdf"
HELP = "tumor probability map (or signed distance, mm) from a GTV mask"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mask", required=True, type=Path, help="binary GTV mask (.nii, .nii.gz, .nrrd, .seg.nrrd)")
    p.add_argument("--out", required=True, type=output_path, help="output image (probability in [0, 1])")
    p.add_argument("--beta", type=float, default=sdf.DEFAULT_BETA, help="logistic slope, 1/mm (default 0.1)")
    p.add_argument("--mu", type=float, default=sdf.DEFAULT_MU, help="distance with P = 0.5, mm (default 15)")
    p.add_argument("--distance", action="store_true", help="write the signed distance in mm instead")


def run(args: argparse.Namespace) -> int:
    if not (np.isfinite(args.beta) and args.beta > 0):
        raise InputError("--beta", None, f"must be a positive slope in 1/mm, got {args.beta}")
    if not np.isfinite(args.mu):
        raise InputError("--mu", None, f"must be a finite distance in mm, got {args.mu}")
    mask, grid = read_mask(args.mask, "gtv")
    try:
        phi = sdf.signed_distance(mask, grid.spacing)
    except ValueError as exc:
        raise InputError(args.mask, "gtv", str(exc)) from None
    out = phi if args.distance else sdf.probability_from_signed_distance(phi, args.beta, args.mu)
    write_image(args.out, out, grid, inputs=[args.mask])
    kind = "signed distance (mm)" if args.distance else f"probability (beta {args.beta:g}/mm, mu {args.mu:g} mm)"
    size = f"{mask.sum() * grid.voxel_volume_ml:.2f} " + ("mL" if grid.ndim == 3 else "mm^2 (2D)")
    print(f"wrote {args.out}: {kind}, GTV {size}")
    return 0
