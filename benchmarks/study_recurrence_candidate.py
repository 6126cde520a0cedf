"""Coverage of one recurrence U-Net family with FIXED post-processing on a cohort, beside the standard plan:
the information run of a candidate rejected on validation (never a choice; see
benchmarks/results/recurrence_unet/validation_rule_v1.1.md).

    python benchmarks/study_recurrence_candidate.py --cohort /work/data/bench96 --models-dir /tmp/ru2/models \
        --smooth-mm 2 --prior-weight 0 --prior-mm 10 --window-mm 40 --out candidate.json

Per definition (enhancing, enhancing+necrosis, gtv): mean coverage of the forecast and standard CTVs (the
``recurrence`` protocol's plans, built as the tune script builds them), the paired Wilcoxon test
(``evaluation.compare_plans``) and the per-patient rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gliomaforecast import evaluation
from gliomaforecast.forecasters.recurrence.unet import MODEL_ID
from gliomaforecast.models import load_family
from gliomaforecast.targets.standard_plan import AUTO, CHOICES
from gliomaforecast_training.recurrence_unet.tune import patient_maps, plan_coverage


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cohort", type=Path, required=True)
    p.add_argument("--models-dir", type=Path, required=True)
    p.add_argument("--smooth-mm", type=float, default=2.0)
    p.add_argument("--prior-weight", type=float, default=0.0)
    p.add_argument("--prior-mm", type=float, default=30.0)
    p.add_argument("--floor", type=float, default=0.0)
    p.add_argument("--window-mm", type=float, default=0.0, help="0: no window")
    p.add_argument("--plan", choices=CHOICES, default=AUTO, help="standard plan's convention (default auto)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    family = load_family(MODEL_ID, args.models_dir, prefer_gpu=False)
    rows = []
    for case_json in sorted(args.cohort.glob("*/case.json")):
        maps = patient_maps(case_json, family, args.plan)
        if maps is None:
            continue
        plan = plan_coverage(maps, args.smooth_mm, args.prior_weight, args.prior_mm, args.floor, args.window_mm or None)
        std = {d: evaluation.coverage(maps["standard"], m) for d, m in maps["recurrence"].items()}
        rows.append({"patient_id": maps["patient"], **{f"forecast_{d}": plan[d] for d in std},
                     **{f"standard_{d}": v for d, v in std.items()}})
        print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for d in ("enhancing", "enhancing+necrosis", "gtv"):
        try:
            c = evaluation.compare_plans([r[f"forecast_{d}"] for r in rows], [r[f"standard_{d}"] for r in rows],
                                         [r["patient_id"] for r in rows])
            summary[d] = {"n": c.n, "forecast": c.mean_model, "standard": c.mean_standard, "p": c.p_value,
                          "effect_r": c.effect_size, "median_difference": c.median_difference,
                          "wins": sum(r["difference"] > 0 for r in c.rows),
                          "losses": sum(r["difference"] < 0 for r in c.rows)}
        except ValueError as exc:
            summary[d] = {"undefined": str(exc)}
    out = {"cohort": str(args.cohort), "models_dir": str(args.models_dir),
           "postprocess": {k: getattr(args, k) for k in ("smooth_mm", "prior_weight", "prior_mm", "floor", "window_mm")},
           "plan": args.plan,
           "summary": summary, "patients": rows}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
