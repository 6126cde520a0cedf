"""How far a case's inputs lie from the scans a learned forecaster was trained on: an out-of-distribution guard.

A learned forecaster is trustworthy only on inputs like its training scans. The guard describes the last scan
(the one every learned forecaster reads) by :data:`FEATURES`, in units no scanner gain changes:

- ``slice_mm`` / ``inplane_mm``: the grid's largest and smallest spacing (mm);
- per modality (FLAIR, T1CE): ``<m>_p10``, ``<m>_p50``, ``<m>_p90``, percentiles of the brain outside the GTV over
  the 99th percentile inside the brain (the forecasters' intensity scale, :func:`.forecasters.crops.intensity_scale`);
  ``<m>_contrast``, the GTV's median over that of the rest of the brain; ``<m>_noise``, the median absolute
  difference of neighbouring voxels along x inside the brain over the scale; ``<m>_bias``, the coefficient of
  variation of the brain outside the GTV smoothed by a ``BIAS_SIGMA_MM`` Gaussian (cut at 2 sigma; a bias field's
  imprint);
- ``brain_ml``: the brain's volume (mL; the brain mask, else the FLAIR's positive voxels).

A reference (``input_reference*.json`` in the models folder, written by ``gliomaforecast-train input-reference``)
holds each feature's median and spread over the training cohort's scans and a threshold chosen on the validation
cohort. The score of a case is the largest robust z-score of its features, ``|x - median| / spread`` (spread:
1.4826 x the median absolute deviation, at least ``SPREAD_FLOOR`` of the median's magnitude); a modality the scan
lacks is skipped. A score above the threshold makes the forecast carry a warning (docs/input-shift.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from .errors import InputError
from .io.case import Case, Timepoint
from .resources import default_models_dir

SCHEMA = "gliomaforecast.input_reference/1"
MODALITIES = ("flair", "t1ce")
INTENSITY_FEATURES = ("p10", "p50", "p90", "contrast", "noise", "bias")
FEATURES = ("slice_mm", "inplane_mm", "brain_ml") + tuple(f"{m}_{f}" for m in MODALITIES for f in INTENSITY_FEATURES)
BIAS_SIGMA_MM = 20.0
MAD_TO_SD = 1.4826
SPREAD_FLOOR = 0.05  # a feature's spread is at least 5 % of its training median (constant features: 2 mm slices)


def _intensity_features(image: np.ndarray, brain: np.ndarray, gtv: np.ndarray, spacing: tuple[float, ...]) -> dict:
    """The six intensity features of one modality (see the module docstring); ``brain`` and ``gtv`` bool masks."""
    scale = float(np.percentile(image[brain], 99.0)) if brain.any() else 0.0
    scale = scale if scale > 0 else 1.0
    normal = brain & ~gtv
    tissue = image[normal] if normal.any() else image[brain]
    p10, p50, p90 = (float(v) / scale for v in np.percentile(tissue, [10.0, 50.0, 90.0]))
    median_tissue = float(np.median(tissue))
    contrast = float(np.median(image[gtv])) / median_tissue if gtv.any() and median_tissue > 0 else 1.0
    pairs = brain[..., 1:] & brain[..., :-1]
    noise = float(np.median(np.abs(np.diff(image, axis=-1))[pairs])) / scale if pairs.any() else 0.0
    sigma = [BIAS_SIGMA_MM / s for s in spacing]
    weight = ndimage.gaussian_filter(normal.astype(np.float32), sigma, truncate=2.0)
    smooth = ndimage.gaussian_filter(np.where(normal, image, 0).astype(np.float32), sigma, truncate=2.0)
    inside = normal & (weight > 0.5)
    field = smooth[inside] / weight[inside]
    bias = float(field.std() / field.mean()) if field.size and field.mean() > 0 else 0.0
    return {"p10": p10, "p50": p50, "p90": p90, "contrast": contrast, "noise": noise, "bias": bias}


def scan_features(case: Case, tp: Timepoint | None = None) -> dict[str, float]:
    """The :data:`FEATURES` of scan ``tp`` (default the last) of ``case``; a modality the scan lacks has none."""
    tp = case.timepoints[-1] if tp is None else tp
    spacing = tuple(float(s) for s in case.grid.spacing)
    brain = case.brain_mask()
    if brain is None:
        brain = case.image(tp, "flair") > 0 if "flair" in tp.images else np.ones(case.grid.shape, bool)
    gtv = case.gtv(tp) & brain
    out = {
        "slice_mm": max(spacing),
        "inplane_mm": min(spacing),
        "brain_ml": float(np.count_nonzero(brain) * case.grid.voxel_volume_ml),
    }
    for m in MODALITIES:
        if m in tp.images:
            feats = _intensity_features(case.image(tp, m), brain, gtv, spacing)
            out.update({f"{m}_{k}": v for k, v in feats.items()})
    return out


@dataclass(frozen=True)
class InputReference:
    """Per feature the training scans' ``median`` and ``spread`` (robust SD), the score ``threshold`` and the
    record's ``source`` (cohorts, rule) as written in the file ``name``."""

    name: str
    median: dict[str, float]
    spread: dict[str, float]
    threshold: float
    source: dict

    @classmethod
    def from_stats(
        cls, name: str, stats: dict[str, dict], threshold: float, source: dict | None = None
    ) -> InputReference:
        """The reference of :func:`reference_stats` ``stats`` (as a file's ``features`` holds them)."""
        median = {k: float(v["median"]) for k, v in stats.items()}
        return cls(name, median, {k: float(v["spread"]) for k, v in stats.items()}, float(threshold), source or {})


