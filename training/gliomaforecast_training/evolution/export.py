"""Export a trained evolution checkpoint to ONNX, check parity with torch, and register it in models.json.

    python -m gliomaforecast_training.evolution.export --checkpoint /tmp/evolution.pt \
        --models-dir Resources/Models [--eval-cohort /tmp/cohort_eval]

The ONNX graph (opset 17, TorchScript exporter) takes ``phi`` (batch, 2, height, width; signed distances
in mm at 2 mm pixels; height and width multiples of 16) and ``gap_days`` (batch,), and returns
``displacement`` (batch, 2, height, width; d_y, d_x in mm). The registry entry records the sha256, the
pre-processing constants the runtime reads (``pixel_spacing_mm``, ``size_multiple``), the training data and
command, the parity with torch, and the held-out metrics when an evaluation cohort is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from gliomaforecast import models as registry
from gliomaforecast.model_registry_writer import write_registry_entry

from ..common.command import module_main
from ..common.export import cpu_session, export_graph, export_record, megabytes, register
from .data import PIXEL_MM
from .net import PHI_SCALE_MM, SIZE_MULTIPLE, EvolutionNet

MODEL_ID = "evolution"
FILE = "evolution.onnx"
VERSION = "1.1.0"


def load_checkpoint(path: str | Path) -> tuple[EvolutionNet, dict]:
    """The network (eval mode) and the checkpoint dict saved by ``train``."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    net = EvolutionNet(ckpt["config"]["channels"])
    net.load_state_dict(ckpt["state_dict"])
    return net.eval(), ckpt


def export_onnx(net: EvolutionNet, path: str | Path, size: int = 96) -> Path:
    """Write ``net`` as ONNX with dynamic batch, height and width."""
    net = net.eval()
    phi = torch.randn(2, 2, size, size) * 20
    gap = torch.tensor([60.0, 200.0])
    return export_graph(net, (phi, gap), path, ["phi", "gap_days"], ["displacement"],
                        {"phi": {0: "batch", 2: "height", 3: "width"}, "gap_days": {0: "batch"},
                         "displacement": {0: "batch", 2: "height", 3: "width"}})


def parity(net: EvolutionNet, onnx_path: str | Path, shape: tuple[int, int, int, int] = (3, 2, 112, 80),
           seed: int = 0) -> float:
    """Max |onnxruntime - torch| (mm) of the displacement on random signed-distance-like inputs."""
    gen = torch.Generator().manual_seed(seed)
    phi = torch.randn(shape, generator=gen) * 20
    gap = torch.rand(shape[0], generator=gen) * 360 + 5
    with torch.no_grad():
        ref = net.eval()(phi, gap).numpy()
    out = cpu_session(onnx_path).run(["displacement"], {"phi": phi.numpy(), "gap_days": gap.numpy()})[0]
    return float(np.abs(out - ref).max())


