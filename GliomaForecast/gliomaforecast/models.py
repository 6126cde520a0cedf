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

A model FAMILY is one id whose networks live in several ONNX files (an autoencoder's encoder and decoder plus
a denoiser, say): instead of ``file``/``sha256``/``inputs``/``outputs`` its entry has ``files``, one object per
member with those four keys (each member's tensors with their own units)::

    {"id": "ldm", "version": "1.0.0",
     "files": {"encoder":  {"file": "ldm_encoder.onnx", "sha256": "...", "inputs": [...], "outputs": [...]},
               "denoiser": {"file": "ldm_denoiser.onnx", "sha256": "...", "inputs": [...], "outputs": [...]}},
     "training": {...}, "metrics": {...}}

:func:`load_registry` lists every ONNX file: single-file models under their id, family members under
``<family id>/<member>`` (with the family's other fields in ``extra``), so listing and verifying need not know
about families; :func:`load_family` opens one family as a :class:`ModelFamily`.
A model file whose sha256 differs from the registry is refused. Sessions use the CUDA execution
provider only when onnxruntime offers it *and* the created session really runs on it; otherwise CPU.
The provider that runs is reported by :attr:`OnnxModel.provider`. Sessions optimise the graph fully
(``ORT_ENABLE_ALL``); ``threads`` sets onnxruntime's intra-op thread count (None or 0: its default).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .errors import InputError, parse_json
from .io.write_guard import remember_inputs
from .resources import default_models_dir

SCHEMA = "gliomaforecast.models/1"
THREADS_VAR = "GLIOMAFORECAST_ORT_THREADS"  # intra-op threads of sessions opened without an explicit count
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
_MODEL_KEYS = ("id", "version", "file", "sha256", "inputs", "outputs")
_FILE_KEYS = ("file", "sha256", "inputs", "outputs")
_FAMILY_KEYS = ("id", "version", "files")


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
    family: str | None = None
    member: str | None = None


@dataclass(frozen=True)
class FamilySpec:
    """A model family's registry entry: its members' specs by member name (each member's ``id`` is
    ``<family id>/<member>``) and the entry's other fields in ``extra``."""

    id: str
    version: str
    members: dict[str, ModelSpec]
    extra: dict[str, Any] = field(default_factory=dict)


def sha256_of(path: str | Path) -> str:
    """Hex sha256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tensor_specs(items: Any, src: str | Path, where: str) -> tuple[TensorSpec, ...]:
    if not isinstance(items, list) or not items:
        raise InputError(src, where, "must be a non-empty list of tensors")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "name" not in item or "shape" not in item:
            raise InputError(src, f"{where}[{i}]", "each tensor needs 'name' and 'shape'")
        shape = item["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, (int, str)) for d in shape):
            raise InputError(src, f"{where}[{i}].shape", "must be a list of sizes (int) or symbolic names (str)")
        out.append(
            TensorSpec(
                str(item["name"]),
                tuple(shape),
                str(item.get("dtype", "float32")),
                str(item.get("units", "")),
                str(item.get("normalization", "")),
            )
        )
    return tuple(out)


def _model_path(folder: str | Path, value: Any, source: str | Path, where: str) -> Path:
    """A model file named in the registry: a relative path inside the models folder (no absolute path, no ``..``
    out of it), else an InputError naming the registry and the field."""
    name = str(value)
    if "\x00" in name:
        raise InputError(source, where, f"{name!r} holds a NUL byte: not a file name")
    inside = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(inside, name))
    if not name or os.path.isabs(name) or os.path.commonpath([inside, path]) != inside or path == inside:
        raise InputError(source, where, f"{name!r} must be a file inside the models folder {folder}")
    return Path(folder) / name


def parse_entry(
    entry: Mapping[str, Any], folder: str | Path, source: str | Path = "models.json", where: str = "model"
) -> ModelSpec:
    """One registry entry (a dict as in models.json) as a :class:`ModelSpec` whose file lies in ``folder``."""
    missing = [k for k in _MODEL_KEYS if not isinstance(entry, Mapping) or k not in entry]
    if missing:
        raise InputError(source, where, f"missing {', '.join(missing)}")
    extra = {k: v for k, v in entry.items() if k not in _MODEL_KEYS}
    return ModelSpec(
        str(entry["id"]),
        str(entry["version"]),
        str(entry["file"]),
        str(entry["sha256"]).lower(),
        _tensor_specs(entry["inputs"], source, f"{where}.inputs"),
        _tensor_specs(entry["outputs"], source, f"{where}.outputs"),
        _model_path(folder, entry["file"], source, f"{where}.file"),
        extra,
    )


def parse_family_entry(
    entry: Mapping[str, Any], folder: str | Path, source: str | Path = "models.json", where: str = "model"
) -> FamilySpec:
    """A family entry (one with ``files``) as a :class:`FamilySpec` whose member files lie in ``folder``."""
    missing = [k for k in _FAMILY_KEYS if not isinstance(entry, Mapping) or k not in entry]
    if missing:
        raise InputError(source, where, f"missing {', '.join(missing)}")
    if "file" in entry:
        raise InputError(
            source, f"{where}.file", "an entry has either 'file' (one model) or 'files' (a family), not both"
        )
    files = entry["files"]
    if not isinstance(files, Mapping) or not files:
        raise InputError(
            source, f"{where}.files", "must be a non-empty object of members {name: {file, sha256, inputs, outputs}}"
        )
    family_id, version = str(entry["id"]), str(entry["version"])
    extra = {k: v for k, v in entry.items() if k not in _FAMILY_KEYS}
    members: dict[str, ModelSpec] = {}
    for name, member in files.items():
        at = f"{where}.files.{name}"
        if not isinstance(member, Mapping):
            raise InputError(source, at, "must be an object with file, sha256, inputs, outputs")
        lacking = [k for k in _FILE_KEYS if k not in member]
        if lacking:
            raise InputError(source, at, f"missing {', '.join(lacking)}")
        member_extra = {**extra, **{k: v for k, v in member.items() if k not in _FILE_KEYS}}
        members[str(name)] = ModelSpec(
            f"{family_id}/{name}",
            version,
            str(member["file"]),
            str(member["sha256"]).lower(),
            _tensor_specs(member["inputs"], source, f"{at}.inputs"),
            _tensor_specs(member["outputs"], source, f"{at}.outputs"),
            _model_path(folder, member["file"], source, f"{at}.file"),
            member_extra,
            family_id,
            str(name),
        )
    return FamilySpec(family_id, version, members, extra)


def _read_entries(models_dir: str | Path | None) -> tuple[Path, Path, list]:
    folder = Path(models_dir) if models_dir is not None else default_models_dir()
    manifest = folder / "models.json"
    if not manifest.is_file():
        raise InputError(manifest, "models.json", "model registry not found")
    try:
        data = parse_json(manifest.read_text(), manifest)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(manifest, "models.json", f"not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError(manifest, "models.json", "not a model registry (JSON nested too deeply)") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise InputError(manifest, "schema", f"expected '{SCHEMA}'")
    entries = data.get("models")
    if not isinstance(entries, list):
        raise InputError(manifest, "models", "must be a list")
    remember_inputs([folder])  # the models folder: never replaced by an output (--overwrite)
    return folder, manifest, entries


def _parse_all(models_dir: str | Path | None) -> tuple[Path, dict[str, ModelSpec | FamilySpec]]:
    folder, manifest, entries = _read_entries(models_dir)
    parsed: dict[str, ModelSpec | FamilySpec] = {}
    for i, entry in enumerate(entries):
        where = f"models[{i}]"
        spec: ModelSpec | FamilySpec
        if isinstance(entry, Mapping) and "files" in entry:
            spec = parse_family_entry(entry, folder, source=manifest, where=where)
        else:
            spec = parse_entry(entry, folder, source=manifest, where=where)
        if spec.id in parsed:
            raise InputError(manifest, f"{where}.id", f"duplicate model id '{spec.id}'")
        parsed[spec.id] = spec
    return manifest, parsed


def load_registry(models_dir: str | Path | None = None) -> dict[str, ModelSpec]:
    """Parse ``models.json`` of ``models_dir`` (default :func:`default_models_dir`) into one spec per ONNX
    file: single-file models by id, family members by ``<family id>/<member>``.

    Only the manifest is read here; :func:`verify` checks the files."""
    manifest, parsed = _parse_all(models_dir)
    specs: dict[str, ModelSpec] = {}
    for spec in parsed.values():
        for one in spec.members.values() if isinstance(spec, FamilySpec) else (spec,):
            if one.id in specs:
                raise InputError(manifest, "id", f"duplicate model id '{one.id}'")
            specs[one.id] = one
    return specs


def load_families(models_dir: str | Path | None = None) -> dict[str, FamilySpec]:
    """The model families of the registry by id (single-file models left out)."""
    return {k: v for k, v in _parse_all(models_dir)[1].items() if isinstance(v, FamilySpec)}


def verify(spec: ModelSpec | FamilySpec) -> None:
    """Raise an InputError naming the file when it is missing or its sha256 differs from the registry
    (for a family: the first member file that is)."""
    if isinstance(spec, FamilySpec):
        for member in spec.members.values():
            verify(member)
        return
    if not spec.path.is_file():
        raise InputError(spec.path, "file", f"model '{spec.id}' file not found")
    actual = sha256_of(spec.path)
    if actual != spec.sha256:
        raise InputError(
            spec.path,
            "sha256",
            f"model '{spec.id}' file is altered (sha256 {actual[:12]}..., registry {spec.sha256[:12]}...)",
        )


def get_spec(model_id: str, models_dir: str | Path | None = None) -> ModelSpec:
    """The registry entry of ``model_id``; an unknown id is an InputError listing the known ones."""
    specs = load_registry(models_dir)
    if model_id not in specs:
        folder = Path(models_dir) if models_dir is not None else default_models_dir()
        families = load_families(models_dir)
        if model_id in families:
            raise InputError(
                folder / "models.json",
                "id",
                f"'{model_id}' is a model family of "
                f"{', '.join(sorted(families[model_id].members))}: open it with load_family",
            )
        raise InputError(
            folder / "models.json", "id", f"no model '{model_id}' (known: {', '.join(sorted(specs)) or 'none'})"
        )
    return specs[model_id]


def get_family(family_id: str, models_dir: str | Path | None = None) -> FamilySpec:
    """The family entry of ``family_id``; an unknown id is an InputError listing the known families."""
    families = load_families(models_dir)
    if family_id not in families:
        folder = Path(models_dir) if models_dir is not None else default_models_dir()
        raise InputError(
            folder / "models.json",
            "id",
            f"no model family '{family_id}' (known families: {', '.join(sorted(families)) or 'none'})",
        )
    return families[family_id]


def _check_threads(threads: int | None) -> int:
    """The intra-op thread count: ``threads``, else ``$GLIOMAFORECAST_ORT_THREADS`` (set by ``evaluate --jobs N`` in
    its workers so that N processes share the cores instead of each taking all of them), else 0 (onnxruntime's
    default: one per physical core)."""
    if threads is None:
        value = os.environ.get(THREADS_VAR, "").strip()
        if not value:
            return 0
        if not value.isdigit():
            raise InputError(None, THREADS_VAR, f"must be a whole number of threads >= 0, got {value!r}")
        return int(value)
    if isinstance(threads, bool) or int(threads) != threads or threads < 0:
        raise InputError(None, "threads", f"intra-op thread count must be an integer >= 0 (0: default), got {threads}")
    return int(threads)


@functools.lru_cache(maxsize=32)
def _session(path: Path, sha256: str, prefer_gpu: bool, threads: int = 0) -> ort.InferenceSession:
    """One onnxruntime session per verified file content (``sha256``), provider preference and thread count, kept
    for the process: an evaluation opens each model once, not once per forecast."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # a CUDA provider that fails to load is reported by `provider`, not logs
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    if prefer_gpu and CUDA in ort.get_available_providers():
        try:
            session = ort.InferenceSession(str(path), options, providers=[CUDA, CPU])
            if session.get_providers()[0] == CUDA:
                return session
        except Exception:  # noqa: BLE001 - a broken CUDA install must fall back to CPU, whatever it raises
            pass
    return ort.InferenceSession(str(path), options, providers=[CPU])


class OnnxModel:
    """A verified ONNX model with an onnxruntime session on CUDA (when it really works) or CPU.

    ``threads``: onnxruntime's intra-op thread count (None or 0: its default, one per physical core)."""

    def __init__(self, spec: ModelSpec, *, prefer_gpu: bool = True, threads: int | None = None) -> None:
        n_threads = _check_threads(threads)
        verify(spec)
        self.spec = spec
        try:
            self.session = _session(spec.path, spec.sha256, prefer_gpu, n_threads)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several types for bad files
            raise InputError(spec.path, "file", f"onnxruntime cannot load model '{spec.id}' ({exc})") from None

    @property
    def provider(self) -> str:
        """The execution provider that runs this model: ``CUDAExecutionProvider`` or ``CPUExecutionProvider``."""
        return self.session.get_providers()[0]

    def provenance(self) -> dict[str, Any]:
        """What ran, for forecast.json and reports: id, version, file, sha256, provider and intra-op threads
        (0: onnxruntime's default)."""
        return {
            "id": self.spec.id,
            "version": self.spec.version,
            "file": self.spec.file,
            "sha256": self.spec.sha256,
            "provider": self.provider,
            "threads": int(self.session.get_session_options().intra_op_num_threads),
        }

    def _check(self, name: str, array: np.ndarray, spec: TensorSpec) -> np.ndarray:
        arr = np.ascontiguousarray(array, dtype=np.dtype(spec.dtype))
        where = f"model '{self.spec.id}' input"
        if arr.ndim != len(spec.shape):
            raise InputError(
                name, "shape", f"{where} needs rank {len(spec.shape)} {list(spec.shape)}, got shape {tuple(arr.shape)}"
            )
        for axis, (want, got) in enumerate(zip(spec.shape, arr.shape)):
            if isinstance(want, int) and want != got:
                raise InputError(
                    name,
                    "shape",
                    f"{where} needs size {want} on axis {axis} {list(spec.shape)}, got shape {tuple(arr.shape)}",
                )
        return arr

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on named inputs (checked against the registry) and return outputs by name."""
        expected = {s.name: s for s in self.spec.inputs}
        unknown = sorted(set(inputs) - set(expected))
        missing = sorted(set(expected) - set(inputs))
        if unknown or missing:
            raise InputError(
                f"model '{self.spec.id}'",
                "inputs",
                f"expected {sorted(expected)}; missing {missing}, unknown {unknown}",
            )
        feed = {n: self._check(n, a, expected[n]) for n, a in inputs.items()}
        names = [s.name for s in self.spec.outputs]
        try:
            return dict(zip(names, self.session.run(names, feed)))
        except Exception as exc:  # noqa: BLE001 - onnxruntime reports bad sizes with several exception types
            shapes = ", ".join(f"{n} {tuple(a.shape)}" for n, a in feed.items())
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"model '{self.spec.id}'", "inputs", f"onnxruntime cannot run on {shapes}: {first}"
            ) from None


def load_model(
    model_id: str, models_dir: str | Path | None = None, *, prefer_gpu: bool = True, threads: int | None = None
) -> OnnxModel:
    """Look up ``model_id`` in the registry, verify its sha256 and open an onnxruntime session
    (``threads`` intra-op threads; None: onnxruntime's default). A family member is ``<family>/<member>``."""
    return OnnxModel(get_spec(model_id, models_dir), prefer_gpu=prefer_gpu, threads=threads)


class ModelFamily:
    """The verified networks of one family, each an :class:`OnnxModel`, by member name.

    Every member file is checked (sha256) before any session opens, so one altered file refuses the whole
    family with an InputError naming that file."""

    def __init__(self, spec: FamilySpec, *, prefer_gpu: bool = True, threads: int | None = None) -> None:
        _check_threads(threads)
        verify(spec)
        self.spec = spec
        self.members: dict[str, OnnxModel] = {
            name: OnnxModel(m, prefer_gpu=prefer_gpu, threads=threads) for name, m in spec.members.items()
        }

    @property
    def id(self) -> str:
        return self.spec.id

    def __getitem__(self, name: str) -> OnnxModel:
        if name not in self.members:
            raise InputError(
                f"model family '{self.spec.id}'",
                "files",
                f"no member '{name}' (members: {', '.join(sorted(self.members))})",
            )
        return self.members[name]

    def __contains__(self, name: object) -> bool:
        return name in self.members

    def provenance(self) -> list[dict[str, Any]]:
        """One :meth:`OnnxModel.provenance` per member (ids ``<family>/<member>``), in registry order."""
        return [m.provenance() for m in self.members.values()]


def load_family(
    family_id: str,
    models_dir: str | Path | None = None,
    *,
    prefer_gpu: bool = True,
    threads: int | None = None,
    require: Iterable[str] = (),
) -> ModelFamily:
    """Look up a model family, verify every member file's sha256 and open one session per member.

    ``require``: member names the caller needs; a registry entry lacking one is an InputError naming the
    family's ``files`` field and the missing members."""
    spec = get_family(family_id, models_dir)
    lacking = [name for name in require if name not in spec.members]
    if lacking:
        folder = Path(models_dir) if models_dir is not None else default_models_dir()
        raise InputError(
            folder / "models.json",
            f"{family_id}.files",
            f"model family '{family_id}' lacks member(s) {', '.join(lacking)} (has {', '.join(spec.members)})",
        )
    return ModelFamily(spec, prefer_gpu=prefer_gpu, threads=threads)
