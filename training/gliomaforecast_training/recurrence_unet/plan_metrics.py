"""Plan-level figures of the recurrence U-Net on a cohort (the ``recurrence`` protocol), beside
``gliomaforecast evaluate``: per recurrence definition, coverage, Dice and HD95 (mm) of the forecast CTV and of the
standard CTV against the recurrence, and the fraction of the recurrence OUTSIDE the standard CTV that the forecast
CTV captures.

    python -m gliomaforecast_training.recurrence_unet.plan_metrics --cohort /work/data/val_dense --out plans.json

The maps come from the registered family through the core (``run_forecast(..., "recurrence-unet")`` on the
planning prefix), so the plans are exactly those of a forecast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from gliomaforecast import evaluation
from gliomaforecast.evaluation.protocols import Protocol, plan_tasks, prefix_case, scan_volumes
from gliomaforecast.forecast import run_forecast
from gliomaforecast.io.case import load_case

DEFINITIONS = ("enhancing", "enhancing+necrosis")


def patient_rows(case_json: Path) -> list[dict]:
    """One row per recurrence definition of one patient (none when the protocol scores no task)."""
    case = load_case(case_json)
    tasks, _ = plan_tasks(case, Protocol("recurrence"), 1, scan_volumes(case))
    if not tasks:
        return []
    task = tasks[0]
    target = case.timepoints[task.target]
    fc = run_forecast(prefix_case(case, task.n_inputs), target.day, "recurrence-unet", n_bootstrap=0)
    labels = case.labels(target)
    masks = {d: evaluation.recurrence_mask(labels, d) for d in DEFINITIONS} if labels is not None else {}
    masks["gtv"] = case.gtv(target)
    spacing = case.grid.spacing
    rows = []
    for d, rec in masks.items():
        if not rec.any():
            continue
        outside = rec & ~fc.ctv_standard
        row = {"patient_id": case.patient_id, "definition": d, "recurrence_ml": evaluation.volume_ml(rec, spacing),
               "outside_standard_ml": evaluation.volume_ml(outside, spacing),
               "captured_outside": evaluation.coverage(fc.ctv_forecast, outside) if outside.any() else float("nan")}
        for plan, mask in (("forecast", fc.ctv_forecast), ("standard", fc.ctv_standard)):
            row[f"coverage_{plan}"] = evaluation.coverage(mask, rec)
            row[f"dice_{plan}"] = evaluation.dice(mask, rec)
            row[f"hd95_mm_{plan}"] = evaluation.hd95(mask, rec, spacing)
        rows.append(row)
    return rows


def summarize(rows: list[dict]) -> dict:
    """Means (and medians) per definition; the Wilcoxon test of forecast vs standard coverage (core)."""
    out = {}
    for d in DEFINITIONS + ("gtv",):
        sel = [r for r in rows if r["definition"] == d]
        if not sel:
            continue
        col = lambda k: np.array([r[k] for r in sel], dtype=float)  # noqa: E731
        diff = col("coverage_forecast") - col("coverage_standard")
        try:
            p_value: float | None = evaluation.compare_plans(col("coverage_forecast"), col("coverage_standard")).p_value
        except ValueError:  # every difference is zero: the signed-rank test is undefined
            p_value = None
        out[d] = {"n": len(sel), **{f"mean_{k}": float(np.nanmean(col(k))) for k in
                                    ("coverage_forecast", "coverage_standard", "dice_forecast", "dice_standard",
                                     "hd95_mm_forecast", "hd95_mm_standard")},
                  "median_improvement": float(np.median(diff)), "wins": int((diff > 0).sum()),
                  "losses": int((diff < 0).sum()), "wilcoxon_p": p_value,
                  "n_outside": int(np.isfinite(col("captured_outside")).sum()),
                  "mean_captured_outside": (float(np.nanmean(col("captured_outside")))
                                            if np.isfinite(col("captured_outside")).any() else None)}
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cohort", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)


def run(args: argparse.Namespace) -> dict:
    """Score every patient of ``args.cohort``, write ``args.out`` (JSON) and print the summary; returns it."""
    rows = [r for c in sorted(args.cohort.glob("*/case.json")) for r in patient_rows(c)]
    summary = summarize(rows)
    args.out.write_text(json.dumps({"cohort": str(args.cohort), "summary": summary, "rows": rows}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="recurrence_unet.plan_metrics", description=__doc__.splitlines()[0])
    add_arguments(p)
    run(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
