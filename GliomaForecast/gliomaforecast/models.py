"""ONNX model registry: ``Resources/Models/models.json``, sha256 verification and onnxruntime sessions.

The models folder is ``$GLIOMAFORECAST_MODELS_DIR`` when that variable is set, else
``<repository>/Resources/Models`` (two levels above this package). ``models.json`` has the schema
``gliomaforecast.models/1``::

    {"schema": "gliomaforecast.models/1",
     "models": [{"id": "evolution", "version": "1.0.0", "file": "evolution.onnx", "sha256": "...",
                 "inputs":  [{"name": "phi", "shape": ["batch", 2, "height", "width"], "dtype": "float32",
                              "units": "...", "normalization": "..."}, ...],
                 "outputs": [...], "training": {...}, "metrics": {...}, ...}]}

Symbolic dimensions are strings; integers are fixed sizes that every input must have.
A model file whose sha256 differs from the registry is refused. Sessions use the CUDA execution
provider only when onnxruntime offers it *and* the created session really runs on it; otherwise CPU.
The provider that runs is reported by :attr:`OnnxModel.provider`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import onnxruntime as ort

from .errors import InputError
from .resources import resources_dir

SCHEMA = "gliomaforecast.models/1"
ENV_VAR = "GLIOMAFORECAST_MODELS_DIR"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
_MODEL_KEYS = ("id", "version", "file", "sha256", "inputs", "outputs")


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, shape (ints fixed, strings symbolic), dtype, units, normalization."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    units: str = ""
    normalization: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry. ``path`` is the model file inside the models folder; ``extra`` holds every other
    field of the entry (training data and command, metrics, pre-processing constants)."""

    id: str
    version: str
    file: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    path: Path
    extra: dict[str, Any] = field(default_factory=dict)


