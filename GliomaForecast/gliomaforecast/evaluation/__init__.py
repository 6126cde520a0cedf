"""Evaluation of target volumes against a later recurrence (PREDICT-GBM, "Recurrence definitions and
evaluation"), plus the probability-map and image metrics of :mod:`.probability` and :mod:`.images`, re-exported here
so that ``evaluation`` is the one place to look for a metric. The package also holds the protocols
(:mod:`.protocols`), the cohort runner (:mod:`.cohort`), its figures (:mod:`.figures`) and the leaderboard
(:mod:`.leaderboard`).

Layer 5: the cohort runner imports the orchestration and the output figures; the metrics import only the base.

Masks are bool (or 0/1) arrays in (z, y, x) order with ``spacing`` in mm; volumes are in mL
(2D: mm^2); distances in mm. Empty-set conventions are stated per function.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..checks import check_spacing
from ..targets.standard_plan import tumor_core
from .images import psnr, ssim
from .probability import (
    ReliabilityDiagram,
    bce,
    dice_at_threshold,
    expected_calibration_error,
    kl_divergence,
    pearson_r,
    plot_reliability_diagram,
    reliability_diagram,
    rmse,
)

__all__ = [
    "RECURRENCE_LABELS",
    "recurrence_mask",
    "tumor_core",
    "coverage",
    "dice",
    "hd95",
    "volume_ml",
    "missed_volume_ml",
    "PlanComparison",
    "compare_plans",
    "ReliabilityDiagram",
    "bce",
    "dice_at_threshold",
    "expected_calibration_error",
    "kl_divergence",
    "pearson_r",
    "plot_reliability_diagram",
    "reliability_diagram",
    "rmse",
    "psnr",
    "ssim",
]

# BraTS labels: 1 necrosis, 2 edema, 3 enhancing tumor, 4 resection cavity.
RECURRENCE_LABELS: dict[str, tuple[int, ...]] = {"enhancing": (3,), "enhancing+necrosis": (1, 3)}


def _binary(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != bool:
        if not np.all(np.isin(np.unique(mask), (0, 1))):
            raise ValueError(f"{name} must be binary (0/1 or bool)")
        mask = mask.astype(bool)
    return mask


def _pair(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = _binary(a, name_a), _binary(b, name_b)
    if a.shape != b.shape:
        raise ValueError(f"{name_a} {a.shape} and {name_b} {b.shape} are not on one grid")
    return a, b


def recurrence_mask(labels: np.ndarray, definition: str = "enhancing") -> np.ndarray:
    """The recurrence as a bool mask from a BraTS label map: ``"enhancing"`` (label 3) or
    ``"enhancing+necrosis"`` (labels 1 and 3). Edema (2) and resection cavity (4) never count."""
    if definition not in RECURRENCE_LABELS:
        raise ValueError(f"unknown recurrence definition {definition!r}; use one of {', '.join(RECURRENCE_LABELS)}")
    return np.isin(np.asarray(labels), RECURRENCE_LABELS[definition])


def coverage(target: np.ndarray, recurrence: np.ndarray) -> float:
    """Recurrence coverage |target ∩ recurrence| / |recurrence| in [0, 1]; NaN when the recurrence is
    empty (there is nothing to cover)."""
    target, recurrence = _pair(target, recurrence, "target", "recurrence")
    n = int(np.count_nonzero(recurrence))
    return float(np.count_nonzero(target & recurrence)) / n if n else math.nan


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap 2|A ∩ B| / (|A| + |B|) in [0, 1]; 1.0 when both masks are empty (they agree)."""
    a, b = _pair(a, b, "mask a", "mask b")
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return 2.0 * float(np.count_nonzero(a & b)) / total if total else 1.0


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it (the grid edge counts as outside)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hd95(a: np.ndarray, b: np.ndarray, spacing: Sequence[float]) -> float:
    """Symmetric 95th-percentile Hausdorff distance (mm) between the surfaces of two masks.

    Surface voxels are those with a face neighbour outside the mask; distances are between voxel
    centres on ``spacing`` (mm). As MONAI's ``compute_hausdorff_distance(percentile=95)``: the larger
    of the two directed 95th percentiles. NaN when either mask is empty.
    """
    a, b = _pair(a, b, "mask a", "mask b")
    spacing = check_spacing(spacing, a.ndim)
    if not a.any() or not b.any():
        return math.nan
    sa, sb = _surface(a), _surface(b)
    box = ndimage.find_objects((sa | sb).astype(np.uint8))[0]  # every surface voxel lies inside
    sa, sb = sa[box], sb[box]
    to_b = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
    to_a = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
    return float(max(np.percentile(to_b, 95), np.percentile(to_a, 95)))


