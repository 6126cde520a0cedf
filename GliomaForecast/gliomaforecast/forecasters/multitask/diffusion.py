"""The multi-task diffusion forecaster: future tumour probability map and future FLAIR at the target day.

Method: Multi-task diffusion paper (shared/papers/multitask-diffusion-glioma-progression.txt), section 4.3; the
network, its inputs and units are described in :mod:`gliomaforecast.forecasters.crops` and in the model card
(Resources/Models/multitask-diffusion.md). Everything here is numpy + onnxruntime (no torch).

1. The evolution field between the last two GTVs (``deformation.case_evolution_field``) and the condition
   channels of the last two scans (FLAIR, T1CE, signed distances, dose, field, brain mask).
2. The axial slices within 20 mm (along z) of a slice holding either prior GTV (``forecast_slices``): a tumour
   can grow into slices that hold none today. Each is resampled to 2 mm pixels and cropped (64 x 64 pixels,
   128 mm) around the prior tumours' centre.
3. Predictive head: the probability map, run ``samples`` times with the scan gaps jittered by +-5 days
   (the training noise) and the slice flipped / transposed (test-time augmentation, seeded); the probability is
   their mean and the uncertainty their per-voxel standard deviation. The network's logit correction of the last
   GTV's logistic map (its starting point) is pasted back onto the case grid and added to that map's logit at
   full resolution; outside the crops, on those slices, each slice takes its crop's median correction on the
   outer ring of pixels (registry ``outside_correction`` "edge_median", chosen on the validation cohort; "none":
   no correction); off the slices the map is the last GTV's logistic map.
4. Generative head, on the slices within 6 mm (z) of a slice holding a prior GTV (elsewhere the FLAIR is the
   last one): min(``samples``, 2) FLAIR changes per slice (at 4 mm pixels) drawn by DPM-Solver++(2M)
   (10 steps) in the core's sampling runtime (:mod:`gliomaforecast.diffusion`), seeded per slice and sample;
   their mean, interpolated onto the case grid, is added to the last FLAIR (the input scan's intensity units)
   inside the crops.
5. A target gap beyond the trained range (1-400 days) is forecast anyway, with a warning in the notes
   (forecast.json and the report).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import sdf
from ...deformation import case_evolution_field
from ...diffusion import SamplerSettings, sample_slices
from ...errors import InputError
from ...io.case import Case
from ...models import OnnxModel, load_family
from .. import crops as mi
from ..base import ForecasterOutput, ForecastRequest, ProgressFn

MODEL_ID = "multitask-diffusion"
MEMBERS = ("encoder", "generator")
FEATURES = ("skip0", "skip1", "skip2", "bottom", "e_gap")
GAP_JITTER_DAYS = 5.0
BATCH = 32
IMAGE_REACH_MM = 6.0  # the FLAIR is synthesized on slices within this distance (mm, z) of a prior GTV slice
IMAGE_SAMPLES = 2  # FLAIR samples averaged per slice (the sampling loop is the costly part on CPU)
SAMPLE_KEY = 100_000  # noise key of sample k of slice z: k * SAMPLE_KEY + z


def _encode(encoder, cond: np.ndarray, gaps: np.ndarray) -> dict[str, np.ndarray]:
    """The encoder member's outputs (probability and the generative decoder's features) for condition crops
    ``cond`` (n, 10, H, W) and ``gaps`` (n, 3) days, run in batches of ``BATCH``."""
    parts: dict[str, list[np.ndarray]] = {}
    for lo in range(0, len(cond), BATCH):
        out = encoder.run({"cond": cond[lo : lo + BATCH], "gaps": gaps[lo : lo + BATCH]})
        for name, value in out.items():
            parts.setdefault(name, []).append(value)
    return {name: np.concatenate(values) for name, values in parts.items()}


def _outside(shape: tuple[int, ...], corrections: np.ndarray, z: np.ndarray, rule: str) -> np.ndarray:
    """The logit correction outside the crops (case grid, zeros off the slices ``z``): ``none`` 0; ``edge_median``
    each slice's median correction on its crop's outer ring of pixels (the network's far-field tendency)."""
    out = np.zeros(shape, np.float32)
    if rule == "edge_median" and len(z):
        ring = np.ones(corrections.shape[1:], bool)
        ring[1:-1, 1:-1] = False
        out[z] = np.median(corrections[:, ring], axis=1)[:, None, None]
    return out


def _base_logit(phi: np.ndarray) -> np.ndarray:
    """The logit of the last GTV's logistic map, beta (mu - phi), phi in mm (the network's starting point)."""
    return (sdf.DEFAULT_BETA * (sdf.DEFAULT_MU - np.asarray(phi, np.float64))).astype(np.float32)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p)).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))).astype(np.float32)


