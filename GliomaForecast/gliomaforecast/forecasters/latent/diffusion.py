"""The single-scan latent diffusion forecaster: post-treatment T1CE, FLAIR and GTV probability from ONE scan.

Method: shared/papers/latent-diffusion-treatment-response.txt (METHODS.md section 3); networks, inputs and units
in :mod:`.latent_inputs` and the model card (Resources/Models/latent-diffusion.md). numpy + onnxruntime only.

1. The scan the forecast starts from is the case's last one (a case may hold a single scan); it needs T1CE, FLAIR
   and a non-empty GTV (an InputError naming the file and field otherwise).
2. The axial slices within 6 mm (z) of a GTV slice, cropped to 64 x 64 pixels at 2 mm around the GTV's centre; T1CE
   and FLAIR divided by the scan's intensity scales (99th percentile in the brain).
3. The image and GTV VQ-VAE encoders (ONNX) give continuous latents, snapped to their codebooks in numpy
   (:mod:`.latent_codebook`) and normalised per channel; with the gap (days to the target) and, for a family
   trained with it (registry ``dose_conditioning``), the planned RT dose on the crops (/ 60 Gy, mean-pooled to the
   latent grid; zeros without a dose map) they condition the latent denoiser.
4. ``samples`` post-treatment latents per slice are drawn by DDIM (deterministic, ``steps`` network calls, the core's
   runtime :mod:`gliomaforecast.diffusion`), seeded per slice and sample. ``outcome`` ``responder`` or
   ``progressor`` guides them with classifier-free guidance ``e = e_u + w (e_c - e_u)`` (one call on a 2B batch,
   w from the registry: chosen on the validation cohort); ``unknown`` samples the unconditional model (null class);
   ``both``: the unconditional forecast (which drives the targets) plus the responder and the progressor forecasts
   as ``ForecasterOutput.scenarios``, shown side by side in the report (three times the sampling).
5. Each sampled latent is snapped to the codebooks and decoded: T1CE and FLAIR (their mean over samples, times the
   scan's scales: the input's units; with the registry's ``image_mode`` "residual" the scan itself, at its own
   resolution, plus the decoded change, decoded post - decoded pre, interpolated onto the case grid, so that the
   autoencoder's reconstruction error cancels where nothing changes; "gated", chosen on the validation cohort: that
   change only near the scan's or the forecast GTV, ``latent_inputs.change_gate``) and the GTV (sigmoid of the
   decoded logits), pasted back onto the case grid inside the crops; elsewhere the images are the scan's own. Each
   sample's decoded GTV (probability >= 0.5) becomes the project's tumour-presence map, the logistic of its signed
   distance (``sdf.tumor_probability``, beta 0.1 /mm, mu 15 mm; 0 everywhere for a sample whose tumour vanished), as
   every forecaster's map and the truth of
   ``gliomaforecast evaluate`` are; the probability is their mean over samples and the uncertainty their SD.
6. A target outside the trained gap range (60-200 days after the scan) is forecast with a warning; never silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import sdf
from ...diffusion import SamplerSettings, sample_slices
from ...errors import InputError
from ...io.case import Case, Timepoint
from ...models import ModelFamily, load_family
from ..base import ForecasterOutput, ForecastRequest, ProgressFn, Scenario
from ..crops import paste_slices
from ..registry import OUTCOME
from . import inputs as li
from .codebook import quantize

MODEL_ID = "latent-diffusion"
MEMBERS = ("image_encoder", "image_decoder", "mask_encoder", "mask_decoder", "denoiser")
BATCH = 64
SAMPLE_KEY = 100_000  # noise key of sample k of slice z: k * SAMPLE_KEY + z
CLASS_NAMES = {li.NULL: "unknown", li.RESPONDER: "responder", li.PROGRESSOR: "progressor"}
IMAGE_MODES = {
    "direct": "mean decoded images",
    "residual": "scan + mean decoded change",
    "gated": "scan + mean decoded change within {gate_mm:g} mm of the scan's or the forecast GTV "
    "(falling to 0 over {feather_mm:g} mm)",
}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))).astype(np.float32)


def _presence(mask: np.ndarray, spacing) -> np.ndarray:
    """The tumour-presence map of a decoded GTV (logistic of its signed distance, mm); zeros when it is empty."""
    return sdf.tumor_probability(mask, spacing) if mask.any() else np.zeros(mask.shape, np.float32)


def _batched(model, name_in: str, x: np.ndarray, outputs: tuple[str, ...]) -> list[np.ndarray]:
    parts: list[list[np.ndarray]] = [[] for _ in outputs]
    for lo in range(0, len(x), BATCH):
        out = model.run({name_in: np.ascontiguousarray(x[lo : lo + BATCH], np.float32)})
        for part, name in zip(parts, outputs):
            part.append(out[name])
    return [np.concatenate(p) if p else np.zeros((0,), np.float32) for p in parts]


class LatentCodec:
    """The two VQ-VAEs of a loaded family: encode crops to normalised latents and decode sampled latents."""

    def __init__(self, family: ModelFamily) -> None:
        extra: dict[str, Any] = family["denoiser"].spec.extra
        self.family = family
        self.mean = np.asarray(extra["latent_mean"], np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(extra["latent_std"], np.float32).reshape(1, -1, 1, 1)
        self.channels = int(extra.get("latent_channels", self.mean.shape[1] // 2))
        self.codebooks = {
            k: _batched(family[f"{k}_encoder"], "images", np.zeros((1, c, li.CROP, li.CROP)), ("codebook",))[0]
            for k, c in (("image", len(li.MODALITIES)), ("mask", 1))
        }

    def encode(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Normalised quantized latents (n, 2 D, h, w) of image crops (n, 2, H, W) and GTV crops (n, 1, H, W)."""
        z_img = _batched(self.family["image_encoder"], "images", images, ("z",))[0]
        z_msk = _batched(self.family["mask_encoder"], "images", masks, ("z",))[0]
        lat = np.concatenate([quantize(z_img, self.codebooks["image"]), quantize(z_msk, self.codebooks["mask"])], 1)
        return ((lat - self.mean) / self.std).astype(np.float32)

    def decode(self, latents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(images (n, 2, H, W), GTV probability (n, 1, H, W)) of normalised latents (n, 2 D, h, w), each half
        snapped to its codebook first."""
        lat = latents * self.std + self.mean
        d = self.channels
        images = _batched(
            self.family["image_decoder"], "latent", quantize(lat[:, :d], self.codebooks["image"]), ("images",)
        )[0]
        logits = _batched(
            self.family["mask_decoder"], "latent", quantize(lat[:, d:], self.codebooks["mask"]), ("logits",)
        )[0]
        return images, _sigmoid(logits)


def denoiser_step(family: ModelFamily):
    """``step_fn(x, t, cond)`` of the denoiser; ``cond``'s last channel carries the class label (constant)."""
    model = family["denoiser"]

    def step_fn(x: np.ndarray, t: np.ndarray, cond: np.ndarray) -> np.ndarray:
        return model.run(
            {
                "x_t": np.ascontiguousarray(x, np.float32),
                "timesteps": np.asarray(t, np.int64),
                "cond": np.ascontiguousarray(cond[:, :-1], np.float32),
                "class_labels": np.rint(cond[:, -1, 0, 0]).astype(np.int64),
            }
        )["prediction"]

    return step_fn


def sample_latents(
    family: ModelFamily,
    cond: np.ndarray,
    outcome: int,
    settings: SamplerSettings,
    seed: int,
    keys: list[int],
    progress=None,
) -> np.ndarray:
    """Post-treatment latents (n, 2 D, h, w) for conditions ``cond`` (n, 2 D + 1, h, w); ``outcome`` the class
    (``latent_inputs.NULL``: unconditional, no guidance); ``settings.cfg_scale`` the guidance weight otherwise."""
    n, _, h, w = cond.shape
    label = np.full((n, 1, h, w), float(outcome), np.float32)
    packed = np.concatenate([cond, label], axis=1)
    null = np.concatenate([cond, np.full((n, 1, h, w), float(li.NULL), np.float32)], axis=1)
    if outcome == li.NULL:
        settings = SamplerSettings(**{**settings.__dict__, "cfg_scale": None})
    out_channels = int(family["denoiser"].spec.outputs[0].shape[1])
    return sample_slices(
        denoiser_step(family),
        n,
        (out_channels, h, w),
        cond=packed,
        null_cond=null,
        settings=settings,
        seed=seed,
        batch_size=BATCH,
        indices=keys,
        progress=progress,
    )


def conditions(lat: np.ndarray, gap_days: float, dose: np.ndarray | None, k: int) -> np.ndarray:
    """The denoiser's conditions (k n, C, h, w) of the normalised latents ``lat`` (n, 2 D, h, w): the latents, the
    gap feature of ``gap_days`` (days) and, when given, the ``dose`` crops (n, H, W; / 60 Gy) mean-pooled to the
    latent grid, tiled for the ``k`` samples."""
    n, _, h, w = lat.shape
    parts = [lat, np.full((n, 1, h, w), li.gap_feature(gap_days), np.float32)]
    if dose is not None:
        parts.append(li.pooled(dose, h))
    return np.ascontiguousarray(np.tile(np.concatenate(parts, axis=1), (k, 1, 1, 1)))


def presence_maps(
    prob: np.ndarray, shape: tuple[int, ...], z: np.ndarray, spacing: tuple[float, ...], center_yx_mm
) -> tuple[np.ndarray, np.ndarray]:
    """(probability, uncertainty) on the case grid (``shape``, ``spacing`` mm): the mean (clipped to [0, 1]) and the
    per-voxel SD over samples of the tumour-presence map of each sample's decoded GTV, its probabilities ``prob``
    (k, n, H, W) on the slices ``z`` pasted around ``center_yx_mm`` (mm) and thresholded at 0.5."""
    zeros = np.zeros(shape, np.float32)
    maps = np.stack([_presence(paste_slices(zeros, p, z, spacing[1:], center_yx_mm) >= 0.5, spacing) for p in prob])
    return np.clip(maps.mean(axis=0), 0.0, 1.0).astype(np.float32), maps.std(axis=0).astype(np.float32)


@dataclass(frozen=True)
class Decoding:
    """How the forecast T1CE and FLAIR are made of the decoded crops: ``mode`` one of :data:`IMAGE_MODES`;
    ``gate_mm`` and ``feather_mm`` (mm) the gate of ``gated``; ``pre_decoded`` (n, 2, H, W) the decoded scan
    (None for ``direct``)."""

    mode: str
    gate_mm: float
    feather_mm: float
    pre_decoded: np.ndarray | None

    def images(
        self, case: Case, scan: Timepoint, vol: li.ScanVolumes, z: np.ndarray, images: np.ndarray, prob: np.ndarray
    ) -> dict[str, np.ndarray]:
        """T1CE and FLAIR (the scan's units, case grid) from the mean decoded ``images`` (n, 2, H, W) and the decoded
        GTV probabilities ``prob`` (k, n, H, W) of the slices ``z``; elsewhere the scan's own images."""
        sp, out = case.grid.spacing[1:], {}
        if self.mode == "direct":
            for c, m in enumerate(li.MODALITIES):
                out[m] = paste_slices(case.image(scan, m), images[:, c] * vol.scales[c], z, sp, vol.center_yx_mm)
            return out
        change = images - self.pre_decoded  # the scan at its own resolution plus the decoded change
        if self.mode == "gated":
            region = (li.mask_slices(vol, z)[:, 0] > 0.5) | (prob.mean(axis=0) >= 0.5)
            change *= li.change_gate(region, li.PIXEL_MM, self.gate_mm, self.feather_mm)[:, None]
        zeros = np.zeros(case.grid.shape, np.float32)
        for c, m in enumerate(li.MODALITIES):
            out[m] = case.image(scan, m) + paste_slices(zeros, change[:, c] * vol.scales[c], z, sp, vol.center_yx_mm)
        return out


class LatentDiffusionForecaster:
    """``outcome``: responder, progressor, unknown (unconditional) or both (unconditional + both classes beside
    it); ``steps``: DDIM steps (None: the registry's);
    ``guidance_weight``: w (None: the registry's, chosen on the validation cohort); ``models_dir``: the registry
    folder (None: the default)."""

    name = "latent-diffusion"

    def __init__(
        self,
        outcome: str = OUTCOME.default,
        steps: int | None = None,
        guidance_weight: float | None = None,
        models_dir: str | None = None,
    ) -> None:
        if outcome not in OUTCOME.choices:  # declared once in the registry
            raise InputError(None, "outcome", f"must be one of {', '.join(OUTCOME.choices)}, got {outcome!r}")
        self.outcome = outcome
        self.steps = steps
        self.guidance_weight = guidance_weight
        self.models_dir = models_dir

    def predict(self, request: ForecastRequest, progress: ProgressFn) -> ForecasterOutput:
        case, scan = request.case, request.last
        li.check_modalities(case, scan, self.name)
        vol = li.scan_volumes(case, scan)  # InputError for a scan without a GTV
        family = load_family(MODEL_ID, self.models_dir, prefer_gpu=request.device != "cpu", require=MEMBERS)
        if request.device == "cuda" and family["denoiser"].provider != "CUDAExecutionProvider":
            raise InputError(None, "device", "cuda was requested but onnxruntime's CUDA provider does not load here")
        extra: dict[str, Any] = family["denoiser"].spec.extra
        z = li.forecast_slices(vol.gtv, request.spacing[0], float(extra.get("reach_mm", li.REACH_MM)))
        n, k = len(z), int(request.samples)
        progress(0.0, f"encoding {n} slices")
        codec = LatentCodec(family)
        lat = codec.encode(li.image_slices(vol, z), li.mask_slices(vol, z))
        dosed = bool(extra.get("dose_conditioning", False))
        cond = conditions(lat, request.horizon_days, li.dose_slices(case, vol, z) if dosed else None, k)
        keys = [s * SAMPLE_KEY + int(zz) for s in range(k) for zz in z]
        settings = self._settings(extra)
        mode = str(extra.get("image_mode", "direct"))
        decoding = Decoding(
            mode,
            float(extra.get("gate_margin_mm", 0.0)),
            float(extra.get("gate_feather_mm", 0.0)),
            codec.decode(lat)[0] if mode != "direct" else None,
        )
        runs = [li.NULL, li.RESPONDER, li.PROGRESSOR] if self.outcome == "both" else [li.OUTCOMES[self.outcome]]

        def draw(label: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
            """(probability, uncertainty, images by modality) of the forecast for class ``label``."""
            progress(lo, f"sampling {k} x {n} slices, {settings.steps} {settings.sampler} steps, {CLASS_NAMES[label]}")
            latents = sample_latents(
                family, cond, label, settings, request.seed, keys, progress=lambda f, m: progress(lo + (hi - lo) * f, m)
            )
            images, prob = codec.decode(latents)
            images = images.reshape(k, n, *images.shape[1:]).mean(axis=0)
            prob = prob.reshape(k, n, *prob.shape[2:])
            probability, uncertainty = presence_maps(prob, case.grid.shape, z, request.spacing, vol.center_yx_mm)
            return probability, uncertainty, decoding.images(case, scan, vol, z, images, prob)

        span = 0.9 / len(runs)
        drawn = [draw(label, 0.05 + i * span, 0.05 + (i + 1) * span) for i, label in enumerate(runs)]
        probability, uncertainty, out_images = drawn[0]
        scenarios = {
            CLASS_NAMES[lab]: Scenario(p, im["flair"], f"outcome {CLASS_NAMES[lab]} (CFG w = {settings.cfg_scale:g})")
            for lab, (p, _, im) in zip(runs[1:], drawn[1:])
        }
        notes = self._notes(request, z, settings, decoding, runs, dosed, extra)
        progress(1.0, "done")
        return ForecasterOutput(
            probability=probability,
            uncertainty=uncertainty,
            image=out_images["flair"],
            models=family.provenance(),
            notes=notes,
            image_kind="synthesized",
            extra_images={"t1ce": out_images["t1ce"]},
            scenarios=scenarios,
        )

    def _settings(self, extra: dict[str, Any]) -> SamplerSettings:
        """The registry's sampler (``extra``), with this forecaster's ``steps`` and ``guidance_weight`` when given."""
        sampler = extra.get("sampler", {})
        w_cfg = float(self.guidance_weight if self.guidance_weight is not None else extra.get("guidance_weight", 1.0))
        steps = int(self.steps if self.steps is not None else sampler.get("steps", 50))
        return SamplerSettings(
            sampler=str(sampler.get("name", "ddim")),
            steps=steps,
            eta=float(sampler.get("eta", 0.0)),
            prediction=str(extra.get("prediction", "v")),
            schedule=str(extra.get("schedule", "linear")),
            num_train_timesteps=int(extra.get("num_train_timesteps", 1000)),
            cfg_scale=w_cfg,
        )

    def _notes(
        self,
        request: ForecastRequest,
        z: np.ndarray,
        settings: SamplerSettings,
        decoding: Decoding,
        runs: list[int],
        dosed: bool,
        extra: dict[str, Any],
    ) -> list[str]:
        """The forecast's notes: the slices ``z``, the sampling of the classes ``runs`` and the images; the dose
        condition of a ``dosed`` family; a warning for a target outside the trained gap range (days)."""
        case, scan, gap, w_cfg = request.case, request.last, request.horizon_days, settings.cfg_scale
        lo_gap, hi_gap = (float(v) for v in extra.get("trained_gap_days", (60.0, 200.0)))
        guidance = "unconditional (null class)" if runs[0] == li.NULL else f"class {self.outcome}, CFG w = {w_cfg:g}"
        if len(runs) > 1:
            guidance += (
                f"; the responder and progressor forecasts beside it (CFG w = {w_cfg:g}; not used for the targets)"
            )
        images = IMAGE_MODES[decoding.mode].format(gate_mm=decoding.gate_mm, feather_mm=decoding.feather_mm)
        notes = [
            f"{self.name}: single-scan forecast from the scan of day {scan.day:g}; {len(z)} axial slices (z "
            f"{int(z[0])}-{int(z[-1])}) of {li.CROP} x {li.CROP} pixels at {li.PIXEL_MM:g} mm; {int(request.samples)} "
            f"samples, {settings.steps} {settings.sampler} steps, {guidance}; probability = mean over samples of the "
            f"decoded GTV's logistic map, uncertainty their SD; T1CE and FLAIR = {images}"
        ]
        if dosed:
            notes.append(
                f"{self.name}: conditioned on the planned RT dose"
                if case.dose() is not None
                else f"{self.name}: the case has no RT dose map; the dose condition is empty (the network's "
                f"no-dose condition, trained on examples with the dose withheld)"
            )
        if not lo_gap <= gap <= hi_gap:
            notes.append(
                f"warning: {self.name}: the target is {gap:g} days after the scan, outside the trained range "
                f"{lo_gap:g}-{hi_gap:g} days; the forecast is an extrapolation"
            )
        return notes
