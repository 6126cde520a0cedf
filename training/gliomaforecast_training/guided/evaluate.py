"""Validation / benchmark figures of the guided DDIM on a fixed subsample of the horizon protocol's pairs.

    gliomaforecast-train guided-ddim evaluate /work/data/val_dense --horizon-days 61-365 --samples 2 \
        --setting 200:10:0 --setting 200:10:5e4 --out val.json

Pairs: the horizon protocol's (inputs, later scan) tasks (``evaluation_protocols.plan_tasks``), subsampled to each
patient's FIRST task per gap bin (fewest inputs, then earliest target; ``--per-patient 1``: its first task
overall). Per pair: the same growth fit (capped at the brain volume, as ``forecast.run_forecast`` does) serves
persistence (the last scan) and every guided setting ``NL:STEPS:S_CT`` (s_ct 0 = unguided DDIM, the same
generations without guidance); maps scored by the evaluation's ``score_maps`` (HD95 of the P >= 0.5 tumour to the
true GTV, RMSE, BCE, ...) and the CTVs by ``score_plans`` (coverage of the future GTV / enhancing tumour), the
CTVs built as the forecast builds them. Also per setting: the fraction of generated slices whose burden lies in
the growth model's 95 % band, and the burden error against the true follow-up on the forecast's crops (mean over
its slices of |burden - true GTV area / brain area|; ``burden_error``: the generated slices' burden, the
regressor at t = 0, mean over generations; ``burden_error_ode``: the growth model's median target alone;
``burden_error_last``: the last scan's burden). Summary per setting and gap bin, and a paired Wilcoxon test of HD95 against
persistence over all pairs.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from gliomaforecast import evaluation
from gliomaforecast.io.case import load_case
from gliomaforecast.evaluation.cohort import find_cases, recurrences, score_maps, score_plans
from gliomaforecast.evaluation.protocols import Protocol, first_per_bin, gap_bin, parse_horizon, plan_tasks, prefix_case
from gliomaforecast.forecast import case_plan_seed, fit_case_growth, run_forecast
from gliomaforecast.forecasters.guided import inputs as gi
from gliomaforecast.forecasters import crops as mi
from gliomaforecast.forecasters.base import ForecastRequest, no_progress
from gliomaforecast.forecasters.guided.ddim import GuidedDDIMForecaster
from gliomaforecast.forecasters.guided.maps import GROWTH_MM
from gliomaforecast.io.images import write_text_atomic
from gliomaforecast.growth.checks import cap_growth
from gliomaforecast.targets.volumes import build_targets, standard_target

METRICS = ("hd95_mm", "rmse", "bce", "dice_tumor", "volume_error_ml", "coverage_forecast_gtv",
           "coverage_standard_gtv", "coverage_forecast_enhancing", "coverage_standard_enhancing", "burden_error",
           "burden_error_ode", "burden_error_last")


def parse_setting(text: str) -> tuple[int, int, float, float]:
    """``NL:STEPS:S_CT[:GROWTH_MM]`` -> (nl, steps, s_ct, growth_mm); growth_mm defaults to the forecaster's."""
    nl, steps, s_ct, *rest = text.split(":")
    return int(nl), int(steps), float(s_ct), float(rest[0]) if rest else GROWTH_MM


def subsample(tasks: list, days: np.ndarray, per_patient: int) -> list:
    """Each gap bin's first task (``per_patient`` 0: the core's ``first-per-bin`` rule) or the first
    ``per_patient`` tasks overall (fewest inputs, then earliest target)."""
    if per_patient:
        return sorted(tasks, key=lambda t: (t.n_inputs, t.target))[:per_patient]
    return first_per_bin(tasks, days)


def ctvs(case, probability: np.ndarray, margin_mm: float = 15.0) -> dict[str, np.ndarray]:
    """Standard and forecast CTVs of a forecast map, as ``forecast.run_forecast`` builds them."""
    seed, brain, spacing = case_plan_seed(case), case.brain_mask(), case.grid.spacing
    standard = standard_target(seed.tumour, spacing, margin_mm, cavity=seed.cavity, brain_mask=brain)
    t = build_targets(seed.tumour, spacing, margin_mm, score=probability, cavity=seed.cavity, brain_mask=brain,
                      standard=standard)
    return {"forecast": t.forecast, "standard": t.standard}