def default_models_dir() -> Path:
    """``$GLIOMAFORECAST_MODELS_DIR`` if set, else ``Models`` of :func:`resources.resources_dir`."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return resources_dir() / "Models"


def sha256_of(path: str | Path) -> str:
    """Hex sha256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tensor_specs(items: Any, src: Path, where: str) -> tuple[TensorSpec, ...]:
    if not isinstance(items, list) or not items:
        raise InputError(src, where, "must be a non-empty list of tensors")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "name" not in item or "shape" not in item:
            raise InputError(src, f"{where}[{i}]", "each tensor needs 'name' and 'shape'")
        shape = item["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, (int, str)) for d in shape):
            raise InputError(src, f"{where}[{i}].shape", "must be a list of sizes (int) or symbolic names (str)")
        out.append(TensorSpec(str(item["name"]), tuple(shape), str(item.get("dtype", "float32")),
                              str(item.get("units", "")), str(item.get("normalization", ""))))
    return tuple(out)


def parse_entry(entry: Mapping[str, Any], folder: str | Path, source: str | Path = "models.json",
                where: str = "model") -> ModelSpec:
    """One registry entry (a dict as in models.json) as a :class:`ModelSpec` whose file lies in ``folder``."""
    missing = [k for k in _MODEL_KEYS if not isinstance(entry, Mapping) or k not in entry]
    if missing:
        raise InputError(source, where, f"missing {', '.join(missing)}")
    extra = {k: v for k, v in entry.items() if k not in _MODEL_KEYS}
    return ModelSpec(str(entry["id"]), str(entry["version"]), str(entry["file"]), str(entry["sha256"]).lower(),
                     _tensor_specs(entry["inputs"], source, f"{where}.inputs"),
                     _tensor_specs(entry["outputs"], source, f"{where}.outputs"),
                     Path(folder) / str(entry["file"]), extra)


def load_registry(models_dir: str | Path | None = None) -> dict[str, ModelSpec]:
    """Parse ``models.json`` of ``models_dir`` (default :func:`default_models_dir`) into specs by id.

    Only the manifest is read here; :func:`verify` checks the files."""
    folder = Path(models_dir) if models_dir is not None else default_models_dir()
    manifest = folder / "models.json"
    if not manifest.is_file():
        raise InputError(manifest, "models.json", "model registry not found")
    try:
        data = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(manifest, "models.json", f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise InputError(manifest, "schema", f"expected '{SCHEMA}'")
    entries = data.get("models")
    if not isinstance(entries, list):
        raise InputError(manifest, "models", "must be a list")
    specs: dict[str, ModelSpec] = {}
    for i, entry in enumerate(entries):
        spec = parse_entry(entry, folder, source=manifest, where=f"models[{i}]")
        if spec.id in specs:
            raise InputError(manifest, f"models[{i}].id", f"duplicate model id '{spec.id}'")
        specs[spec.id] = spec
    return specs


def verify(spec: ModelSpec) -> None:
    """Raise an InputError naming the file when it is missing or its sha256 differs from the registry."""
    if not spec.path.is_file():
        raise InputError(spec.path, "file", f"model '{spec.id}' file not found")
    actual = sha256_of(spec.path)
    if actual != spec.sha256:
        raise InputError(spec.path, "sha256",
                         f"model '{spec.id}' file is altered (sha256 {actual[:12]}..., registry {spec.sha256[:12]}...)")


def get_spec(model_id: str, models_dir: str | Path | None = None) -> ModelSpec:
    """The registry entry of ``model_id``; an unknown id is an InputError listing the known ones."""
    specs = load_registry(models_dir)
    if model_id not in specs:
        folder = Path(models_dir) if models_dir is not None else default_models_dir()
        raise InputError(folder / "models.json", "id",
                         f"no model '{model_id}' (known: {', '.join(sorted(specs)) or 'none'})")
    return specs[model_id]


def _session(path: Path, prefer_gpu: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # a CUDA provider that fails to load is reported by `provider`, not logs
    if prefer_gpu and CUDA in ort.get_available_providers():
        try:
            session = ort.InferenceSession(str(path), options, providers=[CUDA, CPU])
            if session.get_providers()[0] == CUDA:
                return session
        except Exception:  # noqa: BLE001 - a broken CUDA install must fall back to CPU, whatever it raises
            pass
    return ort.InferenceSession(str(path), options, providers=[CPU])


class OnnxModel:
    """A verified ONNX model with an onnxruntime session on CUDA (when it really works) or CPU."""

    def __init__(self, spec: ModelSpec, *, prefer_gpu: bool = True) -> None:
        verify(spec)
        self.spec = spec
        try:
            self.session = _session(spec.path, prefer_gpu)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several types for bad files
            raise InputError(spec.path, "file", f"onnxruntime cannot load model '{spec.id}' ({exc})") from None

    @property
    def provider(self) -> str:
        """The execution provider that runs this model: ``CUDAExecutionProvider`` or ``CPUExecutionProvider``."""
        return self.session.get_providers()[0]

    def provenance(self) -> dict[str, Any]:
        """What ran, for forecast.json and reports: id, version, file, sha256, provider and intra-op threads
        (0: onnxruntime's default)."""
        return {"id": self.spec.id, "version": self.spec.version, "file": self.spec.file, "sha256": self.spec.sha256,
                "provider": self.provider, "threads": int(self.session.get_session_options().intra_op_num_threads)}

    def _check(self, name: str, array: np.ndarray, spec: TensorSpec) -> np.ndarray:
        arr = np.ascontiguousarray(array, dtype=np.dtype(spec.dtype))
        where = f"model '{self.spec.id}' input"
        if arr.ndim != len(spec.shape):
            raise InputError(name, "shape", f"{where} needs rank {len(spec.shape)} {list(spec.shape)}, "
                                            f"got shape {tuple(arr.shape)}")
        for axis, (want, got) in enumerate(zip(spec.shape, arr.shape)):
            if isinstance(want, int) and want != got:
                raise InputError(name, "shape", f"{where} needs size {want} on axis {axis} {list(spec.shape)}, "
                                                f"got shape {tuple(arr.shape)}")
        return arr

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on named inputs (checked against the registry) and return outputs by name."""
        expected = {s.name: s for s in self.spec.inputs}
        unknown = sorted(set(inputs) - set(expected))
        missing = sorted(set(expected) - set(inputs))
        if unknown or missing:
            raise InputError(f"model '{self.spec.id}'", "inputs",
                             f"expected {sorted(expected)}; missing {missing}, unknown {unknown}")
        feed = {n: self._check(n, a, expected[n]) for n, a in inputs.items()}
        names = [s.name for s in self.spec.outputs]
        try:
            return dict(zip(names, self.session.run(names, feed)))
        except Exception as exc:  # noqa: BLE001 - onnxruntime reports bad sizes with several exception types
            shapes = ", ".join(f"{n} {tuple(a.shape)}" for n, a in feed.items())
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise InputError(f"model '{self.spec.id}'", "inputs", f"onnxruntime cannot run on {shapes}: {first}") from None


def load_model(model_id: str, models_dir: str | Path | None = None, *, prefer_gpu: bool = True) -> OnnxModel:
    """Look up ``model_id`` in the registry, verify its sha256 and open an onnxruntime session."""
    return OnnxModel(get_spec(model_id, models_dir), prefer_gpu=prefer_gpu)
