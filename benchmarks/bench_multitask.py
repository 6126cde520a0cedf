"""Whole-case forecast of the sample patient with the multi-task diffusion forecaster vs the evolution-field
forecaster, in one run: wall time (median of timed calls after an untimed first call) and peak extra memory.

Both go through ``run_forecast`` (case loading, growth fit, forecaster, both CTVs) 120 days past the last scan with
the default 8 samples; the growth fit is shared (``growth=``) so that the forecasters' own work is compared.

Run: .venv/bin/python benchmarks/bench_multitask.py  -> prints a table, writes benchmarks/results/multitask.json
"""

from __future__ import annotations

import os
from pathlib import Path

from _measure import measure, write_result
from gliomaforecast import defaults
from gliomaforecast.io.case import load_case
from gliomaforecast.forecast import fit_case_growth, run_forecast

CASE = Path(__file__).resolve().parents[1] / "Resources" / "SampleData" / "sample_patient" / "case.json"
HORIZON_DAYS = 120.0


def main() -> None:
    case = load_case(CASE)
    day = case.timepoints[-1].day + HORIZON_DAYS
    growth = fit_case_growth(case, defaults.N_BOOTSTRAP, defaults.SEED)
    rows = {}
    for name in ("multitask-diffusion", "evolution-field"):
        seconds, peak, fc = measure(lambda n=name: run_forecast(CASE, day, n, growth=growth), 3)
        rows[name] = {"seconds": round(seconds, 2), "peak_extra_mib": round(peak, 1),
                      "forecaster_seconds": round(fc.timings["forecaster_s"], 2), "notes": fc.output.notes}
    ratio = rows["multitask-diffusion"]["seconds"] / rows["evolution-field"]["seconds"]
    for name, r in rows.items():
        print(f"{name:22s} {r['seconds']:7.2f} s  peak +{r['peak_extra_mib']:7.1f} MiB  (forecaster {r['forecaster_seconds']:.2f} s)")
    print(f"ratio multitask-diffusion / evolution-field: {ratio:.1f}x")
    path = write_result("multitask", {"case": "sample_patient", "grid": list(case.grid.shape),
                                      "horizon_days": HORIZON_DAYS, "samples": defaults.SAMPLES,
                                      "cpus": os.cpu_count(), "rows": rows, "time_ratio": round(ratio, 2)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
