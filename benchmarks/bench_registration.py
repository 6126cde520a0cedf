"""Issue 30's registration figure: known rigid motions (rotation up to 10 degrees about a random axis through the
grid's centre, translation up to 20 mm in a random direction, drawn per session from SEED) applied to every later
session of the sample patient and of 10 virtual patients (generated into a temporary folder: ``generate_cohort(10,
4242, tmp, spacing=2.0, follow_up="dense")``, about 2 minutes), each session in another intensity scaling (gain
0.3..3, offset -100..300), then registered back onto the planning scan (gliomaforecast.preparation.registration,
rigid). Target registration error (TRE, mm) over the planning brain mask: the distance between where the true
motion and the estimated transform send each brain voxel. Configurations: T1 with the brain mask (the headline),
FLAIR with the brain mask, T1 without a mask. Target: median < 0.5 mm and worst < 1.5 mm.

Also measured: the quality of sessions that must be refused (another patient's last T1 onto each planning T1; the
sample's last T1 block-shuffled; noise), against the good registrations' quality and MIN_QUALITY.

Run: .venv/bin/python benchmarks/bench_registration.py [--cohort DIR]  -> benchmarks/results/registration.json
(``--cohort`` reuses a cohort generated with the settings above instead of generating one.)
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _measure import block_shuffled, write_result

from gliomaforecast.errors import InputError
from gliomaforecast.geometry import Grid
from gliomaforecast.io.case import Case, load_case
from gliomaforecast.preparation import registration as reg
from gliomaforecast.preparation.motion import motion_size, moved_session, random_rigid_motion

REPO = Path(__file__).resolve().parents[1]

SAMPLE = REPO / "Resources" / "SampleData" / "sample_patient" / "case.json"
SEED = 3030
COHORT = {"n": 10, "seed": 4242, "spacing": 2.0, "follow_up": "dense"}
CONFIGS = {"t1, brain mask": ("t1", True), "flair, brain mask": ("flair", True), "t1, no mask": ("t1", False)}
TARGET_MEDIAN_MM, TARGET_WORST_MM = 0.5, 1.5


def _sessions(cases: dict[str, Case]) -> list[dict]:
    """Every later session with its drawn motion and intensity scaling (one draw per session, in order)."""
    rng = np.random.default_rng(SEED)
    out = []
    for pid, case in cases.items():
        for tp in case.timepoints[1:]:
            motion = random_rigid_motion(rng, case.grid)
            gain, offset = float(rng.uniform(0.3, 3.0)), float(rng.uniform(-100.0, 300.0))
            out.append({"patient": pid, "day": tp.day, "tp": tp, "motion": motion, "gain": gain, "offset": offset})
    return out


def _register_session(case: Case, s: dict, modality: str, masked: bool) -> dict:
    grid, brain = case.grid, case.brain_mask()
    assert brain is not None
    moved, moved_grid = moved_session(case.image(s["tp"], modality), grid, s["motion"])
    moved = moved * s["gain"] + s["offset"]
    fixed = case.image(case.timepoints[0], modality)
    degrees, shift = motion_size(s["motion"], grid)
    row = {
        "patient": s["patient"],
        "day": s["day"],
        "rotation_deg": round(degrees, 3),
        "shift_mm": round(shift, 3),
        "gain": round(s["gain"], 4),
        "offset": round(s["offset"], 2),
    }
    t0 = time.perf_counter()
    try:
        result = reg.register(fixed, grid, moved, moved_grid, "rigid", brain if masked else None)
    except InputError as exc:  # a good session refused: counted as a failure, with infinite TRE
        return {
            **row,
            "refused": str(exc),
            "tre_median_mm": float("inf"),
            "tre_max_mm": float("inf"),
            "quality": float("nan"),
            "metric": float("nan"),
            "iterations": 0,
            "seconds": round(time.perf_counter() - t0, 3),
        }
    seconds = time.perf_counter() - t0
    tre = reg.target_registration_error(s["motion"], result.transform, grid, brain)
    return {
        **row,
        "tre_median_mm": round(tre["median_mm"], 4),
        "tre_max_mm": round(tre["max_mm"], 4),
        "quality": round(result.quality, 4),
        "metric": round(result.metric, 4),
        "iterations": result.iterations,
        "seconds": round(seconds, 3),
    }


def _summary(rows: list[dict]) -> dict:
    medians = [r["tre_median_mm"] for r in rows]
    worst = max(r["tre_max_mm"] for r in rows)
    return {
        "sessions": len(rows),
        "tre_median_mm": round(statistics.median(medians), 4),
        "tre_largest_session_median_mm": round(max(medians), 4),
        "tre_worst_mm": round(worst, 4),
        "meets_target": statistics.median(medians) < TARGET_MEDIAN_MM and worst < TARGET_WORST_MM,
        "seconds_per_registration_median": round(statistics.median(r["seconds"] for r in rows), 3),
        "seconds_per_registration_max": round(max(r["seconds"] for r in rows), 3),
        "quality_min": round(min(r["quality"] for r in rows if "refused" not in r), 4),
        "refused": sum("refused" in r for r in rows),
    }


def _refused_quality(fixed_case: Case, moving: np.ndarray, moving_grid: Grid) -> tuple[float, float]:
    """The quality (and seconds) of a registration that must be refused; NaN when it is accepted."""
    fixed = fixed_case.image(fixed_case.timepoints[0], "t1")
    t0 = time.perf_counter()
    try:
        result = reg.register(fixed, fixed_case.grid, moving, moving_grid, "rigid", fixed_case.brain_mask())
    except InputError as exc:
        found = re.search(r"quality (-?\d+\.\d+)", str(exc))
        return (float(found.group(1)) if found else float("nan")), time.perf_counter() - t0
    print(f"  ACCEPTED (quality {result.quality:.3f})", flush=True)
    return result.quality, time.perf_counter() - t0


def _refusals(cases: dict[str, Case]) -> list[dict]:
    pids = list(cases)
    rows = []
    for i, pid in enumerate(pids):
        other = cases[pids[(i + 1) % len(pids)]]
        moving = other.image(other.timepoints[-1], "t1")
        q, sec = _refused_quality(cases[pid], moving, other.grid)
        rows.append(
            {
                "fixed": pid,
                "moving": f"{pids[(i + 1) % len(pids)]} last t1 (another patient)",
                "quality": round(q, 4),
                "seconds": round(sec, 3),
            }
        )
        print(f"refused? {rows[-1]}", flush=True)
    sample = cases["VP-SAMPLE"]
    last = sample.image(sample.timepoints[-1], "t1")
    rng = np.random.default_rng(SEED)
    for name, moving in (
        ("block-shuffled last t1 (8 mm cubes)", block_shuffled(last, 4, rng)),
        ("left-right mirrored last t1", np.ascontiguousarray(last[:, :, ::-1])),
        ("gaussian noise", rng.normal(300.0, 80.0, last.shape).astype(np.float32)),
    ):
        q, sec = _refused_quality(sample, moving, sample.grid)
        rows.append({"fixed": "VP-SAMPLE", "moving": name, "quality": round(q, 4), "seconds": round(sec, 3)})
        print(f"refused? {rows[-1]}", flush=True)
    return rows


def _run(cohort_dir: Path) -> dict:
    cases = {"VP-SAMPLE": load_case(SAMPLE)}
    for path in sorted(cohort_dir.glob("VP-*/case.json")):
        cases[path.parent.name] = load_case(path)
    sessions = _sessions(cases)
    results: dict[str, list[dict]] = {}
    for config, (modality, masked) in CONFIGS.items():
        rows = results.setdefault(config, [])
        for s in sessions:
            rows.append(_register_session(cases[s["patient"]], s, modality, masked))
            r = rows[-1]
            print(
                f"{config:18s} {r['patient']} day {r['day']:5.0f}: {r['rotation_deg']:5.2f} deg "
                f"{r['shift_mm']:5.2f} mm  TRE median {r['tre_median_mm']:.3f} max {r['tre_max_mm']:.3f} mm  "
                f"quality {r['quality']:.3f}  {r['seconds']:.1f} s",
                flush=True,
            )
    summary = {config: _summary(rows) for config, rows in results.items()}
    summary["all"] = _summary([r for rows in results.values() for r in rows])
    refused = _refusals(cases)
    good_min = summary["all"]["quality_min"]
    bad_max = max(r["quality"] for r in refused)
    return {
        "method": {
            "kind": "rigid",
            "histogram_bins": reg.HISTOGRAM_BINS,
            "shrink_factors": reg.SHRINK_FACTORS,
            "smoothing_sigmas_mm": reg.SMOOTHING_SIGMAS_MM,
            "max_samples": reg.MAX_SAMPLES,
            "sampling_seed": reg.SAMPLING_SEED,
            "max_iterations_per_level": reg.MAX_ITERATIONS,
            "quality": reg.QUALITY,
            "min_quality": reg.MIN_QUALITY,
        },
        "motions": {
            "seed": SEED,
            "max_rotation_deg": 10.0,
            "max_translation_mm": 20.0,
            "gain": [0.3, 3.0],
            "offset": [-100.0, 300.0],
            "cohort": COHORT,
            "largest_rotation_deg": max(r["rotation_deg"] for r in results["t1, brain mask"]),
            "largest_shift_mm": max(r["shift_mm"] for r in results["t1, brain mask"]),
        },
        "target": {"tre_median_mm_below": TARGET_MEDIAN_MM, "tre_worst_mm_below": TARGET_WORST_MM},
        "summary": summary,
        "quality_separation": {
            "good_min": good_min,
            "refused_max": bad_max,
            "min_quality": reg.MIN_QUALITY,
            "separates": bad_max < reg.MIN_QUALITY <= good_min,
        },
        "refused": refused,
        "sessions": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, help="a cohort generated with COHORT's settings (else generated)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    if args.cohort:
        payload = _run(args.cohort)
    else:
        from gliomaforecast_training.cohort.cohort import generate_cohort

        with tempfile.TemporaryDirectory() as tmp:
            cohort = Path(tmp) / "cohort"
            generate_cohort(
                COHORT["n"], COHORT["seed"], cohort, spacing=COHORT["spacing"], follow_up=COHORT["follow_up"]
            )
            print(f"cohort generated in {time.perf_counter() - t0:.0f} s", flush=True)
            payload = _run(cohort)
    payload["wall_seconds"] = round(time.perf_counter() - t0, 1)
    for config, s in payload["summary"].items():
        print(
            f"{config:18s} n={s['sessions']:3d}  TRE median {s['tre_median_mm']:.3f} mm, worst "
            f"{s['tre_worst_mm']:.3f} mm ({'meets' if s['meets_target'] else 'MISSES'} < 0.5 / < 1.5), "
            f"{s['seconds_per_registration_median']:.1f} s per registration (max "
            f"{s['seconds_per_registration_max']:.1f}), lowest quality {s['quality_min']:.3f}"
        )
    print(
        f"quality: good >= {payload['quality_separation']['good_min']:.3f}, refused <= "
        f"{payload['quality_separation']['refused_max']:.3f}, MIN_QUALITY {reg.MIN_QUALITY}"
    )
    print(write_result("registration", payload))


if __name__ == "__main__":
    main()
