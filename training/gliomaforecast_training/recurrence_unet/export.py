"""Export the members of the recurrence U-Net ensemble to ONNX, check parity with torch, and register them as
one model family (``recurrence-unet``) in models.json with the core's writer.

    python -m gliomaforecast_training.recurrence_unet.export --checkpoints m0.pt m1.pt m2.pt \
        --models-dir Resources/Models [--postprocess post.json] [--metrics metrics.json]

Each member file ``recurrence_unet_m<i>.onnx`` (opset 17, TorchScript exporter) takes ``channels`` (batch, 9,
depth, height, width; the channels of ``gliomaforecast.forecasters.recurrence.inputs`` at 2 mm; sizes multiples of 8) and
returns ``probability`` (batch, 1, depth, height, width; recurrence probability 0-1). ``--postprocess`` (JSON:
smooth_mm, prior_weight, prior_mm, floor; see ``tune``) and ``--metrics`` (JSON) are stored in the entry.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from gliomaforecast.errors import InputError
from gliomaforecast.forecasters.recurrence.inputs import CHANNELS, CROP_VOXELS, PIXEL_MM
from gliomaforecast.model_registry_writer import family_entry, file_entry

from ..common.command import module_main
from ..common.export import cpu_session, export_graph, export_record, megabytes, read_metrics, register
from .net import SIZE_MULTIPLE, ProbabilityNet, build_unet

MODEL_ID = "recurrence-unet"
VERSION = "2.0.0"  # realism-3 training cohort, core target (docs/evaluation.md, issue 29)
PARITY_LIMIT = 1e-4


def load_checkpoint(path: str | Path) -> tuple[ProbabilityNet, dict]:
    """The probability network (eval mode) and the checkpoint dict written by ``train``."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    unet = build_unet(ckpt["config"]["width"])
    unet.load_state_dict(ckpt["state_dict"])
    return ProbabilityNet(unet).eval(), ckpt


def export_onnx(net: ProbabilityNet, path: str | Path) -> Path:
    """Write ``net`` as ONNX with dynamic batch and spatial sizes."""
    x = torch.randn(1, len(CHANNELS), *(s // 2 for s in CROP_VOXELS))
    axes = {0: "batch", 2: "depth", 3: "height", 4: "width"}
    return export_graph(net.eval(), (x,), path, ["channels"], ["probability"], {"channels": axes, "probability": axes})


def parity(net: ProbabilityNet, onnx_path: str | Path, seed: int = 0) -> float:
    """Max |onnxruntime - torch| of the probability on a random input of the crop size."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, len(CHANNELS), *CROP_VOXELS, generator=gen)
    with torch.no_grad():
        ref = net(x).numpy()
    return float(np.abs(cpu_session(onnx_path).run(["probability"], {"channels": x.numpy()})[0] - ref).max())


def tensors() -> tuple[list[dict], list[dict]]:
    """The inputs and outputs of a member, with units, as the registry lists them."""
    dims = ["batch", len(CHANNELS), "depth", "height", "width"]
    inputs = [{"name": "channels", "shape": dims, "dtype": "float32", "units": "mixed (see normalization)",
               "normalization": f"channels {', '.join(CHANNELS)} on {PIXEL_MM:g} mm voxels: masks 0/1, tissue "
                                f"probabilities 0-1, images z-scored over the brain (clipped +-5), zero outside the "
                                f"brain; sizes multiples of {SIZE_MULTIPLE}; trained on {CROP_VOXELS} crops centred "
                                "on the planning GTV (gliomaforecast.forecasters.recurrence.inputs)"}]
    outputs = [{"name": "probability", "shape": ["batch", 1, "depth", "height", "width"], "dtype": "float32",
                "units": "probability", "normalization": "recurrence probability 0-1 (sigmoid of the U-Net logit)"}]
    return inputs, outputs


def member_training(ckpt: dict) -> dict:
    """What the registry records about one member's training."""
    cfg, summary = ckpt["config"], ckpt.get("summary", {})
    command = (f"python -m gliomaforecast_training.recurrence_unet.train --cohort {cfg.get('cohort')} "
               f"--seed {cfg['seed']} --max-minutes {cfg['max_minutes']:g} --steps {cfg['steps']} --batch {cfg['batch']} "
               f"--width {cfg['width']} --lr {cfg['lr']} --target {cfg.get('target', 'whole')} "
               f"--edema-weight {cfg['edema_weight']} "
               f"--bce-weight {cfg['bce_weight']} --channel-dropout {cfg['channel_dropout']} --device {cfg['device']} "
               f"--threads {cfg['threads']} --out m.pt")
    return {"seed": cfg["seed"], "command": command, "steps": summary.get("steps"), "epochs": summary.get("epochs"),
            "seconds": summary.get("seconds"), "processes": summary.get("processes"),
            "final_loss": summary.get("final", {})}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoints", type=Path, nargs="+", required=True, help="one checkpoint per member")
    p.add_argument("--models-dir", type=Path, required=True, help="folder of models.json (Resources/Models)")
    p.add_argument("--postprocess", type=Path, help="JSON of the post-processing chosen on validation (tune)")
    p.add_argument("--metrics", type=Path, help="JSON of evaluation figures to store in the entry")


def export(args: argparse.Namespace) -> dict:
    """Export every member, check parity (< 1e-4), and write the family entry; returns it."""
    args.models_dir.mkdir(parents=True, exist_ok=True)
    members, trainings, parities, data = {}, [], [], {}
    inputs, outputs = tensors()
    for i, path in enumerate(args.checkpoints):
        net, ckpt = load_checkpoint(path)
        onnx_path = export_onnx(net, args.models_dir / f"recurrence_unet_m{i}.onnx")
        diff = parity(net, onnx_path)
        print(f"exported {megabytes(onnx_path)}, parity {diff:.2e}")
        if diff > PARITY_LIMIT:
            raise SystemExit(f"ONNX parity {diff:.2e} exceeds {PARITY_LIMIT:g} for {path}")
        members[f"m{i}"] = file_entry(onnx_path, inputs, outputs)
        trainings.append(member_training(ckpt))
        parities.append(diff)
        data = ckpt.get("summary", {}).get("data", data)
        width = ckpt["config"]["width"]
    post = json.loads(args.postprocess.read_text()) if args.postprocess else {}
    post = post.get("chosen", post)  # a tune output, or the settings themselves
    if post is None:
        raise InputError(args.postprocess, "chosen", "no admissible post-processing (tune chose none): nothing exported")
    metrics = read_metrics(args.metrics, {})
    entry = family_entry(
        MODEL_ID, VERSION, members,
        task="recurrence probability after RT from the planning scan (3D U-Net deep ensemble, PREDICT-GBM)",
        card="recurrence-unet.md", channels=list(CHANNELS), pixel_spacing_mm=PIXEL_MM, crop_voxels=list(CROP_VOXELS),
        size_multiple=SIZE_MULTIPLE, postprocess=post,
        architecture={"net": "monai.networks.nets.UNet", "channels": [width * 2 ** k for k in range(4)],
                      "strides": [2, 2, 2], "num_res_units": 1, "norm": "instance", "act": "PReLU"},
        training={"command": "; ".join(t["command"] for t in trainings), "data": data, "members": trainings,
                  "torch": torch.__version__},
        export=export_record(parity_max_abs=max(parities)),
        metrics=metrics)
    return register(args.models_dir, entry)


def main(argv: list[str] | None = None) -> int:
    return module_main("recurrence_unet.export", __doc__, add_arguments, export, argv)


if __name__ == "__main__":
    sys.exit(main())
