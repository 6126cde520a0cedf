"""The planning convention of the standard plan: which part of the planning scan's tumour the margin grows from.

Conventions (docs/targets.md):

* ``estro-eano``: the ESTRO-EANO 2023 glioblastoma guideline, as PREDICT-GBM builds its standard plan ("Radiation
  plans"): the seed is the tumour core, BraTS labels 1 (necrosis) and 3 (enhancing), plus the resection cavity (4);
  edema (2) is not part of it. It needs the planning scan's BraTS labels. Necrosis alone, or the cavity alone, is a
  valid seed (an empty enhancing part is not an error). Labels with neither a core nor a cavity (a non-enhancing
  tumour, e.g. a responding one after RT) leave only the FLAIR abnormality as visible tumour: the plan then grows the
  whole GTV, recorded as ``flair``, with a warning.
* ``flair``: the whole GTV (the case's GTV mask, or its ``gtv_labels``) plus the cavity.

``auto`` (the default everywhere) chooses ``estro-eano`` when the planning scan has BraTS labels holding a core or a
cavity, and ``flair`` otherwise, with a warning that says so. Both CTVs of a forecast, the standard plan and the
iso-volumetric forecast plan of the same voxel count, start from the chosen seed (:mod:`.volumes`).

Functions are pure: masks are bool arrays in (z, y, x) order on one grid; they are never modified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ESTRO_EANO = "estro-eano"
FLAIR = "flair"
AUTO = "auto"
CONVENTIONS = (ESTRO_EANO, FLAIR)
CHOICES = (AUTO, *CONVENTIONS)  # what a user may ask for: the CLI's --plan, the panel's combo box, the settings
SEED_NAMES = {ESTRO_EANO: "core+cavity", FLAIR: "gtv+cavity"}
DESCRIPTIONS = {
    ESTRO_EANO: "ESTRO-EANO: tumour core (necrosis + enhancing) + resection cavity",
    FLAIR: "FLAIR: whole GTV + resection cavity",
}
CORE_LABELS = (1, 3)  # BraTS necrosis, enhancing tumour
CAVITY_LABEL = 4  # BraTS resection cavity


class PlanError(ValueError):
    """The inputs cannot serve the requested convention (``estro-eano`` without BraTS labels). Its message is one
    line; callers add the file and field."""


@dataclass(frozen=True)
class PlanSeed:
    """What the standard plan grows from: ``tumour`` (bool; the core for estro-eano, may be empty when there is a
    cavity; the GTV for flair), ``cavity`` (bool, or None without one), the ``convention`` used and a ``warning``
    (one line, or None) when ``auto`` fell back to ``flair``."""

    convention: str
    tumour: np.ndarray
    cavity: np.ndarray | None
    warning: str | None = None

    @property
    def seed_name(self) -> str:
        """``core+cavity`` or ``gtv+cavity``."""
        return SEED_NAMES[self.convention]


def tumor_core(labels: np.ndarray) -> np.ndarray:
    """The tumour core (necrosis 1 + enhancing 3) of a BraTS label map (bool): the tumour of the estro-eano seed."""
    return np.isin(np.asarray(labels), CORE_LABELS)


def check_convention(name: str | None) -> str:
    """``name`` if it is one of :data:`CHOICES` (None means ``auto``), else a ``ValueError`` listing the choices."""
    if name is None:
        return AUTO
    if name not in CHOICES:
        raise ValueError(f"unknown planning convention {name!r}; choose one of {', '.join(CHOICES)}")
    return name


def _fallback(gtv: np.ndarray, why: str) -> PlanSeed:
    """The flair seed (the whole GTV, no cavity: both callers have none) with ``why`` in its warning."""
    return PlanSeed(
        FLAIR,
        gtv,
        None,
        f"{why}: the standard plan grows the whole GTV + resection cavity (flair "
        "convention), not the tumour core of ESTRO-EANO / PREDICT-GBM",
    )


def plan_seed(gtv: np.ndarray, labels: np.ndarray | None, convention: str | None = AUTO) -> PlanSeed:
    """The seed of the standard plan by ``convention`` (``auto``, ``estro-eano`` or ``flair``) from the planning
    scan's ``gtv`` (bool) and BraTS ``labels`` (int map, or None when the scan has none).

    ``estro-eano`` without labels is a :class:`PlanError` (``auto`` falls back to ``flair`` with a warning); labels
    holding neither a core (1, 3) nor a cavity (4) give ``flair`` with a warning under both (the FLAIR abnormality is
    then the only visible tumour)."""
    convention = check_convention(convention)
    gtv = np.asarray(gtv, dtype=bool)
    if labels is None:
        cavity = None
    else:
        labels = np.asarray(labels)
        if labels.shape != gtv.shape:
            raise ValueError(f"labels {labels.shape} and GTV {gtv.shape} are not on one grid")
        cavity = labels == CAVITY_LABEL
        cavity = cavity if cavity.any() else None
    if convention == FLAIR:
        return PlanSeed(FLAIR, gtv, cavity)
    if labels is None:
        if convention == ESTRO_EANO:
            raise PlanError(
                "the estro-eano plan grows the tumour core (BraTS labels 1, 3) + cavity (4) and the "
                "planning scan has no BraTS labels: give its labels map or choose the flair plan"
            )
        return _fallback(gtv, "the planning scan has no BraTS labels")
    core = tumor_core(labels)
    if not core.any() and cavity is None:
        return _fallback(
            gtv,
            "the planning scan's labels hold no tumour core (1, 3) and no cavity (4), only the FLAIR abnormality",
        )
    return PlanSeed(ESTRO_EANO, core, cavity)


def plan_record(convention: str, margin_mm: float, volume_ml: float | None = None) -> dict:
    """The JSON record of a standard plan (forecast.json, targets.json, an evaluation's summary.json): ``convention``,
    ``seed`` (core+cavity or gtv+cavity), ``margin_mm`` (mm), ``label`` (what the report and the DICOM descriptions
    show) and, for one plan, ``volume_ml`` (mL)."""
    record = {
        "convention": convention,
        "seed": SEED_NAMES[convention],
        "margin_mm": float(margin_mm),
        "label": plan_label(convention, margin_mm),
    }
    if volume_ml is not None:
        record["volume_ml"] = float(volume_ml)
    return record


def plan_label(convention: str, margin_mm: float) -> str:
    """A short human label, e.g. ``estro-eano (core+cavity + 15 mm)``."""
    return f"{convention} ({SEED_NAMES[convention]} + {margin_mm:g} mm)"
