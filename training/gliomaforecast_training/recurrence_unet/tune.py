"""Choose the recurrence U-Net's post-processing on a VALIDATION cohort (never the benchmark).

    python -m gliomaforecast_training.recurrence_unet.tune --cohort /work/data/val_dense \
        --models-dir /tmp/ru_models --out post.json

For every patient the ``recurrence`` protocol scores, the exported ensemble runs once through the core
(``forecasters.recurrence_unet.ensemble_maps``); then each candidate (smooth_mm, prior_weight, floor, window_mm) gives the
score map (``score_map``) and the forecast CTV exactly as the forecast does (``targets.volumes.build_targets`` from the
seed of the planning convention ``--plan``, ``forecast.case_plan_seed``: the standard plan's voxel count, the seed,
tumour core or GTV, and the cavity always in, holes filled). A candidate is admissible
when its mean coverage of the whole recurrent GTV is at most ``--max-gtv-loss`` below the standard plan's and no
patient's enhancing coverage is more than ``--max-patient-loss`` below the standard's (defaults: no limit). Among
admissible candidates the criterion is the mean coverage of the enhancing
recurrence (label 3; enhancing + necrosis for patients without enhancing) to 3 decimals, ties broken by the mean
coverage of the whole recurrent GTV (3 decimals), then
the smaller mean HD95 (mm) of the plan against the whole recurrence (isolated far islands), the median
per-patient improvement, then the smaller prior weight. Prints one line per candidate, writes the
chosen settings (None when no candidate is admissible) and the table (JSON).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from gliomaforecast import evaluation
from gliomaforecast.evaluation.protocols import recurrence_task
from gliomaforecast.forecast import case_plan_seed
from gliomaforecast.forecasters.recurrence.inputs import PIXEL_MM, paste_crop, planning_inputs, to_case_grid
from gliomaforecast.forecasters.recurrence.unet import MODEL_ID, ensemble_maps, score_map
from gliomaforecast.io.case import load_case
from gliomaforecast.models import load_family
from gliomaforecast.targets.standard_plan import AUTO, CHOICES
from gliomaforecast.targets.volumes import build_targets

from ..common.command import module_main


def patient_maps(case_json: Path, family, plan: str = AUTO) -> dict | None:
    """The ensemble mean (working grid), the standard plan's seed (``plan``: its convention) and cavity, brain,
    standard CTV and recurrences of one patient."""
    case = load_case(case_json)
    found = recurrence_task(case)
    if found is None:
        return None
    planning, target_index = found
    inputs = planning_inputs(planning)
    mean, _, box = ensemble_maps(family, inputs)
    seed, brain = case_plan_seed(planning, plan), case.brain_mask()
    labels = case.labels(case.timepoints[target_index])
    if labels is None:
        return None
    recurrence = {**{d: evaluation.recurrence_mask(labels, d) for d in ("enhancing", "enhancing+necrosis")},
                  "gtv": case.gtv(case.timepoints[target_index])}
    standard = build_targets(seed.tumour, case.grid.spacing, 15.0, cavity=seed.cavity, brain_mask=brain).standard
    return {"patient": case.patient_id, "cavity": seed.cavity, "inputs": inputs,
            "mean": paste_crop(mean, box, inputs.brain.shape), "seed": seed.tumour, "plan": seed.convention,
            "brain": brain, "spacing": case.grid.spacing, "standard": standard, "recurrence": recurrence}


def plan_coverage(p: dict, smooth_mm: float, prior_weight: float, prior_mm: float, floor: float,
                  window_mm: float | None = None) -> dict[str, float]:
    """Coverage of each recurrence definition by the forecast CTV of these settings (NaN: empty recurrence) and
    the HD95 (mm) of that plan against the whole recurrence (``hd95_gtv``)."""
    inputs = p["inputs"]
    score = score_map(p["mean"], inputs.gtv, inputs.brain, (PIXEL_MM,) * 3, smooth_mm, prior_weight, prior_mm, floor,
                      window_mm)
    score = to_case_grid(score, inputs.case_shape)
    plan = build_targets(p["seed"], p["spacing"], 15.0, score=score, cavity=p["cavity"], brain_mask=p["brain"]).forecast
    return {**{d: evaluation.coverage(plan, m) for d, m in p["recurrence"].items()},
            "hd95_gtv": evaluation.hd95(plan, p["recurrence"]["gtv"], p["spacing"])}


def add_arguments(pa: argparse.ArgumentParser) -> None:
    pa.add_argument("--cohort", type=Path, required=True, help="validation cohort (case.json per patient folder)")
    pa.add_argument("--models-dir", type=Path, required=True, help="models folder with the exported family")
    pa.add_argument("--out", type=Path, required=True, help="JSON with the chosen settings and the table")
    pa.add_argument("--smooth-mm", type=float, nargs="+", default=[0.0, 2.0])
    pa.add_argument("--prior-weight", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75])
    pa.add_argument("--prior-mm", type=float, nargs="+", default=[30.0], help="reach of the distance prior, mm")
    pa.add_argument("--floor", type=float, nargs="+", default=[0.0, 0.05])
    pa.add_argument("--window-mm", type=float, nargs="+", default=[0.0, 40.0], help="0: no window")
    pa.add_argument("--plan", choices=CHOICES, default=AUTO,
                    help="standard plan's convention (gliomaforecast.targets.standard_plan; default auto: estro-eano with labels)")
    pa.add_argument("--max-gtv-loss", type=float, default=float("inf"),
                    help="admissible: mean gtv coverage at most this below the standard plan's")
    pa.add_argument("--max-patient-loss", type=float, default=float("inf"),
                    help="admissible: no patient's enhancing coverage more than this below the standard's")


def admissible(row: dict, max_gtv_loss: float, max_patient_loss: float) -> bool:
    """Whether a candidate's table row keeps the mean whole-recurrence coverage at most ``max_gtv_loss`` below the
    standard plan's and no patient's enhancing coverage more than ``max_patient_loss`` below it."""
    return bool(row["forecast_gtv"] >= row["standard_gtv"] - max_gtv_loss
                and row["worst_patient_change"] >= -max_patient_loss)


def choose(rows: list[dict]) -> dict | None:
    """The best admissible row by the module's criterion, or None when no row is admissible."""
    return max((r for r in rows if r["admissible"]),
               key=lambda r: (round(r["forecast"], 3), round(r["forecast_gtv"], 3), -round(r["hd95_mm_gtv"]),
                              r["median_improvement"], -r["prior_weight"]), default=None)


