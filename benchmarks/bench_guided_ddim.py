"""Whole-case forecast of the sample patient with the growth-guided DDIM forecaster (K = 4 generations) vs the
evolution-field forecaster, in one run: wall time (median of timed calls after an untimed first call) and peak
extra memory (kernel high-water mark, so onnxruntime's allocations count).

Both go through ``run_forecast`` (case loading, growth fit, forecaster, both CTVs) 120 days past the last scan with
``--samples 4`` (guided-ddim: K = 4 generations); the whole-tumour growth fit is shared (``growth=``), the
guided forecaster's per-slice fits are part of its time.

Run: .venv/bin/python benchmarks/bench_guided_ddim.py  -> prints a table, writes benchmarks/results/guided_ddim.json
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
K = 4


def main() -> None:
    case = load_case(CASE)
    day = case.timepoints[-1].day + HORIZON_DAYS
    growth = fit_case_growth(case, defaults.N_BOOTSTRAP, defaults.SEED)
    rows = {}
    for name in ("guided-ddim", "evolution-field"):
        seconds, peak, fc = measure(lambda n=name: run_forecast(CASE, day, n, samples=K, growth=growth), 2)
        rows[name] = {"seconds": round(seconds, 2), "peak_extra_mib": round(peak, 1),
                      "forecaster_seconds": round(fc.timings["forecaster_s"], 2), "notes": fc.output.notes}
    ratio = rows["guided-ddim"]["seconds"] / rows["evolution-field"]["seconds"]
    for name, r in rows.items():
        print(f"{name:16s} {r['seconds']:7.2f} s  peak +{r['peak_extra_mib']:7.1f} MiB  (forecaster {r['forecaster_seconds']:.2f} s)")
    print(f"ratio guided-ddim / evolution-field: {ratio:.1f}x")
    path = write_result("guided_ddim", {"case": "sample_patient", "grid": list(case.grid.shape),
                                        "horizon_days": HORIZON_DAYS, "samples": K, "cpus": os.cpu_count(),
                                        "load_average_1min": round(os.getloadavg()[0], 2), "rows": rows,
                                        "time_ratio": round(ratio, 2)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
