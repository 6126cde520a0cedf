"""Benchmark: standard + iso-volumetric CTV against the published platform's method (PREDICT-GBM).

Reference, measured in the same run (re-implemented here from the paper's description and the
platform's published evaluation code): the standard plan is a voxel-unit EDT of the non-tumor region
thresholded at the margin (scipy, whole grid) and clipped to the brain mask; the model plan is a stable
argsort of the float32 scores of the brain voxels keeping the last k, with the platform's fallback
(binarize the score, fade = 1 - EDT / max EDT, stable argsort again) when the top k holds non-positive
scores.

Case: 240 x 240 x 155 voxels at 1 mm (the SRI24 atlas grid), an ellipsoidal brain, an irregular tumor
core, and a forecast score map. Scenario "no ties": a smooth score ranked to distinct float32 values
with the GTV on top, where both methods must agree voxel for voxel. Scenario "sparse": the score is
zero outside a small forecast region, so both methods run their distance fill (outputs differ by design:
the reference breaks fade ties towards the highest flat index; we use exact mm distances and the
lowest index).

Run: .venv/bin/python benchmarks/bench_ctv.py   (writes benchmarks/results/ctv.json)
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from gliomaforecast import sdf
from gliomaforecast.targets import ctv
from gliomaforecast.evaluation import dice

SHAPE = (155, 240, 240)
SPACING = (1.0, 1.0, 1.0)
MARGIN = 15.0
REPEATS = 3


# --- the reference method -------------------------------------------------------------------------

def reference_standard(core: np.ndarray, brain: np.ndarray, margin: float) -> np.ndarray:
    plan = ndimage.distance_transform_edt(~core) <= margin  # voxel units
    plan &= brain
    return plan


def _fade(binary: np.ndarray) -> np.ndarray:
    distance = ndimage.distance_transform_edt(~binary)
    fade = 1.0 - distance / float(distance.max())
    fade[binary] = 1.0
    return fade.astype(np.float32)


def reference_topk(scores: np.ndarray, k: int, brain: np.ndarray) -> np.ndarray:
    candidates = np.flatnonzero(brain)
    s = np.nan_to_num(scores.astype(np.float32).flat[candidates], nan=-np.inf)
    order = np.argsort(s, kind="stable")
    out = np.zeros(scores.shape, dtype=bool)
    out.flat[candidates[order[-k:]]] = True
    top = s[order[-k:]]
    if not (np.any(top <= 0) or np.any(~np.isfinite(top))):
        return out
    fade = _fade((scores > 0) & brain).flat[candidates]
    order = np.argsort(fade, kind="stable")
    out = np.zeros(scores.shape, dtype=bool)
    out.flat[candidates[order[-k:]]] = True
    return out


# --- the case -------------------------------------------------------------------------------------

def make_case(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    brain = ((z - 77) / 68.0) ** 2 + ((y - 120) / 95.0) ** 2 + ((x - 120) / 78.0) ** 2 < 1
    core = np.zeros(SHAPE, bool)
    for cz, cy, cx, r in [(70, 95, 150, 14), (78, 105, 160, 10), (64, 88, 140, 8)]:
        core |= (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 < r ** 2
    forecast_tumor = ndimage.binary_dilation(core, iterations=4) | (
        ((z - 75) / 8.0) ** 2 + ((y - 120) / 30.0) ** 2 + ((x - 140) / 8.0) ** 2 < 1)
    p = sdf.tumor_probability(forecast_tumor, SPACING).astype(np.float64)
    p += core + rng.random(SHAPE) * 1e-9  # GTV on top, ties broken at random
    order = np.argsort(p, axis=None)
    smooth = np.empty(p.size, dtype=np.float32)
    smooth[order] = np.linspace(1e-3, 1.0, p.size, dtype=np.float64).astype(np.float32)
    smooth = smooth.reshape(SHAPE)
    assert np.unique(smooth[brain]).size == int(brain.sum()), "scores must be free of ties"
    sparse = np.where(forecast_tumor & ~ndimage.binary_erosion(forecast_tumor, iterations=3), smooth, 0.0)
    return brain, core, smooth, sparse.astype(np.float32)


def timed(fn, *args, **kwargs):
    times, result = [], None
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return result, statistics.median(times)


def main() -> dict:
    brain, core, smooth, sparse = make_case()
    results: dict = {"shape_zyx": SHAPE, "spacing_mm": SPACING, "margin_mm": MARGIN, "repeats": REPEATS,
                     "statistic": "median seconds", "brain_voxels": int(brain.sum()),
                     "gtv_voxels": int(core.sum()), "machine": platform.processor() or platform.machine(),
                     "scenarios": {}}
    ref_std, t_ref_std = timed(reference_standard, core, brain, MARGIN)
    our_std, t_our_std = timed(ctv.standard_ctv, core, SPACING, MARGIN, brain_mask=brain)
    k = int(our_std.sum())
    for name, score in (("no ties", smooth), ("sparse", sparse)):
        ref_iso, t_ref_iso = timed(reference_topk, score, k, brain)
        our_iso, t_our_iso = timed(ctv.isovolumetric_ctv, score, k, SPACING, gtv=core, brain_mask=brain)
        ref_total, our_total = t_ref_std + t_ref_iso, t_our_std + t_our_iso
        results["scenarios"][name] = {
            "target_voxels": k,
            "reference_s": {"standard": t_ref_std, "topk": t_ref_iso, "total": ref_total},
            "ours_s": {"standard": t_our_std, "isovolumetric": t_our_iso, "total": our_total},
            "speedup_total": ref_total / our_total,
            "standard_identical": bool(np.array_equal(ref_std, our_std)),
            "isovolumetric_identical": bool(np.array_equal(ref_iso, our_iso)),
            "isovolumetric_voxels": {"reference": int(ref_iso.sum()), "ours": int(our_iso.sum())},
            "isovolumetric_dice": dice(ref_iso, our_iso),
        }
    _, t_geo = timed(ctv.standard_ctv, core, SPACING, MARGIN, brain_mask=brain, barrier=np.zeros(SHAPE, bool))
    results["geodesic_standard_s"] = t_geo
    out = Path(__file__).resolve().parent / "results" / "ctv.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    for name, r in results["scenarios"].items():
        print(f"{name:8s} reference {r['reference_s']['total']:.3f} s, ours {r['ours_s']['total']:.3f} s, "
              f"speed-up {r['speedup_total']:.1f}x, identical standard {r['standard_identical']}, "
              f"identical iso {r['isovolumetric_identical']}")
    print(f"geodesic standard CTV (no barrier) {t_geo:.3f} s; wrote {out}")
    return results


if __name__ == "__main__":
    main()
