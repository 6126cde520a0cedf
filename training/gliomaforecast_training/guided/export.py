"""Export the guided DDIM's two networks to ONNX, check parity with torch, and register the model family
``guided-ddim`` (members ``denoiser`` and ``regressor``) with the core's registry writer.

    gliomaforecast-train guided-ddim export --ddpm ddpm.pt --regressor regressor.pt --models-dir Resources/Models

* ``denoiser``: ``x`` (batch, 1, H, W) noised FLAIR crop (``guided_inputs`` units), ``timesteps`` (batch,) int64
  -> ``eps`` (batch, 1, H, W), the predicted noise;
* ``regressor``: the same inputs -> ``burden`` (batch,) R(x_t, t) and ``grad`` (batch, 1, H, W) dR/dx, both from
  ONE graph (the gradient is written out in the forward pass, ``net.BurdenRegressor``). Its parity is checked
  twice: ONNX against torch, and torch's written-out gradient against ``torch.autograd.grad`` (max |diff| <=
  1e-4 of max |grad|).

Opset 17, TorchScript exporter, dynamic batch (H = W = 64 fixed by training, any multiple of 8 runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from gliomaforecast.forecasters.guided import inputs as gi
from gliomaforecast.model_registry_writer import family_entry, file_entry

from ..common.command import module_main
from ..common.export import cpu_session, export_graph, export_record, megabytes, read_metrics, register
from .loss import NUM_TRAIN_TIMESTEPS, SCHEDULE
from .train import load_checkpoint

MODEL_ID = "guided-ddim"
VERSION = "1.2.0"  # 1.2.0: the 1.1.0 weights; the tumour map holds the growth model's volume (population prior)
FILES = {"denoiser": "guided_ddim_denoiser.onnx", "regressor": "guided_ddim_regressor.onnx"}
OUTPUTS = {"denoiser": ["eps"], "regressor": ["burden", "grad"]}
INPUTS = ["x", "timesteps"]
PARITY_LIMIT = 1e-4


def example_inputs(batch: int = 3, size: int = gi.CROP, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops in the model's range and random steps."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand((batch, 1, size, size), generator=gen) * 2.4 - 1.2,
            torch.randint(0, NUM_TRAIN_TIMESTEPS, (batch,), generator=gen))


def export_onnx(net: torch.nn.Module, member: str, path: str | Path) -> Path:
    """Write ``net`` as ONNX with a dynamic batch."""
    dyn = {n: {0: "batch"} for n in INPUTS + OUTPUTS[member]}
    return export_graph(net.eval(), example_inputs(2), path, INPUTS, OUTPUTS[member], dyn)


def onnx_parity(net: torch.nn.Module, member: str, onnx_path: str | Path) -> dict[str, float]:
    """Max |onnxruntime - torch| per output on another batch than the export's."""
    inputs = example_inputs(5, seed=1)
    with torch.no_grad():
        ref = net.eval()(*inputs)
    ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    out = cpu_session(onnx_path).run(OUTPUTS[member], {n: t.numpy() for n, t in zip(INPUTS, inputs)})
    return {name: float(np.abs(a - b.numpy()).max()) for name, a, b in zip(OUTPUTS[member], out, ref)}