def volume_ml(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Volume of a mask in mL (voxel count x voxel volume in mm^3 / 1000); 2D masks give mm^2."""
    mask = _binary(mask, "mask")
    voxel = float(np.prod([float(s) for s in spacing]))
    return int(np.count_nonzero(mask)) * (voxel / 1000.0 if mask.ndim == 3 else voxel)


def missed_volume_ml(target: np.ndarray, recurrence: np.ndarray, spacing: Sequence[float]) -> float:
    """Volume (mL) of the recurrence left outside the target."""
    target, recurrence = _pair(target, recurrence, "target", "recurrence")
    return volume_ml(recurrence & ~target, spacing)


@dataclass(frozen=True)
class PlanComparison:
    """Paired comparison of per-patient coverage, model plan vs standard plan.

    ``statistic`` and ``p_value`` are scipy's two-sided Wilcoxon signed-rank test (zero differences
    dropped, as in Wilcoxon's original method); ``effect_size`` is the matched-pairs rank-biserial
    correlation r = (R+ - R-) / (R+ + R-) in [-1, 1] (positive: the model covers more);
    ``rows`` is the per-patient table (patient_id, model, standard, difference).
    """

    n: int
    statistic: float
    p_value: float
    effect_size: float
    median_difference: float
    mean_model: float
    mean_standard: float
    n_excluded: int
    rows: list[dict] = field(default_factory=list)

    def write_csv(self, path: str | Path) -> Path:
        """Write the per-patient table as CSV (coverage as fractions in [0, 1])."""
        path = Path(path)
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["patient_id", "model", "standard", "difference"])
            writer.writeheader()
            writer.writerows(self.rows)
        return path


def compare_plans(
    model_coverage: Sequence[float], standard_coverage: Sequence[float], patient_ids: Sequence[str] | None = None
) -> PlanComparison:
    """Cohort comparison of recurrence coverage: paired Wilcoxon signed-rank test (scipy) of the model
    plan against the standard plan, with the rank-biserial effect size and the per-patient table.

    Patients whose coverage is NaN in either plan (empty recurrence) are listed in the table but left
    out of the statistics (``n_excluded``). Fewer than one non-zero difference is a ``ValueError``.
    """
    model = np.asarray(model_coverage, dtype=np.float64)
    standard = np.asarray(standard_coverage, dtype=np.float64)
    if model.shape != standard.shape or model.ndim != 1:
        raise ValueError(f"model ({model.shape}) and standard ({standard.shape}) coverage must be paired 1D lists")
    ids = [str(i) for i in patient_ids] if patient_ids is not None else [str(i) for i in range(model.size)]
    if len(ids) != model.size:
        raise ValueError(f"{len(ids)} patient ids for {model.size} pairs")
    rows = [
        {"patient_id": pid, "model": m, "standard": s, "difference": m - s}
        for pid, m, s in zip(ids, model.tolist(), standard.tolist())
    ]
    valid = ~(np.isnan(model) | np.isnan(standard))
    diff = model[valid] - standard[valid]
    nonzero = diff[diff != 0]
    if nonzero.size == 0:
        raise ValueError("no patient has a coverage difference: the signed-rank test is undefined")
    from scipy import stats  # 0.2 s to import: only where a cohort is compared, not on every report

    test = stats.wilcoxon(model[valid], standard[valid], zero_method="wilcox", alternative="two-sided")
    ranks = stats.rankdata(np.abs(nonzero))
    effect = float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())
    return PlanComparison(
        n=int(valid.sum()),
        statistic=float(test.statistic),
        p_value=float(test.pvalue),
        effect_size=effect,
        median_difference=float(np.median(diff)),
        mean_model=float(model[valid].mean()),
        mean_standard=float(standard[valid].mean()),
        n_excluded=int((~valid).sum()),
        rows=rows,
    )
