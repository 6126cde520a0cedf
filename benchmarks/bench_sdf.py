"""Signed distance of a 240 x 240 x 155 mask: gliomaforecast.sdf vs SimpleITK's SignedMaurerDistanceMap
and scipy's exact EDT (the contract's definition), measured in one run.

Run: .venv/bin/python benchmarks/bench_sdf.py  -> prints a table, writes benchmarks/results/sdf.json
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from _measure import measure, write_result
from gliomaforecast.sdf import signed_distance

SHAPE = (155, 240, 240)  # z, y, x: the BraTS grid


def tumor_mask(shape: tuple[int, ...], spacing: tuple[float, ...], seed: int = 0) -> np.ndarray:
    """A lobulated tumor of about 60 mL: a union of random ellipsoids near the centre."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij", sparse=True)
    centre = np.array([n * s / 2 for n, s in zip(shape, spacing)])
    mask = np.zeros(shape, bool)
    for _ in range(6):
        c = centre + rng.normal(0, 10, 3)
        r = rng.uniform(12, 22, 3)
        mask |= sum(((g - ci) / ri) ** 2 for g, ci, ri in zip(grids, c, r)) <= 1
    return mask


def scipy_reference(mask: np.ndarray, spacing) -> np.ndarray:
    return (ndimage.distance_transform_edt(~mask, sampling=spacing)
            - ndimage.distance_transform_edt(mask, sampling=spacing)).astype(np.float32)


def sitk_maurer(mask: np.ndarray, spacing) -> np.ndarray:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(reversed(spacing)))
    out = sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    return sitk.GetArrayFromImage(out)


def main() -> None:
    rows = {}
    for spacing in [(1.0, 1.0, 1.0), (5.0, 1.0, 1.0)]:
        shape = SHAPE if spacing[0] == 1.0 else (31, 240, 240)
        mask = tumor_mask(shape, spacing)
        t_ours, m_ours, ours = measure(lambda: signed_distance(mask, spacing))
        t_sitk, m_sitk, maurer = measure(lambda: sitk_maurer(mask, spacing))
        t_scipy, m_scipy, ref = measure(lambda: scipy_reference(mask, spacing))
        err = float(np.abs(ours.astype(np.float64) - ref).max())
        # Maurer's inside distances are to the contour (0 on boundary voxels), not the contract's
        maurer_err = float(np.abs(maurer.astype(np.float64) - ref).max())
        key = "x".join(f"{s:g}" for s in spacing[::-1]) + " mm"
        rows[key] = {
            "shape_zyx": list(shape), "tumor_ml": float(mask.sum() * np.prod(spacing) / 1000),
            "seconds": {"gliomaforecast": t_ours, "sitk_maurer": t_sitk, "scipy_edt_x2": t_scipy},
            "peak_extra_mib": {"gliomaforecast": m_ours, "sitk_maurer": m_sitk, "scipy_edt_x2": m_scipy},
            "ratio_vs_sitk": t_ours / t_sitk, "ratio_vs_scipy": t_ours / t_scipy,
            "max_abs_error_mm_vs_contract": err, "sitk_maurer_max_abs_diff_mm_vs_contract": maurer_err,
        }
        print(f"{key:>12}: ours {t_ours:.3f}s ({m_ours:.0f} MiB) | SimpleITK Maurer {t_sitk:.3f}s ({m_sitk:.0f} MiB)"
              f" | scipy 2xEDT {t_scipy:.3f}s ({m_scipy:.0f} MiB) | ours/sitk {t_ours / t_sitk:.2f}x,"
              f" ours/scipy {t_ours / t_scipy:.2f}x | max |err| {err:.2e} mm")
    path = write_result("sdf", {"benchmark": "signed distance, 240x240x155", "results": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
