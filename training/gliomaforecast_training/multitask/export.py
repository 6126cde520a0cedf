"""Export a trained multi-task checkpoint to two ONNX graphs, check parity with torch, and register them as the
model family ``multitask-diffusion`` (members ``encoder`` and ``generator``) with the core's registry writer.

    python -m gliomaforecast_training.multitask.export --checkpoint multitask.pt --models-dir Resources/Models

``encoder`` (the shared encoder and the predictive decoder) takes ``cond`` (batch, 10, H, W) and ``gaps`` (batch,
3) and returns ``probability`` (batch, 1, H, W) and the features the generative decoder needs (``skip0..2``,
``bottom``, ``e_gap``); ``generator`` (the generative decoder) takes ``x_t`` (batch, 1, H/2, W/2), ``timesteps``
(batch,) int64 and those features and returns ``prediction`` (batch, 1, H/2, W/2: v of the FLAIR change at 4 mm).
The split lets the core run the encoder once per slice and only the generative decoder at each sampler step (one
graph with both heads ran everything at every step). Opset 17, TorchScript exporter; dynamic batch, height and
width (multiples of 16). The entry carries the constants the core forecaster reads (crop, pixel spacing,
schedule, prediction type, sampler, trained gap range).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from gliomaforecast.forecasters import crops as mi
from gliomaforecast.model_registry_writer import family_entry, file_entry

from ..common.command import module_main
from ..common.export import cpu_session, export_graph, export_record, read_metrics, register
from .data import MAX_GAP_DAYS, MIN_AREA_MM2
from .loss import NUM_TRAIN_TIMESTEPS, SCHEDULE
from .net import COND_SCALES, POOL, SIZE_MULTIPLE, MultiTaskNet

MODEL_ID = "multitask-diffusion"
FILES = {"encoder": "multitask_diffusion_encoder.onnx", "generator": "multitask_diffusion_generator.onnx"}
VERSION = "1.2.0"
FEATURES = ["skip0", "skip1", "skip2", "bottom", "e_gap"]
IO = {"encoder": (["cond", "gaps"], ["probability", *FEATURES]),
      "generator": (["x_t", "timesteps", *FEATURES], ["prediction"])}
PARITY_LIMIT = 1e-4


class EncoderGraph(torch.nn.Module):
    """Export wrapper: (cond, gaps) -> (probability, skip0, skip1, skip2, bottom, e_gap)."""

    def __init__(self, net: MultiTaskNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, cond: torch.Tensor, gaps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        skips, bottom, e_gap = self.net.encode(cond, gaps)
        return (self.net.predict_probability(cond, skips, bottom, e_gap), *skips, bottom, e_gap)


class GeneratorGraph(torch.nn.Module):
    """Export wrapper: (x_t, timesteps, skip0, skip1, skip2, bottom, e_gap) -> prediction."""

    def __init__(self, net: MultiTaskNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x_t: torch.Tensor, timesteps: torch.Tensor, skip0: torch.Tensor, skip1: torch.Tensor,
                skip2: torch.Tensor, bottom: torch.Tensor, e_gap: torch.Tensor) -> torch.Tensor:
        return self.net.predict_change(x_t, timesteps, [skip0, skip1, skip2], bottom, e_gap)


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


def export_onnx(net: MultiTaskNet, models_dir: str | Path) -> dict[str, Path]:
    """Write ``net`` as the two graphs of :data:`FILES` into ``models_dir`` (dynamic batch, height and width)."""
    net = net.eval()
    x_t, t, cond, gaps = example_inputs(2)
    with torch.no_grad():
        features = EncoderGraph(net)(cond, gaps)[1:]
    paths = {}
    for member, module, inputs in (("encoder", EncoderGraph(net), (cond, gaps)),
                                   ("generator", GeneratorGraph(net), (x_t, t, *features))):
        names_in, names_out = IO[member]
        dyn = {n: ({0: "batch"} if n in ("timesteps", "gaps", "e_gap") else {0: "batch", 2: f"{n}_h", 3: f"{n}_w"})
               for n in names_in + names_out}
        paths[member] = Path(models_dir) / FILES[member]
        export_graph(module, inputs, paths[member], names_in, names_out, dyn)
    return paths


def run_family(sessions: dict, x_t: np.ndarray, timesteps: np.ndarray, cond: np.ndarray,
               gaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, probability) of the two exported graphs (``sessions``: member -> object with
    ``run(names, feed)``), as the torch network's forward gives them."""
    enc = dict(zip(IO["encoder"][1], sessions["encoder"].run(IO["encoder"][1], {"cond": cond, "gaps": gaps})))
    feed = {"x_t": x_t, "timesteps": timesteps, **{k: enc[k] for k in FEATURES}}
    return sessions["generator"].run(["prediction"], feed)[0], enc["probability"]


def parity(net: MultiTaskNet, models_dir: str | Path, size: int = 48) -> dict[str, float]:
    """Max |onnxruntime - torch| of both outputs on random inputs of another batch and size than the export."""
    inputs = example_inputs(5, size, seed=1)
    with torch.no_grad():
        ref = [t.numpy() for t in net.eval()(*inputs)]
    sessions = {m: cpu_session(Path(models_dir) / f) for m, f in FILES.items()}
    out = run_family(sessions, *(t.numpy() for t in inputs))
    return {name: float(np.abs(a - b).max()) for name, a, b in zip(("prediction", "probability"), out, ref)}


