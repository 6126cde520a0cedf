"""How often the out-of-distribution guard flags cases (issue 35 item 3): for a shipped input reference, each cohort's
share of patients whose last scan scores above the threshold (what a forecast of the whole case sees) and of scans
(every scan as a forecast's last input), with the features that set the scores.

    .venv/bin/python benchmarks/bench_input_shift.py --reference input_reference_r2.json \\
        --cohort "held-out, realism 2=/work/data/heldout96" --cohort "realism 3=/work/data/r3/heldout96" \\
        --out benchmarks/results/input_shift_r2.json

Target (issue 35): at least 90 % of the cases of a generator version never used in training flagged, under 10 % of
the held-out cases of the training generator.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from gliomaforecast.input_shift import load_reference, shift_score
from gliomaforecast_training.commands.input_reference import cohort_features


def score_cohort(folder: Path, reference_name: str) -> dict:
    """Flag rates, score quantiles and the commonest deciding features of one cohort."""
    reference = load_reference(reference_name)
    rows = cohort_features(folder)
    scored = [(patient, index, *shift_score(f, reference)) for patient, index, f in rows]
    last: dict[str, tuple[int, float, str]] = {}
    for patient, index, score, feature in scored:
        if patient not in last or index > last[patient][0]:
            last[patient] = (index, score, feature)
    patient_scores = np.array([s for _, s, _ in last.values()])
    scan_scores = np.array([s for _, _, s, _ in scored])
    flagged = [f for _, s, f in last.values() if s > reference.threshold]
    return {
        "cohort": str(folder),
        "patients": len(last),
        "scans": len(scored),
        "patients_flagged": round(float(np.mean(patient_scores > reference.threshold)), 4),
        "scans_flagged": round(float(np.mean(scan_scores > reference.threshold)), 4),
        "patient_score_quantiles": {
            q: round(float(np.quantile(patient_scores, float(q))), 2) for q in ("0.1", "0.5", "0.9")
        },
        "deciding_features_of_flagged": dict(Counter(flagged).most_common(5)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, help="a reference file of the models folder")
    ap.add_argument("--cohort", action="append", required=True, help="LABEL=FOLDER (repeatable)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    reference = load_reference(args.reference)
    result = {"reference": args.reference, "threshold": reference.threshold, "source": reference.source, "cohorts": {}}
    for item in args.cohort:
        label, folder = item.split("=", 1)
        row = score_cohort(Path(folder), args.reference)
        result["cohorts"][label] = row
        print(
            f"{label}: {row['patients_flagged']:.0%} of {row['patients']} patients flagged "
            f"({row['scans_flagged']:.0%} of {row['scans']} scans); median score "
            f"{row['patient_score_quantiles']['0.5']:.1f} (threshold {reference.threshold:.1f}); "
            f"{row['deciding_features_of_flagged']}",
            flush=True,
        )
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
