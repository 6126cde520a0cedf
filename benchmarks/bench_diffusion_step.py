"""One DDIM step of a registry model-family denoiser through the runtime (numpy + onnxruntime) vs the same
step in torch (MONAI DiffusionModelUNet + a correct DDIM step written in torch), measured in one run.

No diffusion model ships in the registry yet, so the benchmark builds a small MONAI DiffusionModelUNet (2D,
64 x 64, channels (32, 64, 64), attention at the lowest level, seeded weights), exports it with
``torch.onnx.export(dynamo=False)``, writes a one-member family registry into a temporary folder with the
core's writer (``model_registry_writer``), and loads it with ``models.load_family`` from that folder
(``GLIOMAFORECAST_MODELS_DIR``). Timed calls alternate between the two sides. Both use the same thread count (``--threads``, default 1) and the same
batch; the step goes from the entry of a 20-step list nearest t = 500 (526) to the next entry (473). The
outputs are compared (max |diff|).

Run: .venv/bin/python benchmarks/bench_diffusion_step.py  -> prints a table, writes benchmarks/results/diffusion_step.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from monai.networks.nets import DiffusionModelUNet

from _measure import _peak_of, write_result
from gliomaforecast import diffusion as D
from gliomaforecast import models
from gliomaforecast.resources import ENV_VAR
from gliomaforecast.model_registry_writer import family_entry, file_entry, write_registry_entry

SIZE, CHANNELS = 64, (32, 64, 64)


def build_net(seed: int = 0) -> DiffusionModelUNet:
    torch.manual_seed(seed)
    return DiffusionModelUNet(spatial_dims=2, in_channels=1, out_channels=1, channels=CHANNELS,
                              attention_levels=(False, False, True), num_res_blocks=1, num_head_channels=32).eval()


def export(net: DiffusionModelUNet, path: Path) -> Path:
    x = torch.zeros(2, 1, SIZE, SIZE)
    t = torch.zeros(2, dtype=torch.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x, t), str(path), input_names=["x", "timesteps"], output_names=["eps"], opset_version=17,
                          dynamic_axes={"x": {0: "batch"}, "timesteps": {0: "batch"}, "eps": {0: "batch"}}, dynamo=False)
    return path


def register(folder: Path, onnx_path: Path) -> None:
    image = {"name": "x", "shape": ["batch", 1, SIZE, SIZE], "dtype": "float32", "units": "1",
             "normalization": "noised image x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, x0 in [-1, 1]"}
    steps = {"name": "timesteps", "shape": ["batch"], "dtype": "int64", "units": "step", "normalization": "0..999"}
    eps = {"name": "eps", "shape": ["batch", 1, SIZE, SIZE], "dtype": "float32", "units": "1",
           "normalization": "predicted noise (epsilon prediction)"}
    entry = family_entry("bench-ddim", "0.0.0", {"denoiser": file_entry(onnx_path, [image, steps], [eps])},
                         task="benchmark only: seeded MONAI DiffusionModelUNet", schedule="linear", timesteps=1000,
                         training={"command": "none (seeded weights)"}, metrics={})
    write_registry_entry(folder, entry)


def make_torch_step(net: DiffusionModelUNet, schedule: D.NoiseSchedule, x: np.ndarray, t_batch: np.ndarray, t: int,
                    t_prev: int):
    """The same DDIM step in torch: network eps, then x0 and x_{t_prev} from the listed previous timestep."""
    ab = torch.from_numpy(schedule.alphas_cumprod).float()
    xt, tt = torch.from_numpy(x), torch.from_numpy(t_batch)

    def torch_step() -> np.ndarray:
        with torch.no_grad():
            eps = net(xt, tt)
            ab_t, ab_s = ab[t], ab[t_prev]  # the next listed timestep, not t - T // N
            x0 = (xt - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
            return (ab_s.sqrt() * x0 + (1 - ab_s).sqrt() * eps).numpy()

    return torch_step


def interleaved(a, b, repeats: int):
    """Untimed first call of each (memory peak), then ``repeats`` timed calls alternating a and b, so that
    load from other jobs on the machine falls on both alike; medians."""
    mem_a, out_a = _peak_of(a)
    mem_b, out_b = _peak_of(b)
    times_a, times_b = [], []
    for _ in range(repeats):
        for fn, times in ((a, times_a), (b, times_b)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times_a), mem_a, out_a, statistics.median(times_b), mem_b, out_b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    net = build_net()
    schedule = D.make_schedule("linear")
    ts = D.sampling_timesteps(20)
    i = int(np.argmin(np.abs(ts - 500)))
    t, t_prev = int(ts[i]), int(ts[i + 1])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 1, SIZE, SIZE)).astype(np.float32)
    t_batch = np.full(args.batch, t, dtype=np.int64)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        register(folder, export(net, folder / "bench_ddim_denoiser.onnx"))
        os.environ[ENV_VAR] = str(folder)
        family = models.load_family("bench-ddim", prefer_gpu=False, threads=args.threads, require=("denoiser",))
        step_fn = D.step_function(family["denoiser"])

        def runtime_step() -> np.ndarray:
            eps = step_fn(x, t_batch, None)
            return D.ddim_step(eps, x, t, t_prev, schedule)[0].astype(np.float32)

        provenance = family.provenance()
        torch_step = make_torch_step(net, schedule, x, t_batch, t, t_prev)
        t_rt, mem_rt, out_rt, t_torch, mem_torch, out_torch = interleaved(runtime_step, torch_step, args.repeats)

    diff = float(np.abs(out_rt - out_torch).max())
    n_params = sum(p.numel() for p in net.parameters())

    print(f"DiffusionModelUNet 2D {SIZE}x{SIZE}, channels {CHANNELS}, {n_params / 1e6:.2f} M parameters; "
          f"batch {args.batch}; DDIM step t={t} -> {t_prev}; {args.threads} thread(s)")
    print(f"runtime (numpy + onnxruntime) {t_rt * 1e3:.1f} ms, peak +{mem_rt:.0f} MiB   torch {t_torch * 1e3:.1f} ms, "
          f"peak +{mem_torch:.0f} MiB   ratio torch/runtime {t_torch / t_rt:.2f}   max |diff| {diff:.1e}")
    path = write_result("diffusion_step", {
        "network": "monai DiffusionModelUNet(spatial_dims=2, channels=(32, 64, 64), attention_levels=(F, F, T), "
                   "num_res_blocks=1, num_head_channels=32), seeded", "parameters": n_params,
        "batch_shape": list(x.shape), "timestep": t, "previous_timestep": t_prev, "threads": args.threads,
        "runtime_seconds": round(t_rt, 5), "runtime_peak_mib": round(mem_rt, 1),
        "torch_seconds": round(t_torch, 5), "torch_peak_mib": round(mem_torch, 1),
        "torch_over_runtime": round(t_torch / t_rt, 3), "max_abs_difference": diff,
        "provenance": provenance, "onnxruntime": ort.__version__, "torch": torch.__version__,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
