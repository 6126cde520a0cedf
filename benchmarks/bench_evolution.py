"""Tumor-evolution field of a whole case on CPU: onnxruntime (the runtime) vs torch on the same network and
weights, measured in one run, plus the end-to-end ``evolution_field`` time of the committed model.

The network comparison exports a freshly built ``EvolutionNet`` (same architecture as the committed model,
seeded weights) to ONNX in a temporary folder, so torch and onnxruntime run identical weights on the
identical batch: the tumor slices of the sample patient's last two GTVs at 2 mm pixels.

Run: .venv/bin/python benchmarks/bench_evolution.py  -> prints a table, writes benchmarks/results/evolution.json
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from _measure import measure, write_result
from gliomaforecast import deformation, sdf
from gliomaforecast.io.case import load_case
from gliomaforecast.models import load_model
from gliomaforecast_training.evolution.export import export_onnx
from gliomaforecast_training.evolution.net import EvolutionNet

CASE = Path(__file__).resolve().parents[1] / "Resources" / "SampleData" / "sample_patient" / "case.json"


def main() -> None:
    case = load_case(CASE)
    spacing = case.grid.spacing
    phi1, phi2 = (sdf.signed_distance(case.gtv(tp), spacing) for tp in case.timepoints[-2:])
    gap = float(case.timepoints[-1].day - case.timepoints[-2].day)
    model = load_model("evolution", prefer_gpu=False)
    t_field, mem_field, field = measure(lambda: deformation.evolution_field(phi1, phi2, gap, spacing, model), 3)

    idx = deformation.tumor_slices(phi1, phi2)
    target = float(model.spec.extra["pixel_spacing_mm"])
    planes = [deformation.resample_plane(p[idx], spacing[1:], target) for p in (phi1, phi2)]
    n, h, w = planes[0].shape
    ph, pw = (-h) % 16, (-w) % 16
    batch = np.stack([np.pad(p, ((0, 0), (0, ph), (0, pw)), mode="edge") for p in planes], axis=1)
    gaps = np.full(n, gap, np.float32)

    torch.manual_seed(0)
    net = EvolutionNet(model.spec.extra["architecture"]["channels"]).eval()
    with torch.no_grad():
        net.head.weight.normal_(0, 0.1)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(net, Path(tmp) / "evolution.onnx", 96)
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        t_ort, mem_ort, out_ort = measure(lambda: sess.run(["displacement"], {"phi": batch, "gap_days": gaps})[0], 5)

    def run_torch() -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(batch), torch.from_numpy(gaps)).numpy()
    t_torch, mem_torch, out_torch = measure(run_torch, 5)
    diff = float(np.abs(out_ort - out_torch).max())

    print(f"case {case.patient_id}: grid {case.grid.shape} at {spacing} mm, {n} tumor slices -> batch {batch.shape}")
    print(f"evolution_field (committed model, whole case): {t_field:.3f} s, peak +{mem_field:.0f} MiB")
    print(f"network only   onnxruntime {t_ort:.3f} s   torch {t_torch:.3f} s   ratio torch/ort {t_torch / t_ort:.2f}"
          f"   max |diff| {diff:.1e} mm")
    path = write_result("evolution", {
        "case": str(CASE.relative_to(CASE.parents[3])), "grid_shape": list(case.grid.shape),
        "spacing_mm": list(spacing), "tumor_slices": int(n), "batch_shape": list(batch.shape),
        "evolution_field_seconds": round(t_field, 4), "evolution_field_peak_mib": round(mem_field, 1),
        "network_onnxruntime_seconds": round(t_ort, 4), "network_torch_seconds": round(t_torch, 4),
        "torch_over_onnxruntime": round(t_torch / t_ort, 3), "max_abs_difference_mm": diff,
        "torch_threads": torch.get_num_threads(), "onnxruntime": ort.__version__, "torch": torch.__version__,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
