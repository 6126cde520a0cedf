"""Model families in the registry (one id, several ONNX files), provenance, session settings, and the
core's registry writer (which export_evolution uses)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from gliomaforecast import models
from gliomaforecast.cli import main
from gliomaforecast.errors import InputError
from gliomaforecast.model_registry_writer import family_entry, file_entry, write_registry_entry

REPO_MODELS = Path(__file__).resolve().parents[2] / "Resources" / "Models"
PROVENANCE_KEYS = {"id", "version", "file", "sha256", "provider", "threads"}


def _affine_onnx(path: Path, scale: float, offset: float, n_in: str = "x", n_out: str = "y") -> Path:
    """y = scale * x + offset, x of shape (batch, 3)."""
    x = helper.make_tensor_value_info(n_in, TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info(n_out, TensorProto.FLOAT, ["batch", 3])
    inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [scale]), helper.make_tensor("o", TensorProto.FLOAT, [], [offset])]
    graph = helper.make_graph([helper.make_node("Mul", [n_in, "s"], ["t"]), helper.make_node("Add", ["t", "o"], [n_out])],
                              path.stem, [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _tensor(name: str, units: str) -> dict:
    return {"name": name, "shape": ["batch", 3], "dtype": "float32", "units": units, "normalization": "none"}


def _write_family(folder: Path) -> dict:
    """A family 'ae' with an encoder (mm -> latent) and a decoder (latent -> mm), through the core writer."""
    enc = _affine_onnx(folder / "ae_encoder.onnx", 0.5, 0.0, "image", "latent")
    dec = _affine_onnx(folder / "ae_decoder.onnx", 2.0, 1.0, "latent", "image")
    entry = family_entry("ae", "0.2.0", {
        "encoder": file_entry(enc, [_tensor("image", "mm")], [_tensor("latent", "1")]),
        "decoder": file_entry(dec, [_tensor("latent", "1")], [_tensor("image", "mm")], note="decoder only")},
        task="toy autoencoder", training={"command": "none"}, metrics={"mse": 0.0})
    write_registry_entry(folder, entry)
    return entry


def test_family_members_run_and_keep_their_own_specs(tmp_path):
    _write_family(tmp_path)
    fam = models.load_family("ae", tmp_path, prefer_gpu=False)
    assert list(fam.members) == ["encoder", "decoder"] and "decoder" in fam and fam.id == "ae"
    x = np.array([[0, 2, 4]], np.float32)
    latent = fam["encoder"].run({"image": x})["latent"]
    np.testing.assert_allclose(latent, [[0, 1, 2]])
    np.testing.assert_allclose(fam["decoder"].run({"latent": latent})["image"], [[1, 3, 5]])
    enc = fam["encoder"].spec
    assert enc.id == "ae/encoder" and enc.family == "ae" and enc.member == "encoder" and enc.version == "0.2.0"
    assert [t.units for t in enc.inputs + enc.outputs] == ["mm", "1"]
    assert enc.extra["training"] == {"command": "none"} and "note" not in enc.extra
    assert fam["decoder"].spec.extra["note"] == "decoder only"
    assert fam.spec.extra["task"] == "toy autoencoder"


def test_family_provenance_lists_each_member(tmp_path):
    entry = _write_family(tmp_path)
    fam = models.load_family("ae", tmp_path, prefer_gpu=False, threads=1)
    prov = fam.provenance()
    assert [p["id"] for p in prov] == ["ae/encoder", "ae/decoder"]
    for p, name in zip(prov, ("encoder", "decoder")):
        assert set(p) == PROVENANCE_KEYS
        assert p["file"] == f"ae_{name}.onnx" and p["sha256"] == entry["files"][name]["sha256"]
        assert p["sha256"] == models.sha256_of(tmp_path / p["file"])
        assert p["version"] == "0.2.0" and p["provider"] == "CPUExecutionProvider" and p["threads"] == 1
    json.dumps(prov)  # JSON-ready for forecast.json


def test_model_provenance_threads_and_graph_optimisation(tmp_path):
    _write_family(tmp_path)
    model = models.load_model("ae/encoder", tmp_path, prefer_gpu=False, threads=2)
    prov = model.provenance()
    assert set(prov) == PROVENANCE_KEYS
    assert prov == {"id": "ae/encoder", "version": "0.2.0", "file": "ae_encoder.onnx",
                    "sha256": models.sha256_of(tmp_path / "ae_encoder.onnx"), "provider": "CPUExecutionProvider",
                    "threads": 2}
    options = model.session.get_session_options()
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert models.load_model("ae/encoder", tmp_path, prefer_gpu=False).provenance()["threads"] == 0  # ort default
    with pytest.raises(ValueError, match="threads: intra-op thread count must be an integer >= 0"):
        models.load_model("ae/encoder", tmp_path, threads=-1)


def test_altered_member_refuses_the_family_naming_that_file(tmp_path):
    _write_family(tmp_path)
    dec = tmp_path / "ae_decoder.onnx"
    dec.write_bytes(dec.read_bytes() + b"\0")
    with pytest.raises(InputError, match="sha256") as err:
        models.load_family("ae", tmp_path)
    assert str(err.value).startswith(f"{dec}: sha256: model 'ae/decoder' file is altered")
    models.load_model("ae/encoder", tmp_path)  # the intact member alone still verifies
    with pytest.raises(InputError, match="ae_decoder.onnx: sha256"):
        models.verify(models.get_family("ae", tmp_path))


def test_missing_member_file_and_missing_member(tmp_path):
    _write_family(tmp_path)
    fam = models.load_family("ae", tmp_path, require=("encoder", "decoder"))
    with pytest.raises(InputError, match=r"model family 'ae': files: no member 'denoiser' \(members: decoder, encoder\)"):
        fam["denoiser"]
    with pytest.raises(InputError, match=r"ae\.files: model family 'ae' lacks member\(s\) denoiser \(has encoder, decoder\)"):
        models.load_family("ae", tmp_path, require=("encoder", "denoiser"))
    (tmp_path / "ae_encoder.onnx").unlink()
    with pytest.raises(InputError, match=r"ae_encoder\.onnx: file: model 'ae/encoder' file not found"):
        models.load_family("ae", tmp_path)


def test_registry_lists_members_and_cli_verifies_them(tmp_path, capsys):
    _write_family(tmp_path)
    specs = models.load_registry(tmp_path)
    assert sorted(specs) == ["ae/decoder", "ae/encoder"]
    assert sorted(models.load_families(tmp_path)) == ["ae"]
    with pytest.raises(InputError, match="'ae' is a model family of decoder, encoder: open it with load_family"):
        models.load_model("ae", tmp_path)
    with pytest.raises(InputError, match=r"no model family 'vae' \(known families: ae\)"):
        models.load_family("vae", tmp_path)
    assert main(["models", "--models-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 model(s)" in out and "ae/encoder 0.2.0  ae_encoder.onnx" in out and "latent['batch', 3]" in out
    (tmp_path / "ae_decoder.onnx").write_bytes(b"altered")
    assert main(["models", "--models-dir", str(tmp_path)]) == 2
    assert "ae_decoder.onnx: sha256" in capsys.readouterr().err


def test_bad_family_entries(tmp_path):
    _write_family(tmp_path)
    good = json.loads((tmp_path / "models.json").read_text())["models"][0]

    def check(entry, match):
        (tmp_path / "models.json").write_text(json.dumps({"schema": models.SCHEMA, "models": [entry]}))
        with pytest.raises(InputError, match=match):
            models.load_registry(tmp_path)

    check({**good, "files": {}}, r"models\[0\]\.files: must be a non-empty object")
    broken = json.loads(json.dumps(good))
    del broken["files"]["decoder"]["sha256"]
    check(broken, r"models\[0\]\.files\.decoder: missing sha256")
    check({**good, "file": "x.onnx"}, r"models\[0\]\.file: an entry has either 'file' \(one model\) or 'files'")
    check({"id": "ae", "files": good["files"]}, r"models\[0\]: missing version")
    broken = json.loads(json.dumps(good))
    broken["files"]["encoder"]["inputs"] = []
    check(broken, r"models\[0\]\.files\.encoder\.inputs: must be a non-empty list")


def test_writer_reproduces_the_shipped_registry_byte_for_byte(tmp_path):
    for onnx in REPO_MODELS.glob("*.onnx"):
        shutil.copy(onnx, tmp_path / onnx.name)
    shipped = (REPO_MODELS / "models.json").read_text()
    entries = json.loads(shipped)["models"]
    assert entries[0]["id"] == "evolution" and len(entries) >= 1
    for entry in entries:
        write_registry_entry(tmp_path, entry)  # a new manifest, then appended in order
    assert (tmp_path / "models.json").read_text() == shipped
    write_registry_entry(tmp_path, entries[0])  # replacing an entry in place
    assert (tmp_path / "models.json").read_text() == shipped
    entry = entries[0]
    assert models.load_model("evolution", tmp_path, prefer_gpu=False).spec.sha256 == entry["sha256"]


def test_writer_checks_entries_and_replaces_by_id(tmp_path):
    _write_family(tmp_path)
    _affine_onnx(tmp_path / "single.onnx", 1.0, 0.0)
    single = {"id": "single", "version": "1", **file_entry(tmp_path / "single.onnx", [_tensor("x", "mm")], [_tensor("y", "mm")])}
    write_registry_entry(tmp_path, single)
    write_registry_entry(tmp_path, {**single, "version": "2"})
    saved = json.loads((tmp_path / "models.json").read_text())
    assert saved["schema"] == models.SCHEMA and [m["id"] for m in saved["models"]] == ["ae", "single"]
    assert saved["models"][1]["version"] == "2"
    with pytest.raises(InputError, match="single.onnx: sha256"):
        write_registry_entry(tmp_path, {**single, "sha256": "0" * 64})
    with pytest.raises(InputError, match="missing sha256"):
        write_registry_entry(tmp_path, {k: v for k, v in single.items() if k != "sha256"})
    with pytest.raises(InputError, match="needs at least one member file"):
        family_entry("empty", "1", {})
    assert json.loads((tmp_path / "models.json").read_text()) == saved  # refused entries wrote nothing