def gradient_parity(regressor: torch.nn.Module, seed: int = 2) -> float:
    """max |written-out dR/dx - torch.autograd.grad| / max |autograd| on random inputs (float32)."""
    x, t = example_inputs(4, seed=seed)
    x = x.requires_grad_(True)
    r, g = regressor.eval()(x, t)
    (ref,) = torch.autograd.grad(r.sum(), x)
    return float((g.detach() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def tensors(member: str) -> tuple[list[dict], list[dict]]:
    """The registry's input and output tensor descriptions of ``member``."""
    inputs = [{"name": "x", "shape": ["batch", 1, gi.CROP, gi.CROP], "dtype": "float32", "units": "dimensionless",
               "normalization": f"noised FLAIR crop at {gi.PIXEL_MM:g} mm pixels, 2 FLAIR / scale - 1 (scale: 99th "
                                "percentile in the brain)"},
              {"name": "timesteps", "shape": ["batch"], "dtype": "int64", "units": "diffusion step",
               "normalization": f"0..{NUM_TRAIN_TIMESTEPS - 1}"}]
    if member == "denoiser":
        outputs = [{"name": "eps", "shape": ["batch", 1, gi.CROP, gi.CROP], "dtype": "float32",
                    "units": "dimensionless", "normalization": "predicted noise (epsilon prediction)"}]
    else:
        outputs = [{"name": "burden", "shape": ["batch"], "dtype": "float32", "units": "dimensionless",
                    "normalization": "GTV area / brain area in the crop predicted for the clean slice"},
                   {"name": "grad", "shape": ["batch", 1, gi.CROP, gi.CROP], "dtype": "float32", "units": "1/x",
                    "normalization": "d burden / d x"}]
    return inputs, outputs


def registry_entry(models_dir: Path, ckpts: dict[str, dict], parity: dict, metrics: dict | None) -> dict:
    """The models.json family entry (core writer's ``family_entry``)."""
    members = {m: file_entry(models_dir / FILES[m], *tensors(m)) for m in FILES}
    commands = []
    for m, ck in ckpts.items():
        c = ck["config"]
        commands.append(f"gliomaforecast-train guided-ddim fit --network {c['network']} --data {c['data']}"
                        + f" --steps {c['steps']}" + (f" --max-minutes {c['max_minutes']:g}" if c.get("max_minutes") else "")
                        + (f" --max-step {c['max_step']}" if c.get("max_step") else "")
                        + f" --batch {c['batch']} --lr {c['lr']} --channels {' '.join(map(str, c['channels']))}"
                        + f" --threads {c['threads']} --seed {c['seed']} --out {c['network']}.pt")
    return family_entry(
        MODEL_ID, VERSION, members,
        task="growth-model-guided DDIM forecaster: FLAIR slices denoised from the last scan (SDEdit) with classifier "
             "guidance of a tumour-burden regressor towards the growth model's burden at the target day",
        card=f"{MODEL_ID}.md", pixel_spacing_mm=gi.PIXEL_MM, crop=gi.CROP, schedule=SCHEDULE,
        num_train_timesteps=NUM_TRAIN_TIMESTEPS, prediction="epsilon",
        architecture={"denoiser": {"net": "monai.networks.nets.DiffusionModelUNet",
                                   "channels": ckpts["denoiser"]["config"]["channels"]},
                      "regressor": {"net": "gliomaforecast_training.guided.net.BurdenRegressor",
                                    "channels": ckpts["regressor"]["config"]["channels"]}},
        training={"command": " && ".join(commands), "torch": torch.__version__,
                  **{m: {"steps": ck["summary"]["steps"], "seconds": ck["summary"]["seconds"],
                         "slices": ck["summary"]["slices"], "final_loss": ck["summary"]["final"],
                         "max_step": ck["config"]["max_step"]} for m, ck in ckpts.items()},
                  "patients": ckpts["denoiser"]["summary"]["patients"]},
        export=export_record(parity_max_abs=parity),
        metrics=metrics or {})


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ddpm", type=Path, required=True, help="DDPM checkpoint (fit --network ddpm)")
    p.add_argument("--regressor", type=Path, required=True, help="regressor checkpoint (fit --network regressor)")
    p.add_argument("--models-dir", type=Path, required=True, help="folder of models.json (Resources/Models)")
    p.add_argument("--metrics", type=Path, help="JSON of validation / benchmark figures to record in the entry")


def export(args: argparse.Namespace) -> dict:
    """Export both networks, check parity, register; returns the entry."""
    nets, ckpts = {}, {}
    for member, path in (("denoiser", args.ddpm), ("regressor", args.regressor)):
        nets[member], ckpts[member] = load_checkpoint(path)
    args.models_dir.mkdir(parents=True, exist_ok=True)
    parity: dict[str, float] = {}
    for member, net in nets.items():
        path = export_onnx(net, member, args.models_dir / FILES[member])
        diff = onnx_parity(net, member, path)
        print(f"exported {megabytes(path)}, parity max |ort - torch| {diff}")
        parity.update({f"{member}/{k}": v for k, v in diff.items()})
    parity["regressor/grad_vs_autograd_relative"] = gradient_parity(nets["regressor"])
    bad = {k: v for k, v in parity.items() if v > PARITY_LIMIT}
    if bad:
        raise SystemExit(f"parity {bad} exceeds {PARITY_LIMIT}")
    metrics = read_metrics(args.metrics)
    return register(args.models_dir, registry_entry(args.models_dir, ckpts, parity, metrics))


def main(argv: list[str] | None = None) -> int:
    return module_main("guided.export", __doc__, add_arguments, export, argv)


if __name__ == "__main__":
    sys.exit(main())
