"""Single-scan forecast of the sample patient's FIRST scan with the latent diffusion forecaster vs the persistence
and evolution-field forecasters, in one run: wall time (median of timed calls after an untimed first call) and peak
extra memory.

The latent diffusion and persistence forecasts run on a one-scan case (the sample patient's day-0 scan alone) 120
days later, through ``run_forecast`` (case loading, growth held constant, forecaster, both CTVs) with the default 8
samples, the outcome unknown (unconditional: one network pass per step) and responder (classifier-free guidance: a
doubled batch). evolution-field needs two scans: it forecasts the sample's first two scans (days 0 and 92) 120 days
past day 92 as the reference of a learned forecaster's cost.

Run: .venv/bin/python benchmarks/bench_latent_diffusion.py  -> prints a table, writes
benchmarks/results/latent_diffusion.json
"""

from __future__ import annotations

import os
from pathlib import Path

from _measure import measure, write_result
from gliomaforecast import defaults
from gliomaforecast.io.case import load_case
from gliomaforecast.evaluation.protocols import prefix_case
from gliomaforecast.forecast import fit_case_growth, run_forecast

CASE = Path(__file__).resolve().parents[1] / "Resources" / "SampleData" / "sample_patient" / "case.json"
HORIZON_DAYS = 120.0
REPEATS = 1


def main() -> None:
    full = load_case(CASE)
    runs = {"latent-diffusion (unknown)": ("latent-diffusion", 1, {"outcome": "unknown"}),
            "latent-diffusion (responder, CFG)": ("latent-diffusion", 1, {"outcome": "responder"}),
            "persistence": ("persistence", 1, None),
            "evolution-field (2 scans)": ("evolution-field", 2, None)}
    rows = {}
    for label, (name, n_scans, settings) in runs.items():
        case = prefix_case(full, n_scans)
        day = case.timepoints[-1].day + HORIZON_DAYS
        growth = fit_case_growth(case, defaults.N_BOOTSTRAP, defaults.SEED)
        seconds, peak, fc = measure(lambda: run_forecast(case, day, name, growth=growth, settings=settings), REPEATS)
        rows[label] = {"seconds": round(seconds, 2), "peak_extra_mib": round(peak, 1),
                       "forecaster_seconds": round(fc.timings["forecaster_s"], 2), "notes": fc.output.notes}
    ref = rows["persistence"]["seconds"]
    for label, r in rows.items():
        r["ratio_to_persistence"] = round(r["seconds"] / ref, 1)
        print(f"{label:36s} {r['seconds']:7.2f} s  peak +{r['peak_extra_mib']:7.1f} MiB  (forecaster "
              f"{r['forecaster_seconds']:.2f} s)  {r['ratio_to_persistence']:.1f}x persistence")
    path = write_result("latent_diffusion", {"case": "sample_patient, first scan (day 0)", "grid": list(full.grid.shape),
                                             "horizon_days": HORIZON_DAYS, "samples": defaults.SAMPLES,
                                             "cpus": os.cpu_count(), "repeats": REPEATS, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