def _augment(planes: np.ndarray, k: int, inverse: bool = False) -> np.ndarray:
    """Flip / transpose variant ``k`` (0: identity) of (n, C, h, w) planes; displacement channels follow the axes."""
    flip_y, flip_x, swap = bool(k & 1), bool(k & 2), bool(k & 4)
    out = np.array(planes, copy=True)
    dy, dx = mi.COND_NAMES.index("disp_y"), mi.COND_NAMES.index("disp_x")
    has_disp = out.shape[1] == mi.COND_CHANNELS
    steps = [("y", flip_y), ("x", flip_x), ("t", swap)]
    for axis, on in reversed(steps) if inverse else steps:
        if not on:
            continue
        if axis == "y":
            out = out[:, :, ::-1]
            if has_disp:
                out[:, dy] = -out[:, dy]
        elif axis == "x":
            out = out[:, :, :, ::-1]
            if has_disp:
                out[:, dx] = -out[:, dx]
        else:
            out = np.swapaxes(out, 2, 3)
            if has_disp:
                out[:, [dy, dx]] = out[:, [dx, dy]]
    return np.ascontiguousarray(out)


def check_case(case: Case, name: str) -> None:
    """One-line InputErrors: fewer than two prior scans; a missing modality."""
    if len(case.timepoints) < 2:
        raise InputError(
            case.path,
            "timepoints",
            f"the {name} forecaster needs two prior scans; the case has {len(case.timepoints)}: use --forecaster "
            "persistence",
        )
    mi.check_modalities(case)


def logit_corrections(
    encoder: OnnxModel, cond: np.ndarray, gaps: np.ndarray, samples: int, seed: int
) -> list[np.ndarray]:
    """The network's logit corrections (n, H, W) of the last GTV's logistic map on the condition crops ``cond``
    (n, 10, H, W), one per pass (``samples``): pass k > 0 jitters the two scan gaps (``gaps``, days) by up to
    +-``GAP_JITTER_DAYS`` (uniform, from ``seed``; at least 1 day), and pass k sees the crops in flip / transpose
    variant k % 8."""
    n = len(cond)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    base_crops = _base_logit(cond[:, mi.PHI2_CHANNEL])
    maps = []
    for k in range(samples):
        g = np.repeat(gaps[None], n, axis=0)
        if k:
            g[:, :2] += rng.uniform(-GAP_JITTER_DAYS, GAP_JITTER_DAYS, size=2).astype(np.float32)
            g[:, :2] = np.maximum(g[:, :2], 1.0)
        variant = k % 8
        c = _augment(cond, variant)
        p = _encode(encoder, c, g)["probability"]
        maps.append(_logit(_augment(p, variant, inverse=True)[:, 0]) - base_crops)
    return maps


def probability_maps(
    corrections: list[np.ndarray],
    phi_last: np.ndarray,
    z: np.ndarray,
    spacing_yx: tuple[float, ...],
    center_yx_mm: tuple[float, float],
    outside: str,
) -> tuple[np.ndarray, np.ndarray]:
    """(probability, uncertainty) on the case grid: the mean (clipped to [0, 1]) and the per-voxel SD over passes of
    the sigmoid of the last GTV's logit (``phi_last``, mm; full resolution) plus the pass's ``corrections`` (the
    network's, smooth) pasted onto the slices ``z``, with the ``outside`` rule beyond the crops."""
    base = _base_logit(phi_last)
    full = np.stack(
        [
            _sigmoid(base + mi.paste_slices(_outside(base.shape, m, z, outside), m, z, spacing_yx, center_yx_mm))
            for m in corrections
        ]
    )
    return np.clip(full.mean(axis=0), 0.0, 1.0).astype(np.float32), full.std(axis=0).astype(np.float32)


