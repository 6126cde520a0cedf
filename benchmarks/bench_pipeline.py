"""What a forecast costs around its model (issue 38): whole CLI processes against the I/O floor, alternated in one run.

Three commands, each as a fresh process, ``--rounds`` times in turn (so load drifts hit all three alike):
1. the I/O floor: start Python, read every volume the case names with SimpleITK, write the first five of them as
   float32 .nii.gz (what any forecast must do at the least);
2. ``gliomaforecast forecast CASE --day DAY --forecaster persistence`` (no network);
3. ``gliomaforecast forecast CASE --day DAY`` (the default forecaster).
Reported: the median wall time of each, persistence / floor (target <= 4x), and the default forecast against
persistence + the default model's own inference time (forecast.json ``timings.forecaster_s``, median) (target
<= +10 %). Also the import time of the forecast command's modules (``python -X importtime``, the sum of its
self times). Writes benchmarks/results/pipeline.json.

    .venv/bin/python benchmarks/bench_pipeline.py [--case CASE.json] [--day 400] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _measure import console_script, timed_run, write_result

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "Resources" / "SampleData" / "sample_patient" / "case.json"

FLOOR = """
import json, sys
from pathlib import Path
import SimpleITK as sitk
case = Path(sys.argv[1]); out = Path(sys.argv[2])
data = json.loads(case.read_text())
names = [v for t in data["timepoints"] for k in ("images", "gtv", "labels")
         for v in (t.get(k).values() if isinstance(t.get(k), dict) else [t.get(k)]) if v]
names += [v for k in ("brain_mask", "dose") if isinstance(v := data.get(k), str)]
names += [v for v in (data.get("tissue") or {}).values() if isinstance(v, str)]
images = [sitk.ReadImage(str(case.parent / n)) for n in names]
out.mkdir()
for i, image in enumerate(images[:5]):
    sitk.WriteImage(sitk.Cast(image, sitk.sitkFloat32), str(out / f"volume{i}.nii.gz"), True)
print(len(names))
"""


def _import_seconds(cmd: list[str]) -> tuple[float, list[tuple[str, float]]]:
    """Sum of the self import times (s) of one run of ``cmd`` under ``-X importtime``, and the ten costliest
    top-level packages."""
    done = subprocess.run([sys.executable, "-X", "importtime", *cmd], capture_output=True, text=True)
    per: dict[str, float] = {}
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            top = m[2].split(".")[0]
            per[top] = per.get(top, 0.0) + int(m[1]) / 1e6
    top10 = sorted(per.items(), key=lambda kv: -kv[1])[:10]
    return sum(per.values()), [(k, round(v, 3)) for k, v in top10]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", type=Path, default=SAMPLE)
    ap.add_argument("--day", default="400")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_pipeline-"))
    runs: dict[str, list[float]] = {"floor": [], "persistence": [], "default": []}
    inference: list[float] = []
    forecast = [console_script("gliomaforecast"), "forecast", str(args.case), "--day", args.day]
    try:
        for r in range(args.rounds):
            for name in runs:
                out = work / f"{name}-{r}"
                cmd = {
                    "floor": [sys.executable, "-c", FLOOR, str(args.case), str(out)],
                    "persistence": [*forecast, "--forecaster", "persistence", "--out", str(out)],
                    "default": [*forecast, "--out", str(out)],
                }[name]
                runs[name].append(timed_run(cmd))
                if name == "default":
                    inference.append(json.loads((out / "forecast.json").read_text())["timings"]["forecaster_s"])
                shutil.rmtree(out, ignore_errors=True)
            print(", ".join(f"{k} {v[-1]:.2f} s" for k, v in runs.items()), flush=True)
        imports, top = _import_seconds(
            [forecast[0], *forecast[1:], "--forecaster", "persistence", "--out", str(work / "imports")]
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    model_s = statistics.median(inference)
    result = {
        "case": str(args.case.relative_to(ROOT)) if args.case.is_relative_to(ROOT) else str(args.case),
        "day": args.day,
        "rounds": args.rounds,
        "seconds": {k: [round(s, 3) for s in v] for k, v in runs.items()},
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "persistence_over_floor": round(med["persistence"] / med["floor"], 2),
        "persistence_target": 4.0,
        "default_model_inference_s": round(model_s, 3),
        "default_over_persistence_plus_inference": round(med["default"] / (med["persistence"] + model_s) - 1.0, 4),
        "default_target": 0.10,
        "forecast_import_s": round(imports, 3),
        "forecast_import_top": top,
        "note": "wall time of whole processes, medians of alternated rounds; import time: -X importtime self times",
    }
    path = write_result("pipeline", result)
    print(
        f"floor {med['floor']:.2f} s, persistence {med['persistence']:.2f} s "
        f"({result['persistence_over_floor']:.1f}x, target <= 4x), default {med['default']:.2f} s "
        f"(persistence + inference {model_s:.2f} s {100 * result['default_over_persistence_plus_inference']:+.1f} %, "
        f"target <= +10 %); imports {imports:.2f} s; wrote {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