def registry_entry(onnx_path: Path, ckpt: dict, parity_max_abs: float, metrics: dict | None) -> dict:
    """The models.json entry of the exported evolution model."""
    cfg = ckpt["config"]
    summary = ckpt.get("summary", {})
    train_cmd = ("python -m gliomaforecast_training.evolution.train "
                 + (f"--cohort {cfg['cohort']} --holdout {cfg['holdout']}" if cfg.get("cohort")
                    else f"--synthetic {cfg['synthetic']}")
                 + f" --steps {cfg['steps']}"
                 + (f" --max-minutes {cfg['max_minutes']:g}" if cfg.get("max_minutes") else "")
                 + f" --batch {cfg['batch']} --size {cfg['size']} --lr {cfg['lr']}"
                 + f" --lambda-smooth {cfg['lambda_smooth']} --seed {cfg['seed']} --out evolution.pt")
    return {
        "id": MODEL_ID, "version": VERSION, "file": onnx_path.name, "sha256": registry.sha256_of(onnx_path),
        "task": "tumor-evolution displacement field between two GTV signed distances (2D, axial slices)",
        "card": "evolution.md",
        "inputs": [
            {"name": "phi", "shape": ["batch", 2, "height", "width"], "dtype": "float32", "units": "mm",
             "normalization": f"signed distances of GTV 1 and GTV 2 (negative inside) at {PIXEL_MM:g} mm pixels; "
                              f"divided by {PHI_SCALE_MM:g} mm inside the model; height and width multiples "
                              f"of {SIZE_MULTIPLE}"},
            {"name": "gap_days", "shape": ["batch"], "dtype": "float32", "units": "days",
             "normalization": "t2 - t1; sinusoidal embedding inside the model"}],
        "outputs": [
            {"name": "displacement", "shape": ["batch", 2, "height", "width"], "dtype": "float32", "units": "mm",
             "normalization": "(d_y, d_x) backward map: phi2(p) ~= phi1(p + d(p))"}],
        "pixel_spacing_mm": PIXEL_MM, "size_multiple": SIZE_MULTIPLE, "phi_scale_mm": PHI_SCALE_MM,
        "architecture": {"net": "gliomaforecast_training.evolution.net.EvolutionNet", "channels": cfg["channels"],
                         "levels": 4, "blocks": "MONAI ResidualUnit / Convolution, FiLM time conditioning"},
        "training": {"data": summary.get("data", {}), "command": train_cmd, "steps": summary.get("steps"),
                     "processes": summary.get("processes"), "seconds": summary.get("seconds"),
                     "final_loss": summary.get("final", {}), "torch": torch.__version__},
        "export": export_record(parity_max_abs_mm=parity_max_abs),
        "metrics": metrics or {},
    }


def write_registry(models_dir: Path, entry: dict) -> Path:
    """Insert or replace ``entry`` (by id) in ``models_dir/models.json``, atomically (the core's writer)."""
    return write_registry_entry(models_dir, entry)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint written by evolution train")
    p.add_argument("--models-dir", type=Path, required=True, help="folder of models.json (Resources/Models)")
    p.add_argument("--eval-cohort", type=Path, help="held-out patient folders to evaluate on (case.json each)")
    p.add_argument("--holdout", type=int, default=0,
                   help="evaluate on the last N patients of --eval-cohort (name order; 0: all)")
    p.add_argument("--eval-synthetic", type=int, default=0, help="evaluate on N synthetic pairs instead")


def export(args: argparse.Namespace) -> dict:
    """Export, check parity (< 1e-4 mm), evaluate, and register; returns the registry entry."""
    from .evaluate import evaluate_cases, evaluate_synthetic

    net, ckpt = load_checkpoint(args.checkpoint)
    args.models_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = export_onnx(net, args.models_dir / FILE, ckpt["config"]["size"])
    diff = parity(net, onnx_path)
    print(f"exported {megabytes(onnx_path)}, parity max |ort - torch| {diff:.2e} mm")
    if diff > 1e-4:
        raise SystemExit(f"ONNX parity {diff:.2e} mm exceeds 1e-4")
    entry = registry_entry(onnx_path, ckpt, diff, None)
    spec = registry.parse_entry(entry, args.models_dir)
    metrics = None
    if args.eval_cohort is not None:
        cases = sorted(p.parent for p in args.eval_cohort.glob("*/case.json"))[-args.holdout:]
        metrics = evaluate_cases(cases, registry.OnnxModel(spec, prefer_gpu=False))
    elif args.eval_synthetic:
        metrics = evaluate_synthetic(args.eval_synthetic, registry.OnnxModel(spec, prefer_gpu=False))
    entry["metrics"] = metrics or {}
    print(json.dumps(entry["metrics"], indent=1))
    return register(args.models_dir, entry)


def main(argv: list[str] | None = None) -> int:
    return module_main("evolution.export", __doc__, add_arguments, export, argv)


if __name__ == "__main__":
    sys.exit(main())