def sample_changes(
    generator: OnnxModel,
    features: dict[str, np.ndarray],
    z_img: np.ndarray,
    k_img: int,
    half: int,
    settings: SamplerSettings,
    seed: int,
    progress: ProgressFn,
) -> np.ndarray:
    """The mean over ``k_img`` samples of the FLAIR change (len(z_img), half, half; model units, generative pixels)
    of each slice of ``z_img``, drawn by the generative decoder on the slice's encoder ``features``; the noise of
    sample k of slice z is keyed k * SAMPLE_KEY + z (from ``seed``)."""
    m = len(z_img)
    index = np.tile(np.arange(m, dtype=np.float32), k_img)[:, None]  # the slice of each draw
    keys = [k * SAMPLE_KEY + int(s) for k in range(k_img) for s in z_img]

    def step_fn(x: np.ndarray, t: np.ndarray, c: np.ndarray) -> np.ndarray:
        rows_of = np.rint(c[:, 0]).astype(np.int64)
        return generator.run(
            {
                "x_t": x.astype(np.float32),
                "timesteps": np.asarray(t, np.int64),
                **{f: features[f][rows_of] for f in FEATURES},
            }
        )["prediction"]

    draws = sample_slices(
        step_fn,
        m * k_img,
        (1, half, half),
        cond=index,
        settings=settings,
        seed=seed,
        batch_size=BATCH,
        indices=keys,
        progress=progress,
    )
    return draws.reshape(k_img, m, half, half).mean(axis=0)


def flair_image(
    flair_last: np.ndarray,
    change: np.ndarray,
    z_img: np.ndarray,
    spacing_yx: tuple[float, ...],
    volumes: mi.CaseVolumes,
    extra: dict[str, Any],
) -> np.ndarray:
    """The forecast FLAIR (the input scan's units, float32): ``flair_last`` plus the mean sampled ``change`` (model
    units) times the last FLAIR's scale / the residual gain, interpolated from the generative pixels (mm) onto the
    slices ``z_img`` of the case grid (pixel ``spacing_yx``, mm)."""
    gain = float(extra.get("residual_gain", mi.RESIDUAL_GAIN))
    delta = mi.paste_slices(
        np.zeros_like(flair_last),
        change * (volumes.scale_2 / gain),
        z_img,
        spacing_yx,
        volumes.center_yx_mm,
        float(extra.get("generative_pixel_mm", mi.GEN_PIXEL_MM)),
    )
    return (flair_last + delta).astype(np.float32)