def robust_spread(values: np.ndarray, median: float) -> float:
    """1.4826 x the median absolute deviation of ``values`` from ``median``, at least ``SPREAD_FLOOR`` x |median|
    (and positive)."""
    mad = float(np.median(np.abs(np.asarray(values, float) - median)))
    return max(MAD_TO_SD * mad, SPREAD_FLOOR * abs(median), 1e-6)


def z_scores(features: dict[str, float], reference: InputReference) -> dict[str, float]:
    """Signed robust z-score of every feature both ``features`` and ``reference`` have."""
    return {k: (v - reference.median[k]) / reference.spread[k] for k, v in features.items() if k in reference.median}


def shift_score(features: dict[str, float], reference: InputReference) -> tuple[float, str]:
    """The largest |z| of ``features`` against ``reference`` and the feature that gives it."""
    z = z_scores(features, reference)
    name = max(z, key=lambda k: abs(z[k]))
    return abs(z[name]), name


@dataclass(frozen=True)
class InputShift:
    """A case's out-of-distribution ``score`` against a forecaster's reference, the ``threshold``, the
    ``feature`` that sets the score, every feature's value and z-score, and the reference's file name."""

    score: float
    threshold: float
    feature: str
    features: dict[str, float]
    z: dict[str, float]
    reference: str

    @property
    def flagged(self) -> bool:
        """Whether the inputs lie beyond the threshold."""
        return self.score > self.threshold

    def warning(self, forecaster: str) -> str:
        """The forecast's warning line (see :func:`.plausibility.forecast_warnings`)."""
        return (
            f"inputs unlike the scans {forecaster} was trained on: out-of-distribution score {self.score:.1f} > "
            f"{self.threshold:.1f} ({self.feature} is {self.z[self.feature]:+.1f} robust SD from the training "
            f"scans' median; docs/input-shift.md)"
        )

    def record(self) -> dict:
        """The JSON-ready record (forecast.json ``input_shift``)."""
        return {
            "score": round(self.score, 3),
            "threshold": round(self.threshold, 3),
            "flagged": self.flagged,
            "feature": self.feature,
            "reference": self.reference,
            "features": {k: round(v, 5) for k, v in self.features.items()},
            "z": {k: round(v, 3) for k, v in self.z.items()},
        }


def assess(case: Case, reference: InputReference) -> InputShift:
    """The :class:`InputShift` of ``case``'s last scan against ``reference`` (its features computed once per case
    object: the forecasters of one evaluation share them)."""
    features = case.derived(("input_features", case.timepoints[-1].index), lambda: scan_features(case))
    score, feature = shift_score(features, reference)
    return InputShift(score, reference.threshold, feature, features, z_scores(features, reference), reference.name)


def reference_path(name: str, models_dir: Path | None = None) -> Path:
    """Where the reference file ``name`` is: the models folder (default :func:`.resources.default_models_dir`)."""
    return (models_dir or default_models_dir()) / name


def load_reference(name: str, models_dir: Path | None = None) -> InputReference:
    """The reference file ``name`` of the models folder; an InputError naming the file and field when it is
    missing or bad."""
    path = reference_path(name, models_dir)
    return _cached(str(path), path.stat().st_mtime_ns if path.is_file() else -1)


@lru_cache(maxsize=8)
def _cached(path: str, _mtime_ns: int) -> InputReference:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(path, None, f"cannot read the input reference: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise InputError(path, "schema", f"expected {SCHEMA}")
    stats = data.get("features")
    if not isinstance(stats, dict) or not stats:
        raise InputError(path, "features", "expected a median and spread per feature")
    for key, value in stats.items():
        ok = isinstance(value, dict) and all(isinstance(value.get(f), (int, float)) for f in ("median", "spread"))
        if key not in FEATURES or not ok or not value["spread"] > 0 or not np.isfinite(value["median"]):
            raise InputError(path, f"features.{key}", "expected a known feature with a finite median and spread > 0")
    threshold = data.get("threshold")
    if not isinstance(threshold, (int, float)) or not threshold > 0:
        raise InputError(path, "threshold", f"must be a positive number, got {threshold!r}")
    return InputReference.from_stats(Path(path).name, stats, threshold, dict(data.get("source", {})))


def reference_stats(features: list[dict[str, float]]) -> dict[str, dict]:
    """Per feature of the training scans' ``features`` (one dict per scan): median, robust spread and count."""
    stats = {}
    for key in FEATURES:
        values = np.array([f[key] for f in features if key in f], float)
        if values.size:
            med = float(np.median(values))
            stats[key] = {"median": med, "spread": robust_spread(values, med), "n": int(values.size)}
    return stats


def reference_record(stats: dict[str, dict], threshold: float, **source) -> dict:
    """The JSON record (what :func:`load_reference` reads) of :func:`reference_stats` ``stats``, the threshold and
    free-form ``source`` (cohorts, rule, command)."""
    return {"schema": SCHEMA, "features": stats, "threshold": float(threshold), "source": source}
