"""Where the first post-RT recurrence lies relative to the planning GTV, and how much an iso-volumetric plan could
gain over the standard 15 mm plan at all (the room the `recurrence` protocol leaves a model).

    python benchmarks/study_recurrence_room.py --cohort /work/data/train_dense --out room.json [--ceiling] [--plan P]

Regions (mm, on each case's grid): the seed of the standard plan (``--plan``, gliomaforecast.targets.standard_plan: tumour
core + cavity for estro-eano, the default with labels; planning GTV + cavity for flair, the runs before issue 27), bands 0-3, 3-8 and 8-15 mm outside it (inside
the standard CTV), white matter (> 60 %) and grey matter (< 30 % wm) 5-25 mm outside the standard CTV, and white
matter farther. Per region: voxels, voxels of core recurrence (labels 1|3) and of the whole recurrence (1|2|3).

``--ceiling`` (an ORACLE, not a model: it uses the virtual generator's own rule for distant foci, white matter
> 60 % at 5-25 mm outside the planning CTV, see docs/cohort.md) also builds, for every patient with enhancing
recurrence, the iso-volumetric plan that takes the seed + ``c`` mm first (c = 3, 6, 10) and then that white-matter
shell, and reports its enhancing coverage beside the standard plan's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from gliomaforecast import evaluation, sdf
from gliomaforecast.io.case import load_case
from gliomaforecast.evaluation.protocols import recurrence_task
from gliomaforecast.forecast import case_plan_seed
from gliomaforecast.targets.standard_plan import AUTO, CHOICES
from gliomaforecast.targets.volumes import build_targets, standard_target, target_seed


def patient_regions(case_json: Path, ceiling: bool, plan: str = AUTO) -> dict | None:
    case = load_case(case_json)
    found = recurrence_task(case)
    if found is None:
        return None
    planning, target = found
    last = planning.timepoints[-1]
    sp, brain = planning.grid.spacing, planning.brain_mask()
    plan_seed = case_plan_seed(planning, plan)
    gtv, cavity = plan_seed.tumour, plan_seed.cavity
    labels = case.labels(case.timepoints[target])
    if labels is None or brain is None or planning.tissue("wm") is None:
        return None
    core, whole = np.isin(labels, (1, 3)), np.isin(labels, (1, 2, 3))
    seed = target_seed(gtv, cavity)
    standard = standard_target(gtv, sp, 15.0, cavity=cavity, brain_mask=brain)
    d = np.maximum(sdf.signed_distance(seed, sp), 0.0)
    d_ctv = np.maximum(sdf.signed_distance(standard, sp), 0.0)
    wm = planning.tissue("wm")
    shell = (d_ctv >= 5) & (d_ctv <= 25) & brain
    regions = {"seed": seed, "0-3 mm": (d > 0) & (d <= 3) & brain, "3-8 mm": (d > 3) & (d <= 8) & brain,
               "8-15 mm": (d > 8) & standard, "shell wm": shell & (wm > 0.6),
               "shell gm": shell & (wm < 0.3), "far wm": (d_ctv > 25) & (wm > 0.6) & brain}
    out = {"patient_id": case.patient_id,
           "regions": {k: [int(v.sum()), int((v & core).sum()), int((v & whole).sum())] for k, v in regions.items()}}
    enhancing = labels == 3
    if ceiling and enhancing.any():
        out["standard_enhancing"] = evaluation.coverage(standard, enhancing)
        for c in (3, 6, 10):
            score = np.where(d <= c, 2.0 - d / 100.0, np.where(regions["shell wm"], 1.0, 0.0)).astype(np.float32)
            plan = build_targets(gtv, sp, 15.0, score=score, cavity=cavity, brain_mask=brain, standard=standard)
            out[f"oracle_seed_plus_{c}mm_enhancing"] = evaluation.coverage(plan.forecast, enhancing)
            out[f"oracle_seed_plus_{c}mm_gtv"] = evaluation.coverage(plan.forecast, whole)
        out["standard_gtv"] = evaluation.coverage(standard, whole)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cohort", type=Path, required=True)
    p.add_argument("--ceiling", action="store_true", help="also the oracle plans (generator's focus rule)")
    p.add_argument("--plan", choices=CHOICES, default=AUTO, help="standard plan's convention (default auto)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    rows = [r for r in (patient_regions(c, args.ceiling, args.plan) for c in sorted(args.cohort.glob("*/case.json")))
            if r]
    totals = {}
    for r in rows:
        for k, (n, core, whole) in r["regions"].items():
            t = totals.setdefault(k, [0, 0, 0])
            t[0] += n
            t[1] += core
            t[2] += whole
    summary = {"patients": len(rows),
               "regions": {k: {"voxels": n, "core_voxels": c, "whole_voxels": w, "p_core": c / n, "p_whole": w / n}
                           for k, (n, c, w) in totals.items()}}
    if args.ceiling:
        scored = [r for r in rows if "standard_enhancing" in r]
        summary["ceiling"] = {"patients_with_enhancing": len(scored),
                              "standard_enhancing": float(np.mean([r["standard_enhancing"] for r in scored])),
                              "standard_gtv": float(np.mean([r["standard_gtv"] for r in scored])),
                              "patients_partly_outside_standard": sum(r["standard_enhancing"] < 1 for r in scored)}
        for c in (3, 6, 10):
            key = f"oracle_seed_plus_{c}mm"
            summary["ceiling"][key] = {
                "enhancing": float(np.mean([r[f"{key}_enhancing"] for r in scored])),
                "gtv": float(np.mean([r[f"{key}_gtv"] for r in scored])),
                "wins": sum(r[f"{key}_enhancing"] > r["standard_enhancing"] for r in scored),
                "losses": sum(r[f"{key}_enhancing"] < r["standard_enhancing"] for r in scored)}
    args.out.write_text(json.dumps({"cohort": str(args.cohort), "summary": summary, "patients": rows}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
