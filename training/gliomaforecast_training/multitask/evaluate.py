"""Validation figures of the multi-task diffusion forecaster beside persistence and evolution-field, per gap bin,
with image metrics of the synthesized FLAIR (PSNR, SSIM) against the true future FLAIR and the last-FLAIR baseline.

    python -m gliomaforecast_training.multitask.evaluate --cohort /work/data/val_dense --horizon-days 61-365 \
        --max-tasks 6 --samples 4 --out val.json

Tasks are the ``horizon`` protocol's (``gliomaforecast.evaluation.protocols``: every input prefix of >= 2 scans and
every later scan whose gap from the last input lies in the range), at most ``--max-tasks`` per patient drawn with
the seed. Probability maps are scored as ``gliomaforecast evaluate`` scores them (``cohort_evaluation.score_maps``:
inside the brain against the truth GTV's logistic map); coverage of the whole future GTV by the standard 15 mm CTV of
the last prior GTV and by the forecast's iso-volumetric CTV of the same size (paired Wilcoxon per patient). Images: on the axial slices holding the last prior or the
target GTV, cropped to the brain's bounding box; PSNR (dB) over that region with the true FLAIR's range there as
the data range, SSIM the mean of the 2D SSIMs of the slices (``gliomaforecast.evaluation.images``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

from gliomaforecast import evaluation
from gliomaforecast.evaluation.cohort import find_cases, score_maps
from gliomaforecast.evaluation.images import slice_similarity
from gliomaforecast.evaluation.protocols import Protocol, gap_bin, parse_horizon, plan_tasks, prefix_case
from gliomaforecast.forecast import fit_case_growth
from gliomaforecast.forecasters.base import ForecastRequest
from gliomaforecast.forecasters.registry import get_forecaster
from gliomaforecast.io.case import load_case
from gliomaforecast.targets import ctv

from ..common.command import module_main

FORECASTERS = ("multitask-diffusion", "persistence", "evolution-field")
COVERAGE = ("coverage_forecast_gtv", "coverage_standard_gtv")
METRICS = ("rmse", "bce", "kl", "ece", "dice_tumor", "pearson_0.2", "hd95_mm", "volume_error_ml")


def image_metrics(image: np.ndarray, truth: np.ndarray, slices: np.ndarray, brain: np.ndarray | None) -> dict[str, float]:
    """PSNR (dB) and mean 2D SSIM of ``image`` against ``truth`` on ``slices`` inside the brain's bounding box."""
    scores = slice_similarity(image, truth, slices, brain)
    return {"psnr": scores["psnr_db"], "ssim": scores["ssim"]}


def evaluate(args: argparse.Namespace) -> dict:
    """Run the tasks and return {"rows": [...], "bins": {forecaster: {bin: {metric: mean, "n": n}}}}."""
    lo, hi = parse_horizon(args.horizon_days)
    protocol = Protocol("horizon", lo, hi)
    rng = np.random.default_rng(args.seed)
    forecasters = {name: get_forecaster(name) for name in args.forecaster}
    rows = []
    for path in find_cases(args.cohort):
        case = load_case(path)
        tasks, _ = plan_tasks(case, protocol, 2)
        if args.max_tasks and len(tasks) > args.max_tasks:
            tasks = [tasks[k] for k in sorted(rng.choice(len(tasks), args.max_tasks, replace=False))]
        brain = case.brain_mask()
        for task in tasks:
            prefix = prefix_case(case, task.n_inputs)
            target = case.timepoints[task.target]
            truth_gtv = case.gtv(target)
            gap = float(target.day - prefix.timepoints[-1].day)
            growth = fit_case_growth(prefix, args.n_bootstrap, args.seed)
            last_gtv = prefix.gtv(prefix.timepoints[-1])
            standard = ctv.standard_ctv(last_gtv, case.grid.spacing, args.margin_mm, brain_mask=brain)
            slices = np.nonzero((truth_gtv | last_gtv).any(axis=(1, 2)))[0]
            true_flair = case.image(target, "flair")
            for name, fc in forecasters.items():
                request = ForecastRequest(prefix, target.day, growth, args.samples, args.seed, "cpu")
                t0 = time.perf_counter()
                out = fc.predict(request, lambda f, m: None)
                row = {"patient": case.patient_id, "inputs": task.n_inputs, "target": task.target, "gap_days": gap,
                       "bin": gap_bin(gap), "forecaster": name, "seconds": round(time.perf_counter() - t0, 2)}
                scores = score_maps(out.probability, truth_gtv, case.grid.spacing, brain)
                row.update({m: scores[m] for m in METRICS})
                plan = ctv.isovolumetric_ctv(out.probability, int(standard.sum()), case.grid.spacing, gtv=last_gtv,
                                             brain_mask=brain)
                row["coverage_forecast_gtv"] = evaluation.coverage(plan, truth_gtv)
                row["coverage_standard_gtv"] = evaluation.coverage(standard, truth_gtv)
                if out.image is not None:
                    row.update(image_metrics(out.image, true_flair, slices, brain))
                rows.append(row)
                print(json.dumps(row), flush=True)
            last_flair = prefix.image(prefix.timepoints[-1], "flair")
            rows.append({"patient": case.patient_id, "inputs": task.n_inputs, "target": task.target, "gap_days": gap,
                         "bin": gap_bin(gap), "forecaster": "last-flair",
                         **image_metrics(last_flair, true_flair, slices, brain)})
            print(json.dumps(rows[-1]), flush=True)
    return {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "rows": rows, "bins": summarize(rows), "coverage_wilcoxon": coverage_tests(rows)}