class MultiTaskDiffusionForecaster:
    """``steps``: network calls of the FLAIR sampler (DPM-Solver++(2M)); ``image_samples``: the most FLAIR samples
    averaged per slice; ``models_dir``: the registry folder (None: the default)."""

    name = "multitask-diffusion"

    def __init__(self, steps: int = 10, image_samples: int = IMAGE_SAMPLES, models_dir: str | None = None) -> None:
        self.steps = int(steps)
        self.image_samples = int(image_samples)
        self.models_dir = models_dir

    def predict(self, request: ForecastRequest, progress: ProgressFn) -> ForecasterOutput:
        case, last = request.case, request.last
        check_case(case, self.name)
        family = load_family(MODEL_ID, self.models_dir, prefer_gpu=request.device != "cpu", require=MEMBERS)
        encoder, generator = (family[m] for m in MEMBERS)
        if request.device == "cuda" and encoder.provider != "CUDAExecutionProvider":
            raise InputError(None, "device", "cuda was requested but onnxruntime's CUDA provider does not load here")
        extra: dict[str, Any] = encoder.spec.extra
        spacing = request.spacing
        progress(0.0, "evolution field between the last two scans")
        field, _ = case_evolution_field(case, -2, -1)
        phis = [case.gtv_distance(tp) for tp in case.timepoints[-2:]]
        volumes = mi.case_volumes(case, field, -2, -1, phis=phis)
        gaps = mi.gaps(case.timepoints[-2].day, last.day, request.target_day, case.rt_start_day)
        z = mi.forecast_slices(phis[1], phis[0], spacing[0])
        crop = int(extra.get("crop", mi.CROP))
        cond = mi.cond_slices(volumes, z, crop)

        progress(0.1, f"probability map on {len(z)} slices, {request.samples} augmented passes")
        corrections = logit_corrections(encoder, cond, gaps, request.samples, request.seed)
        outside = str(extra.get("outside_correction", "none"))
        probability, uncertainty = probability_maps(corrections, phis[1], z, spacing[1:], volumes.center_yx_mm, outside)

        k_img = min(request.samples, self.image_samples)
        z_img = mi.forecast_slices(phis[1], phis[0], spacing[0], IMAGE_REACH_MM)
        progress(0.3, f"FLAIR: {k_img} samples x {len(z_img)} slices, {self.steps} DPM-Solver++(2M) steps")
        settings = self._settings(extra)
        # the encoder runs once per slice; each sampler step runs the generative decoder on its features
        features = _encode(
            encoder, np.ascontiguousarray(cond[np.searchsorted(z, z_img)]), np.repeat(gaps[None], len(z_img), axis=0)
        )
        change = sample_changes(
            generator,
            features,
            z_img,
            k_img,
            crop // mi.GEN_POOL,
            settings,
            request.seed,
            lambda f, m: progress(0.3 + 0.65 * f, m),
        )
        image = flair_image(case.image(last, "flair"), change, z_img, spacing[1:], volumes, extra)
        notes = self._notes(z, z_img, crop, request.samples, k_img, settings, float(gaps[1]), extra)
        progress(1.0, "done")
        return ForecasterOutput(
            probability=probability,
            uncertainty=uncertainty,
            image=image,
            displacement=None,
            models=family.provenance(),
            notes=notes,
            image_kind="synthesized",
        )

    def _settings(self, extra: dict[str, Any]) -> SamplerSettings:
        """The FLAIR sampler: the registry's (``extra``), with this forecaster's ``steps``."""
        return SamplerSettings(
            sampler=str(extra.get("sampler", {}).get("name", "dpmpp_2m")),
            steps=self.steps,
            prediction=str(extra.get("prediction", "v_prediction")),
            schedule=str(extra.get("schedule", "linear")),
            num_train_timesteps=int(extra.get("num_train_timesteps", 1000)),
        )

    def _notes(
        self,
        z: np.ndarray,
        z_img: np.ndarray,
        crop: int,
        samples: int,
        k_img: int,
        settings: SamplerSettings,
        horizon: float,
        extra: dict[str, Any],
    ) -> list[str]:
        """The forecast's notes: the probability map's slices ``z`` and ``samples`` passes, the FLAIR's ``k_img``
        samples on the slices ``z_img``; a warning for a ``horizon`` (days after the last scan) outside the trained
        range."""
        n, m = len(z), len(z_img)
        lo_gap, hi_gap = (float(v) for v in extra.get("trained_gap_days", (1.0, 400.0)))
        notes = (
            [
                f"{self.name}: {n} axial slices (z {int(z[0])}-{int(z[-1])}) of {crop} x {crop} pixels at "
                f"{mi.PIXEL_MM:g} mm; probability = mean of {samples} passes (gap jitter +-"
                f"{GAP_JITTER_DAYS:g} days, flips), uncertainty their SD; FLAIR = last FLAIR + mean of "
                f"{k_img} sampled changes on {m} slices ({settings.sampler}, {self.steps} steps, 4 mm pixels)"
            ]
            if n
            else [f"{self.name}: no tumour slice; the last GTV's map unchanged"]
        )
        if not lo_gap <= horizon <= hi_gap:
            notes.append(
                f"warning: {self.name}: the target is {horizon:g} days after the last scan, outside the "
                f"trained range {lo_gap:g}-{hi_gap:g} days; the forecast is an extrapolation"
            )
        return notes
