"""ONNX model registry: sha256 verification, provider choice, input checks, and the `models` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from gliomaforecast import models
from gliomaforecast.resources import ENV_VAR
from gliomaforecast.cli import main
from gliomaforecast.errors import InputError

REPO_MODELS = Path(__file__).resolve().parents[2] / "Resources" / "Models"


def _write_toy(folder: Path, model_id: str = "toy") -> Path:
    """A registry with one model y = 2 * x + 1, x of shape (batch, 3)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["t"]), helper.make_node("Add", ["t", "one"], ["y"])],
                              "toy", [x], [y], initializer=[two, one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "toy.onnx"
    onnx.save(model, str(path))
    entry = {"id": model_id, "version": "0.1", "file": "toy.onnx", "sha256": models.sha256_of(path),
             "inputs": [{"name": "x", "shape": ["batch", 3], "units": "mm", "normalization": "none"}],
             "outputs": [{"name": "y", "shape": ["batch", 3], "units": "mm"}],
             "training": {"command": "none"}, "metrics": {}}
    (folder / "models.json").write_text(json.dumps({"schema": models.SCHEMA, "models": [entry]}))
    return path


def test_runs_verified_model_on_cpu(tmp_path):
    _write_toy(tmp_path)
    model = models.load_model("toy", tmp_path)
    out = model.run({"x": np.array([[0, 1, 2]], dtype=np.float32)})["y"]
    np.testing.assert_allclose(out, [[1, 3, 5]])
    assert model.provider == "CPUExecutionProvider"
    assert model.spec.extra["training"] == {"command": "none"}


def test_cuda_listed_but_not_loadable_falls_back_to_cpu(tmp_path, monkeypatch):
    _write_toy(tmp_path)
    monkeypatch.setattr(models.ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    model = models.load_model("toy", tmp_path)
    assert model.provider == "CPUExecutionProvider"
    np.testing.assert_allclose(model.run({"x": np.zeros((2, 3), np.float32)})["y"], np.ones((2, 3)))


def test_altered_file_is_refused(tmp_path):
    path = _write_toy(tmp_path)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(InputError, match="sha256") as err:
        models.load_model("toy", tmp_path)
    assert "toy.onnx" in str(err.value)


def test_missing_file_and_unknown_id(tmp_path):
    path = _write_toy(tmp_path)
    with pytest.raises(InputError, match="no model 'other'.*known: toy"):
        models.load_model("other", tmp_path)
    path.unlink()
    with pytest.raises(InputError, match="toy.onnx: file: .*not found"):
        models.load_model("toy", tmp_path)
    with pytest.raises(InputError, match="registry not found"):
        models.load_registry(tmp_path / "nowhere")


def test_wrong_rank_shape_and_names(tmp_path):
    _write_toy(tmp_path)
    model = models.load_model("toy", tmp_path)
    with pytest.raises(InputError, match="x: shape: .*rank 2"):
        model.run({"x": np.zeros(3, np.float32)})
    with pytest.raises(InputError, match="x: shape: .*size 3 on axis 1"):
        model.run({"x": np.zeros((1, 4), np.float32)})
    with pytest.raises(InputError, match="missing \\['x'\\], unknown \\['z'\\]"):
        model.run({"z": np.zeros((1, 3), np.float32)})


def test_bad_manifest(tmp_path):
    (tmp_path / "models.json").write_text(json.dumps({"schema": models.SCHEMA, "models": [{"id": "a"}]}))
    with pytest.raises(InputError, match=r"models\[0\]: missing version, file, sha256"):
        models.load_registry(tmp_path)
    (tmp_path / "models.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        models.load_registry(tmp_path)


def test_models_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert models.default_models_dir() == REPO_MODELS
    _write_toy(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert models.default_models_dir() == tmp_path
    assert models.load_model("toy").spec.path == tmp_path / "toy.onnx"


def test_cli_lists_and_verifies(tmp_path, capsys, monkeypatch):
    path = _write_toy(tmp_path)
    assert main(["models", "--models-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 model(s)" in out and "toy 0.1" in out and "x['batch', 3]" in out
    path.write_bytes(path.read_bytes()[:-1])
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "toy.onnx: sha256" in err
    path.unlink()
    assert main(["models", "--models-dir", str(tmp_path)]) == 2
    assert "file not found" in capsys.readouterr().err


def test_committed_registry_verifies(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    specs = models.load_registry()
    assert "evolution" in specs
    for spec in specs.values():
        models.verify(spec)
        assert spec.path.stat().st_size < 20e6
        assert spec.extra["training"]["command"] and spec.extra["metrics"]
        assert all(t.units for t in spec.inputs + spec.outputs)