def coverage_tests(rows: list[dict]) -> dict:
    """Per forecaster: paired Wilcoxon of forecast-plan vs standard-plan coverage of the whole future GTV, one value
    per patient (the mean of its forecasts), as ``gliomaforecast evaluate`` pairs them."""
    out = {}
    for name in sorted({r["forecaster"] for r in rows if "coverage_forecast_gtv" in r}):
        per: dict[str, list[tuple[float, float]]] = {}
        for r in rows:
            if r["forecaster"] == name:
                per.setdefault(r["patient"], []).append((r["coverage_forecast_gtv"], r["coverage_standard_gtv"]))
        f = [float(np.mean([a for a, _ in v])) for v in per.values()]
        s = [float(np.mean([b for _, b in v])) for v in per.values()]
        diff = np.subtract(f, s)
        p = float(wilcoxon(f, s).pvalue) if np.count_nonzero(diff) else None
        out[name] = {"n_patients": len(f), "forecast": float(np.mean(f)), "standard": float(np.mean(s)),
                     "wilcoxon_p": p, "better": int((diff > 0).sum()), "worse": int((diff < 0).sum())}
    return out


def summarize(rows: list[dict]) -> dict:
    """Means per forecaster and gap bin (and over all), with n."""
    out: dict = {}
    for name in sorted({r["forecaster"] for r in rows}):
        mine = [r for r in rows if r["forecaster"] == name]
        groups = {"all": mine}
        for r in mine:
            groups.setdefault(r["bin"], []).append(r)
        out[name] = {}
        for b, rs in groups.items():
            keys = [k for k in (*METRICS, *COVERAGE, "psnr", "ssim", "seconds") if any(k in r for r in rs)]
            out[name][b] = {"n": len(rs), **{k: float(np.nanmean([r[k] for r in rs if k in r])) for k in keys}}
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cohort", type=Path, required=True)
    p.add_argument("--horizon-days", default="61-365")
    p.add_argument("--forecaster", action="append", help=f"default: {', '.join(FORECASTERS)}")
    p.add_argument("--max-tasks", type=int, default=0, help="at most N tasks per patient, drawn with the seed (0: all)")
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--n-bootstrap", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--margin-mm", type=float, default=15.0, help="standard CTV margin (mm)")
    p.add_argument("--out", type=Path, required=True, help="JSON to write")


def main(argv: list[str] | None = None) -> int:
    return module_main("multitask.evaluate", __doc__, add_arguments, main_with, argv)


def main_with(args: argparse.Namespace) -> int:
    """Evaluate (every forecaster of FORECASTERS unless ``args.forecaster`` names some), write ``args.out`` and
    print the per-bin means."""
    args.forecaster = args.forecaster or list(FORECASTERS)
    result = evaluate(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    for name, bins in result["bins"].items():
        for b, m in sorted(bins.items()):
            print(name, b, json.dumps({k: round(v, 4) for k, v in m.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
