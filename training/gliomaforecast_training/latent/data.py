"""Training examples of the latent diffusion forecaster: pairs of scans of the same patient.

A pair is a scan i and a later scan j with ``MIN_GAP_DAYS <= t_j - t_i <= MAX_GAP_DAYS`` (60-200 days; the paper's
post-treatment scan is about 4 months after the pre-treatment one; the gap is a condition of the network). Each pair
gives at most ``max_slices`` (drawn with the seed) of the axial slices within 6 mm (z) of a slice holding GTV i
(``latent_inputs.forecast_slices``, exactly the slices the forecaster runs on), cropped around GTV i's centre
(``latent_inputs``); scan j is expressed in scan i's intensity scales and crop. The outcome class is
``latent_inputs.outcome_class`` of the two 3D GTV volumes (mL).

Arrays (float16 storage): ``pre`` and ``post`` (N, 2, crop, crop) T1CE and FLAIR / scan i's scales;
``pre_mask`` and ``post_mask`` (N, 1, crop, crop) 0/1; ``gap`` (N,) days; ``outcome`` (N,) 1 responder or 2
progressor; ``pair`` (N,) index into ``pairs`` (patient, i, j); ``dose`` (N, 1, crop, crop) the planned RT dose
on scan i's crop / 60 Gy (zeros without a dose map).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from gliomaforecast.io.case import load_case
from gliomaforecast.forecasters.latent import inputs as li

MIN_GAP_DAYS = 60.0
MAX_GAP_DAYS = 200.0
ARRAYS = ("pre", "pre_mask", "post", "post_mask", "gap", "outcome", "pair", "dose")


@dataclass
class PairData:
    """Stacked examples (see the module docstring)."""

    pre: np.ndarray
    pre_mask: np.ndarray
    post: np.ndarray
    post_mask: np.ndarray
    gap: np.ndarray
    outcome: np.ndarray
    pair: np.ndarray
    dose: np.ndarray
    pairs: list[tuple[str, int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.gap.shape[0])

    def save(self, path: str | Path) -> None:
        """Write the arrays to one ``.npz`` file."""
        np.savez(path, **{k: getattr(self, k) for k in ARRAYS},
                 pairs=np.array([f"{p}:{i}:{j}" for p, i, j in self.pairs]))

    @classmethod
    def load(cls, path: str | Path) -> "PairData":
        """Read a file written by :meth:`save`."""
        z = np.load(path)
        pairs = [(s.split(":")[0], int(s.split(":")[1]), int(s.split(":")[2])) for s in z["pairs"]]
        return cls(*(z[k] for k in ARRAYS), pairs)  # type: ignore[arg-type]


def case_pairs(case_path: str | Path, rng: np.random.Generator, max_slices: int = 6,
               gap_days: tuple[float, float] = (MIN_GAP_DAYS, MAX_GAP_DAYS), crop: int = li.CROP) -> list[tuple]:
    """Examples of one case: a list of (pre, pre_mask, post, post_mask, gap, outcome, i, j, dose) per pair."""
    case = load_case(case_path)
    tps = case.timepoints
    voxel_ml = float(np.prod(case.grid.spacing)) / 1000.0
    out = []
    for i, tp_i in enumerate(tps):
        js = [j for j in range(i + 1, len(tps)) if gap_days[0] <= tps[j].day - tp_i.day <= gap_days[1]]
        if not js:
            continue
        pre = li.scan_volumes(case, tp_i)
        z_all = li.forecast_slices(pre.gtv, case.grid.spacing[0])
        x_pre, m_pre = li.image_slices(pre, z_all, crop), li.mask_slices(pre, z_all, crop)
        for j in js:
            post = li.scan_volumes(case, tps[j], pre.scales, pre.center_yx_mm)
            rows = np.arange(len(z_all))
            if rows.size > max_slices:
                rows = np.sort(rng.choice(rows, max_slices, replace=False))
            z = z_all[rows]
            cls = li.outcome_class(pre.gtv.sum() * voxel_ml, post.gtv.sum() * voxel_ml)
            out.append((x_pre[rows], m_pre[rows], li.image_slices(post, z, crop), li.mask_slices(post, z, crop),
                        tps[j].day - tp_i.day, cls, i, j, li.dose_slices(case, pre, z, crop)))
    return out


def cohort_pairs(case_paths: Sequence[str | Path], max_slices: int = 6, seed: int = 0,
                 gap_days: tuple[float, float] = (MIN_GAP_DAYS, MAX_GAP_DAYS), crop: int = li.CROP,
                 log=None) -> PairData:
    """Examples from case manifests (case.json files or their folders), in the given order, seeded."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list] = {k: [] for k in ARRAYS}
    names: list[tuple[str, int, int]] = []
    for path in case_paths:
        path = Path(path) / "case.json" if Path(path).is_dir() else Path(path)
        pid = path.parent.name
        for pre, m_pre, post, m_post, gap, cls, i, j, dose in case_pairs(path, rng, max_slices, gap_days, crop):
            n = len(pre)
            for key, value in (("pre", pre), ("pre_mask", m_pre), ("post", post), ("post_mask", m_post),
                               ("dose", dose)):
                parts[key].append(value.astype(np.float16))
            parts["gap"].append(np.full(n, gap, np.float32))
            parts["outcome"].append(np.full(n, cls, np.int64))
            parts["pair"].append(np.full(n, len(names), np.int64))
            names.append((pid, i, j))
        if log:
            log(f"{pid}: {sum(len(g) for g in parts['gap'])} slices so far")
    if not names:
        empty = np.zeros((0, len(li.MODALITIES), crop, crop), np.float16)
        mask = np.zeros((0, 1, crop, crop), np.float16)
        return PairData(empty, mask, empty, mask, np.zeros(0, np.float32), np.zeros(0, np.int64),
                        np.zeros(0, np.int64), mask, [])
    return PairData(*(np.concatenate(parts[k]) for k in ARRAYS), names)  # type: ignore[arg-type]
