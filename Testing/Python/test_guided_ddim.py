"""The growth-model-guided DDIM forecaster: the regressor's written-out gradient against autograd and through ONNX,
crops and burden units, growth targets (bootstrap below the 90th percentile, per-slice fits), guidance moving the
burden towards its target, whole-case outputs and determinism, bad input (one line, nothing written) and a tiny
training run with export."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gliomaforecast.io.case import load_case
from gliomaforecast.errors import InputError
from gliomaforecast.forecast import fit_case_growth
from gliomaforecast.forecasters.guided import inputs as gi
from gliomaforecast.forecasters.base import ForecastRequest, no_progress
from gliomaforecast import sdf
from gliomaforecast.forecasters.guided.ddim import GuidedDDIMForecaster, generate
from gliomaforecast.forecasters.guided.maps import generation_probability
from gliomaforecast.forecasters.guided.targets import slice_targets
from gliomaforecast.models import load_family
from gliomaforecast_training.guided import export as gexport
from gliomaforecast_training.guided import train as gtrain
from gliomaforecast_training.guided.data import SliceData, cohort_slices
from gliomaforecast_training.guided.net import BurdenRegressor

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "Resources" / "SampleData" / "sample_patient"


@pytest.fixture(scope="module")
def sample():
    return load_case(SAMPLE / "case.json")


def _prefix(case, n: int):
    return replace(case, timepoints=case.timepoints[:n], _cache={})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_regressor_gradient_is_autograd_and_survives_onnx(tmp_path, dtype):
    torch.manual_seed(0)
    net = BurdenRegressor((8, 8, 16, 16)).to(dtype).eval()
    for p in net.parameters():  # LeakyReLU masks on both sides of 0 everywhere
        torch.nn.init.normal_(p, std=0.3)
    x, t = gexport.example_inputs(4, seed=3)
    x = x.to(dtype).requires_grad_(True)
    r, g = net(x, t)
    (ref,) = torch.autograd.grad(r.sum(), x)
    assert float((g - ref).abs().max() / ref.abs().max()) <= 1e-4
    assert float(ref.abs().max()) > 0
    if dtype is torch.float32:
        assert gexport.gradient_parity(net) <= 1e-4
        path = gexport.export_onnx(net, "regressor", tmp_path / "r.onnx")
        diff = gexport.onnx_parity(net, "regressor", path)
        assert diff["grad"] <= 1e-4 * float(ref.abs().max()) and diff["burden"] <= 1e-4


def test_crops_units_and_burden(sample):
    crops = gi.scan_crops(sample, -2, -1, reach_mm=gi.FORECAST_REACH_MM)
    gtv = sample.gtv(sample.timepoints[-1])
    has = np.nonzero(gtv.any(axis=(1, 2)))[0]
    assert crops.z[0] == has.min() - 3 and crops.z[-1] == has.max() + 3  # 6 mm at 2 mm slices
    assert crops.image.shape == (len(crops.z), gi.CROP, gi.CROP)
    np.testing.assert_allclose(gi.from_model_units(gi.to_model_units(crops.image, 7.0), 7.0), crops.image, atol=1e-5)
    np.testing.assert_allclose(crops.burden, crops.gtv.sum(axis=(1, 2)) / crops.brain.sum(axis=(1, 2)), rtol=1e-5)
    inside = np.isin(crops.z, has)
    assert (crops.burden[inside] > 0).all() and (crops.burden[~inside] == 0).all()
    # the crop's burden is the slice's GTV area over the brain area inside the crop (2 mm pixels: 4 mm^2)
    k = int(np.argmax(crops.burden))
    assert abs(crops.gtv[k].sum() * 4.0 - gtv[crops.z[k]].sum() * 4.0) <= 0.02 * gtv[crops.z[k]].sum() * 4.0


def test_targets_draw_below_the_90th_percentile(sample):
    case = _prefix(sample, 3)
    crops = gi.scan_crops(case, -2, -1, reach_mm=gi.FORECAST_REACH_MM)
    growth = fit_case_growth(case, 100, 0)
    day = case.timepoints[-1].day + 90
    t = slice_targets(case, crops.z, crops.burden, growth, day, 50, 0)
    assert t.targets.shape == (50, len(crops.z))
    assert t.per_slice.any()  # slices with tumour on all three scans get their own fit
    ratios = np.ravel(growth.bootstrap_curves([day])) / growth.burdens[-1]
    scaled = ~t.per_slice & (crops.burden > 0)
    assert scaled.any()
    i = int(np.nonzero(scaled)[0][0])
    drawn = t.targets[:, i] / crops.burden[i]
    assert drawn.max() <= np.percentile(ratios, 90) * (1 + 1e-5)
    assert np.unique(np.round(drawn, 6)).size > 5  # drawn from the distribution, not one value
    assert (t.band[:, 0] <= t.median + 1e-7).all() and (t.median <= t.band[:, 1] + 1e-7).all()
    again = slice_targets(case, crops.z, crops.burden, growth, day, 50, 0)
    np.testing.assert_array_equal(again.targets, t.targets)


def test_guidance_moves_the_burden_towards_its_target(sample):
    family = load_family("guided-ddim", prefer_gpu=False)
    crops = gi.scan_crops(sample, -2, -1, reach_mm=0.0)
    keep = np.argsort(crops.burden)[-3:]
    x, z = crops.image[keep], crops.z[keep]
    target = np.clip(crops.burden[keep] * 2.0, 0, 1)[None].astype(np.float32)  # twice the tumour on every slice
    runs = {s: generate(family, x, target, z, nl=200, steps=5, s_ct=s, seed=0, progress=no_progress)
            for s in (0.0, GuidedDDIMForecaster().s_ct)}
    err = {s: np.abs(g.burden - target).mean() for s, g in runs.items()}
    assert err[GuidedDDIMForecaster().s_ct] < 0.5 * err[0.0]


def test_forecast_outputs_are_on_the_grid_and_seeded(sample):
    case = _prefix(sample, 3)
    growth = fit_case_growth(case, 20, 0)
    req = ForecastRequest(case, case.timepoints[-1].day + 30, growth, samples=2, seed=5)
    f = GuidedDDIMForecaster(steps=3)
    out = f.predict(req, no_progress)
    again = GuidedDDIMForecaster(steps=3).predict(req, no_progress)
    shape = tuple(case.grid.shape)
    assert out.probability.shape == out.uncertainty.shape == out.image.shape == shape
    assert out.probability.min() >= 0 and out.probability.max() <= 1 and out.image_kind == "synthesized"
    np.testing.assert_array_equal(out.probability, again.probability)
    np.testing.assert_array_equal(out.image, again.image)
    # outside the crops' slices the FLAIR is the last scan's
    crops = gi.scan_crops(case, -2, -1, reach_mm=gi.FORECAST_REACH_MM)
    outside = np.setdiff1d(np.arange(shape[0]), crops.z)
    flair = case.image(case.timepoints[-1], "flair")
    np.testing.assert_array_equal(out.image[outside], flair[outside])
    assert 0 <= f.last_run["in_band"] <= 1 and "95 % band" in out.notes[0]
    # each generation's tumour holds its growth-model volume draw (test below); the growth model forecasts
    # growth here, and the forecast tumour is larger than the last GTV
    volumes = f.last_run["volumes_ml"]
    np.testing.assert_allclose(volumes, f.last_run["targets"].volume_ratio * growth.burdens[-1])
    last_ml = growth.burdens[-1]
    tumour_ml = np.count_nonzero(sdf.tumor_region(out.probability)) * case.grid.voxel_volume_ml
    assert volumes.min() > 1.5 * last_ml and tumour_ml > 1.5 * last_ml


def test_generation_tumour_holds_its_volume_and_moves_towards_growth():
    spacing = (2.0, 1.0, 1.0)
    gtv = np.zeros((20, 40, 40), bool)
    gtv[8:12, 15:25, 15:25] = True
    phi = sdf.signed_distance(gtv, spacing)
    growth = np.zeros(gtv.shape, np.float32)
    growth[8:12, 25:33, 15:25] = 1.0  # the generation grows towards +x
    none = np.zeros_like(growth)
    volume = 2 * gtv.sum() * 2e-3  # twice the last GTV, mL
    for g in (growth, none):
        p = generation_probability(phi, g, none, volume, spacing, None)
        assert p.dtype == np.float32
        assert np.count_nonzero(sdf.tumor_region(p)) * 2e-3 == pytest.approx(volume, abs=2e-3)
    toward = generation_probability(phi, growth, none, volume, spacing, None)
    plain = generation_probability(phi, none, none, volume, spacing, None)
    assert (sdf.tumor_region(toward) & (growth > 0)).sum() > (sdf.tumor_region(plain) & (growth > 0)).sum()
    assert (sdf.tumor_region(toward) & (growth > 0)).sum() == growth.sum()  # every growing voxel is in the tumour
    assert sdf.tumor_region(plain)[gtv].all()  # without change the last tumour is kept and grown around
    # growth_mm 0: the diffusion does not move the tumour
    np.testing.assert_array_equal(generation_probability(phi, growth, none, volume, spacing, None, growth_mm=0), plain)
    # shrinking voxels leave first when the volume falls
    shrink = np.zeros_like(growth)
    shrink[8:12, 15:25, 15:18] = 1.0
    smaller = generation_probability(phi, none, shrink, gtv.sum() * 0.7 * 2e-3, spacing, None)
    assert not sdf.tumor_region(smaller)[shrink > 0].any()


def _case_copy(tmp_path: Path, keep: int, drop_rt: bool = False) -> Path:
    data = json.loads((SAMPLE / "case.json").read_text())
    data["timepoints"] = data["timepoints"][:keep]
    if drop_rt:
        data.pop("rt_start_day", None)
        data.pop("rt_start_date", None)
    folder = tmp_path / "case"
    folder.mkdir()
    for f in SAMPLE.iterdir():
        (folder / f.name).symlink_to(f)
    (folder / "case.json").unlink()
    (folder / "case.json").write_text(json.dumps(data))
    return folder / "case.json"


@pytest.mark.parametrize("keep, drop_rt, field", [(1, False, "timepoints"), (3, True, "rt_start_day")])
def test_bad_case_is_one_line_and_nothing_is_written(tmp_path, keep, drop_rt, field):
    case = _case_copy(tmp_path, keep, drop_rt)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "gliomaforecast", "forecast", str(case), "--day", "400",
                           "--forecaster", "guided-ddim", "--samples", "1", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and field in lines[0]
    assert not out.exists()


def test_failed_growth_fit_names_its_problem(sample):
    case = _prefix(sample, 3)
    growth = fit_case_growth(case, 5, 0)
    broken = replace(growth, params=replace(growth.params, growth_rate=float("nan")))
    with pytest.raises(InputError, match="growth fit failed: non-finite parameters"):
        GuidedDDIMForecaster(steps=2).predict(ForecastRequest(case, 400.0, broken, samples=1), no_progress)
    empty = replace(growth, burdens=np.array([1.0, 2.0, 0.0]))
    with pytest.raises(InputError, match="last observed burden is 0"):
        GuidedDDIMForecaster(steps=2).predict(ForecastRequest(case, 400.0, empty, samples=1), no_progress)


def test_tiny_training_run_and_export(tmp_path, sample):
    data = cohort_slices([SAMPLE], max_slices=4, seed=0)
    assert len(data) == 4 * (len(sample.timepoints) - 1) and data.image.dtype == np.float16
    data.save(tmp_path / "tiny.npz")
    assert len(SliceData.load(tmp_path / "tiny.npz")) == len(data)
    ckpts = {}
    for net, ch in (("ddpm", ["8", "8", "8"]), ("regressor", ["8", "8", "8", "8"])):
        weights = []
        for run in range(2):
            path = tmp_path / f"{net}{run}.pt"
            args = ["fit", "--network", net, "--data", str(tmp_path / "tiny.npz"), "--steps", "2", "--batch", "4",
                    "--channels", *ch, "--out", str(path)]
            assert gtrain.main(args) == 0
            weights.append(torch.load(path, weights_only=False)["state_dict"])
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # same seed, same weights
        ckpts[net] = tmp_path / f"{net}0.pt"
    models = tmp_path / "models"
    models.mkdir()
    (models / "models.json").write_text((REPO / "Resources" / "Models" / "models.json").read_text())
    for f in (REPO / "Resources" / "Models").glob("*.onnx"):
        shutil.copy(f, models / f.name)
    parser = __import__("argparse").ArgumentParser()
    gexport.add_arguments(parser)
    entry = gexport.export(parser.parse_args(["--ddpm", str(ckpts["ddpm"]), "--regressor", str(ckpts["regressor"]),
                                              "--models-dir", str(models)]))
    assert entry["export"]["parity_max_abs"]["regressor/grad_vs_autograd_relative"] <= 1e-4
    assert "--network ddpm" in entry["training"]["command"]
    family = load_family("guided-ddim", models, prefer_gpu=False)
    out = family["regressor"].run({"x": np.zeros((2, 1, 64, 64), np.float32), "timesteps": np.array([0, 9])})
    assert out["burden"].shape == (2,) and out["grad"].shape == (2, 1, 64, 64)


def test_trainer_burden_errors_on_the_forecast_crops(sample):
    from types import SimpleNamespace

    from gliomaforecast_training.guided.evaluate import burden_errors
    inputs = _prefix(sample, 2)
    crops = gi.scan_crops(inputs, -2, -1, reach_mm=gi.FORECAST_REACH_MM)
    last_gtv = inputs.gtv(inputs.timepoints[-1])
    keep = SimpleNamespace(median=crops.burden)
    # truth = the last GTV: the last scan's burden has no error, nor a generation that reproduces it
    same = burden_errors(inputs, last_gtv, {"burden": crops.burden[None], "targets": keep, "crops": crops})
    assert same["burden_error_last"] < 1e-6 and same["burden_error"] < 1e-6 and same["burden_error_ode"] < 1e-6
    # truth = the next scan (the tumour regrew): the last burden is off, a target of twice it is scored against it
    truth = sample.gtv(sample.timepoints[2])
    grown = burden_errors(inputs, truth, {"burden": np.stack([crops.burden * 2] * 3),
                                          "targets": SimpleNamespace(median=crops.burden * 2), "crops": crops})
    assert grown["burden_error_last"] > 0.01
    assert grown["burden_error"] == pytest.approx(grown["burden_error_ode"])
    assert grown["burden_error"] != pytest.approx(grown["burden_error_last"])
