"""The export tail every family's exporter shares: the ONNX export call (opset 17, TorchScript exporter), an
onnxruntime CPU session for the parity checks, the ``export`` record of a registry entry, the optional metrics
file, and registration in ``models.json`` with the core's writer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch

from gliomaforecast.model_registry_writer import write_registry_entry

OPSET = 17


def export_graph(module: torch.nn.Module, inputs: tuple, path: str | Path, input_names: Sequence[str],
                 output_names: Sequence[str], dynamic_axes: dict, **options: Any) -> Path:
    """Write ``module`` run on ``inputs`` as ONNX (opset 17, TorchScript exporter: ``dynamo=False``) to ``path``;
    ``options``: further ``torch.onnx.export`` arguments."""
    torch.onnx.export(module, inputs, str(path), input_names=list(input_names), output_names=list(output_names),
                      dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False, **options)
    return Path(path)


def cpu_session(path: str | Path) -> ort.InferenceSession:
    """An onnxruntime session of ``path`` on the CPU (the parity checks)."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def export_record(**parity: Any) -> dict:
    """The ``export`` record of a registry entry: the opset, the parity figures (``parity``, named as given) and the
    onnxruntime version."""
    return {"opset": OPSET, **parity, "onnxruntime": ort.__version__}


def megabytes(path: Path) -> str:
    """``path (N.NN MB)`` for the export logs."""
    return f"{path} ({path.stat().st_size / 1e6:.2f} MB)"


def read_metrics(path: Path | None, default: Any = None) -> Any:
    """The JSON of ``--metrics`` (figures recorded in the entry), ``default`` when no file is given."""
    return json.loads(path.read_text()) if path else default


def register(models_dir: Path, entry: dict) -> dict:
    """Insert or replace ``entry`` (by id) in ``models_dir/models.json`` with the core's atomic writer, print where,
    and return the entry."""
    print(f"registered in {write_registry_entry(models_dir, entry)}")
    return entry
