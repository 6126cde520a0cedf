"""The recurrence U-Net ensemble forecast of the sample patient on CPU, against the evolution-field forecast of
the same patient in the same run: whole ``run_forecast`` (inputs, every ensemble member through onnxruntime,
post-processing, both CTVs), first call (sessions opened, models verified) and median of repeated calls, peak
memory of a call above the resident set before it, and the process's peak resident set (imports, case and the
first recurrence-unet forecast, which runs first).

Run: .venv/bin/python benchmarks/bench_recurrence_unet.py  -> prints a table, writes
benchmarks/results/recurrence_unet.json
"""

from __future__ import annotations

import time
from pathlib import Path

import onnxruntime as ort

from _measure import _rss_kib, measure, write_result
from gliomaforecast.io.case import load_case
from gliomaforecast.forecast import run_forecast
from gliomaforecast.models import load_families

CASE = Path(__file__).resolve().parents[1] / "Resources" / "SampleData" / "sample_patient" / "case.json"
DAY = 351.0


def main() -> None:
    case = load_case(CASE)
    rows = {}
    for name in ("recurrence-unet", "evolution-field"):
        t0 = time.perf_counter()
        run_forecast(load_case(CASE), DAY, name, n_bootstrap=20)  # cold: a new case, sessions opened
        cold = time.perf_counter() - t0
        if name == "recurrence-unet":  # runs first: the high-water mark of the whole process so far
            process_peak = _rss_kib("VmHWM") / 1024.0
        seconds, peak, fc = measure(lambda: run_forecast(load_case(CASE), DAY, name, n_bootstrap=20), 3)
        rows[name] = {"first_call_seconds": round(cold, 3), "median_seconds": round(seconds, 3),
                      "peak_extra_mib": round(peak, 1), "forecaster_seconds": round(fc.timings["forecaster_s"], 3)}
        print(f"{name:16s} first call {cold:6.2f} s   median {seconds:6.2f} s   forecaster {fc.timings['forecaster_s']:.2f} s"
              f"   peak +{peak:.0f} MiB")
    members = len(load_families()["recurrence-unet"].members)
    print(f"recurrence-unet: {members} members; process peak resident set {process_peak:.0f} MiB")
    path = write_result("recurrence_unet", {
        "case": str(CASE.relative_to(CASE.parents[3])), "grid_shape": list(case.grid.shape),
        "spacing_mm": list(case.grid.spacing), "members": members, "forecasts": rows,
        "process_peak_mib": round(process_peak, 1), "onnxruntime": ort.__version__,
        "ratio_recurrence_over_evolution_field": round(rows["recurrence-unet"]["median_seconds"]
                                                       / rows["evolution-field"]["median_seconds"], 2),
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
