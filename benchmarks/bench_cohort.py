"""Virtual cohort benchmark and realism report.

1. Speed: one patient with four timepoints at 2 mm, end to end (anatomy, growth, RT, imaging, NIfTI).
2. Solver: the Fisher-Kolmogorov solver (float32, active window, exact logistic step) against a plain
   numpy explicit scheme (float64, whole brain box, forward Euler) over the same 60 simulated days of
   one patient's growth, same run; their densities are compared.
3. Realism: N patients simulated (no files): volumes, pre-RT growth rate, shrinkage after RT,
   recurrence near the original tumor and with an enhancing core.
Writes benchmarks/results/cohort.json and docs/images/cohort_timeline.png.

    .venv/bin/python benchmarks/bench_cohort.py [--patients 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gliomaforecast.io.case import load_case
from gliomaforecast_training.cohort import cohort, imaging
from gliomaforecast_training.cohort.anatomy import deform, load_template
from gliomaforecast_training.cohort.tumor_growth import FisherKolmogorov, reference_step, stable_time_step

ROOT = Path(__file__).resolve().parents[1]
ENHANCING_RECURRENCE_ML = 1.0  # a recurrence "enhances" when its last scan has >= 1 mL of label 3


def bench_patient() -> dict:
    load_template(2.0)  # template load is shared by a whole cohort; timed separately
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        cohort.generate_patient(3, Path(tmp) / "p", 2.0, n_followups=3)
        seconds = time.perf_counter() - t
    return {"patient_4_timepoints_2mm_s": round(seconds, 2)}


def bench_solver(days: float = 60.0) -> dict:
    anatomy = deform(load_template(2.0), np.random.default_rng(np.random.SeedSequence(3)))
    p = cohort.draw_params(np.random.default_rng(1), anatomy, "VP", 1)
    d = cohort.diffusivity_map(anatomy, p.d_white, p.d_grey)
    fast = FisherKolmogorov(d, anatomy.grid.spacing, p.rho)
    fast.seed(cohort._seed_density(d.shape, anatomy.grid.spacing, p.seeds_index[0], 3.0, 0.5))
    fast.advance(200.0)  # a grown tumor as the common starting state
    u_ref = fast.u.astype(np.float64)
    t = time.perf_counter()
    fast.advance(200.0 + days)
    t_fast = time.perf_counter() - t
    dt = stable_time_step(float(d.max()), anatomy.grid.spacing, safety=1.0)
    n = int(np.ceil(days / dt))
    d64 = d.astype(np.float64)
    t = time.perf_counter()
    for _ in range(n):
        u_ref = reference_step(u_ref, d64, anatomy.grid.spacing, p.rho, days / n)
    t_ref = time.perf_counter() - t
    v_fast = float((fast.u >= imaging.FLAIR_THRESHOLD).sum()) * anatomy.grid.voxel_volume_ml
    v_ref = float((u_ref >= imaging.FLAIR_THRESHOLD).sum()) * anatomy.grid.voxel_volume_ml
    return {"solver_days": days, "grid": list(d.shape), "fast_s": round(t_fast, 3), "reference_s": round(t_ref, 3),
            "speedup": round(t_ref / t_fast, 1), "fast_steps": int(np.ceil(days / fast.dt)), "reference_steps": n,
            "max_abs_density_difference": round(float(np.abs(fast.u - u_ref).max()), 4),
            "flair_ml_fast": round(v_fast, 2), "flair_ml_reference": round(v_ref, 2)}


def realism(n_patients: int, seed: int = 2024) -> dict:
    template = load_template(2.0)
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n_patients)]
    rows = []
    for s in seeds:
        rng = np.random.default_rng(np.random.SeedSequence(s))
        anatomy = deform(template, rng)
        p = cohort.draw_params(rng, anatomy, "VP", s)
        sim = cohort.simulate(anatomy, p)
        sp, vml = anatomy.grid.spacing, anatomy.grid.voxel_volume_ml
        labels = [imaging.brats_labels(sc.density, sp, sim.cavity, p.necrosis_rim_mm) for sc in sim.scans]
        gtvs = [imaging.gtv_from_labels(lab) for lab in labels]
        vols = [float(g.sum()) * vml for g in gtvs]
        enhancing = [float((lab == imaging.ENHANCING).sum()) * vml for lab in labels]
        hist = sim.extra["pre_diagnosis"]
        day_dx, _, core_dx = hist[-1]
        earlier = [h for h in hist if h[0] <= day_dx - 30 and h[2] > 0]
        sgr = float(np.log(core_dx / earlier[-1][2]) / (day_dx - earlier[-1][0])) if earlier and core_dx > 0 else None
        i_min = int(np.argmin(vols[1:])) + 1
        recurred = vols[-1] > 1.2 * vols[i_min] and vols[-1] > 1.0
        last = gtvs[-1]
        inside_ctv = float((last & sim.ctv).sum() / max(last.sum(), 1))
        rows.append({"seed": s, "gtv_ml": [round(v, 1) for v in vols], "enhancing_ml": [round(v, 1) for v in enhancing],
                     "days": [sc.day for sc in sim.scans],
                     "core_ml_planning": round(cohort.core_volume_ml(sim.scans[0].density, vml), 1),
                     "core_ml_diagnosis": round(core_dx, 1), "core_sgr_per_day": None if sgr is None else round(sgr, 4),
                     "shrank_after_rt": vols[1] < 0.9 * vols[0], "recurred": bool(recurred),
                     "recurrence_fraction_in_planning_ctv": round(inside_ctv, 3),
                     "recurrence_enhancing": bool(recurred and enhancing[-1] >= ENHANCING_RECURRENCE_ML),
                     "resection": p.resection,
                     "multifocal": len(p.seeds_index) > 1, "velocity_wm_mm_per_year": round(730 * np.sqrt(p.d_white * p.rho), 1)})
    sgrs = [r["core_sgr_per_day"] for r in rows if r["core_sgr_per_day"]]
    rec = [r for r in rows if r["recurred"]]
    return {"n_patients": n_patients, "seed": seed,
            "gtv_ml_planning_median_range": _mrange([r["gtv_ml"][0] for r in rows]),
            "core_ml_diagnosis_median_range": _mrange([r["core_ml_diagnosis"] for r in rows]),
            "core_sgr_per_day_median_range": _mrange(sgrs),
            "core_volume_doubling_days_median": round(float(np.log(2) / np.median(sgrs)), 1) if sgrs else None,
            "velocity_wm_mm_per_year_median_range": _mrange([r["velocity_wm_mm_per_year"] for r in rows]),
            "fraction_shrank_after_rt": round(float(np.mean([r["shrank_after_rt"] for r in rows])), 2),
            "fraction_recurred": round(len(rec) / n_patients, 2),
            "fraction_recurrences_mostly_in_planning_ctv": round(float(np.mean([r["recurrence_fraction_in_planning_ctv"] >= 0.8 for r in rec])), 2) if rec else None,
            "fraction_recurrences_enhancing": round(float(np.mean([r["recurrence_enhancing"] for r in rec])), 2) if rec else None,
            "patients": rows}


def _mrange(values) -> list:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    return [round(float(np.median(v)), 3), round(float(v.min()), 3), round(float(v.max()), 3)] if v.size else []


def figure(case_path: Path, out_png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    case = load_case(case_path)
    tps = case.timepoints
    gtv0 = case.gtv(tps[0])
    z = int(np.argmax(gtv0.sum(axis=(1, 2))))
    fig = plt.figure(figsize=(3.0 * len(tps), 6.4))
    for i, tp in enumerate(tps):
        ax = fig.add_subplot(2, len(tps), i + 1)
        ax.imshow(case.image(tp, "flair")[z], cmap="gray", origin="lower")
        ax.contour(case.gtv(tp)[z], levels=[0.5], colors="yellow", linewidths=0.8)
        ax.contour(np.isin(case.labels(tp)[z], (1, 3)), levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(f"day {tp.day:g}: FLAIR, GTV (yellow), core (red)", fontsize=7)
        ax.axis("off")
    ax = fig.add_subplot(2, 1, 2)
    vml = case.grid.voxel_volume_ml
    ax.plot(case.days, [case.gtv(tp).sum() * vml for tp in tps], "o-", label="GTV (FLAIR abnormality)")
    ax.plot(case.days, [np.isin(case.labels(tp), (1, 3)).sum() * vml for tp in tps], "s-", label="core (enh. + necrosis)")
    rt = case.rt_start_day
    ax.axvspan(rt, rt + 40, color="orange", alpha=0.3, label="RT 60 Gy / 30 fx")
    ax.set_xlabel("days from planning scan")
    ax.set_ylabel("volume (mL)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=20)
    args = ap.parse_args(argv)
    result = {"machine_cpus": __import__("os").cpu_count()}
    t = time.perf_counter()
    load_template(2.0)
    result["template_load_s"] = round(time.perf_counter() - t, 2)
    result.update(bench_patient())
    result["solver"] = bench_solver()
    result["realism"] = realism(args.patients)
    figure(ROOT / "Resources/SampleData/sample_patient/case.json", ROOT / "docs/images/cohort_timeline.png")
    out = ROOT / "benchmarks/results/cohort.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    summary = {k: v for k, v in result["realism"].items() if k != "patients"}
    print(json.dumps({k: v for k, v in result.items() if k != "realism"}, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
