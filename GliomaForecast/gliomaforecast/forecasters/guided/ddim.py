"""The growth-model-guided DDIM forecaster (Mechanistic learning, METHODS.md section 2;
shared/papers/mechanistic-learning-guided-diffusion.txt). Everything here is numpy + onnxruntime + scipy.

1. Crops (``guided_inputs``): the axial slices within 6 mm (z) of the last two GTVs, 64 x 64 pixels at 2 mm centred
   on them, FLAIR in model units; the last scan's burden per crop (GTV area / brain area).
2. Targets (``guided_targets``): per slice and generation, the growth model's burden at the target day drawn
   from its bootstrap distribution below the 90th percentile (per-slice fits where a slice has enough tumour
   history, the whole-tumour volume fit scaled otherwise).
3. ``K`` = ``request.samples`` generations: each crop noised to level ``nl`` (SDEdit, of T = 1000) and denoised by
   DDIM (eta 0, ``steps`` network calls) in the core runtime (:mod:`gliomaforecast.diffusion`) with classifier
   guidance eps' = eps - s_R sqrt(1 - alpha_bar) dR/dx, s_R = ``s_ct`` (target - R(x_t, t)); R and dR/dx come
   from the ``regressor`` member's one ONNX graph. Noise seeded per slice and generation.
4. Maps (``guided_maps``): growth map = mean over generations of the Otsu-binarised difference generated - last
   within 15 mm of the last GTV;
   tumour probability per generation = the generation's growth-model volume (its whole-tumour draw x the last
   volume, mL) placed nearest the last GTV, growing voxels ``growth_mm`` nearer and shrinking ones farther;
   probability = their mean, uncertainty = their per-voxel SD; the FLAIR is the per-voxel median generation
   (input scan units), pasted into the last FLAIR. Outside the crops: the last scan's FLAIR.
5. Diagnostics in the notes: the fraction of generated tumour slices whose burden (the regressor at t = 0 on
   the generated crop) lies in the growth model's 95 % band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...diffusion import SamplerSettings, sample_slices
from ...errors import InputError
from ...models import ModelFamily, load_family
from ..base import ForecasterOutput, ForecastRequest, ProgressFn
from . import inputs as gi
from .maps import GROWTH_MM, generation_probability, near_tumour, otsu_change
from .targets import BurdenTargets, check_growth, slice_targets

MODEL_ID = "guided-ddim"
NL = 200
STEPS = 10
S_CT = 5e4
BATCH = 32
SAMPLE_KEY = 100_000  # noise key of generation k of slice z: k * SAMPLE_KEY + z


@dataclass
class Generations:
    """Crops of K generations: ``x`` (K, n, crop, crop) model units; ``burden`` (K, n) the regressor at t = 0."""

    x: np.ndarray
    burden: np.ndarray


def check_case(request: ForecastRequest, name: str) -> None:
    """One-line InputErrors: fewer than two scans with tumour; an RT dose without an RT start (the growth model's
    RT response needs the day)."""
    case = request.case
    if len(case.timepoints) < 2:
        raise InputError(
            case.path,
            "timepoints",
            f"the {name} forecaster needs two scans with tumour; the case has "
            f"{len(case.timepoints)}: use --forecaster persistence",
        )
    for tp in case.timepoints:
        case.gtv(tp)  # an empty GTV is an InputError naming its file
    if case.dose_path is not None and case.rt_start_day is None:
        raise InputError(
            case.path,
            "rt_start_day",
            f"the case has an RT dose ({case.dose_path.name}) but no RT "
            "start; the growth model needs rt_start_day (or rt_start_date)",
        )


def regressor_fn(family: ModelFamily):
    """``(x, t) -> (R (B,), dR/dx (B, 1, h, w))`` through the ``regressor`` member."""
    reg = family["regressor"]

    def run(x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = reg.run({"x": np.ascontiguousarray(x, np.float32), "timesteps": np.asarray(t, np.int64)})
        return out["burden"].astype(np.float64), out["grad"].astype(np.float64)

    return run


def generate(
    family: ModelFamily,
    crops: np.ndarray,
    targets: np.ndarray,
    z: np.ndarray,
    *,
    nl: int,
    steps: int,
    s_ct: float,
    seed: int,
    progress: ProgressFn,
) -> Generations:
    """K generations of the crops (n, crop, crop) guided to ``targets`` (K, n) (see the module docstring)."""
    k, n = targets.shape
    size = crops.shape[-1]
    regressor = regressor_fn(family)
    den = family["denoiser"]

    def step_fn(x: np.ndarray, t: np.ndarray, _c) -> np.ndarray:
        return den.run({"x": np.ascontiguousarray(x, np.float32), "timesteps": np.asarray(t, np.int64)})["eps"]

    def grad_fn(x: np.ndarray, t: np.ndarray, c: np.ndarray | None) -> np.ndarray:
        assert c is not None  # the targets, passed as cond
        r, g = regressor(x, t)
        return (c.reshape(-1) - r).reshape(-1, 1, 1, 1) * g

    settings = SamplerSettings(
        sampler="ddim",
        steps=steps,
        start=nl,
        eta=0.0,
        prediction="epsilon",
        schedule="linear",
        classifier_scale=float(s_ct),
    )
    x0 = np.tile(crops[:, None], (k, 1, 1, 1)).astype(np.float32)
    out = sample_slices(
        step_fn,
        k * n,
        (1, size, size),
        x0=x0,
        cond=targets.reshape(-1, 1).astype(np.float32),
        settings=settings,
        seed=seed,
        batch_size=BATCH,
        grad_fn=grad_fn if s_ct else None,
        indices=[g * SAMPLE_KEY + int(s) for g in range(k) for s in z],
        progress=progress,
    )
    burden = np.concatenate(
        [
            regressor(out[lo : lo + BATCH], np.zeros(len(out[lo : lo + BATCH]), np.int64))[0]
            for lo in range(0, len(out), BATCH)
        ]
    )
    return Generations(out[:, 0].reshape(k, n, size, size), burden.reshape(k, n))


def in_band(burden: np.ndarray, targets: BurdenTargets) -> float:
    """Fraction of generated tumour slices (K, n; slices whose band is above 0) whose burden lies in the growth
    model's 95 % band; NaN without such a slice. (A slice without tumour has the band [0, 0], which a regressed
    burden never meets exactly.)"""
    lo, hi = targets.band[:, 0][None], targets.band[:, 1][None]
    tumour = np.broadcast_to(hi > 0, burden.shape)
    if not tumour.any():
        return float("nan")
    return float(np.mean(((burden >= lo) & (burden <= hi))[tumour]))


def generation_maps(
    request: ForecastRequest, crops: gi.ScanCrops, gens: Generations, volumes: np.ndarray, growth_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probability, uncertainty, growth map) on the case grid from the ``request.samples`` generations: per
    generation, the Otsu growth and shrinkage of its crops against the last scan's (within reach of the last GTV)
    and its growth-model volume ``volumes[g]`` (mL) placed nearest the last GTV, growing voxels ``growth_mm`` (mm)
    nearer; the mean of those maps (clipped to [0, 1]), their per-voxel SD and the mean growth map."""
    case, spacing, k = request.case, request.spacing, request.samples
    sp_yx, center = spacing[1:], crops.center_yx_mm
    phi_last = case.gtv_distance(request.last)
    near = near_tumour(phi_last)
    brain = case.brain_mask()
    zeros = np.zeros(case.grid.shape, np.float32)
    maps = []
    growth_sum = np.zeros_like(zeros)
    for g in range(k):
        change = gens.x[g] - crops.image
        grow = near * gi.paste(zeros, otsu_change(change, crops.brain), crops.z, sp_yx, center)
        shrink = near * gi.paste(zeros, otsu_change(-change, crops.brain), crops.z, sp_yx, center)
        growth_sum += grow
        maps.append(generation_probability(phi_last, grow, shrink, float(volumes[g]), spacing, brain, growth_mm))
    stack = np.stack(maps)
    probability = np.clip(stack.mean(axis=0), 0.0, 1.0).astype(np.float32)
    return probability, stack.std(axis=0).astype(np.float32), growth_sum / k


