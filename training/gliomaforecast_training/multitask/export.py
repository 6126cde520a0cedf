"""Export a trained multi-task checkpoint to one ONNX step network (both heads), check parity with torch, and
register it as the model family ``multitask-diffusion`` (member ``step``) with the core's registry writer.

    python -m gliomaforecast_training.multitask.export --checkpoint multitask.pt --models-dir Resources/Models

The graph (opset 17, TorchScript exporter; dynamic batch, height and width, multiples of 8) takes ``x_t``
(batch, 1, H/2, W/2), ``timesteps`` (batch,) int64, ``cond`` (batch, 10, H, W) and ``gaps`` (batch, 3) and returns
``prediction`` (batch, 1, H/2, W/2: v of the FLAIR change at 4 mm) and ``probability`` (batch, 1, H, W). The entry carries the constants the core forecaster
reads (crop, pixel spacing, schedule, prediction type, sampler, trained gap range).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from gliomaforecast.forecasters import multitask_inputs as mi
from gliomaforecast.model_registry_writer import family_entry, file_entry, write_registry_entry

from ..module_main import module_main
from .data import MAX_GAP_DAYS, MIN_AREA_MM2
from .loss import NUM_TRAIN_TIMESTEPS, SCHEDULE
from .net import COND_SCALES, POOL, SIZE_MULTIPLE, MultiTaskNet

MODEL_ID = "multitask-diffusion"
FILE = "multitask_diffusion_step.onnx"
VERSION = "1.0.0"
INPUTS = ["x_t", "timesteps", "cond", "gaps"]
OUTPUTS = ["prediction", "probability"]
PARITY_LIMIT = 1e-4


def load_checkpoint(path: str | Path) -> tuple[MultiTaskNet, dict]:
    """The network (eval mode) and the checkpoint dict written by ``train fit``."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    net = MultiTaskNet(ckpt["config"]["channels"])
    net.load_state_dict(ckpt["state_dict"])
    return net.eval(), ckpt


