"""The provenance record of a :class:`~gliomaforecast.forecast.Forecast` (forecast.json) and the names, colours and
terminology of the output folder's files (:mod:`.writer` writes the folder).

Files (D = target day): probability_dD.nii.gz, uncertainty_dD.nii.gz, flair_warped_dD.nii.gz (the last FLAIR
moved by the forecaster's field, when it gives an image: a warped image, not a forecast of the FLAIR) or
flair_dD.nii.gz (a FLAIR synthesized by a generative forecaster, ``image_kind == "synthesized"``),
<modality>_dD.nii.gz (further synthesized images, e.g. t1ce_dD.nii.gz, ``extra_images``),
probability_<name>_dD.nii.gz and flair_<name>_dD.nii.gz (alternative forecasts, ``scenarios``),
displacement.nii.gz (physical LPS vectors, mm; when the forecaster gives a
field), ctv_standard.nii.gz, ctv_forecast.nii.gz,
targets.seg.nrrd (GTV, CTV standard, CTV forecast), growth.json, growth.png, report.html (+ its PNGs),
forecast.json. Every volume keeps the case grid exactly. Same inputs and seed give identical files,
except the ``timings`` entry of forecast.json. No absolute path is written (:mod:`shown_paths`).
"""

from __future__ import annotations

import platform

from .. import __version__, sdf
from ..forecast import Forecast, forecast_tumor_ml, scenario_tumor_ml
from ..forecasters import dose_note, entry
from ..io.shown_paths import shown_path
from ..models import sha256_of
from ..targets.standard_plan import SEED_NAMES, plan_record

SCHEMA = "gliomaforecast.forecast/1"
SEGMENT_COLORS = {"GTV": (0.85, 0.16, 0.16), "CTV standard": (0.95, 0.77, 0.06), "CTV forecast": (0.16, 0.55, 0.95)}
# Slicer terminology (segment "Tags" field): DICOM CID 9503 RT Target category, CID 9534 target types
# (SCT 228791009 Gross Tumor Volume, SCT 228792002 Clinical Target Volume), anatomic region SCT 12738006 Brain.
_TARGET_TYPES = {
    "GTV": "228791009^Gross Tumor Volume",
    "CTV standard": "228792002^Clinical Target Volume",
    "CTV forecast": "228792002^Clinical Target Volume",
}
SEGMENT_TERMS = {
    name: (
        "TerminologyEntry:DICOM Radiotherapy Targets~DCM^130041^RT Target~SCT^"
        + code
        + "~^^~Anatomic codes - DICOM master list~SCT^12738006^Brain~^^|"
    )
    for name, code in _TARGET_TYPES.items()
}


def flair_file_name(fc: Forecast) -> str:
    """``flair_dD.nii.gz`` for a synthesized FLAIR forecast, ``flair_warped_dD.nii.gz`` for a warped last FLAIR."""
    prefix = "flair" if fc.output.image_kind == "synthesized" else "flair_warped"
    return f"{prefix}_{day_tag(fc.target_day)}.nii.gz"


def day_tag(day: float) -> str:
    """``d180`` for day 180, ``d180.5`` for day 180.5."""
    return f"d{day:g}"


def dose_record(fc: Forecast) -> dict:
    """``dose_used`` (whether the forecaster read the case's RT dose) and ``dose_note`` (why / why not)."""
    given = fc.case.dose_path is not None
    used = given and entry(fc.forecaster).uses_dose
    if used:
        note = f"the {fc.forecaster} forecaster read the RT dose"
    elif given:
        note = f"the RT dose was given but the {fc.forecaster} forecaster does not read it: no output depends on it. "
        note += dose_note()
    else:
        note = "no RT dose given"
    return {"dose_used": bool(used), "dose_note": note}


def inputs_record(fc: Forecast) -> dict:
    """The inputs of ``fc``: scan days (days), RT start day, every file (shown path and sha256), whether the RT dose
    was read, and the grid (shape, spacing in mm, origin in LPS mm, direction)."""
    case, grid = fc.case, fc.case.grid
    case_dir = case.path.parent if case.path else None
    files = [
        {"field": name, "path": shown_path(path, case_dir), "sha256": sha256_of(path)} for name, path in case.files()
    ]
    return {
        "days": case.days.tolist(),
        "rt_start_day": case.rt_start_day,
        "files": files,
        **dose_record(fc),
        "preparation": case.provenance(),
        "grid": {
            "shape_zyx": list(grid.shape),
            "spacing_mm_zyx": list(grid.spacing),
            "origin_mm_lps": list(grid.origin),
            "direction": list(grid.direction),
        },
    }