class GuidedDDIMForecaster:
    """``nl`` SDEdit noise level (of 1000), ``steps`` DDIM network calls, ``s_ct`` guidance constant (0: unguided);
    ``growth_mm`` how much nearer (mm) a growing voxel ranks when the volume is placed (0: the diffusion does not
    move it); ``models_dir`` the registry folder (None: the default). K generations = ``request.samples``."""

    name = "guided-ddim"

    def __init__(
        self,
        nl: int = NL,
        steps: int = STEPS,
        s_ct: float = S_CT,
        growth_mm: float = GROWTH_MM,
        models_dir: str | None = None,
    ) -> None:
        self.nl, self.steps, self.s_ct, self.models_dir = int(nl), int(steps), float(s_ct), models_dir
        self.growth_mm = float(growth_mm)
        self.last_run: dict = {}

    def predict(self, request: ForecastRequest, progress: ProgressFn) -> ForecasterOutput:
        check_case(request, self.name)
        case, last = request.case, request.last
        check_growth(request.growth, request.target_day, case.path)  # before any model is loaded
        family = load_family(
            MODEL_ID, self.models_dir, prefer_gpu=request.device != "cpu", require=("denoiser", "regressor")
        )
        if request.device == "cuda" and family["denoiser"].provider != "CUDAExecutionProvider":
            raise InputError(None, "device", "cuda was requested but onnxruntime's CUDA provider does not load here")
        progress(0.0, "crops of the last scan")
        crops = gi.scan_crops(case, -2, -1, reach_mm=gi.FORECAST_REACH_MM)
        progress(0.05, "growth targets per slice")
        targets = slice_targets(
            case, crops.z, crops.burden, request.growth, request.target_day, request.samples, request.seed
        )
        gens = generate(
            family,
            crops.image,
            targets.targets,
            crops.z,
            nl=self.nl,
            steps=self.steps,
            s_ct=self.s_ct,
            seed=request.seed,
            progress=lambda f, m: progress(0.1 + 0.8 * f, m),
        )
        progress(0.9, "growth probability maps")
        volumes = targets.volume_ratio * float(request.growth.burdens[-1])
        probability, uncertainty, growth_map = generation_maps(request, crops, gens, volumes, self.growth_mm)
        median = gi.from_model_units(np.median(gens.x, axis=0), crops.scale)
        image = gi.paste(case.image(last, "flair"), median, crops.z, request.spacing[1:], crops.center_yx_mm)
        band = in_band(gens.burden, targets)
        self.last_run = {
            "in_band": band,
            "burden": gens.burden,
            "targets": targets,
            "crops": crops,
            "growth_map": growth_map,
            "volumes_ml": volumes,
        }
        notes = [self._note(crops, targets, request.samples, band, volumes)]
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

    def _note(self, crops: gi.ScanCrops, targets: BurdenTargets, k: int, band: float, volumes: np.ndarray) -> str:
        """The forecast's note: the slices, the sampling of the ``k`` generations, where the targets came from, the
        fraction ``band`` of generated tumour slices in the growth model's 95 % band and the ``volumes`` (mL)."""
        n = len(crops.z)
        return (
            f"{self.name}: {n} axial slices (z {int(crops.z[0])}-{int(crops.z[-1])}), {k} generations, SDEdit "
            f"from NL {self.nl}, {self.steps} DDIM steps, guidance s_ct {self.s_ct:g}; targets from "
            f"{int(targets.per_slice.sum())} per-slice growth fits, the volume fit scaled on the other "
            f"{n - int(targets.per_slice.sum())}"
            + (f" ({targets.failed} slice fits failed)" if targets.failed else "")
            + f"; {100 * band:.0f} % of generated tumour slices have their burden in the growth model's 95 % band; "
            f"probability = mean over generations of the growth model's volume draw ({np.median(volumes):.1f} mL "
            f"in median) placed nearest the last GTV, Otsu growth {self.growth_mm:g} mm nearer, shrinkage farther"
        )