def burden_errors(inputs, truth: np.ndarray, last_run: dict) -> dict[str, float]:
    """Mean absolute burden error over the forecast's crop slices (``last_run["crops"]``): generated (mean over
    generations), the growth model's median target, the last scan; against the true GTV's burden on the same crops."""
    crops = last_run["crops"]
    cut = mi.crop_slices(truth.astype(np.float32), crops.z, inputs.grid.spacing[1:], crops.center_yx_mm, gi.CROP)
    true = gi.crop_burden(cut, crops.brain)
    return {"burden_error": float(np.mean(np.abs(last_run["burden"].mean(axis=0) - true))),
            "burden_error_ode": float(np.mean(np.abs(last_run["targets"].median - true))),
            "burden_error_last": float(np.mean(np.abs(crops.burden - true)))}


def evaluate_pair(case, task, settings, samples: int, seed: int, n_bootstrap: int) -> list[dict]:
    """Rows (persistence and every setting) of one pair."""
    inputs = prefix_case(case, task.n_inputs)
    target = case.timepoints[task.target]
    spacing, brain = case.grid.spacing, case.brain_mask()
    truth = case.gtv(target)
    future, _ = recurrences(case, target)
    growth = fit_case_growth(inputs, n_bootstrap, seed)
    growth = cap_growth(growth, None if brain is None else float(np.count_nonzero(brain) * case.grid.voxel_volume_ml))
    gap = target.day - inputs.timepoints[-1].day
    base = {"patient_id": case.patient_id, "pair_id": f"{case.patient_id}:{task.n_inputs}->{task.target}",
            "gap_days": gap, "gap_bin": gap_bin(gap)}
    rows = []
    start = time.perf_counter()
    fc = run_forecast(inputs, target.day, "persistence", samples=samples, seed=seed, n_bootstrap=n_bootstrap,
                      growth=growth)
    rows.append({**base, "forecaster": "persistence", **score_maps(fc.output.probability, truth, spacing, brain),
                 **score_plans({"forecast": fc.ctv_forecast, "standard": fc.ctv_standard}, future),
                 "seconds": time.perf_counter() - start})
    request = ForecastRequest(inputs, target.day, growth, samples, seed, "cpu")
    for nl, steps, s_ct, growth_mm in settings:
        start = time.perf_counter()
        f = GuidedDDIMForecaster(nl=nl, steps=steps, s_ct=s_ct, growth_mm=growth_mm)
        out = f.predict(request, no_progress)
        plans = ctvs(inputs, out.probability)
        rows.append({**base, "forecaster": f"guided-ddim {nl}:{steps}:{s_ct:g}:{growth_mm:g}",
                     **score_maps(out.probability, truth, spacing, brain), **score_plans(plans, future),
                     "in_band": f.last_run["in_band"], **burden_errors(inputs, truth, f.last_run),
                     "seconds": time.perf_counter() - start})
    return rows


def _median(values) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.median(v)) if v else None


def summarize(rows: list[dict]) -> dict:
    """Per forecaster: medians per gap bin and overall, in-band fraction, Wilcoxon of HD95 vs persistence."""
    out: dict = {}
    names = list(dict.fromkeys(r["forecaster"] for r in rows))
    ref = {r["pair_id"]: r for r in rows if r["forecaster"] == "persistence"}
    for name in names:
        mine = [r for r in rows if r["forecaster"] == name]
        bins = sorted({r["gap_bin"] for r in mine})
        entry = {"n": len(mine), "overall": {m: _median(r.get(m) for r in mine) for m in METRICS},
                 "bins": {b: {"n": sum(r["gap_bin"] == b for r in mine),
                              **{m: _median(r.get(m) for r in mine if r["gap_bin"] == b) for m in METRICS}}
                          for b in bins},
                 "seconds_median": _median(r["seconds"] for r in mine)}
        if "in_band" in mine[0]:
            entry["in_band_mean"] = float(np.mean([r["in_band"] for r in mine]))
        if "burden_error" in mine[0]:
            gen, ode = [r["burden_error"] for r in mine], [r["burden_error_ode"] for r in mine]
            try:
                c = evaluation.compare_plans(ode, gen, [r["pair_id"] for r in mine])  # ode - generated > 0: generated better
                entry["burden_error_vs_ode"] = {"n": c.n, "p_value": c.p_value, "median_difference": -c.median_difference}
            except ValueError as exc:
                entry["burden_error_vs_ode"] = {"reason": str(exc)}
        if name != "persistence":
            a = [r["hd95_mm"] for r in mine]
            b = [ref[r["pair_id"]]["hd95_mm"] for r in mine]
            try:
                c = evaluation.compare_plans(b, a, [r["pair_id"] for r in mine])  # reference - model > 0: model better
                entry["hd95_vs_persistence"] = {"n": c.n, "p_value": c.p_value,
                                                "median_difference_mm": -c.median_difference}
            except ValueError as exc:
                entry["hd95_vs_persistence"] = {"reason": str(exc)}
        out[name] = entry
    return out


