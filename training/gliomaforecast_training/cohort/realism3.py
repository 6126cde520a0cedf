"""Realism 3 of the virtual cohort: recurrences that leave the standard plan through infiltration beyond the visible
tumour (docs/cohort.md, "Realism 3", states every mechanism with its source and the calibration it was measured
against on the training seed before the generator was frozen).

Mechanisms (each a pure function on arrays in (z, y, x) with ``spacing`` in mm, doses in Gy):

* the virtual hospital treats by the ESTRO-EANO 2023 guideline: the dose covers the tumour core (BraTS 1 + 3) plus
  the resection cavity grown by 15 mm (:func:`dose_target`), not the whole FLAIR abnormality;
* infiltrating cells (below the enhancement density at the planning scan) are radioresistant: alpha 0.025-0.035 /Gy
  (Rockne et al., Phys Med Biol 2010;55:3271), while the dense core keeps the oxic alpha and its hypoxic OER
  (:func:`surviving_fraction_map`);
* after RT, brain that received at least TREATMENT_CHANGE_MIN_GY enhances from a lower density
  (:func:`enhancing_threshold_map`) and, where the planning FLAIR was abnormal, stays FLAIR-hyperintense
  (:func:`treatment_change`);
* the synthetic FLAIR shows tumour only where the density reaches the GTV's detection threshold, with a visible
  step there (:data:`FLAIR_STEP`), so no hyperintense band lies beyond the drawn GTV (``imaging.synthesize`` with
  ``visible_from``);
* D_white up to Swanson et al.'s white-matter value with the front velocity capped (:func:`capped_d_white`);
* anatomy from two template brains with stronger shape variation (``anatomy.deform_v3``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gliomaforecast.targets.standard_plan import ESTRO_EANO, plan_seed
from gliomaforecast.targets.volumes import standard_target

from . import imaging, treatment

ALPHA_INFILTRATIVE_RANGE = (0.025, 0.035)  # 1/Gy, uniform: radioresistant infiltrating cells (Rockne et al. 2010)
D_WHITE_RANGE = (0.03, 0.65)  # mm^2/day, log-uniform: up to Swanson et al. 2000's white-matter value (0.0065 cm^2/day)
MAX_VELOCITY_MM_PER_DAY = 89.0 / 365.0  # front velocity 2 sqrt(D_w rho) at most 89 mm/yr, the cited range's top
ALPHA_CORE_RANGE = (0.10, 0.14)  # 1/Gy, uniform: RT + temozolomide in the enhancing core (Pedicini et al. 2014)
DOSE_PLAN = ESTRO_EANO  # the planning convention the virtual hospital irradiates (recorded per patient)
DOSE_PLAN_MARGIN_MM = 15.0  # ESTRO-EANO 2023: core + cavity + 15 mm
FLAIR_STEP = 0.3  # FLAIR contrast (fraction of the edema signal) at the detection threshold: the visible border
TEMPLATE_NAMES = ("mni152", "sri24")
ENHANCING_THRESHOLD_IRRADIATED = 0.5  # density at which regrowing tumour enhances in irradiated brain (BBB damage)
TREATMENT_CHANGE_MIN_GY = 45.0  # Gy: irradiated, previously infiltrated tissue keeps a FLAIR hyperintensity


def dose_target(labels: np.ndarray, spacing: Sequence[float], brain: np.ndarray) -> np.ndarray:
    """The CTV the virtual hospital irradiates (bool): the ESTRO-EANO standard plan of the planning scan's BraTS
    ``labels`` (core + cavity + 15 mm inside the brain, holes filled; the whole GTV when there is no core and no
    cavity), the same rule as the core's standard plan."""
    gtv = imaging.gtv_from_labels(labels)
    seed = plan_seed(gtv, labels, DOSE_PLAN)
    return standard_target(seed.tumour, spacing, DOSE_PLAN_MARGIN_MM, cavity=seed.cavity, brain_mask=brain)


def surviving_fraction_map(density: np.ndarray, dose_gy: np.ndarray, n_fractions: int, alpha_core: float,
                           alpha_infiltrative: float, alpha_beta: float, hypoxic_oer: float) -> np.ndarray:
    """Per-voxel LQ survival of one fraction (float32 in (0, 1]): voxels at or above the enhancement density
    (planning scan) take ``alpha_core`` (1/Gy) with the hypoxic dose-modifying factor; the infiltrating cells below
    it take ``alpha_infiltrative`` (1/Gy), oxic. ``dose_gy`` is the total dose (Gy) over ``n_fractions``."""
    per_fraction = np.asarray(dose_gy, dtype=np.float64) / n_fractions
    oer = treatment.oxygen_enhancement_ratio(density, hypoxic_oer)
    core = treatment.surviving_fraction(per_fraction / oer, alpha_core, alpha_beta)
    infiltrative = treatment.surviving_fraction(per_fraction, alpha_infiltrative, alpha_beta)
    return np.where(np.asarray(density) >= imaging.ENHANCING_THRESHOLD, core, infiltrative).astype(np.float32)


def treatment_change(planning_density: np.ndarray, dose_gy: np.ndarray, cavity: np.ndarray | None) -> np.ndarray:
    """Where a post-RT scan shows treatment-related FLAIR hyperintensity (bool): the planning scan's FLAIR
    abnormality (density >= the GTV threshold) that received at least TREATMENT_CHANGE_MIN_GY, outside the
    cavity (radiation-induced oedema and gliosis in irradiated infiltrated brain; RANO 2.0, Wen et al. 2023)."""
    visible = np.asarray(planning_density) >= imaging.FLAIR_THRESHOLD
    change = visible & (np.asarray(dose_gy) >= TREATMENT_CHANGE_MIN_GY)
    return change & ~np.asarray(cavity, dtype=bool) if cavity is not None else change


def with_treatment_change(labels: np.ndarray, change: np.ndarray) -> np.ndarray:
    """``labels`` (BraTS) with the treatment change drawn as oedema (2) where nothing else is labelled (a copy)."""
    out = np.array(labels, copy=True)
    out[(out == 0) & change] = imaging.EDEMA
    return out


def enhancing_threshold_map(dose_gy: np.ndarray) -> np.ndarray:
    """The density (fraction of capacity) at which tumour enhances after RT (float32 map): lower where the brain
    received at least TREATMENT_CHANGE_MIN_GY (radiation opens the blood-brain barrier: Cao et al., J Clin Oncol
    2005;23:4127), the untreated threshold elsewhere."""
    irradiated = np.asarray(dose_gy) >= TREATMENT_CHANGE_MIN_GY
    return np.where(irradiated, ENHANCING_THRESHOLD_IRRADIATED, imaging.ENHANCING_THRESHOLD).astype(np.float32)


def capped_d_white(d_white: float, rho: float) -> float:
    """D_white (mm^2/day) lowered where needed so that the white-matter front velocity 2 sqrt(D_white rho) stays
    within MAX_VELOCITY_MM_PER_DAY (``rho`` in 1/day)."""
    return float(min(d_white, (MAX_VELOCITY_MM_PER_DAY / 2.0) ** 2 / rho))
