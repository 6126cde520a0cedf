"""Export the latent diffusion forecaster's networks to ONNX, check parity with torch, and register them as the
model family ``latent-diffusion`` with the core's registry writer.

    gliomaforecast-train latent-diffusion export --image-vq vq_image.pt --mask-vq vq_mask.pt \
        --denoiser denoiser.pt --models-dir Resources/Models [--guidance-weight W] [--metrics m.json]

Members (opset 17, TorchScript exporter, dynamic batch):

* ``image_encoder`` / ``mask_encoder``: ``images`` (batch, 2 | 1, 64, 64) -> ``z`` (batch, 4, 16, 16) the continuous
  encoding and ``codebook`` (num_embeddings, 4); the core snaps z to the nearest codebook vector in numpy
  (``gliomaforecast.forecasters.latent.codebook``), exactly MONAI's ``EMAQuantizer.quantize``;
* ``image_decoder`` / ``mask_decoder``: ``latent`` (batch, 4, 16, 16) quantized -> ``images`` (T1CE, FLAIR / the
  pre-treatment scales) or ``logits`` (GTV);
* ``denoiser``: ``x_t`` (batch, 8, 16, 16), ``timesteps`` (batch,) int64, ``cond`` (batch, 9, 16, 16),
  ``class_labels`` (batch,) int64 -> ``prediction`` (v).

The entry carries what the core forecaster reads: crop and pixel size, latent normalisation (per-channel mean and
SD), schedule, prediction type, sampler, the guidance weight chosen on the validation cohort, the trained gap range.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from gliomaforecast.forecasters.latent import inputs as li
from gliomaforecast.model_registry_writer import family_entry, file_entry

from ..common.export import cpu_session, export_graph, export_record, megabytes, read_metrics, register
from ..common.schedule import NUM_TRAIN_TIMESTEPS, SCHEDULE
from .data import MAX_GAP_DAYS, MIN_GAP_DAYS
from .net import LATENT_CHANNELS, LATENT_SIZE, NUM_CLASSES, Decoder, Encoder, cond_channels
from .train import load_denoiser, load_vqvae

MODEL_ID = "latent-diffusion"
VERSION = "1.1.0"
PARITY_LIMIT = 1e-4
DEFAULT_STEPS = 25
FILES = {"image_encoder": "latent_diffusion_image_encoder.onnx", "image_decoder": "latent_diffusion_image_decoder.onnx",
         "mask_encoder": "latent_diffusion_mask_encoder.onnx", "mask_decoder": "latent_diffusion_mask_decoder.onnx",
         "denoiser": "latent_diffusion_denoiser.onnx"}


def _t(name: str, shape: list, dtype: str, units: str, normalization: str) -> dict:
    return {"name": name, "shape": shape, "dtype": dtype, "units": units, "normalization": normalization}


def member_io(channels: int, dose: bool = False) -> dict[str, tuple[list[str], list[str], dict, list[dict], list[dict]]]:
    """Per member: input names, output names, dynamic axes, registry input and output descriptions."""
    lat = ["batch", LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE]
    scaled = "T1CE, FLAIR / the pre-treatment scan's 99th percentile in the brain, 2 mm pixels, 64 x 64 crop"
    out = {}
    for kind, ch, desc in (("image", channels, scaled), ("mask", 1, "GTV 0/1, 2 mm pixels, 64 x 64 crop")):
        img = ["batch", ch, li.CROP, li.CROP]
        out[f"{kind}_encoder"] = (["images"], ["z", "codebook"], {"images": {0: "batch"}, "z": {0: "batch"}},
                                  [_t("images", img, "float32", "dimensionless", desc)],
                                  [_t("z", lat, "float32", "latent", "continuous encoding before quantization"),
                                   _t("codebook", ["codes", LATENT_CHANNELS], "float32", "latent",
                                      "codebook vectors; the core quantizes z to the nearest (Euclidean)")])
        name = "images" if kind == "image" else "logits"
        out[f"{kind}_decoder"] = (["latent"], [name], {"latent": {0: "batch"}, name: {0: "batch"}},
                                  [_t("latent", lat, "float32", "latent", "quantized latent (codebook vectors)")],
                                  [_t(name, img, "float32", "dimensionless" if kind == "image" else "logit",
                                      desc if kind == "image" else "GTV logit; probability = sigmoid")])
    out["denoiser"] = (["x_t", "timesteps", "cond", "class_labels"], ["prediction"],
                       {"x_t": {0: "batch"}, "timesteps": {0: "batch"}, "cond": {0: "batch"},
                        "class_labels": {0: "batch"}, "prediction": {0: "batch"}},
                       [_t("x_t", ["batch", 2 * LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE], "float32", "latent",
                           "noised post-treatment [image; mask] latent, normalised by latent_mean / latent_std"),
                        _t("timesteps", ["batch"], "int64", "diffusion step", f"0..{NUM_TRAIN_TIMESTEPS - 1}"),
                        _t("cond", ["batch", cond_channels(dose), LATENT_SIZE, LATENT_SIZE], "float32", "mixed",
                           "pre-treatment [image; mask] latents (normalised) and one constant channel "
                           f"(gap - {li.GAP_CENTER_DAYS:g} d) / {li.GAP_SCALE_DAYS:g} d"
                           + (f"; the planned dose / {li.DOSE_SCALE_GY:g} Gy mean-pooled to the latent grid "
                              "(zeros: no dose map)" if dose else "")),
                        _t("class_labels", ["batch"], "int64", "class",
                           "0 null (unconditional), 1 responder, 2 progressor")],
                       [_t("prediction", ["batch", 2 * LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE], "float32", "latent",
                           "v-prediction: v = sqrt(ab) eps - sqrt(1 - ab) x0")])
    return out


def example_inputs(member: str, channels: int, batch: int, seed: int = 0, dose: bool = False) -> tuple[torch.Tensor, ...]:
    """Random inputs of a member."""
    gen = torch.Generator().manual_seed(seed)
    if member.endswith("encoder"):
        ch = channels if member.startswith("image") else 1
        return (torch.rand((batch, ch, li.CROP, li.CROP), generator=gen),)
    if member.endswith("decoder"):
        return (torch.randn((batch, LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE), generator=gen) * 0.05,)
    return (torch.randn((batch, 2 * LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE), generator=gen),
            torch.randint(0, NUM_TRAIN_TIMESTEPS, (batch,), generator=gen),
            torch.randn((batch, cond_channels(dose), LATENT_SIZE, LATENT_SIZE), generator=gen),
            torch.randint(0, NUM_CLASSES, (batch,), generator=gen))


def export_member(module: torch.nn.Module, member: str, channels: int, path: Path, dose: bool = False) -> dict[str, float]:
    """Write one member as ONNX and return max |onnxruntime - torch| per output on another batch size."""
    names_in, names_out, dyn, _, _ = member_io(channels, dose)[member]
    export_graph(module.eval(), example_inputs(member, channels, 2, dose=dose), path, names_in, names_out, dyn,
                 do_constant_folding=not member.endswith("encoder"))  # keeps the codebook a graph output
    inputs = example_inputs(member, channels, 5, seed=1, dose=dose)
    with torch.no_grad():
        ref = module(*inputs)
    ref = ref if isinstance(ref, tuple) else (ref,)
    out = cpu_session(path).run(names_out, {n: t.numpy() for n, t in zip(names_in, inputs)})
    return {n: float(np.abs(a - b.numpy()).max()) for n, a, b in zip(names_out, out, ref)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image-vq", type=Path, required=True, help="image VQ-VAE checkpoint")
    p.add_argument("--mask-vq", type=Path, required=True, help="mask VQ-VAE checkpoint")
    p.add_argument("--denoiser", type=Path, required=True, help="denoiser checkpoint")
    p.add_argument("--models-dir", type=Path, required=True, help="folder of models.json (Resources/Models)")
    p.add_argument("--guidance-weight", type=float, default=1.0, help="CFG weight w chosen on the validation cohort")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="DDIM steps the forecaster uses")
    p.add_argument("--image-mode", choices=("direct", "residual", "gated"), default="direct",
                   help="images: the decoded post-treatment latent, the scan + decoded change, or that change only "
                        "near the tumour (chosen on validation)")
    p.add_argument("--gate-margin-mm", type=float, default=0.0, help="gated mode: margin (mm) around the GTVs")
    p.add_argument("--gate-feather-mm", type=float, default=4.0, help="gated mode: linear fall-off (mm)")
    p.add_argument("--metrics", type=Path, help="JSON of validation / held-out figures to record in the entry")
    p.add_argument("--training-minutes", type=float, nargs=3, metavar=("IMAGE", "MASK", "DENOISER"),
                   help="for the recorded command only (default: the checkpoints' --max-minutes)")


def _command(ckpts: dict) -> str:
    vi, vm, dn = (ckpts[k]["config"] for k in ("image_vq", "mask_vq", "denoiser"))
    return (f"gliomaforecast-train latent-diffusion prepare --cohort /work/data/train_dense --out train.npz && "
            f"gliomaforecast-train latent-diffusion vqvae --kind image --data train.npz --channels "
            f"{' '.join(map(str, vi['channels']))} --max-minutes {vi['max_minutes']:g} --batch {vi['batch']} "
            f"--seed {vi['seed']} --out vq_image.pt && "
            f"gliomaforecast-train latent-diffusion vqvae --kind mask --data train.npz --channels "
            f"{' '.join(map(str, vm['channels']))} --max-minutes {vm['max_minutes']:g} --batch {vm['batch']} "
            f"--seed {vm['seed']} --out vq_mask.pt && "
            f"gliomaforecast-train latent-diffusion diffusion --data train.npz --image-vq vq_image.pt --mask-vq "
            f"vq_mask.pt --channels {' '.join(map(str, dn['channels']))} --class-dropout {dn['class_dropout']:g} "
            + (f"--dose --dose-dropout {dn['dose_dropout']:g} " if dn.get("dose") else "") +
            f"--max-minutes {dn['max_minutes']:g} --batch {dn['batch']} --seed {dn['seed']} --out denoiser.pt")


def export(args: argparse.Namespace) -> dict:
    """Export every member, check parity (< 1e-4), register the family; returns the entry."""
    vq_image, ck_i = load_vqvae(args.image_vq)
    vq_mask, ck_m = load_vqvae(args.mask_vq)
    denoiser, ck_d = load_denoiser(args.denoiser)
    channels = len(li.MODALITIES)
    modules = {"image_encoder": Encoder(vq_image), "image_decoder": Decoder(vq_image),
               "mask_encoder": Encoder(vq_mask), "mask_decoder": Decoder(vq_mask), "denoiser": denoiser}
    args.models_dir.mkdir(parents=True, exist_ok=True)
    dose = bool(ck_d["config"].get("dose", False))
    io = member_io(channels, dose)
    files, parity = {}, {}
    for member, module in modules.items():
        path = args.models_dir / FILES[member]
        parity[member] = export_member(module, member, channels, path, dose)
        print(f"{member}: {megabytes(path)}, parity {parity[member]}", flush=True)
        if max(parity[member].values()) > PARITY_LIMIT:
            raise SystemExit(f"ONNX parity of {member} {parity[member]} exceeds {PARITY_LIMIT}")
        files[member] = file_entry(path, io[member][3], io[member][4])
    ckpts = {"image_vq": ck_i, "mask_vq": ck_m, "denoiser": ck_d}
    metrics = read_metrics(args.metrics, {})
    entry = family_entry(
        MODEL_ID, VERSION, files,
        task="single-scan forecast: post-treatment T1CE, FLAIR and GTV probability at 60-200 days from ONE scan "
             "(latent diffusion, VQ-VAE latents, classifier-free guidance of the outcome class; 2D axial slices)",
        card=f"{MODEL_ID}.md", pixel_spacing_mm=li.PIXEL_MM, crop=li.CROP, modalities=list(li.MODALITIES),
        latent_channels=LATENT_CHANNELS, latent_size=LATENT_SIZE,
        latent_mean=[round(v, 7) for v in ck_d["latent_mean"]], latent_std=[round(v, 7) for v in ck_d["latent_std"]],
        schedule=SCHEDULE, num_train_timesteps=NUM_TRAIN_TIMESTEPS, prediction="v_prediction",
        sampler={"name": "ddim", "steps": int(args.steps), "eta": 0.0}, guidance_weight=float(args.guidance_weight),
        image_mode=args.image_mode, dose_conditioning=dose,
        **({"gate_margin_mm": args.gate_margin_mm, "gate_feather_mm": args.gate_feather_mm}
           if args.image_mode == "gated" else {}),
        outcome_classes={"unknown": li.NULL, "responder": li.RESPONDER, "progressor": li.PROGRESSOR},
        trained_gap_days=[MIN_GAP_DAYS, MAX_GAP_DAYS], reach_mm=li.REACH_MM,
        architecture={"vqvae": "monai.networks.nets.VQVAE (EMA codebook)",
                      "image_vqvae": {"channels": ck_i["config"]["channels"], "codes": ck_i["config"]["num_embeddings"]},
                      "mask_vqvae": {"channels": ck_m["config"]["channels"], "codes": ck_m["config"]["num_embeddings"]},
                      "denoiser": "monai.networks.nets.DiffusionModelUNet", "denoiser_channels": ck_d["config"]["channels"],
                      "class_dropout": ck_d["config"]["class_dropout"]},
        training={"command": _command(ckpts), "data": ck_d["summary"].get("data", {}),
                  **{k: {"steps": c["summary"]["steps"], "seconds": c["summary"]["seconds"],
                         "device": c["summary"]["device"], "final_loss": c["summary"].get("final", {})}
                     for k, c in ckpts.items()}, "torch": torch.__version__},
        export=export_record(parity_max_abs=parity),
        metrics=metrics)
    return register(args.models_dir, entry)