def example_inputs(batch: int = 3, size: int = mi.CROP, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs in the channels' physical ranges (mm, Gy, days)."""
    gen = torch.Generator().manual_seed(seed)
    cond = torch.rand((batch, mi.COND_CHANNELS, size, size), generator=gen)
    for name, scale in COND_SCALES.items():
        k = mi.COND_NAMES.index(name)
        cond[:, k] = (cond[:, k] * 2 - 0.5) * scale
    gaps = torch.rand((batch, 3), generator=gen) * 360 + 5
    return (torch.randn((batch, 1, size // POOL, size // POOL), generator=gen), torch.randint(0, NUM_TRAIN_TIMESTEPS, (batch,),
                                                                             generator=gen), cond, gaps)


def export_onnx(net: MultiTaskNet, path: str | Path) -> Path:
    """Write ``net`` as ONNX with dynamic batch, height and width."""
    dyn = {"x_t": {0: "batch", 2: "height/2", 3: "width/2"}, "timesteps": {0: "batch"},
           "cond": {0: "batch", 2: "height", 3: "width"}, "gaps": {0: "batch"},
           "prediction": {0: "batch", 2: "height/2", 3: "width/2"}, "probability": {0: "batch", 2: "height", 3: "width"}}
    torch.onnx.export(net.eval(), example_inputs(2), str(path), input_names=INPUTS, output_names=OUTPUTS,
                      dynamic_axes=dyn, opset_version=17, dynamo=False)
    return Path(path)


def parity(net: MultiTaskNet, onnx_path: str | Path, size: int = 48) -> dict[str, float]:
    """Max |onnxruntime - torch| of both outputs on random inputs of another batch and size than the export."""
    inputs = example_inputs(5, size, seed=1)
    with torch.no_grad():
        ref = [t.numpy() for t in net.eval()(*inputs)]
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = sess.run(OUTPUTS, {n: t.numpy() for n, t in zip(INPUTS, inputs)})
    return {name: float(np.abs(a - b).max()) for name, a, b in zip(OUTPUTS, out, ref)}


def tensors() -> tuple[list[dict], list[dict]]:
    """The registry's input and output tensor descriptions."""
    inputs = [
        {"name": "x_t", "shape": ["batch", 1, "height/2", "width/2"], "dtype": "float32", "units": "dimensionless",
         "normalization": f"at {mi.GEN_PIXEL_MM:g} mm pixels: noised FLAIR change {mi.RESIDUAL_GAIN:g} (FLAIR_target - FLAIR_2) / scale_2 (scale: 99th "
                          "percentile in the brain of FLAIR_2)"},
        {"name": "timesteps", "shape": ["batch"], "dtype": "int64", "units": "diffusion step",
         "normalization": f"0..{NUM_TRAIN_TIMESTEPS - 1}"},
        {"name": "cond", "shape": ["batch", mi.COND_CHANNELS, "height", "width"], "dtype": "float32",
         "units": "mixed: see cond_channels", "normalization": "channels " + ", ".join(mi.COND_NAMES)
         + f" at {mi.PIXEL_MM:g} mm pixels (images / their 99th percentile in the brain; phi mm; dose Gy; "
           "displacement mm; brain 0/1); fixed scales inside the model"},
        {"name": "gaps", "shape": ["batch", 3], "dtype": "float32", "units": "days",
         "normalization": "[t2 - t1, t_target - t2, t2 - t_rt]; sinusoidal embedding inside the model"}]
    outputs = [
        {"name": "prediction", "shape": ["batch", 1, "height/2", "width/2"], "dtype": "float32", "units": "dimensionless",
         "normalization": "v-prediction of the FLAIR change: v = sqrt(ab) eps - sqrt(1 - ab) x0"},
        {"name": "probability", "shape": ["batch", 1, "height", "width"], "dtype": "float32", "units": "probability",
         "normalization": "tumour presence at the target day (sigmoid); independent of x_t and timesteps"}]
    return inputs, outputs


def registry_entry(models_dir: Path, ckpt: dict, parity_max_abs: dict, metrics: dict | None) -> dict:
    """The models.json family entry (core writer's ``family_entry``)."""
    cfg, summary = ckpt["config"], ckpt.get("summary", {})
    inputs, outputs = tensors()
    data_arg = "--data " + " ".join(map(str, cfg["data"])) if cfg.get("data") else f"--cohort {cfg['cohort']}"
    command = (f"python -m gliomaforecast_training.multitask.train fit {data_arg} --steps {cfg['steps']}"
               + (f" --max-minutes {cfg['max_minutes']:g}" if cfg.get("max_minutes") else "")
               + f" --batch {cfg['batch']} --lr {cfg['lr']} --lambda-rt {cfg['lambda_rt']} --gamma {cfg['gamma']}"
               + f" --channels {' '.join(map(str, cfg['channels']))} --seed {cfg['seed']} --out multitask.pt")
    return family_entry(
        MODEL_ID, VERSION, {"step": file_entry(models_dir / FILE, inputs, outputs)},
        task="multi-task diffusion forecaster: future FLAIR (generative head, v-prediction) and tumour probability "
             "map (predictive head) from two prior scans at a chosen day (2D axial slices)",
        card=f"{MODEL_ID}.md",
        pixel_spacing_mm=mi.PIXEL_MM, generative_pixel_mm=mi.GEN_PIXEL_MM, crop=mi.CROP, size_multiple=SIZE_MULTIPLE, cond_channels=list(mi.COND_NAMES),
        residual_gain=mi.RESIDUAL_GAIN, schedule=SCHEDULE, num_train_timesteps=NUM_TRAIN_TIMESTEPS,
        prediction="v_prediction", sampler={"name": "dpmpp_2m", "steps": 10},
        trained_gap_days=[1.0, MAX_GAP_DAYS], min_area_mm2=MIN_AREA_MM2,
        architecture={"net": "gliomaforecast_training.multitask.net.MultiTaskNet", "channels": cfg["channels"],
                      "blocks": "MONAI DiffusionUNetResnetBlock; shared encoder, generative + predictive decoders, "
                                "FiLM gap conditioning"},
        training={"data": summary.get("data", {}), "command": command, "steps": summary.get("steps"),
                  "processes": summary.get("processes"), "device": summary.get("device"),
                  "seconds": summary.get("seconds"), "final_loss": summary.get("final", {}),
                  "lambda_rt": cfg["lambda_rt"], "gamma": cfg["gamma"], "torch": torch.__version__},
        export={"opset": 17, "parity_max_abs": parity_max_abs, "onnxruntime": ort.__version__},
        metrics=metrics or {})


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint written by multitask.train fit")
    p.add_argument("--models-dir", type=Path, required=True, help="folder of models.json (Resources/Models)")
    p.add_argument("--metrics", type=Path, help="JSON of held-out figures to record in the entry")


def export(args: argparse.Namespace) -> dict:
    """Export, check parity (< 1e-4), register; returns the entry."""
    net, ckpt = load_checkpoint(args.checkpoint)
    args.models_dir.mkdir(parents=True, exist_ok=True)
    path = export_onnx(net, args.models_dir / FILE)
    diff = parity(net, path)
    print(f"exported {path} ({path.stat().st_size / 1e6:.2f} MB), parity max |ort - torch| {diff}")
    if max(diff.values()) > PARITY_LIMIT:
        raise SystemExit(f"ONNX parity {diff} exceeds {PARITY_LIMIT}")
    metrics = json.loads(args.metrics.read_text()) if args.metrics else None
    entry = registry_entry(args.models_dir, ckpt, diff, metrics)
    print(f"registered in {write_registry_entry(args.models_dir, entry)}")
    return entry


def main(argv: list[str] | None = None) -> int:
    return module_main("multitask.export", __doc__, add_arguments, export, argv)


if __name__ == "__main__":
    sys.exit(main())
