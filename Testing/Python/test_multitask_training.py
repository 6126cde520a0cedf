"""Training package of the multi-task diffusion forecaster: network (heads, conditioning, persistence start),
augmentation (displacement follows the axes, same as the core's test-time variants), loss terms, triplet data
from the sample patient, a tiny deterministic training run, ONNX export parity and the registry family entry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gliomaforecast import models, sdf
from gliomaforecast.io.case import load_case
from gliomaforecast.forecasters import crops as mi
from gliomaforecast.forecasters.multitask.diffusion import _augment as core_augment
from gliomaforecast_training.multitask import data as mdata
from gliomaforecast_training.multitask import export as mexport
from gliomaforecast_training.multitask import train as mtrain
from gliomaforecast_training.multitask.loss import alphas_cumprod, noised, rt_weighted_bce
from gliomaforecast_training.multitask.net import MultiTaskNet

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "Resources" / "SampleData" / "sample_patient"


def _inputs(batch: int = 3, size: int = 32, seed: int = 0):
    return mexport.example_inputs(batch, size, seed)


def test_net_shapes_and_persistence_start():
    torch.manual_seed(0)
    net = MultiTaskNet((8, 8, 8)).eval()
    x_t, t, cond, gaps = _inputs()
    with torch.no_grad():
        v, p = net(x_t, t, cond, gaps)
    assert v.shape == (3, 1, 16, 16) and p.shape == (3, 1, 32, 32)
    # zero-initialised heads: v = 0 and P = the logistic map of phi_2 (beta 0.1 /mm, mu 15 mm): persistence
    assert torch.count_nonzero(v) == 0
    phi2 = cond[:, mi.PHI2_CHANNEL:mi.PHI2_CHANNEL + 1].numpy()
    np.testing.assert_allclose(p.numpy(), sdf.probability_from_signed_distance(phi2), atol=1e-6)


def test_probability_ignores_noise_and_step_gaps_matter():
    torch.manual_seed(1)
    net = MultiTaskNet((8, 8, 8))
    for prm in net.parameters():  # leave the zero initialisation so that every path carries signal
        torch.nn.init.normal_(prm, std=0.2)
    net.eval()
    x_t, t, cond, gaps = _inputs()
    with torch.no_grad():
        v1, p1 = net(x_t, t, cond, gaps)
        v2, p2 = net(torch.randn_like(x_t), (t + 500) % 1000, cond, gaps)
        v3, p3 = net(x_t, t, cond, gaps + torch.tensor([0.0, 100.0, 0.0]))
    assert torch.equal(p1, p2)  # the predictive head sees the gaps only
    assert not torch.allclose(v1, v2)
    assert (p1 - p3).abs().max() > 1e-4 and (v1 - v3).abs().max() > 1e-4


@pytest.mark.parametrize("seed", range(4))
def test_augment_moves_displacement_with_the_axes_like_the_core(seed):
    gen = torch.Generator().manual_seed(seed)
    cond = torch.randn(2, mi.COND_CHANNELS, 8, 8)
    target = torch.randn(2, 3, 8, 8)
    state = gen.get_state()
    flips = [bool(torch.rand((), generator=gen) < 0.5) for _ in range(3)]
    gen.set_state(state)
    c2, t2 = mtrain.augment(cond, target, gen)
    k = flips[0] * 1 + flips[1] * 2 + flips[2] * 4
    np.testing.assert_array_equal(c2.numpy(), core_augment(cond.numpy(), k))
    np.testing.assert_array_equal(core_augment(c2.numpy(), k, inverse=True), cond.numpy())
    dy, dx = mi.COND_NAMES.index("disp_y"), mi.COND_NAMES.index("disp_x")
    if k == 1:  # y flipped: d_y negated and mirrored
        np.testing.assert_array_equal(c2[:, dy].numpy(), -cond[:, dy].flip(1).numpy())
    if k == 4:  # transposed: d_y and d_x swap
        np.testing.assert_array_equal(c2[:, dy].numpy(), cond[:, dx].transpose(1, 2).numpy())


def test_loss_terms():
    p = torch.full((1, 1, 4, 4), 0.7)
    p_hat = torch.full((1, 1, 4, 4), 0.4)
    bce = float(-(0.7 * np.log(0.4) + 0.3 * np.log(0.6)))
    assert rt_weighted_bce(p_hat, p, torch.zeros_like(p)).item() == pytest.approx(bce, rel=1e-5)
    assert rt_weighted_bce(p_hat, p, torch.ones_like(p)).item() == pytest.approx(2 * bce, rel=1e-5)
    assert rt_weighted_bce(p_hat, p, torch.full_like(p, 0.5), gamma=2).item() == pytest.approx(1.25 * bce, rel=1e-5)
    ab = alphas_cumprod()
    x0, eps = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    t = torch.tensor([0, 500, 999])
    x_t, v = noised(x0, t, eps, ab)
    a = ab[t].reshape(-1, 1, 1, 1)
    torch.testing.assert_close(a.sqrt() * x_t - (1 - a).sqrt() * v, x0, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def sample_examples(tmp_path_factory) -> tuple[Path, mdata.TripletData]:
    out = tmp_path_factory.mktemp("mt") / "sample.npz"
    args = argparse.Namespace(cohort=SAMPLE.parent, out=out, patients="", max_slices=6, seed=0)
    return out, mtrain.prepare(args)


def test_triplets_from_the_sample_patient(sample_examples):
    _, data = sample_examples
    case = load_case(SAMPLE / "case.json")
    days = case.days
    assert data.triplets == [("VP-SAMPLE", 0, 2), ("VP-SAMPLE", 0, 3), ("VP-SAMPLE", 1, 3)]
    for k, (_, i, j) in enumerate(data.triplets):
        g = data.gaps[data.triplet == k]
        np.testing.assert_allclose(g[:, :2], [[days[i + 1] - days[i], days[j] - days[i + 1]]] * len(g))
    assert data.cond.shape[1:] == (mi.COND_CHANNELS, mi.CROP, mi.CROP) and data.target.shape[1] == 3
    p, r = data.target[:, 0].astype(float), data.target[:, 2].astype(float)
    assert 0 < p.min() and p.max() < 1 and 0 <= r.min() and r.max() <= 1
    # every slice holds >= 75 mm^2 of tumour (P > 0.8 is inside the GTV) in the last prior or the target
    pixel_mm2 = mi.PIXEL_MM ** 2
    tumour = np.maximum((data.cond[:, mi.PHI2_CHANNEL] <= 0).sum(axis=(1, 2)), (p > 0.8).sum(axis=(1, 2)))
    assert (tumour * pixel_mm2 >= 75 * 0.8).all()


def test_fit_is_deterministic_and_export_registers_a_family(sample_examples, tmp_path):
    npz, _ = sample_examples
    p = argparse.ArgumentParser()
    mtrain.add_arguments(p)
    argv = ["fit", "--data", str(npz), "--steps", "3", "--batch", "4", "--channels", "8", "8", "8", "--log-every", "1"]
    a = mtrain.fit(p.parse_args(argv + ["--out", str(tmp_path / "a.pt")]))
    mtrain.fit(p.parse_args(argv + ["--out", str(tmp_path / "b.pt")]))
    sa = torch.load(tmp_path / "a.pt", weights_only=False)["state_dict"]
    sb = torch.load(tmp_path / "b.pt", weights_only=False)["state_dict"]
    assert a["steps"] == 3 and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(torch.count_nonzero(sa[k]) for k in sa if k.startswith("p_head"))  # the predictive head learned

    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "models.json").write_text((REPO / "Resources" / "Models" / "models.json").read_text())
    before = [m["id"] for m in json.loads((models_dir / "models.json").read_text())["models"]]
    ea = argparse.ArgumentParser()
    mexport.add_arguments(ea)
    entry = mexport.export(ea.parse_args(["--checkpoint", str(tmp_path / "a.pt"), "--models-dir", str(models_dir)]))
    assert max(entry["export"]["parity_max_abs"].values()) < 1e-4
    after = [m["id"] for m in json.loads((models_dir / "models.json").read_text())["models"]]
    assert after == before  # the family replaced in place, every other model kept
    family = models.load_family(mexport.MODEL_ID, models_dir, prefer_gpu=False, require=("encoder", "generator"))
    x_t, t, cond, gaps = _inputs(2, 32, seed=3)
    net, _ = mexport.load_checkpoint(tmp_path / "a.pt")
    enc = family["encoder"].run({"cond": cond.numpy(), "gaps": gaps.numpy()})
    out = family["generator"].run({"x_t": x_t.numpy(), "timesteps": t.numpy(), **{f: enc[f] for f in mexport.FEATURES}})
    with torch.no_grad():
        ref = net(x_t, t, cond, gaps)
    np.testing.assert_allclose(out["prediction"], ref[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(enc["probability"], ref[1].numpy(), atol=1e-4)
    # the generator reuses one encoding at every sampler step: another step, the same features, torch's answer
    t2 = torch.full_like(t, 7)
    out2 = family["generator"].run({"x_t": x_t.numpy(), "timesteps": t2.numpy(), **{f: enc[f] for f in mexport.FEATURES}})
    with torch.no_grad():
        np.testing.assert_allclose(out2["prediction"], net(x_t, t2, cond, gaps)[0].numpy(), atol=1e-4)


def test_image_metrics_of_the_validation_script():
    from gliomaforecast_training.multitask.evaluate import image_metrics

    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 100, (6, 20, 20)).astype(np.float32)
    brain = np.zeros(truth.shape, bool)
    brain[:, 5:15, 5:15] = True
    slices = np.array([1, 2, 3])
    same = image_metrics(truth, truth, slices, brain)
    assert same["psnr"] == np.inf and same["ssim"] == pytest.approx(1.0)
    noisy = image_metrics(truth + rng.normal(0, 5, truth.shape).astype(np.float32), truth, slices, brain)
    noisier = image_metrics(truth + rng.normal(0, 20, truth.shape).astype(np.float32), truth, slices, brain)
    assert np.isfinite(noisy["psnr"]) and noisy["psnr"] > noisier["psnr"] and noisy["ssim"] > noisier["ssim"]
    far = truth.copy()
    far[:, :5] = 0  # outside the brain's bounding box: not scored
    assert image_metrics(far, truth, slices, brain)["psnr"] == np.inf


def test_loss_study_measures_errors_by_dose_region(sample_examples, tmp_path):
    """The gamma study scores a network's predictive head by dose region against a hand computation; two networks
    that predict the same give no Wilcoxon difference, a better one wins on every patient."""
    from gliomaforecast_training.multitask import loss_study

    _, data = sample_examples
    paths = []
    for gamma, scale in ((2.0, 0.0), (0.0, 0.0), (0.0, 1.0)):
        net = MultiTaskNet((8, 8, 8))
        with torch.no_grad():  # scale 1: a head that moves the map (the untrained one is the persistence map)
            net.p_head.bias.fill_(scale)
        path = tmp_path / f"g{gamma}_{scale}.pt"
        torch.save({"state_dict": net.state_dict(), "config": {"channels": [8, 8, 8], "gamma": gamma},
                    "summary": {"steps": 0, "seconds": 0.0}}, path)
        paths.append(path)
    result = loss_study.study(paths, data)
    p, r = data.target[:, 0].astype(np.float64), data.target[:, 2].astype(np.float64)
    q = np.clip(1 / (1 + np.exp(-(sdf.DEFAULT_BETA * (sdf.DEFAULT_MU - data.cond[:, mi.PHI2_CHANNEL].astype(np.float64))))),
                1e-6, 1 - 1e-6)
    bce = -(p * np.log(q) + (1 - p) * np.log(1 - q))
    first = result["networks"][0]["regions"]
    for name, (lo, hi) in loss_study.REGIONS.items():
        inside = (r >= lo) & (r < hi)
        assert first[name]["pixels"] == int(inside.sum())
        if inside.any():
            assert first[name]["bce"] == pytest.approx(bce[inside].mean(), rel=1e-4)
    same, moved = result["networks"][1], result["networks"][2]
    assert same["gamma"] == 0.0 and same["vs_first"]["all"]["bce"]["p_value"] is None
    assert moved["regions"]["all"]["bce"] != pytest.approx(first["all"]["bce"])
