"""Target tumour burdens of the guided DDIM, per slice and generation, from the growth model (numpy + scipy).

Mechanistic learning (METHODS.md section 2): the burden each generated slice is guided to is the growth model's
burden at the target day, drawn from its bootstrap distribution below the 90th percentile, one draw per
generation.

* A slice with enough tumour history (GTV area >= ``MIN_SLICE_AREA_MM2`` on at least ``MIN_SLICE_SCANS`` scans,
  the last one included) gets its own fit of its GTV area (mm^2) over the scan days (``burden.fit_case_slices``'s
  model, the least-squares fit + ``SLICE_BOOTSTRAP`` bootstrap refits, same RT start and noise); every other slice
  follows the whole-tumour volume fit (mL), scaled.
* Both become a ratio to the last observed value (slice area or volume): target burden = burden of the last
  scan's crop x ratio, so the target is in the regressor's units (GTV area / brain area in the crop). The 95 %
  band is the last burden x the 2.5 / 97.5 percentiles of the same bootstrap ratios (all of them). A burden
  cannot exceed 1 (the whole brain of the crop): targets and band are clipped to [0, 1].
* A slice fit that fails (the fit raises, or its prediction is not finite) falls back to the whole-tumour fit, and
  the forecast notes how many did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InputError
from ...growth.fit import GrowthFit, fit_growth
from ...io.case import Case

MIN_SLICE_AREA_MM2 = 20.0
MIN_SLICE_SCANS = 3
DRAW_PERCENTILE = 90.0
SLICE_BOOTSTRAP = 20  # bootstrap refits per slice fit (the volume fit keeps its own, 100 by default): run time


@dataclass
class BurdenTargets:
    """``targets`` (K, n) burdens per generation and slice; ``band`` (n, 2) the 2.5 / 97.5 % band; ``median``
    (n,); ``per_slice`` (n,) bool, True where the slice's own fit was used; ``failed`` slice fits that fell back;
    ``volume_ratio`` (K,) each generation's draw of the whole-tumour volume at the day / the last volume."""

    targets: np.ndarray
    band: np.ndarray
    median: np.ndarray
    per_slice: np.ndarray
    failed: int
    volume_ratio: np.ndarray


def ratio_draws(fit: GrowthFit, day: float, observed_last: float) -> np.ndarray:
    """Bootstrap ratios burden(day) / observed_last (B,), finite; InputError naming the fit's problem when none is."""
    values = np.ravel(fit.bootstrap_curves([day])) / observed_last
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise InputError(None, "growth", f"the growth fit ({fit.model}) predicts no finite burden at day {day:g}")
    return values


def draw_below(values: np.ndarray, k: int, rng: np.random.Generator, percentile: float = DRAW_PERCENTILE) -> np.ndarray:
    """``k`` draws (with replacement) from ``values`` at or below their ``percentile``."""
    keep = values[values <= np.percentile(values, percentile)]
    return rng.choice(keep if keep.size else values, size=k, replace=True)


def check_growth(fit: GrowthFit, day: float, source) -> None:
    """InputError naming the growth fit's problem when it cannot give a burden at ``day`` (days)."""
    last = float(fit.burdens[-1]) if len(fit.burdens) else float("nan")
    if not np.isfinite(last) or last <= 0:
        raise InputError(source, "growth", f"growth fit failed: the last observed burden is {last:g}; nothing to scale")
    params = np.array([getattr(fit.params, n) for n in fit.params.__dataclass_fields__], float)
    if not np.all(np.isfinite(params)):
        raise InputError(source, "growth", f"growth fit failed: non-finite parameters ({fit.model} model: {fit.note})")
    median = float(np.ravel(fit.predict([day])[0])[0])
    if not np.isfinite(median) or median < 0:
        raise InputError(source, "growth", f"growth fit failed: burden at day {day:g} is {median:g} ({fit.note})")


def slice_targets(
    case: Case, z: np.ndarray, last_burden: np.ndarray, growth: GrowthFit, day: float, k: int, seed: int
) -> BurdenTargets:
    """Targets for the crops of slices ``z`` whose last-scan burdens are ``last_burden`` (n,), ``k`` generations;
    ``growth`` is the whole-tumour volume fit (mL). Seeded by ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
    check_growth(growth, day, case.path)
    whole = ratio_draws(growth, day, float(growth.burdens[-1]))
    whole_draw = draw_below(whole, k, rng)
    pixel_mm2 = float(case.grid.spacing[1] * case.grid.spacing[2])
    areas = np.stack([case.gtv(tp)[z].sum(axis=(1, 2)) * pixel_mm2 for tp in case.timepoints])  # (scans, n)
    n = len(z)
    targets = np.repeat(whole_draw[:, None], n, axis=1) * last_burden[None, :]
    lo, med, hi = np.percentile(whole, [2.5, 50.0, 97.5])
    band = np.stack([np.full(n, lo), np.full(n, hi)], axis=1) * last_burden[:, None]
    median = med * last_burden
    per_slice = np.zeros(n, bool)
    failed = 0
    for i in range(n):
        a = areas[:, i]
        if a[-1] < MIN_SLICE_AREA_MM2 or np.count_nonzero(a >= MIN_SLICE_AREA_MM2) < MIN_SLICE_SCANS:
            continue
        try:
            fit = fit_growth(
                case.days,
                a,
                case.rt_start_day,
                n_bootstrap=SLICE_BOOTSTRAP,
                noise=growth.noise,
                seed=growth.seed,
                source=f"{case.path} (slice {int(z[i])})",
            )
            ratios = ratio_draws(fit, day, float(a[-1]))
        except (InputError, ValueError, FloatingPointError):
            failed += 1
            continue
        per_slice[i] = True
        targets[:, i] = draw_below(ratios, k, rng) * last_burden[i]
        lo, med, hi = np.percentile(ratios, [2.5, 50.0, 97.5])
        band[i] = (lo * last_burden[i], hi * last_burden[i])
        median[i] = med * last_burden[i]
    return BurdenTargets(
        np.clip(targets, 0.0, 1.0).astype(np.float32),
        np.clip(band, 0.0, 1.0),
        np.clip(median, 0.0, 1.0),
        per_slice,
        failed,
        whole_draw.astype(np.float64),
    )
