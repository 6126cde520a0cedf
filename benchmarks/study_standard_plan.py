"""The standard plan under both planning conventions on a cohort's recurrence protocol, with an oracle's ceiling.

    python benchmarks/study_standard_plan.py --cohort DIR --out plans.json [--jobs 2]

For every patient the `recurrence` protocol scores (the planning scan and the first post-RT progression), on the
planning scan: the standard plan of each convention (`estro-eano`: tumour core + cavity + 15 mm; `flair`: whole GTV +
cavity + 15 mm; gliomaforecast.targets.standard_plan), its volume (mL) and its coverage of the later enhancing tumour (label
3) and of the whole later tumour (labels 1-3); and an ORACLE per convention (not a model: it knows the recurrence):
the iso-volumetric plan of the same voxel count that holds the seed and then the voxels nearest (mm) the true
enhancing recurrence (for the whole-recurrence ceiling, the whole recurrence), inside the brain. Across patients: the
means, the paired Wilcoxon test of the oracle vs the standard plan (enhancing), and how many patients have enhancing
recurrence outside each standard plan.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from gliomaforecast import evaluation, sdf
from gliomaforecast.io.case import load_case
from gliomaforecast.evaluation.protocols import recurrence_task
from gliomaforecast.targets.standard_plan import CONVENTIONS, plan_seed
from gliomaforecast.targets.volumes import build_targets

MARGIN_MM = 15.0


def nearest_first(mask: np.ndarray, spacing) -> np.ndarray:
    """A score that ranks voxels by increasing Euclidean distance (mm) to ``mask`` (1 on it, in (0, 1) outside)."""
    return (1.0 / (1.0 + np.maximum(sdf.signed_distance(mask, spacing), 0.0))).astype(np.float32)


def patient_plans(case_json: str) -> dict | None:
    """Both conventions' standard plans and oracles for one patient, or None when the protocol scores none."""
    case = load_case(case_json)
    found = recurrence_task(case)
    if found is None:
        return None
    planning, target = found
    last = planning.timepoints[-1]
    labels = case.labels(case.timepoints[target])
    plan_labels = planning.labels(last)
    if labels is None or plan_labels is None:
        return None
    sp, brain, ml = planning.grid.spacing, planning.brain_mask(), planning.grid.voxel_volume_ml
    enhancing, whole = labels == 3, np.isin(labels, (1, 2, 3))
    row: dict = {"patient_id": case.patient_id, "planning_day": last.day, "target_day": case.timepoints[target].day,
                 "enhancing_ml": float(enhancing.sum() * ml)}
    for convention in CONVENTIONS:
        seed = plan_seed(planning.gtv(last), plan_labels, convention)
        standard = build_targets(seed.tumour, sp, MARGIN_MM, cavity=seed.cavity, brain_mask=brain).standard
        row[convention] = {"volume_ml": float(standard.sum() * ml),
                           "enhancing": evaluation.coverage(standard, enhancing),
                           "whole": evaluation.coverage(standard, whole)}
        for name, truth in (("enhancing", enhancing), ("whole", whole)):
            if not truth.any():
                row[convention][f"oracle_{name}"] = float("nan")
                continue
            oracle = build_targets(seed.tumour, sp, MARGIN_MM, score=nearest_first(truth, sp), cavity=seed.cavity,
                                   brain_mask=brain, standard=standard).forecast
            row[convention][f"oracle_{name}"] = evaluation.coverage(oracle, truth)
    return row


def summarize(rows: list[dict]) -> dict:
    """Means over the patients (coverage over those with that recurrence), outside-margin counts and the oracle's
    paired Wilcoxon test against the standard plan (enhancing)."""
    out = {"patients": len(rows), "patients_with_enhancing": sum(r["enhancing_ml"] > 0 for r in rows)}
    ids = [r["patient_id"] for r in rows]
    for convention in CONVENTIONS:
        values = {k: np.array([r[convention][k] for r in rows], dtype=float)
                  for k in ("volume_ml", "enhancing", "whole", "oracle_enhancing", "oracle_whole")}
        entry = {k: float(np.nanmean(v)) for k, v in values.items()}
        entry["outside_enhancing"] = int(np.sum(values["enhancing"] < 1.0))
        entry["outside_whole"] = int(np.sum(values["whole"] < 1.0))
        try:
            test = evaluation.compare_plans(values["oracle_enhancing"], values["enhancing"], ids)
            entry["oracle_vs_standard_enhancing_p"] = float(test.p_value)
        except ValueError as exc:
            entry["oracle_vs_standard_enhancing_p"] = str(exc)
        out[convention] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cohort", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--jobs", type=int, default=1)
    args = p.parse_args(argv)
    cases = [str(c) for c in sorted(args.cohort.glob("*/case.json"))]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = [r for r in pool.map(patient_plans, cases) if r is not None]
    summary = summarize(rows)
    args.out.write_text(json.dumps({"cohort": str(args.cohort), "margin_mm": MARGIN_MM, "summary": summary,
                                    "patients": rows}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
