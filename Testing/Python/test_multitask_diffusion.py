"""The multi-task diffusion forecaster in the core (numpy + onnxruntime): crops and pasting, an untrained network
is the persistence forecast, outputs on the case grid, seeded sampling, warnings and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gliomaforecast import sdf
from gliomaforecast.io.case import load_case
from gliomaforecast.errors import InputError
from gliomaforecast.forecast import run_forecast
from gliomaforecast.forecasters import crops as mi
from gliomaforecast.forecasters.base import ForecastRequest
from gliomaforecast.forecasters.multitask.diffusion import MultiTaskDiffusionForecaster
from gliomaforecast.model_registry_writer import write_registry_entry
from gliomaforecast_training.multitask import export as mexport
from gliomaforecast_training.multitask.net import MultiTaskNet

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "Resources" / "SampleData" / "sample_patient"
CONFIG = {"channels": [8, 8, 8], "data": ["tiny.npz"], "steps": 1, "max_minutes": 0, "batch": 1, "lr": 1e-3,
          "lambda_rt": 0.1, "gamma": 2.0, "seed": 0}


def _models(folder: Path, random_heads: bool) -> Path:
    """A models folder with the shipped registry plus a tiny multitask network (zero heads: untrained)."""
    folder.mkdir()
    src = REPO / "Resources" / "Models"
    (folder / "models.json").write_text((src / "models.json").read_text())
    shutil.copy(src / "evolution.onnx", folder / "evolution.onnx")
    torch.manual_seed(0)
    net = MultiTaskNet(CONFIG["channels"]).eval()
    if random_heads:
        for head in (net.p_head, net.g_head):
            torch.nn.init.normal_(head.weight, std=0.5)
    mexport.export_onnx(net, folder)
    entry = mexport.registry_entry(folder, {"config": CONFIG, "summary": {}}, mexport.parity(net, folder), None)
    write_registry_entry(folder, entry)
    return folder


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> Path:
    return _models(tmp_path_factory.mktemp("mt") / "zero", random_heads=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return _models(tmp_path_factory.mktemp("mt") / "random", random_heads=True)


def _request(day_offset: float = 120.0, samples: int = 2, seed: int = 0, case_path: Path = SAMPLE / "case.json"):
    case = load_case(case_path)
    return ForecastRequest(case, case.timepoints[-1].day + day_offset, None, samples=samples, seed=seed)


def test_crop_and_paste_round_trip_on_a_linear_ramp():
    spacing = (3.0, 1.5, 2.5)
    zz, yy, xx = np.meshgrid(np.arange(5), np.arange(70), np.arange(60), indexing="ij")
    volume = (0.3 * yy * spacing[1] - 0.2 * xx * spacing[2] + zz).astype(np.float32)  # linear in mm
    center = (52.3, 71.9)
    crops = mi.crop_slices(volume, [1, 3], spacing[1:], center, crop=16)
    assert crops.shape == (2, 16, 16)
    # the crop's pixel (i, j) sits at center + ((i, j) - 7.5) * 2 mm
    expected = 0.3 * (center[0] + (np.arange(16) - 7.5) * 2)[:, None] - 0.2 * (center[1] + (np.arange(16) - 7.5) * 2)[None]
    np.testing.assert_allclose(crops[0], expected + 1, atol=1e-4)
    back = mi.paste_slices(np.full_like(volume, -99.0), crops, [1, 3], spacing[1:], center)
    inside = back[1] != -99.0
    assert inside.sum() > 0.8 * (30 / 1.5) * (30 / 2.5)
    np.testing.assert_allclose(back[1][inside], volume[1][inside], atol=1e-4)
    assert (back[[0, 2, 4]] == -99.0).all()


def test_outside_correction_is_each_slices_ring_median():
    from gliomaforecast.forecasters.multitask.diffusion import _outside

    corr = np.zeros((2, 6, 6), np.float32)
    corr[0] = 5.0
    corr[0, 0, :3] = -1.0  # 3 of the 20 ring pixels
    corr[1, 1:-1, 1:-1] = 9.0  # inside the ring only
    out = _outside((4, 3, 3), corr, np.array([1, 2]), "edge_median")
    assert (out[1] == 5.0).all() and (out[2] == 0.0).all() and (out[0] == 0).all() and (out[3] == 0).all()
    assert not _outside((4, 3, 3), corr, np.array([1, 2]), "none").any()


def test_outside_the_crops_the_correction_is_the_ring_median(trained):
    request = _request(samples=1)
    out = MultiTaskDiffusionForecaster(steps=2, models_dir=str(trained)).predict(request, lambda f, m: None)
    phi = request.case.gtv_distance(request.last)
    p = np.clip(out.probability.astype(np.float64), 1e-7, 1 - 1e-7)
    corr = np.log(p / (1 - p)) - sdf.DEFAULT_BETA * (sdf.DEFAULT_MU - phi)
    phis = [request.case.gtv_distance(tp) for tp in request.case.timepoints[-2:]]
    z = mi.forecast_slices(phis[1], phis[0], request.spacing[0])
    corner = corr[:, 0, 0]  # the grid's corner lies outside every 128 mm crop
    others = np.setdiff1d(np.arange(len(corr)), z)
    assert np.abs(corner[others]).max() < 1e-3  # no correction off the forecast slices
    assert np.abs(corner[z]).max() > 0.05  # a per-slice constant on them (random heads: not zero)
    np.testing.assert_allclose(corr[z[0], 0, :5], corner[z[0]], atol=1e-3)


def test_untrained_network_is_the_persistence_forecast(untrained):
    request = _request()
    out = MultiTaskDiffusionForecaster(steps=2, models_dir=str(untrained)).predict(request, lambda f, m: None)
    persistence = sdf.tumor_probability(request.case.gtv(request.last), request.spacing)
    assert out.probability.shape == request.case.grid.shape and out.probability.dtype == np.float32
    np.testing.assert_allclose(out.probability, persistence, atol=2e-6)  # zero correction: the same map
    assert out.uncertainty.max() < 1e-6  # zero head: every test-time pass is the same map


def test_outputs_on_the_case_grid_seeded_and_in_the_scans_units(trained):
    forecaster = MultiTaskDiffusionForecaster(steps=3, models_dir=str(trained))
    request = _request(samples=3)
    a = forecaster.predict(request, lambda f, m: None)
    b = forecaster.predict(_request(samples=3), lambda f, m: None)
    c = forecaster.predict(_request(samples=3, seed=1), lambda f, m: None)
    shape = request.case.grid.shape
    for arr in (a.probability, a.uncertainty, a.image):
        assert arr.shape == shape and arr.dtype == np.float32 and np.isfinite(arr).all()
    assert 0 <= a.probability.min() and a.probability.max() <= 1 and a.uncertainty.max() > 0
    assert np.array_equal(a.probability, b.probability) and np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)
    flair = request.case.image(request.last, "flair")
    phis = [sdf.signed_distance(request.case.gtv(tp), request.spacing) for tp in request.case.timepoints[-2:]]
    z = mi.forecast_slices(phis[1], phis[0], request.spacing[0], reach_mm=6.0)  # the synthesized slices
    outside = np.setdiff1d(np.arange(shape[0]), z)
    assert outside.size and np.array_equal(a.image[outside], flair[outside])  # untouched slices: the last FLAIR
    assert not np.array_equal(a.image[z], flair[z])
    assert [m["id"] for m in a.models] == ["multitask-diffusion/encoder", "multitask-diffusion/generator"]
    assert not any(n.startswith("warning") for n in a.notes)


def test_target_beyond_the_trained_range_warns(trained):
    out = MultiTaskDiffusionForecaster(steps=2, models_dir=str(trained)).predict(_request(day_offset=500, samples=1),
                                                                                lambda f, m: None)
    warnings = [n for n in out.notes if n.startswith("warning")]
    assert len(warnings) == 1 and "500" in warnings[0] and "1-400" in warnings[0]


def test_missing_t1ce_is_named(trained, tmp_path):
    manifest = json.loads((SAMPLE / "case.json").read_text())
    del manifest["timepoints"][-1]["images"]["t1ce"]
    for f in SAMPLE.iterdir():
        (tmp_path / f.name).symlink_to(f)
    (tmp_path / "case.json").unlink()
    (tmp_path / "case.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError) as err:
        MultiTaskDiffusionForecaster(models_dir=str(trained)).predict(_request(case_path=tmp_path / "case.json"),
                                                                      lambda f, m: None)
    assert "timepoints[3].images.t1ce" in str(err.value) and "evolution-field" in str(err.value)


def test_registered_and_run_by_the_orchestration(trained, monkeypatch):
    monkeypatch.setenv("GLIOMAFORECAST_MODELS_DIR", str(trained))
    fc = run_forecast(SAMPLE / "case.json", 351, forecaster="multitask-diffusion", samples=1, n_bootstrap=2)
    assert fc.output.image is not None and fc.output.probability.shape == fc.case.grid.shape
    assert fc.ctv_forecast.sum() == fc.ctv_standard.sum()


def test_the_synthesized_flair_is_written_as_a_forecast_not_a_warp(tmp_path) -> None:
    """flair_dD.nii.gz (and 'predicted FLAIR' in the report) for a generative forecaster; the evolution forecasters'
    warped last FLAIR stays flair_warped_dD.nii.gz."""
    from pathlib import Path

    from gliomaforecast.forecast import run_forecast
    from gliomaforecast.output.writer import write_forecast

    sample = Path(__file__).resolve().parents[2] / "Resources" / "SampleData" / "sample_patient" / "case.json"
    fc = run_forecast(sample, 351.0, "multitask-diffusion", samples=1, n_bootstrap=2)
    assert fc.output.image_kind == "synthesized" and fc.output.image is not None
    names = {p.name for p in write_forecast(fc, tmp_path / "out")}
    assert "flair_d351.nii.gz" in names and "flair_warped_d351.nii.gz" not in names
    assert "predicted FLAIR" in (tmp_path / "out" / "report.html").read_text()
