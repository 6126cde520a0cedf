"""Training examples for the multi-task diffusion network: triplets of scans from the virtual cohort.

A triplet is two consecutive prior scans (i, i + 1) and a later target scan j of the same patient with
0 < t_j - t_{i+1} <= ``max_gap_days`` (400 days: targets spread over the dense follow-up). Each triplet gives its
axial slices where GTV i + 1 or GTV j covers at least ``min_area_mm2`` (75 mm^2, the paper's threshold), at most
``max_slices`` of them drawn with the seed. Channels, crops and units are the core's
(:mod:`gliomaforecast.forecasters.crops`), with the evolution field between the priors computed by the
core's runtime (``deformation.evolution_field``), exactly as the forecaster does at run time.

Arrays (float16 storage, float32 on use):
* ``cond`` (N, 10, crop, crop): condition channels;
* ``target`` (N, 3, crop, crop): target tumour probability (logistic of the target GTV's signed distance),
  the generative target x0 = RESIDUAL_GAIN (FLAIR_j - FLAIR_{i+1}) / scale, and R = dose / max dose in [0, 1];
* ``gaps`` (N, 3) days; ``triplet`` (N,) index into ``triplets`` (patient, i, j).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from gliomaforecast import sdf
from gliomaforecast.io.case import Case, load_case
from gliomaforecast.deformation import evolution_field
from gliomaforecast.forecasters import crops as mi
from gliomaforecast.models import OnnxModel, load_model

MIN_AREA_MM2 = 75.0
MAX_GAP_DAYS = 400.0


@dataclass
class TripletData:
    """Stacked examples (see the module docstring)."""

    cond: np.ndarray
    target: np.ndarray
    gaps: np.ndarray
    triplet: np.ndarray
    triplets: list[tuple[str, int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.gaps.shape[0])

    def save(self, path: str | Path) -> None:
        """Write the arrays to one ``.npz`` file."""
        np.savez(path, cond=self.cond, target=self.target, gaps=self.gaps, triplet=self.triplet,
                 triplets=np.array([f"{p}:{i}:{j}" for p, i, j in self.triplets]))

    @classmethod
    def concatenate(cls, parts: Sequence["TripletData"]) -> "TripletData":
        """One set from several (triplet indices renumbered)."""
        offsets = np.cumsum([0] + [len(p.triplets) for p in parts])[:-1]
        return cls(np.concatenate([p.cond for p in parts]), np.concatenate([p.target for p in parts]),
                   np.concatenate([p.gaps for p in parts]),
                   np.concatenate([p.triplet + o for p, o in zip(parts, offsets)]),
                   [t for p in parts for t in p.triplets])

    @classmethod
    def load(cls, path: str | Path) -> "TripletData":
        """Read a file written by :meth:`save`."""
        z = np.load(path)
        trip = [(s.split(":")[0], int(s.split(":")[1]), int(s.split(":")[2])) for s in z["triplets"]]
        return cls(z["cond"], z["target"], z["gaps"], z["triplet"], trip)


def _area_mm2(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    return mask.sum(axis=(1, 2)) * float(spacing[1]) * float(spacing[2])


def case_triplets(case: Case, model: OnnxModel, rng: np.random.Generator, max_slices: int = 6,
                  max_gap_days: float = MAX_GAP_DAYS, min_area_mm2: float = MIN_AREA_MM2,
                  crop: int = mi.CROP) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int, int]]:
    """Examples of one loaded case: a list of (cond, target, gaps, i, j) per triplet (see the module docstring)."""
    spacing = case.grid.spacing
    tps = case.timepoints
    phis = [sdf.signed_distance(case.gtv(tp), spacing) for tp in tps]
    dose = case.dose()
    r = np.zeros(case.grid.shape, np.float32) if dose is None or dose.max() <= 0 else dose / dose.max()
    out = []
    for i in range(len(tps) - 2):
        gap_12 = tps[i + 1].day - tps[i].day
        field_12 = evolution_field(phis[i], phis[i + 1], gap_12, spacing, model)
        vols = mi.case_volumes(case, field_12, i, i + 1, phis=(phis[i], phis[i + 1]))
        flair_2 = case.image(tps[i + 1], "flair")
        for j in range(i + 2, len(tps)):
            gap = tps[j].day - tps[i + 1].day
            if not 0 < gap <= max_gap_days:
                continue
            gtv_j = case.gtv(tps[j])
            area = np.maximum(_area_mm2(phis[i + 1] <= 0, spacing), _area_mm2(gtv_j, spacing))
            z = np.nonzero(area >= min_area_mm2)[0]
            if z.size == 0:
                continue
            if z.size > max_slices:
                z = np.sort(rng.choice(z, max_slices, replace=False))
            cond = mi.cond_slices(vols, z, crop)
            crops = lambda v: mi.crop_slices(v, z, spacing[1:], vols.center_yx_mm, crop)  # noqa: E731
            p = crops(sdf.tumor_probability(gtv_j, spacing))
            x0 = mi.RESIDUAL_GAIN * (crops(case.image(tps[j], "flair")) - crops(flair_2)) / vols.scale_2
            target = np.stack([p, x0, crops(r)], axis=1)
            g = mi.gaps(tps[i].day, tps[i + 1].day, tps[j].day, case.rt_start_day)
            out.append((cond, target, np.repeat(g[None], len(z), axis=0), i, j))
    return out


def cohort_triplets(case_paths: Sequence[str | Path], max_slices: int = 6, seed: int = 0,
                    max_gap_days: float = MAX_GAP_DAYS, crop: int = mi.CROP,
                    model: OnnxModel | None = None, log=None) -> TripletData:
    """Examples from case manifests (case.json files or their folders), in the given order, seeded."""
    model = model or load_model("evolution", prefer_gpu=False)
    rng = np.random.default_rng(seed)
    conds, targets, gaps, index, names = [], [], [], [], []
    for path in case_paths:
        case = load_case(Path(path) / "case.json" if Path(path).is_dir() else path)
        for cond, target, g, i, j in case_triplets(case, model, rng, max_slices, max_gap_days, crop=crop):
            conds.append(cond.astype(np.float16))
            targets.append(target.astype(np.float16))
            gaps.append(g)
            index.append(np.full(len(g), len(names)))
            names.append((case.patient_id, i, j))
        if log:
            log(f"{case.patient_id}: {sum(len(g) for g in gaps)} slices so far")
    if not conds:
        return TripletData(np.zeros((0, mi.COND_CHANNELS, crop, crop), np.float16),
                           np.zeros((0, 3, crop, crop), np.float16), np.zeros((0, 3), np.float32),
                           np.zeros(0, int), [])
    return TripletData(np.concatenate(conds), np.concatenate(targets), np.concatenate(gaps).astype(np.float32),
                       np.concatenate(index), names)