def volumes_record(fc: Forecast) -> dict[str, float]:
    """The volumes (mL) of the last GTV, the forecast tumour (phi <= 0), the region P > 0.5 and both CTVs."""
    ml = fc.case.grid.voxel_volume_ml
    return {
        "gtv_last_scan": float(fc.gtv.sum() * ml),
        "forecast_tumor": forecast_tumor_ml(fc),
        "forecast_p_gt_0.5": float((fc.output.probability > 0.5).sum() * ml),
        "ctv_standard": float(fc.ctv_standard.sum() * ml),
        "ctv_forecast": float(fc.ctv_forecast.sum() * ml),
    }


def targets_record(fc: Forecast) -> dict:
    """How both CTVs were built: the rule, the cavity (mL), whether a barrier was used and the forecast CTV's
    shortfall (voxels)."""
    inside = "inside the brain mask" if fc.case.brain_mask_path else "not clipped (the case has no brain mask)"
    return {
        "rule": f"CTVs from the seed of the {fc.plan} convention on the last scan "
        f"({SEED_NAMES[fc.plan]}, resection cavity = label 4) with holes filled; standard: margin "
        f"(geodesic around the barrier when given) {inside}; forecast: as many voxels, "
        "highest probability first; no interior holes except barrier / outside-brain voxels",
        "cavity_ml": fc.cavity_ml,
        "barrier": fc.barrier_used,
        "forecast_shortfall_voxels": fc.forecast_shortfall,
    }


def scenarios_record(fc: Forecast) -> dict[str, dict]:
    """Per alternative forecast (``scenarios``): its label, tumour volume (mL, phi <= 0) and files."""
    tag = day_tag(fc.target_day)
    return {
        name: {
            "label": sc.label,
            "tumor_ml": scenario_tumor_ml(fc, sc.probability),
            "files": [f"probability_{name}_{tag}.nii.gz"]
            + ([f"flair_{name}_{tag}.nii.gz"] if sc.image is not None else []),
        }
        for name, sc in fc.output.scenarios.items()
    }


def forecast_record(fc: Forecast, warnings: list[str]) -> dict:
    """The JSON-ready provenance of a forecast: inputs with sha256, models, parameters, seed, provider,
    volumes (mL), its plausibility ``warnings`` (:func:`plausibility.forecast_warnings`) and timings (s)."""
    case = fc.case
    models = fc.output.models
    providers = sorted({m["provider"] for m in models}) or ["none (no network)"]
    return {
        "schema": SCHEMA,
        "gliomaforecast_version": __version__,
        "patient_id": case.patient_id,
        "case": shown_path(case.path),
        "target_day": fc.target_day,
        "target_date": None if (date := case.date_of(fc.target_day)) is None else date.isoformat(),
        "last_scan_day": case.timepoints[-1].day,
        "forecaster": fc.forecaster,
        "inputs": inputs_record(fc),
        "models": models,
        "provider": ", ".join(providers),
        "parameters": {
            "beta_per_mm": sdf.DEFAULT_BETA,
            "mu_mm": sdf.DEFAULT_MU,
            "margin_mm": fc.margin_mm,
            "samples": fc.samples,
            "n_bootstrap": fc.growth.n_bootstrap,
            "growth_model": fc.growth.model,
        },
        "seed": fc.seed,
        "volumes_ml": volumes_record(fc),
        "standard_plan": plan_record(fc.plan, fc.margin_mm, float(fc.ctv_standard.sum() * case.grid.voxel_volume_ml)),
        "targets": targets_record(fc),
        "scenarios": scenarios_record(fc),
        "warnings": warnings,
        "input_shift": None if fc.input_shift is None else fc.input_shift.record(),
        "notes": [fc.growth.note, *fc.output.notes],
        "machine": platform.machine(),
        "timings": {k: round(v, 3) for k, v in fc.timings.items()},
    }