def tensors(channels: list[int], embed_dim: int = 32) -> dict[str, tuple[list[dict], list[dict]]]:
    """The registry's input and output tensor descriptions per member (``channels``: the network's widths)."""
    c0, c1, c2 = (int(v) for v in channels)
    features = [
        {"name": "skip0", "shape": ["batch", c0, "height/2", "width/2"], "dtype": "float32", "units": "feature",
         "normalization": "encoder output at 4 mm pixels"},
        {"name": "skip1", "shape": ["batch", c1, "height/4", "width/4"], "dtype": "float32", "units": "feature",
         "normalization": "encoder output at 8 mm pixels"},
        {"name": "skip2", "shape": ["batch", c2, "height/8", "width/8"], "dtype": "float32", "units": "feature",
         "normalization": "encoder output at 16 mm pixels"},
        {"name": "bottom", "shape": ["batch", c2, "height/16", "width/16"], "dtype": "float32", "units": "feature",
         "normalization": "encoder bottleneck at 32 mm pixels"},
        {"name": "e_gap", "shape": ["batch", 4 * embed_dim], "dtype": "float32", "units": "feature",
         "normalization": "gap embedding"}]
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
    by_name = {t["name"]: t for t in inputs + outputs + features}
    return {member: ([by_name[n] for n in names_in], [by_name[n] for n in names_out])
            for member, (names_in, names_out) in IO.items()}


def registry_entry(models_dir: Path, ckpt: dict, parity_max_abs: dict, metrics: dict | None,
                   outside_correction: str = "edge_median") -> dict:
    """The models.json family entry (core writer's ``family_entry``); ``outside_correction``: the forecaster's rule
    for the logit correction outside the crops (``none`` or ``edge_median``, chosen on the validation cohort)."""
    cfg, summary = ckpt["config"], ckpt.get("summary", {})
    io = tensors(cfg["channels"])
    data_arg = "--data " + " ".join(map(str, cfg["data"])) if cfg.get("data") else f"--cohort {cfg['cohort']}"
    command = (f"python -m gliomaforecast_training.multitask.train fit {data_arg} --steps {cfg['steps']}"
               + (f" --max-minutes {cfg['max_minutes']:g}" if cfg.get("max_minutes") else "")
               + f" --batch {cfg['batch']} --lr {cfg['lr']} --lambda-rt {cfg['lambda_rt']} --gamma {cfg['gamma']}"
               + f" --channels {' '.join(map(str, cfg['channels']))} --seed {cfg['seed']} --out multitask.pt")
    return family_entry(
        MODEL_ID, VERSION, {m: file_entry(models_dir / f, *io[m]) for m, f in FILES.items()},
        task="multi-task diffusion forecaster: future FLAIR (generative head, v-prediction) and tumour probability "
             "map (predictive head) from two prior scans at a chosen day (2D axial slices)",
        card=f"{MODEL_ID}.md",
        pixel_spacing_mm=mi.PIXEL_MM, generative_pixel_mm=mi.GEN_PIXEL_MM, crop=mi.CROP, size_multiple=SIZE_MULTIPLE, cond_channels=list(mi.COND_NAMES),
        residual_gain=mi.RESIDUAL_GAIN, outside_correction=outside_correction, schedule=SCHEDULE, num_train_timesteps=NUM_TRAIN_TIMESTEPS,
        prediction="v_prediction", sampler={"name": "dpmpp_2m", "steps": 10},
        trained_gap_days=[1.0, MAX_GAP_DAYS], min_area_mm2=MIN_AREA_MM2,
        architecture={"net": "gliomaforecast_training.multitask.net.MultiTaskNet", "channels": cfg["channels"],
                      "blocks": "MONAI DiffusionUNetResnetBlock; shared encoder, generative + predictive decoders, "
                                "FiLM gap conditioning"},
        training={"data": summary.get("data", {}), "command": command, "steps": summary.get("steps"),
                  "processes": summary.get("processes"), "device": summary.get("device"),
                  "seconds": summary.get("seconds"), "final_loss": summary.get("final", {}),
                  "lambda_rt": cfg["lambda_rt"], "gamma": cfg["gamma"], "torch": torch.__version__},
        export=export_record(parity_max_abs=parity_max_abs),
        metrics=metrics or {})


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint written by multitask.train fit")
    p.add_argument("--models-dir", type=Path, required=True, help="folder of models.json (Resources/Models)")
    p.add_argument("--metrics", type=Path, help="JSON of held-out figures to record in the entry")
    p.add_argument("--outside-correction", choices=("none", "edge_median"), default="edge_median",
                   help="the logit correction outside the crops: none, or each slice's median on the crop's outer ring")


def export(args: argparse.Namespace) -> dict:
    """Export, check parity (< 1e-4), register; returns the entry."""
    net, ckpt = load_checkpoint(args.checkpoint)
    args.models_dir.mkdir(parents=True, exist_ok=True)
    paths = export_onnx(net, args.models_dir)
    diff = parity(net, args.models_dir)
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.2f} MB" for p in paths.values())
    print(f"exported {sizes}; parity max |ort - torch| {diff}")
    if max(diff.values()) > PARITY_LIMIT:
        raise SystemExit(f"ONNX parity {diff} exceeds {PARITY_LIMIT}")
    metrics = read_metrics(args.metrics)
    return register(args.models_dir, registry_entry(args.models_dir, ckpt, diff, metrics, args.outside_correction))


def main(argv: list[str] | None = None) -> int:
    return module_main("multitask.export", __doc__, add_arguments, export, argv)


if __name__ == "__main__":
    sys.exit(main())
