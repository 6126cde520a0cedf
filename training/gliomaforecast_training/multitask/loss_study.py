"""The measured effect of the RT weight's exponent gamma in L_RT = mean (1 + R^gamma) BCE(P, P_hat).

Networks trained with different ``--gamma`` (same data, seed, steps) are compared on the predictive head's
errors on validation slices (``prepare`` of the validation cohort, seed 777), by dose region: R = dose / max dose
in [0, 1] per patient, ``high`` R >= 0.9 (the boost region, where the weight is close to 2 for every gamma),
``mid`` 0.5 <= R < 0.9 (where gamma changes the weight most: 1 + 0.5^gamma), ``low`` R < 0.5 and ``all``. Per
region: the mean BCE (nats) and RMSE of the probability over pixels, and the per-patient means; each network
against the first one by the paired Wilcoxon signed-rank test over patients (``scipy.stats.wilcoxon``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from scipy import stats

from .data import TripletData
from .export import load_checkpoint

REGIONS = {"high": (0.9, np.inf), "mid": (0.5, 0.9), "low": (-np.inf, 0.5), "all": (-np.inf, np.inf)}
BATCH = 64


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True, help="networks to compare (.pt); the first "
                   "is the reference of the Wilcoxon tests")
    p.add_argument("--data", type=Path, required=True, help="validation examples (.npz written by prepare)")
    p.add_argument("--out", type=Path, required=True, help="study .json to write")


def predicted_probability(net: torch.nn.Module, data: TripletData) -> np.ndarray:
    """The predictive head's probability (N, crop, crop) on every example (no augmentation, gaps as recorded)."""
    out = []
    with torch.no_grad():
        for lo in range(0, len(data), BATCH):
            cond = torch.from_numpy(data.cond[lo:lo + BATCH].astype(np.float32))
            gaps = torch.from_numpy(data.gaps[lo:lo + BATCH].astype(np.float32))
            half = cond.shape[-1] // 2
            x = torch.zeros((cond.shape[0], 1, half, half))
            _, p = net(x, torch.zeros(cond.shape[0], dtype=torch.int64), cond, gaps)
            out.append(p[:, 0].numpy())
    return np.concatenate(out)


def region_errors(p_hat: np.ndarray, p: np.ndarray, r: np.ndarray, patient: np.ndarray) -> dict[str, dict]:
    """Per dose region: pixel-mean BCE (nats) and RMSE, pixel count, and per-patient mean BCE / squared error."""
    q = np.clip(p_hat.astype(np.float64), 1e-6, 1 - 1e-6)
    p = p.astype(np.float64)
    bce = -(p * np.log(q) + (1 - p) * np.log(1 - q))
    sq = (q - p) ** 2
    out = {}
    for name, (lo, hi) in REGIONS.items():
        inside = (r >= lo) & (r < hi)
        per = {pid: (float(bce[(patient == pid)[:, None, None] & inside].mean()),
                     float(sq[(patient == pid)[:, None, None] & inside].mean()))
               for pid in np.unique(patient) if np.any(inside[patient == pid])}
        out[name] = {"pixels": int(inside.sum()), "bce": float(bce[inside].mean()) if inside.any() else None,
                     "rmse": float(np.sqrt(sq[inside].mean())) if inside.any() else None,
                     "per_patient_bce": {k: v[0] for k, v in per.items()},
                     "per_patient_mse": {k: v[1] for k, v in per.items()}}
    return out


def _wilcoxon(a: dict[str, float], b: dict[str, float]) -> dict:
    ids = sorted(set(a) & set(b))
    d = np.array([b[i] - a[i] for i in ids])
    if len(ids) < 2 or not np.any(d):
        return {"n": len(ids), "p_value": None, "better": 0}
    return {"n": len(ids), "p_value": float(stats.wilcoxon(d).pvalue), "better": int(np.sum(d < 0))}


def study(checkpoints: Sequence[Path], data: TripletData) -> dict:
    """Every network's region errors and, against the first, the per-patient Wilcoxon tests."""
    patient = np.array([data.triplets[i][0] for i in data.triplet])
    p, r = data.target[:, 0], data.target[:, 2].astype(np.float64)
    rows = []
    for path in checkpoints:
        net, ckpt = load_checkpoint(path)
        rows.append({"checkpoint": str(path), "gamma": ckpt["config"].get("gamma"),
                     "steps": ckpt["summary"]["steps"], "seconds": ckpt["summary"]["seconds"],
                     "regions": region_errors(predicted_probability(net, data), p, r, patient)})
    ref = rows[0]["regions"]
    for row in rows[1:]:
        row["vs_first"] = {name: {"bce": _wilcoxon(ref[name]["per_patient_bce"], reg["per_patient_bce"]),
                                  "mse": _wilcoxon(ref[name]["per_patient_mse"], reg["per_patient_mse"])}
                           for name, reg in row["regions"].items()}
    return {"data": {"slices": len(data), "patients": sorted(set(patient.tolist()))}, "regions": {
        k: [None if not np.isfinite(v) else v for v in b] for k, b in REGIONS.items()}, "networks": rows}


def main_with(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    result = study(args.checkpoint, TripletData.load(args.data))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(args.out)
    for row in result["networks"]:
        print(f"gamma {row['gamma']}: " + ", ".join(
            f"{k} BCE {v['bce']:.4f} RMSE {v['rmse']:.4f}" for k, v in row["regions"].items() if v["bce"] is not None))
    return result