def _limit(value: float) -> float | None:
    """A loss limit for the JSON: None when there is none (infinite)."""
    return None if np.isinf(value) else float(value)


def tune(args: argparse.Namespace) -> dict:
    family = load_family(MODEL_ID, args.models_dir, prefer_gpu=False)
    patients = [p for p in (patient_maps(c, family, args.plan) for c in sorted(args.cohort.glob("*/case.json"))) if p]
    standard = {p["patient"]: {d: evaluation.coverage(p["standard"], m) for d, m in p["recurrence"].items()}
                for p in patients}
    rows = []
    for smooth, weight, reach, floor, window in itertools.product(args.smooth_mm, args.prior_weight, args.prior_mm,
                                                                  args.floor, args.window_mm):
        cov = {p["patient"]: plan_coverage(p, smooth, weight, reach, floor, window or None) for p in patients}
        key = {pid: (c["enhancing"] if np.isfinite(c["enhancing"]) else c["enhancing+necrosis"]) for pid, c in cov.items()}
        ref = {pid: (s["enhancing"] if np.isfinite(s["enhancing"]) else s["enhancing+necrosis"])
               for pid, s in standard.items()}
        ok = [pid for pid in key if np.isfinite(key[pid])]
        diff = np.array([key[pid] - ref[pid] for pid in ok])
        row = {"smooth_mm": smooth, "prior_weight": weight, "prior_mm": reach, "floor": floor,
               "window_mm": window or None, "n": len(ok),
               "hd95_mm_gtv": float(np.nanmean([c["hd95_gtv"] for c in cov.values()])),
               "forecast": float(np.mean([key[p] for p in ok])), "standard": float(np.mean([ref[p] for p in ok])),
               "forecast_gtv": float(np.mean([c["gtv"] for c in cov.values()])),
               "standard_gtv": float(np.mean([s["gtv"] for s in standard.values()])),
               "median_improvement": float(np.median(diff)), "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()),
               "worst_patient_change": float(diff.min()) if diff.size else 0.0}
        row["admissible"] = admissible(row, args.max_gtv_loss, args.max_patient_loss)
        rows.append(row)
        print(json.dumps(row), flush=True)
    best = choose(rows)
    chosen = None if best is None else {k: best[k] for k in ("smooth_mm", "prior_weight", "prior_mm", "floor", "window_mm")}
    out = {"chosen": chosen, "chosen_row": best,
           "admissible_if": {"max_gtv_loss": _limit(args.max_gtv_loss), "max_patient_loss": _limit(args.max_patient_loss)},
           "criterion": "among admissible candidates: mean enhancing coverage (enhancing+necrosis without enhancing; 3 "
                                          "decimals), then mean gtv coverage (3 decimals), then the smaller "
                                          "mean HD95 (mm, whole recurrence), then the median per-patient "
                                          "improvement, then the smaller prior weight",
           "cohort": str(args.cohort), "plan": sorted({p["plan"] for p in patients}),
           "patients": [p["patient"] for p in patients], "table": rows}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print("chosen", json.dumps(chosen))
    return out


def main(argv: list[str] | None = None) -> int:
    return module_main("recurrence_unet.tune", __doc__, add_arguments, tune, argv)


if __name__ == "__main__":
    sys.exit(main())
