"""Synthetic MR imaging of a virtual patient: BraTS labels from tumor-density thresholds and FLAIR, T1CE,
T1 and T2 images from tissue maps and tumor density, with noise and a smooth bias field.

Detection thresholds follow Swanson et al.: the T2/FLAIR abnormality is where the cell density exceeds
about 16% of the carrying capacity, T1 contrast enhancement where it exceeds about 80%.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from .anatomy import Anatomy

FLAIR_THRESHOLD = 0.16
ENHANCING_THRESHOLD = 0.80
NECROSIS, EDEMA, ENHANCING, CAVITY = 1, 2, 3, 4
MODALITIES = ("flair", "t1ce", "t1", "t2")

# Relative signal (white matter of T1 = 1) of each tissue class, per modality.
_SIGNAL = {
    #         wm    gm    csf   edema enh   necro cavity
    "t1":    (1.00, 0.75, 0.35, 0.70, 0.70, 0.45, 0.30),
    "t1ce":  (1.00, 0.75, 0.35, 0.72, 1.45, 0.45, 0.30),
    "t2":    (0.50, 0.70, 1.40, 1.10, 0.95, 1.25, 1.40),
    "flair": (0.60, 0.80, 0.20, 1.25, 1.10, 0.90, 0.22),
}


def brats_labels(density: np.ndarray, spacing: Sequence[float], cavity: np.ndarray | None = None, rim_mm: float = 4.0,
                 flair_threshold: float = FLAIR_THRESHOLD,
                 enhancing_threshold: float | np.ndarray = ENHANCING_THRESHOLD) -> np.ndarray:
    """BraTS labels (int16): 2 edema where density >= ``flair_threshold``, 3 enhancing where it is >=
    ``enhancing_threshold`` (a number, or a map of the density's shape), 1 necrosis inside the enhancing region
    deeper than ``rim_mm`` (mm) from its border, 4 the resection cavity."""
    labels = np.zeros(density.shape, dtype=np.int16)
    labels[density >= flair_threshold] = EDEMA
    enh = density >= enhancing_threshold
    labels[enh] = ENHANCING
    if enh.any():
        depth = ndimage.distance_transform_edt(enh, sampling=spacing)
        labels[depth > rim_mm] = NECROSIS
    if cavity is not None:
        labels[np.asarray(cavity, dtype=bool)] = CAVITY
    return labels


def gtv_from_labels(labels: np.ndarray) -> np.ndarray:
    """The GTV as the FLAIR abnormality: labels 1, 2 or 3 (the cavity is not tumor)."""
    return np.isin(labels, (NECROSIS, EDEMA, ENHANCING))


def bias_field(shape: Sequence[int], rng: np.random.Generator, sd: float = 0.08) -> np.ndarray:
    """A smooth multiplicative field exp(N(0, sd)) varying over the whole volume (float32)."""
    coarse = rng.normal(0.0, sd, (3, 3, 3))
    field = ndimage.zoom(coarse, [n / 3 for n in shape], order=3, mode="nearest", grid_mode=True)
    return np.exp(field[: shape[0], : shape[1], : shape[2]]).astype(np.float32)


def _tumour_weight(density: np.ndarray, visible_from: float | None, step: float) -> np.ndarray:
    """How far (0..1) tumour pulls the tissue signal towards the edema signal (see :func:`synthesize`)."""
    if visible_from is None:
        return np.clip((density - 0.05) / 0.35, 0.0, 1.0).astype(np.float32)
    ramp = step + (1.0 - step) * np.clip((density - visible_from) / 0.35, 0.0, 1.0)
    return np.where(density >= visible_from, ramp, 0.0).astype(np.float32)


def synthesize(anatomy: Anatomy, density: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *,
               noise_sd: float = 0.02, bias_sd: float = 0.08, scale: float = 500.0,
               blur_mm: float = 1.0, visible_from: float | None = None, step: float = 0.3,
               changed: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """FLAIR, T1CE, T1 and T2 (int16, white matter about ``scale`` on T1, 0 outside the brain).

    Tissue signal mixes wm/gm/csf; tumor infiltration (density) pulls it towards the edema signal;
    enhancing, necrosis and cavity labels take their own signal. T1-weighted images keep the
    template's texture. A Gaussian blur of sd ``blur_mm`` (mm, on the anatomy's grid spacing), Rician
    noise of sd ``noise_sd`` (relative) and a per-image bias field.

    ``visible_from`` (a density, e.g. the GTV's FLAIR_THRESHOLD; realism 3): tumour changes the signal only where
    the density reaches it, by a ``step`` (fraction of the edema contrast) there, rising to the full contrast
    0.35 above it, so the visible abnormality ends at the GTV. Without it the signal rises from density 0.05.
    ``changed`` (bool, realism 3): treatment-related hyperintensity, at least the ``step`` contrast there."""
    brain = anatomy.brain
    w = _tumour_weight(np.asarray(density, dtype=np.float32), visible_from, step)
    if changed is not None:
        w = np.where(changed, np.maximum(w, step), w).astype(np.float32)
    enh = labels == ENHANCING
    nec = labels == NECROSIS
    cav = labels == CAVITY
    t1_texture = anatomy.t1 / max(float(np.median(anatomy.t1[anatomy.wm > 0.9])) if (anatomy.wm > 0.9).any() else 1.0, 1e-6)
    blur = [blur_mm / float(h) for h in anatomy.grid.spacing]  # mm -> voxels per axis
    out = {}
    for name in MODALITIES:
        s_wm, s_gm, s_csf, s_ed, s_enh, s_nec, s_cav = _SIGNAL[name]
        tissue = anatomy.wm * s_wm + anatomy.gm * s_gm + anatomy.csf * s_csf
        if name in ("t1", "t1ce"):
            tissue = 0.5 * tissue + 0.5 * t1_texture * brain
        img = (1.0 - w) * tissue + w * s_ed
        img = np.where(enh, s_enh, img)
        img = np.where(nec, s_nec, img)
        img = np.where(cav, s_cav, img)
        img = ndimage.gaussian_filter(img.astype(np.float32), blur)
        img = img * bias_field(img.shape, rng, bias_sd)
        n1 = rng.normal(0.0, noise_sd, img.shape).astype(np.float32)
        n2 = rng.normal(0.0, noise_sd, img.shape).astype(np.float32)
        img = np.sqrt((img + n1) ** 2 + n2 ** 2) * brain
        out[name] = np.clip(np.rint(img * scale), 0, 32767).astype(np.int16)
    return out
