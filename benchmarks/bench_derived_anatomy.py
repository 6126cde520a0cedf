"""Issue 30, item 2: a brain mask and WM, GM, CSF maps derived from a scan that comes without them
(gliomaforecast.preparation.anatomy.derive_anatomy: a template registered affinely onto the scan, its maps propagated
and refined by the scan's intensities).

Patients: the sample patient (generated from MNI152) and the first 10 virtual patients of the VALIDATION cohort
(/work/data/r3/val48, VP-0001..VP-0010; their simulation.json names the template each was generated from). Input: the
T1 of the first timepoint, every labelled voxel (tumour and resection cavity) excluded from the intensity model. Truth:
the patient's brain_mask and the argmax of its wm, gm, csf maps inside it. Each patient is derived with both templates
(sri24, the default, and mni152); Dice of the brain mask and of the hard WM, GM and CSF labels (argmax of the three
derived maps inside the derived brain), per (generating template, derivation template) pair and overall. Targets:
brain Dice >= 0.95, WM and GM Dice >= 0.8. Seconds per derivation (registration included; one process on this machine).

Also measured: the other modalities (T1CE, T2, FLAIR) on the sample and two validation patients with the default
template; the quality of template registrations that must be refused (noise, a block-shuffled scan) against
MIN_TEMPLATE_QUALITY; and the SRI24 <-> MNI152 round trip: the SRI24 T1 registered onto the MNI152 T1 (affine: rigid
then affine) and back (MNI152 onto SRI24), composed; the closing error |T_back(T_fwd(x)) - x| (mm) over the brain
voxels of the fixed template of the first registration (and the reverse loop over the other's brain). Target: within
1 mm.

Run: .venv/bin/python benchmarks/bench_derived_anatomy.py [--cohort DIR] [--patients N]
  -> benchmarks/results/derived_anatomy.json
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from _measure import block_shuffled, write_result

from gliomaforecast.errors import InputError
from gliomaforecast.io.case import Case, load_case
from gliomaforecast.preparation import anatomy, brain, templates, tissue
from gliomaforecast.preparation import registration as reg
from gliomaforecast.preparation.motion import motion_matrix

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "Resources" / "SampleData" / "sample_patient" / "case.json"
COHORT = Path("/work/data/r3/val48")
N_VALIDATION = 10
SAMPLE_TEMPLATE = "mni152"  # the sample (generator v2, realism < 3) was generated from the default MNI152 template
OTHER_MODALITIES = ("t1ce", "t2", "flair")
MODALITY_PATIENTS = ("VP-SAMPLE", "VP-0001", "VP-0002")
TARGET_BRAIN, TARGET_TISSUE, TARGET_ROUND_TRIP_MM = 0.95, 0.8, 1.0
SEED = 3031


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def _patients(cohort: Path, n: int) -> dict[str, tuple[Case, str]]:
    """Patient id -> (case, generating template)."""
    out = {"VP-SAMPLE": (load_case(SAMPLE), SAMPLE_TEMPLATE)}
    for path in sorted(cohort.glob("VP-*/case.json"))[:n]:
        sim = json.loads((path.parent / "simulation.json").read_text())
        out[path.parent.name] = (load_case(path), sim["follow_up"]["anatomy"]["template"])
    return out


def _truth(case: Case) -> tuple[np.ndarray, np.ndarray]:
    mask = case.brain_mask()
    maps = [case.tissue(k) for k in ("wm", "gm", "csf")]
    assert mask is not None and all(m is not None for m in maps)
    return mask, np.where(mask, np.argmax(np.stack(maps), axis=0), -1)


def _derive(pid: str, case: Case, generated: str, template: str, modality: str = "t1") -> dict:
    tp = case.timepoints[0]
    mask, labels = _truth(case)
    row = {"patient": pid, "generated_from": generated, "template": template, "modality": modality}
    t0 = time.perf_counter()
    try:
        d = anatomy.derive_anatomy(
            case.image(tp, modality), case.grid, modality=modality, template=template, exclude=case.labels(tp) > 0
        )
    except InputError as exc:
        return {**row, "refused": str(exc), "seconds": round(time.perf_counter() - t0, 2)}
    seconds = time.perf_counter() - t0
    derived = np.where(d.brain, np.argmax(np.stack([d.wm, d.gm, d.csf]), axis=0), -1)
    return {
        **row,
        "brain_dice": round(_dice(d.brain, mask), 4),
        "wm_dice": round(_dice(derived == 0, labels == 0), 4),
        "gm_dice": round(_dice(derived == 1, labels == 1), 4),
        "csf_dice": round(_dice(derived == 2, labels == 2), 4),
        "quality": round(d.quality, 4),
        "seconds": round(seconds, 2),
    }


def _summary(rows: list[dict]) -> dict:
    ok = [r for r in rows if "refused" not in r]
    out: dict = {"derivations": len(rows), "refused": len(rows) - len(ok)}
    for key in ("brain_dice", "wm_dice", "gm_dice", "csf_dice", "quality"):
        values = [r[key] for r in ok]
        out[key] = {"mean": round(statistics.fmean(values), 4), "min": round(min(values), 4)} if values else None
    if ok:
        out["meets_target"] = bool(
            not out["refused"]
            and out["brain_dice"]["min"] >= TARGET_BRAIN
            and out["wm_dice"]["min"] >= TARGET_TISSUE
            and out["gm_dice"]["min"] >= TARGET_TISSUE
        )
        seconds = [r["seconds"] for r in ok]
        out["seconds_median"], out["seconds_max"] = round(statistics.median(seconds), 2), round(max(seconds), 2)
    return out


def _refusals(case: Case) -> list[dict]:
    """Scans that must be refused, derived with the default template: the measured quality (from the error)."""
    rng = np.random.default_rng(SEED)
    t1 = case.image(case.timepoints[0], "t1").astype(np.float32)
    rows = []
    for name, image in (
        ("gaussian noise", rng.normal(300.0, 80.0, t1.shape).astype(np.float32)),
        ("block-shuffled sample t1 (8 mm cubes)", block_shuffled(t1, 4, rng)),
    ):
        t0 = time.perf_counter()
        try:
            d = anatomy.derive_anatomy(image, case.grid, modality="t1")
            rows.append({"scan": name, "refused": False, "quality": round(d.quality, 4)})
        except InputError as exc:
            found = re.search(r"quality (-?\d+\.\d+)", str(exc))
            q = float(found.group(1)) if found else float("nan")
            rows.append({"scan": name, "refused": True, "quality": q, "error": str(exc)})
        rows[-1]["seconds"] = round(time.perf_counter() - t0, 2)
        print(f"must refuse: {rows[-1]}", flush=True)
    return rows


def _affine_points(transform: sitk.Transform, points: np.ndarray) -> np.ndarray:
    """``points`` (n, 3; mm) through a linear ``transform`` (its matrix and its image of the origin)."""
    origin = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)))
    out = points @ motion_matrix(transform).T + origin
    probe = points[:: max(1, len(points) // 16)]
    assert np.allclose(out[:: max(1, len(points) // 16)], [transform.TransformPoint(tuple(p)) for p in probe])
    return out


def _loop_error(first: reg.Registration, second: reg.Registration, fixed: templates.Template) -> dict:
    """|T_second(T_first(x)) - x| (mm) over ``fixed``'s brain voxels: first maps fixed points to the other template,
    second maps them back (ITK convention)."""
    points = fixed.grid.index_to_physical(np.argwhere(fixed.brain))
    dist = np.linalg.norm(_affine_points(second.transform, _affine_points(first.transform, points)) - points, axis=1)
    return {
        "median_mm": round(float(np.median(dist)), 4),
        "max_mm": round(float(dist.max()), 4),
        "voxels": int(dist.size),
    }


def _round_trip() -> dict:
    """SRI24 onto MNI152 and back, both 1 mm templates, affine."""
    sri, mni = templates.load_template("sri24"), templates.load_template("mni152")
    t0 = time.perf_counter()
    fwd, back = (
        reg.register(
            fixed.t1,
            fixed.grid,
            moving.t1,
            moving.grid,
            "affine",
            fixed_name=names[0],
            moving_name=names[1],
            min_quality=anatomy.MIN_TEMPLATE_QUALITY,
        )
        for fixed, moving, names in ((mni, sri, ("mni152", "sri24")), (sri, mni, ("sri24", "mni152")))
    )
    seconds = time.perf_counter() - t0
    over_mni = _loop_error(fwd, back, mni)  # x in MNI152 -> SRI24 -> MNI152
    over_sri = _loop_error(back, fwd, sri)  # x in SRI24 -> MNI152 -> SRI24
    return {
        "forward": "sri24 registered onto mni152 (fixed mni152): maps mni152 points to sri24 points",
        "back": "mni152 registered onto sri24 (fixed sri24): maps sri24 points to mni152 points",
        "quality_forward": round(fwd.quality, 4),
        "quality_back": round(back.quality, 4),
        "closing_error_over_mni152_brain": over_mni,
        "closing_error_over_sri24_brain": over_sri,
        "meets_target": max(over_mni["max_mm"], over_sri["max_mm"]) <= TARGET_ROUND_TRIP_MM,
        "seconds_both_registrations": round(seconds, 1),
    }


def _method() -> dict:
    return {
        "registration": "affine (rigid then affine), Mattes MI, template T1 at the scan's median spacing",
        "min_template_quality": anatomy.MIN_TEMPLATE_QUALITY,
        "brain_band_mm": brain.BAND_MM,
        "brain_closing_mm": brain.CLOSING_MM,
        "prior_sigma_mm": tissue.PRIOR_SIGMA_MM,
        "prior_floor": tissue.PRIOR_FLOOR,
        "em_iterations": tissue.EM_ITERATIONS,
        "bias_sigma_mm": tissue.BIAS_SIGMA_MM,
        "final_prior_power": tissue.FINAL_PRIOR_POWER,
        "demons_iterations": tissue.DEMONS_ITERATIONS,
        "demons_sigma_mm": tissue.DEMONS_SIGMA_MM,
        "exclude": "every labelled voxel of the first timepoint (tumour and resection cavity)",
    }


def _pairs(rows: list[dict]) -> dict:
    pairs: dict[str, list[dict]] = {}
    for r in rows:
        pairs.setdefault(f"generated {r['generated_from']}, derived with {r['template']}", []).append(r)
    return {k: _summary(v) for k, v in sorted(pairs.items())}


def _print_row(r: dict) -> None:
    if "refused" in r:
        print(f"{r['patient']} {r['template']:6s} {r['modality']:5s} REFUSED {r['refused']}", flush=True)
        return
    print(
        f"{r['patient']} gen {r['generated_from']:6s} tpl {r['template']:6s} {r['modality']:5s} brain "
        f"{r['brain_dice']:.4f} WM {r['wm_dice']:.4f} GM {r['gm_dice']:.4f} CSF {r['csf_dice']:.4f} quality "
        f"{r['quality']:.3f} {r['seconds']:.1f} s",
        flush=True,
    )


def _run(cohort: Path, n: int) -> dict:
    patients = _patients(cohort, n)
    rows = []
    for pid, (case, generated) in patients.items():
        for template in templates.TEMPLATES:
            rows.append(_derive(pid, case, generated, template))
            _print_row(rows[-1])
    modality_rows = []
    for pid in [p for p in MODALITY_PATIENTS if p in patients]:
        case, generated = patients[pid]
        for modality in OTHER_MODALITIES:
            modality_rows.append(_derive(pid, case, generated, "sri24", modality))
            _print_row(modality_rows[-1])
    summary = {
        "all": _summary(rows),
        **{f"derived with {t}": _summary([r for r in rows if r["template"] == t]) for t in templates.TEMPLATES},
    }
    by_modality = {m: _summary([r for r in modality_rows if r["modality"] == m]) for m in OTHER_MODALITIES}
    refused = _refusals(patients["VP-SAMPLE"][0])
    round_trip = _round_trip()
    print(f"round trip: {round_trip}", flush=True)
    good_min = min([r["quality"] for r in rows + modality_rows if "quality" in r])
    return {
        "method": _method(),
        "targets": {
            "brain_dice_min": TARGET_BRAIN,
            "wm_gm_dice_min": TARGET_TISSUE,
            "round_trip_mm_max": TARGET_ROUND_TRIP_MM,
        },
        "patients": {"sample": "VP-SAMPLE (generated from mni152)", "validation_cohort": str(cohort), "validation": n},
        "summary": summary,
        "pairs": _pairs(rows),
        "other_modalities_sri24": by_modality,
        "quality_separation": {
            "good_min": good_min,
            "refused_max": max(r["quality"] for r in refused),
            "min_template_quality": anatomy.MIN_TEMPLATE_QUALITY,
            "separates": max(r["quality"] for r in refused) < anatomy.MIN_TEMPLATE_QUALITY <= good_min,
        },
        "round_trip": round_trip,
        "refused": refused,
        "derivations": rows,
        "modalities": modality_rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, default=COHORT, help="the validation cohort (VP-*/case.json)")
    parser.add_argument("--patients", type=int, default=N_VALIDATION, help="how many validation patients")
    args = parser.parse_args()
    t0 = time.perf_counter()
    payload = _run(args.cohort, args.patients)
    payload["wall_seconds"] = round(time.perf_counter() - t0, 1)
    for name, s in {**payload["summary"], **payload["pairs"]}.items():
        print(
            f"{name:40s} n={s['derivations']:2d} brain {s['brain_dice']['mean']:.4f} (min {s['brain_dice']['min']:.4f})"
            f"  WM {s['wm_dice']['mean']:.4f} (min {s['wm_dice']['min']:.4f})  GM {s['gm_dice']['mean']:.4f} (min "
            f"{s['gm_dice']['min']:.4f})  {s['seconds_median']:.1f} s median"
        )
    rt = payload["round_trip"]
    print(
        f"round trip: median {rt['closing_error_over_mni152_brain']['median_mm']:.3f} mm, max "
        f"{rt['closing_error_over_mni152_brain']['max_mm']:.3f} mm over the MNI152 brain"
    )
    print(write_result("derived_anatomy", payload))


if __name__ == "__main__":
    main()
