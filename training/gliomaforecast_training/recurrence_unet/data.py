"""Training samples of the recurrence U-Net: planning-scan channels and the recurrence of the ``recurrence``
protocol, cropped around the planning GTV, plus augmentation and Gaussian edge softening.

One sample per patient that the core's ``recurrence`` protocol scores (``evaluation_protocols.recurrence_task``):
inputs = :func:`gliomaforecast.forecasters.recurrence.inputs.planning_inputs` of the RT planning scan (the same code the core
forecaster runs), target = the BraTS labels of the first post-RT progression scan. Samples are stored as crops
of ``CROP_VOXELS + 2 * JITTER`` voxels (float16 channels, uint8 labels) so that random shifts of up to
``JITTER`` voxels (2 mm each) stay inside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage

from gliomaforecast.io.case import load_case
from gliomaforecast.errors import InputError
from gliomaforecast.evaluation.protocols import recurrence_task
from gliomaforecast.forecasters.recurrence.inputs import (CHANNELS, CROP_VOXELS, IMAGE_CHANNELS, PIXEL_MM, crop_box,
                                                          gtv_center, planning_inputs, take_crop, to_working_grid)

JITTER = 4
"""Largest random shift of the training crop, voxels (2 mm each)."""
CORE_LABELS = (1, 3)
EDEMA_LABEL = 2
TARGETS = {"whole": (1, 2, 3), "core": CORE_LABELS}
"""What a member learns to predict: the whole recurrence (labels 1|2|3, recurrent edema down-weighted) or its core
(enhancing + necrosis, labels 1|3: the issue's coverage definitions; recurrent edema is then a negative)."""


@dataclass
class Sample:
    """One patient: channels (C, Z, Y, X) float16, brain (Z, Y, X) bool and recurrence labels (Z, Y, X) uint8
    (BraTS: 1 necrosis, 2 edema, 3 enhancing, 4 cavity) on a crop of CROP_VOXELS + 2 JITTER voxels; the
    recurrence volume (labels 1|2|3, mL)."""

    patient: str
    x: np.ndarray
    brain: np.ndarray
    labels: np.ndarray
    recurrence_ml: float


def case_sample(case_json: str | Path) -> Sample | None:
    """The sample of one patient, or None when the ``recurrence`` protocol scores none (no RT, no progression)."""
    case = load_case(case_json)
    found = recurrence_task(case)
    if found is None:
        return None
    planning, target_index = found
    inputs = planning_inputs(planning)
    target = case.timepoints[target_index]
    labels = case.labels(target)
    if labels is None:
        labels = case.gtv(target).astype(np.int16) * EDEMA_LABEL  # no labels: the whole GTV, weighted as edema
    labels_w = np.rint(to_working_grid(labels.astype(np.float32), case.grid.spacing, 0)).astype(np.uint8)
    size = tuple(s + 2 * JITTER for s in CROP_VOXELS)
    box = crop_box(gtv_center(inputs.gtv), inputs.brain.shape, size)
    lab = take_crop(labels_w, box)
    ml = float(np.count_nonzero(np.isin(lab, (1, 2, 3)))) * PIXEL_MM ** 3 / 1000.0
    return Sample(case.patient_id, take_crop(inputs.x, box).astype(np.float16), take_crop(inputs.brain, box), lab, ml)


def cohort_samples(folders: Sequence[str | Path]) -> tuple[list[Sample], list[str]]:
    """Samples of every patient folder (``case.json`` each) and the patients left out, with the reason."""
    samples, skipped = [], []
    for folder in folders:
        sample = case_sample(Path(folder) / "case.json")
        if sample is None:
            skipped.append(Path(folder).name)
        else:
            samples.append(sample)
    if not samples:
        raise InputError(Path(folders[0]).parent if folders else None, "cohort",
                         "no patient has a post-RT progression (recurrence protocol): nothing to train on")
    return samples, skipped


def synthetic_samples(n: int, seed: int = 0, size: Sequence[int] = CROP_VOXELS) -> list[Sample]:
    """``n`` synthetic patients for tests: a ball tumour (radius 5-9 voxels) in a ball brain with a white-matter
    half-space; the recurrence is the tumour grown 3 voxels more into white matter than elsewhere."""
    rng = np.random.default_rng(seed)
    full = tuple(s + 2 * JITTER for s in size)
    grid = np.indices(full).astype(np.float32)
    mid = np.array(full, dtype=np.float32)[:, None, None, None] / 2
    out = []
    for i in range(n):
        brain = np.sqrt(((grid - mid) ** 2).sum(0)) < min(full) / 2 - 1
        centre = mid + rng.uniform(-3, 3, (3, 1, 1, 1)).astype(np.float32)
        r = np.sqrt(((grid - centre) ** 2).sum(0))
        radius = rng.uniform(5, 9)
        tumor = (r <= radius) & brain
        wm = ((grid[2] > mid[2, 0, 0, 0]) & brain).astype(np.float32)
        gm = (brain & (wm == 0)).astype(np.float32)
        rec = brain & (r <= radius + 2 + 3 * wm)
        labels = np.where(rec, EDEMA_LABEL, 0).astype(np.uint8)
        labels[rec & (r <= radius)] = 3
        x = np.zeros((len(CHANNELS),) + full, dtype=np.float32)
        x[CHANNELS.index("tumor")] = tumor
        x[CHANNELS.index("core")] = tumor & (r <= radius - 2)
        x[CHANNELS.index("wm")], x[CHANNELS.index("gm")] = wm, gm
        x[CHANNELS.index("flair")] = np.where(brain, tumor * 2.0 + rng.normal(0, 0.3, full), 0)
        x[CHANNELS.index("t1ce")] = np.where(brain, wm - gm + rng.normal(0, 0.3, full), 0)
        ml = float(np.count_nonzero(rec)) * PIXEL_MM ** 3 / 1000.0
        out.append(Sample(f"SYN-{i:03d}", x.astype(np.float16), brain, labels, ml))
    return out


def soft_target(labels: np.ndarray, sigma_voxels: float, classes: Sequence[int] = TARGETS["whole"]) -> np.ndarray:
    """The recurrence (``classes`` of the BraTS labels) as a probability map with Gaussian edge softening of
    ``sigma_voxels`` (0: the binary mask). The interior stays 1; the edge falls to about 0.5 at the boundary."""
    mask = np.isin(labels, classes).astype(np.float32)
    if sigma_voxels <= 0:
        return mask
    return np.clip(ndimage.gaussian_filter(mask, sigma_voxels), 0.0, 1.0).astype(np.float32)


def voxel_weights(labels: np.ndarray, brain: np.ndarray, edema_weight: float) -> np.ndarray:
    """Loss weights: 0 outside the brain, ``edema_weight`` on recurrent edema (label 2), 1 elsewhere in it."""
    w = brain.astype(np.float32)
    w[(labels == EDEMA_LABEL) & brain] = edema_weight
    return w


def draw_batch(samples: Sequence[Sample], indices: Sequence[int], rng: np.random.Generator,
               edema_weight: float, augment: bool = True, channel_dropout: float = 0.2,
               max_soften: float = 1.0, target: str = "whole") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x (B, C, *CROP), soft target (B, 1, *CROP), weights (B, 1, *CROP), recurrence mL (B,)) for the samples
    ``indices``; ``target`` names the labels learnt (:data:`TARGETS`; "core": recurrent edema is a negative of
    weight 1 and the mL are the core's). With ``augment``: a random shift of up to JITTER voxels, a left-right flip (p 0.5), each image
    channel zeroed with probability ``channel_dropout``, intensities scaled by U(0.9, 1.1), edge softening with
    sigma ~ U(0, ``max_soften``) voxels. Without it: the centre crop, sigma ``max_soften / 2``."""
    xs, ys, ws, mls = [], [], [], []
    for i in indices:
        s = samples[i]
        shift = rng.integers(-JITTER, JITTER + 1, 3) if augment else np.zeros(3, dtype=int)
        box = tuple(slice(JITTER + d, JITTER + d + n) for d, n in zip(shift, CROP_VOXELS))
        x = s.x[(slice(None), *box)].astype(np.float32)
        lab, brain = s.labels[box], s.brain[box]
        sigma = rng.uniform(0.0, max_soften) if augment else max_soften / 2
        if augment:
            if rng.random() < 0.5:
                x, lab, brain = x[..., ::-1], lab[..., ::-1], brain[..., ::-1]
            for name in IMAGE_CHANNELS:
                c = CHANNELS.index(name)
                x[c] *= rng.uniform(0.9, 1.1)
                if rng.random() < channel_dropout:
                    x[c] = 0.0
        xs.append(np.ascontiguousarray(x))
        ys.append(soft_target(lab, sigma, TARGETS[target])[None])
        if target == "whole":
            ws.append(voxel_weights(lab, brain, edema_weight)[None])
            mls.append(s.recurrence_ml)
        else:
            ws.append(brain.astype(np.float32)[None])
            mls.append(float(np.count_nonzero(np.isin(s.labels, TARGETS[target]))) * PIXEL_MM ** 3 / 1000.0)
    return (np.stack(xs).astype(np.float32), np.stack(ys), np.stack(ws), np.asarray(mls, dtype=np.float32))