def regressor_figures(checkpoint: str | Path, data: str | Path, steps=(0, 100, 200, 400), seed: int = 777) -> dict:
    """MAE, RMSE and Pearson r of the regressor checkpoint on the crops of ``data`` (a ``prepare`` .npz) noised at
    each step of ``steps`` (noise seeded by ``seed``), and the MAE of predicting the mean burden."""
    import torch

    from .data import SliceData
    from .loss import alphas_cumprod, noised
    from .train import load_checkpoint

    net, _ = load_checkpoint(checkpoint)
    d = SliceData.load(data)
    x0 = torch.from_numpy(d.image.astype(np.float32))[:, None]
    ab, gen, out = alphas_cumprod(), torch.Generator().manual_seed(seed), {}
    for t in steps:
        xt = noised(x0, torch.full((len(x0),), int(t)), torch.randn(x0.shape, generator=gen), ab)
        with torch.no_grad():
            r = torch.cat([net(xt[i:i + 256], torch.full((len(xt[i:i + 256]),), int(t)))[0]
                           for i in range(0, len(xt), 256)]).numpy()
        out[int(t)] = {"mae": float(np.abs(r - d.burden).mean()), "rmse": float(np.sqrt(((r - d.burden) ** 2).mean())),
                       "pearson": float(np.corrcoef(r, d.burden)[0, 1]),
                       "mae_of_the_mean": float(np.abs(d.burden - d.burden.mean()).mean())}
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("cohort", type=Path, help="cohort folder (validation: /work/data/val_dense)")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write (rows + summary)")
    p.add_argument("--horizon-days", default="61-365")
    p.add_argument("--setting", action="append", default=None,
                   help=f"NL:STEPS:S_CT[:GROWTH_MM] (repeatable; GROWTH_MM default {GROWTH_MM:g})")
    p.add_argument("--samples", type=int, default=4, help="K generations")
    p.add_argument("--per-patient", type=int, default=0, help="0: first pair per gap bin; N: first N pairs")
    p.add_argument("--patients", default="", help="patients FIRST-LAST (1-based, name order) or N (the first N); "
                                                  "default all")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-bootstrap", type=int, default=100)


def run(args: argparse.Namespace) -> dict:
    """Evaluate and write ``args.out``; returns the summary."""
    lo, hi = parse_horizon(args.horizon_days)
    protocol = Protocol("horizon", lo, hi)
    settings = [parse_setting(s) for s in (args.setting or ["200:10:5e4"])]
    cases = find_cases(args.cohort)
    if args.patients:
        first, _, last = str(args.patients).rpartition("-")
        cases = cases[(int(first) - 1 if first else 0):int(last)]
    rows: list[dict] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    for path in cases:
        case = load_case(path)
        tasks, why = plan_tasks(case, protocol, 2)
        for task in subsample(tasks, case.days, args.per_patient):
            new = evaluate_pair(case, task, settings, args.samples, args.seed, args.n_bootstrap)
            rows += new
            for r in new:
                print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                                  if k in ("pair_id", "forecaster", "gap_days", "hd95_mm", "rmse", "in_band",
                                           "burden_error", "burden_error_ode", "seconds")}),
                      flush=True)
            summary = summarize(rows)  # rewritten after every pair: an interrupted run keeps what it measured
            write_text_atomic(args.out, json.dumps({
                "cohort": str(args.cohort), "horizon_days": [lo, hi], "samples": args.samples, "seed": args.seed,
                "subsample": "per-patient first pair per gap bin" if not args.per_patient
                else f"first {args.per_patient} pair(s) per patient", "patients": len(cases),
                "summary": summary, "rows": rows}, indent=1, default=float))
    print(json.dumps(summary, indent=1, default=float))
    return summary
