"""Held-out evaluation of the exported evolution model through the runtime (``gliomaforecast.deformation``).

For each pair of consecutive GTVs (t_i, t_i+1) of a patient:
* Dice of the warped GTV ({phi_i o v <= 0}) with GTV i+1, against the unwarped baseline Dice(GTV i, GTV i+1);
* mean |phi_i+1 - phi_i o v| in mm (and the unwarped |phi_i+1 - phi_i|) over the tumor slices, within the
  tumor and a 20 mm band around either GTV (min(phi_i, phi_i+1) <= 20 mm);
* the fraction of folding voxels (Jacobian determinant of p -> p + v(p) <= 0) over all tumor slices;
* the runtime of ``evolution_field`` for the whole case (s).
Figures are means over pairs (Dice also as median).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from gliomaforecast.deformation import evolution_field, jacobian_determinant, tumor_slices, warp
from gliomaforecast.io.case import load_case
from gliomaforecast.models import OnnxModel

from .data import PIXEL_MM, case_phis, synthetic_pairs

BAND_MM = 20.0


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.logical_and(a, b).sum()) / total if total else 1.0


def pair_metrics(phi1: np.ndarray, phi2: np.ndarray, gap: float, spacing: Sequence[float],
                 model: OnnxModel) -> dict:
    """Metrics of one pair of 3D signed distances (mm) on a grid with ``spacing`` (mm)."""
    start = time.perf_counter()
    field = evolution_field(phi1, phi2, gap, spacing, model)
    seconds = time.perf_counter() - start
    warped = warp(phi1, field, spacing)
    idx = tumor_slices(phi1, phi2)
    band = np.minimum(phi1, phi2)[idx] <= BAND_MM
    det = jacobian_determinant(field[idx], spacing)
    return {
        "gap_days": float(gap),
        "dice_warped": _dice(warped <= 0, phi2 <= 0), "dice_unwarped": _dice(phi1 <= 0, phi2 <= 0),
        "abs_phi_mm_warped": float(np.abs(phi2 - warped)[idx][band].mean()),
        "abs_phi_mm_unwarped": float(np.abs(phi2 - phi1)[idx][band].mean()),
        "folding_fraction": float((det <= 0).mean()),
        "seconds": seconds,
    }


def summarize(rows: list[dict], **extra) -> dict:
    """Means (and Dice medians) of per-pair metrics."""
    keys = ["dice_warped", "dice_unwarped", "abs_phi_mm_warped", "abs_phi_mm_unwarped", "folding_fraction"]
    out = {"pairs": len(rows), **extra}
    for k in keys:
        out[f"{k}_mean"] = round(float(np.mean([r[k] for r in rows])), 5)
    out["dice_warped_median"] = round(float(np.median([r["dice_warped"] for r in rows])), 4)
    out["dice_unwarped_median"] = round(float(np.median([r["dice_unwarped"] for r in rows])), 4)
    out["folding_fraction_max"] = round(float(np.max([r["folding_fraction"] for r in rows])), 6)
    return out


def evaluate_cases(case_dirs: Sequence[str | Path], model: OnnxModel) -> dict:
    """Consecutive-pair metrics over held-out patient folders (each with a case.json)."""
    rows, seconds = [], []
    for folder in case_dirs:
        case = load_case(Path(folder) / "case.json")
        phis, days = case_phis(case), list(case.days)
        for i in range(len(phis) - 1):
            row = pair_metrics(phis[i], phis[i + 1], days[i + 1] - days[i], case.grid.spacing, model)
            rows.append(row)
            seconds.append(row["seconds"])
    return summarize(rows, data="held-out virtual cohort patients",
                     patients=[Path(c).name for c in case_dirs],
                     field_seconds_per_pair_mean=round(float(np.mean(seconds)), 3))


def evaluate_synthetic(n: int, model: OnnxModel, seed: int = 12345) -> dict:
    """The same metrics on ``n`` synthetic blob pairs (one 2 mm slice each), a seed unseen in training."""
    phis, gaps = synthetic_pairs(n, seed=seed)
    rows = [pair_metrics(p[0][None], p[1][None], float(g), (PIXEL_MM, PIXEL_MM, PIXEL_MM), model)
            for p, g in zip(phis, gaps)]
    return summarize(rows, data=f"synthetic blob pairs, seed {seed}")
