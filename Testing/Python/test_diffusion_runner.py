"""The batched diffusion runner: ONNX step networks through the model registry, noise seeded per slice
(same seed -> identical arrays whatever the batch size), SDEdit start, guidance, progress, bad settings."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from gliomaforecast import diffusion as D
from gliomaforecast import models

H = W = 6


def _write_eps_model(folder):
    """eps(x, t, cond) = 0.1 x + 0.2 cond + 1e-3 t as an ONNX file in a one-model registry."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, H, W])
    t = helper.make_tensor_value_info("timesteps", TensorProto.INT64, ["batch"])
    c = helper.make_tensor_value_info("cond", TensorProto.FLOAT, ["batch", 1, H, W])
    y = helper.make_tensor_value_info("eps", TensorProto.FLOAT, ["batch", 1, H, W])
    inits = [helper.make_tensor("a", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("b", TensorProto.FLOAT, [], [0.2]),
             helper.make_tensor("k", TensorProto.FLOAT, [], [1e-3]),
             helper.make_tensor("shape", TensorProto.INT64, [4], [-1, 1, 1, 1])]
    nodes = [helper.make_node("Mul", ["x", "a"], ["ax"]), helper.make_node("Mul", ["cond", "b"], ["bc"]),
             helper.make_node("Cast", ["timesteps"], ["tf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["tf", "k"], ["kt"]), helper.make_node("Reshape", ["kt", "shape"], ["kt4"]),
             helper.make_node("Add", ["ax", "bc"], ["s"]), helper.make_node("Add", ["s", "kt4"], ["eps"])]
    model = helper.make_model(helper.make_graph(nodes, "eps", [x, t, c], [y], initializer=inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "eps.onnx"
    onnx.save(model, str(path))
    entry = {"id": "toy-eps", "version": "0.1", "file": "eps.onnx", "sha256": models.sha256_of(path),
             "inputs": [{"name": "x", "shape": ["batch", 1, H, W], "units": "1"},
                        {"name": "timesteps", "shape": ["batch"], "dtype": "int64", "units": "step"},
                        {"name": "cond", "shape": ["batch", 1, H, W], "units": "1"}],
             "outputs": [{"name": "eps", "shape": ["batch", 1, H, W], "units": "1"}]}
    (folder / "models.json").write_text(json.dumps({"schema": models.SCHEMA, "models": [entry]}))
    return models.load_model("toy-eps", folder, prefer_gpu=False)


@pytest.fixture(scope="module")
def eps_model(tmp_path_factory):
    return _write_eps_model(tmp_path_factory.mktemp("eps"))


def numpy_eps(x, t, cond):
    return 0.1 * x + 0.2 * cond + 1e-3 * np.asarray(t, np.float64).reshape(-1, 1, 1, 1)


def test_onnx_step_network_matches_its_definition(eps_model):
    step = D.step_function(eps_model)
    rng = np.random.default_rng(0)
    x, c = rng.standard_normal((3, 1, H, W)), rng.standard_normal((3, 1, H, W))
    t = np.array([5, 500, 999])
    np.testing.assert_allclose(step(x, t, c), numpy_eps(x, t, c), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("settings", [
    D.SamplerSettings(sampler="ddpm", steps=8), D.SamplerSettings(sampler="ddim", steps=6, eta=0.5),
    D.SamplerSettings(sampler="dpmpp_2m", steps=6, cfg_scale=2.5)])
def test_same_seed_identical_whatever_the_batch_size(eps_model, settings):
    rng = np.random.default_rng(1)
    n = 7
    cond = rng.standard_normal((n, 1, H, W)).astype(np.float32)
    runs = [D.sample_slices(eps_model, n, (1, H, W), cond=cond, settings=settings, seed=42, batch_size=b)
            for b in (1, 3, 7, 16)]
    for other in runs[1:]:
        np.testing.assert_array_equal(other, runs[0])
    assert runs[0].dtype == np.float32 and runs[0].shape == (n, 1, H, W)
    again = D.sample_slices(eps_model, n, (1, H, W), cond=cond, settings=settings, seed=42, batch_size=2)
    np.testing.assert_array_equal(again, runs[0])
    other_seed = D.sample_slices(eps_model, n, (1, H, W), cond=cond, settings=settings, seed=43, batch_size=2)
    assert np.abs(other_seed - runs[0]).max() > 1e-3
    # slice i's noise is its own: slices 2 and 5 sampled alone (keyed by their indices) give the same rows
    alone = D.sample_slices(eps_model, 2, (1, H, W), cond=cond[[2, 5]], settings=settings, seed=42, indices=[2, 5])
    np.testing.assert_array_equal(alone, runs[0][[2, 5]])
    assert np.abs(runs[0][0] - runs[0][1]).max() > 1e-3


def test_runner_equals_the_sampling_loop_with_per_slice_noise(eps_model):
    rng = np.random.default_rng(2)
    cond = rng.standard_normal((4, 1, H, W)).astype(np.float32)
    settings = D.SamplerSettings(sampler="ddpm", steps=5)
    out = D.sample_slices(eps_model, 4, (1, H, W), cond=cond, settings=settings, seed=3, batch_size=4)
    noise = D.SampleNoise(3, range(4))
    x = noise((4, 1, H, W))
    schedule, ts = settings.validate()
    np.testing.assert_array_equal(ts, [999, 749, 500, 250, 0])
    ref = D.sample(lambda x, t: numpy_eps(x.astype(np.float32), t, cond), x, ts, schedule, sampler="ddpm", noise_fn=noise)
    np.testing.assert_allclose(out, ref.astype(np.float32), rtol=1e-4, atol=1e-4)


def test_cfg_through_the_runner_doubles_the_batch_once_per_step():
    calls = []

    def net(x, t, cond):
        calls.append((x.shape[0], cond.copy()))
        return numpy_eps(x, t, cond)

    cond = np.ones((5, 1, H, W), np.float32)
    settings = D.SamplerSettings(sampler="dpmpp_2m", steps=10, cfg_scale=3.0)
    D.sample_slices(net, cond=cond, sample_shape=(1, H, W), settings=settings, seed=0, batch_size=2, null_cond=-2.0)
    assert [c[0] for c in calls] == [4] * 10 + [4] * 10 + [2] * 10  # batches of 2, 2, 1 slices, doubled
    np.testing.assert_array_equal(calls[0][1][:2], 1.0)
    np.testing.assert_array_equal(calls[0][1][2:], -2.0)


def test_partial_noising_start_through_the_runner():
    """SDEdit from k = 250: the network is first called at t = k, and a mild noising of a clean image with
    the ideal denoiser of the data it came from returns close to it."""
    m, s = 0.3, 0.2
    schedule = D.make_schedule("linear")
    seen = []

    def ideal(x, t, cond):
        seen.append(int(t[0]))
        ab = schedule.alpha_bar(t).reshape(-1, 1, 1, 1)
        a, sg = np.sqrt(ab), np.sqrt(1 - ab)
        return sg * (x - a * m) / (a * a * s * s + sg * sg)

    x0 = np.full((3, 1, H, W), 0.5, np.float32)
    for k, tol in ((30, 0.1), (250, 0.3)):
        seen.clear()
        out = D.sample_slices(ideal, x0=x0, settings=D.SamplerSettings(sampler="dpmpp_2m", steps=10, start=k), seed=1)
        assert seen[0] == k and seen[-1] == 0 and len(seen) == 10
        assert out.dtype == np.float32
        assert abs(out.mean() - 0.5) < tol
    far = D.sample_slices(ideal, x0=x0, settings=D.SamplerSettings(sampler="dpmpp_2m", steps=10), seed=1)
    assert abs(far.mean() - m) < abs(out.mean() - m)  # from pure noise the start is forgotten


def test_classifier_guidance_through_the_runner_gets_the_condition():
    got = []

    def grad(x, t, cond):
        got.append(cond is not None and cond.shape[0] == x.shape[0])
        return np.ones_like(x)

    cond = np.zeros((2, 1, H, W), np.float32)
    settings = D.SamplerSettings(sampler="ddim", steps=4, classifier_scale=1.0)
    up = D.sample_slices(numpy_eps, cond=cond, sample_shape=(1, H, W), settings=settings, grad_fn=grad, seed=0)
    plain = D.sample_slices(numpy_eps, cond=cond, sample_shape=(1, H, W),
                            settings=D.SamplerSettings(sampler="ddim", steps=4), seed=0)
    assert got and all(got)
    assert (up - plain).mean() > 0.1


def test_progress_reports_fractions_up_to_one(eps_model):
    seen = []
    D.sample_slices(eps_model, 5, (1, H, W), cond=np.zeros((5, 1, H, W)),
                    settings=D.SamplerSettings(steps=4), batch_size=2, progress=lambda f, msg: seen.append((f, msg)))
    fractions = [f for f, _ in seen]
    assert len(seen) == 12 and fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert seen[0][1] == "denoising batch 1/3, step 1/4"


@pytest.mark.parametrize("settings, kwargs, match", [
    (D.SamplerSettings(start=1000), {}, "^start: start noise level k must be an integer in 0..999"),
    (D.SamplerSettings(steps=0), {}, "^steps: number of sampling steps must be an integer >= 1"),
    (D.SamplerSettings(prediction="score"), {}, "^prediction: unknown prediction type 'score'"),
    (D.SamplerSettings(sampler="heun"), {}, "^sampler: unknown sampler 'heun'"),
    (D.SamplerSettings(schedule="sigmoid"), {}, "^schedule: unknown schedule 'sigmoid'"),
    (D.SamplerSettings(eta=-1.0), {}, "^eta: must be >= 0"),
    (D.SamplerSettings(cfg_scale=2.0), {}, "^cfg_scale: classifier-free guidance needs a condition"),
    (D.SamplerSettings(classifier_scale=1.0), {}, "^classifier_scale: classifier guidance needs grad_fn"),
    (D.SamplerSettings(), {"batch_size": 0}, "^batch_size: must be an integer >= 1"),
    (D.SamplerSettings(steps=20, start=10), {}, "^steps: 20 steps do not fit between timestep 10 and 0"),
])
def test_bad_settings_raise_value_errors(settings, kwargs, match):
    with pytest.raises(ValueError, match=match):
        D.sample_slices(numpy_eps, 2, (1, H, W), settings=settings, **kwargs)


def test_missing_shape_and_cond_mismatch():
    with pytest.raises(ValueError, match="^sample_shape: give n and sample_shape, or x0"):
        D.sample_slices(numpy_eps, 2)
    with pytest.raises(ValueError, match="^indices: need 2 distinct sample indices"):
        D.sample_slices(numpy_eps, 2, (1, H, W), indices=[4, 4])
    with pytest.raises(ValueError, match="^cond: 3 conditions for 2 samples"):
        D.sample_slices(numpy_eps, 2, (1, H, W), cond=np.zeros((3, 1, H, W)))
