"""Two-scan volume forecasts with and without the growth model's population prior, on a cohort's horizon pairs.

Per patient and gap bin (61-365 days) the first pair, as ``evaluate --pairs first-per-bin`` chooses it: every
one is the first two scans (before and after the RT start) and a later scan. The growth model is fitted to the
two GTV volumes (mL) with the shipped prior (``Resources/Models/growth_prior.json``, training cohort) and
without one (the exponential model), 100 bootstrap refits, seed 0, capped at the brain volume as a forecast
caps it. Reported per pair and in summary: the median forecast volume against the true one (|log ratio|), whether
the 95 % band holds the true volume, and the HD95 (mm) to the true GTV of the last GTV grown or shrunk to the
median volume (iso-volumetric on the signed distance, ``probability_for_volume``) against the last GTV itself.
Use the VALIDATION cohort to study; the held-out one only to report.

Run: ``.venv/bin/python benchmarks/study_growth_prior.py COHORT [OUT.json] [--inputs 3,4]``
(default OUT: benchmarks/results/growth_prior.json). With ``--inputs``: the pairs whose input prefix has one of
these numbers of scans instead, the first per patient, gap bin and prefix size (earliest target); "no prior" then
means the radiotherapy model with the hand-set defaults for the parameters the scans cannot identify.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

from gliomaforecast import evaluation, sdf
from gliomaforecast.growth.burden import burden_from_case
from gliomaforecast.io.case import load_case
from gliomaforecast.evaluation.cohort import find_cases
from gliomaforecast.evaluation.protocols import Protocol, gap_bin, plan_tasks, prefix_case
from gliomaforecast.forecasters.base import probability_for_volume
from gliomaforecast.growth.fit import fit_growth
from gliomaforecast.growth.prior import prior_path
from gliomaforecast.growth.checks import cap_growth

RESULTS = Path(__file__).resolve().parent / "results"
ARMS = {  # name in the output: (prior, prior_frees)
    None: (("prior", "population", "scans"), ("no_prior", None, "scans")),
    # --candidate two-free: the prior with only A0 and S free ("prior") against the prior with as many free
    # parameters as scans ("no_prior" in the output)
    "two-free": (("prior", "population", "burden"), ("no_prior", "population", "scans")),
}


def pair_row(case, task, candidate: str | None = None) -> dict:
    inputs = prefix_case(case, task.n_inputs)
    target = case.timepoints[task.target]
    spacing, brain, truth = case.grid.spacing, case.brain_mask(), case.gtv(target)
    brain_ml = None if brain is None else float(np.count_nonzero(brain) * case.grid.voxel_volume_ml)
    days, volumes = burden_from_case(inputs)
    last = inputs.gtv(inputs.timepoints[-1])
    phi = inputs.gtv_distance(inputs.timepoints[-1])
    true_ml = float(np.count_nonzero(truth) * case.grid.voxel_volume_ml)
    gap = target.day - days[-1]
    row = {"pair_id": f"{case.patient_id}:{task.n_inputs}->{task.target}", "patient_id": case.patient_id,
           "gap_days": gap, "gap_bin": gap_bin(gap), "last_ml": float(volumes[-1]), "true_ml": true_ml,
           "hd95_last_mm": evaluation.hd95(last, truth, spacing)}
    for name, prior, frees in ARMS[candidate]:
        fit = cap_growth(fit_growth(days, volumes, inputs.rt_start_day, n_bootstrap=100, seed=0, prior=prior,
                                    prior_frees=frees), brain_ml)
        med, lo, hi = (float(v[0]) for v in fit.predict([target.day]))
        grown = sdf.tumor_region(probability_for_volume(phi, max(med, 1e-3), spacing, brain))
        row |= {f"{name}_model": fit.model, f"{name}_median_ml": med, f"{name}_band_ml": [lo, hi],
                f"{name}_in_band": bool(lo <= true_ml <= hi), f"{name}_abs_log_ratio": abs(float(np.log(max(med, 1e-3) / true_ml))),
                f"{name}_hd95_mm": evaluation.hd95(grown, truth, spacing)}
    return row


def study_tasks(case, inputs: tuple[int, ...] | None) -> list:
    """The pairs studied for one case: first-per-bin (two-scan prefixes), or with ``inputs`` the first pair per
    gap bin and prefix size among prefixes of those sizes."""
    if inputs is None:
        return plan_tasks(case, Protocol("horizon", 61.0, 365.0, "first-per-bin"), 2)[0]
    tasks, _ = plan_tasks(case, Protocol("horizon", 61.0, 365.0, "all"), min(inputs))
    first = {}
    for t in sorted((t for t in tasks if t.n_inputs in inputs), key=lambda t: (t.n_inputs, t.target)):
        gap = case.timepoints[t.target].day - case.timepoints[t.n_inputs - 1].day
        first.setdefault((t.n_inputs, gap_bin(gap)), t)
    return list(first.values())


def main(cohort: str, out: Path, inputs: tuple[int, ...] | None = None, candidate: str | None = None) -> dict:
    rows = []
    for path in find_cases(cohort):
        case = load_case(path)
        rows += [pair_row(case, t, candidate) for t in study_tasks(case, inputs)]
    summary = {"pairs": len(rows), "patients": len({r["patient_id"] for r in rows})}
    for name in ("prior", "no_prior"):
        summary[name] = {"median_abs_log_ratio": float(np.median([r[f"{name}_abs_log_ratio"] for r in rows])),
                         "band_holds_truth": float(np.mean([r[f"{name}_in_band"] for r in rows])),
                         "median_hd95_mm": float(np.median([r[f"{name}_hd95_mm"] for r in rows]))}
    summary["median_hd95_last_mm"] = float(np.median([r["hd95_last_mm"] for r in rows]))
    per_patient = {}
    for r in rows:
        per_patient.setdefault(r["patient_id"], []).append(r["prior_hd95_mm"] - r["hd95_last_mm"])
    diffs = [float(np.mean(v)) for v in per_patient.values()]
    summary["prior_hd95_minus_last_per_patient"] = {"median_mm": float(np.median(diffs)),
                                                    "wilcoxon_p": float(wilcoxon(diffs).pvalue)}
    result = {"cohort": str(cohort), "prior": str(prior_path()), "inputs": inputs, "summary": summary, "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return result


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("cohort")
    cli.add_argument("out", nargs="?", type=Path, default=RESULTS / "growth_prior.json")
    cli.add_argument("--inputs", type=lambda text: tuple(int(v) for v in text.split(",")), default=None,
                     help="prefix sizes, e.g. 3,4 (default: first-per-bin two-scan pairs)")
    cli.add_argument("--candidate", choices=("two-free",), default=None, help="see ARMS")
    a = cli.parse_args()
    main(a.cohort, a.out, a.inputs, a.candidate)
