"""Classifier-free guidance (one doubled-batch call per step) and classifier guidance (exact shift on
Gaussian data) of the diffusion runtime."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from gliomaforecast import diffusion as D

LIN = D.make_schedule("linear")
M, S = 1.5, 0.5


def cond_net(x, t, cond):
    """A conditional stand-in network: its output depends on x, t and the condition."""
    tt = np.asarray(t, dtype=np.float64).reshape(-1, *([1] * (x.ndim - 1)))
    return 0.3 * np.tanh(x) + 0.5 * cond + 0.01 * np.sqrt(tt) * np.cos(cond)


class Recorder:
    def __init__(self, fn):
        self.fn, self.batches, self.conds = fn, [], []

    def __call__(self, x, t, cond):
        self.batches.append(x.shape[0])
        self.conds.append(np.array(cond))
        assert x.shape[0] == t.shape[0] == cond.shape[0]
        return self.fn(x, t, cond)


@pytest.mark.parametrize("w", [0.0, 1.0, 3.5])
def test_cfg_is_the_combination_from_one_doubled_call(w):
    rng = np.random.default_rng(0)
    x, cond, null = rng.standard_normal((3, 1, 4, 4)), rng.standard_normal((3, 1, 4, 4)), np.zeros((3, 1, 4, 4))
    t = np.full(3, 400)
    net = Recorder(cond_net)
    out = D.classifier_free(net, cond, null, w)(x, t)
    assert net.batches == [6]
    np.testing.assert_array_equal(net.conds[0], np.concatenate([cond, null]))
    e_c, e_u = cond_net(x, t, cond), cond_net(x, t, null)
    np.testing.assert_allclose(out, e_u + w * (e_c - e_u), rtol=1e-14, atol=1e-14)
    if w == 1.0:
        np.testing.assert_allclose(out, e_c, rtol=1e-14, atol=1e-14)


def test_cfg_in_a_sampling_loop_calls_the_network_once_per_step():
    rng = np.random.default_rng(1)
    x, cond = rng.standard_normal((2, 1, 3, 3)), rng.standard_normal((2, 1, 3, 3))
    null = np.full_like(cond, -1.0)
    ts = D.sampling_timesteps(12, spacing="logsnr", schedule=LIN)
    net = Recorder(cond_net)
    guided = D.sample(D.classifier_free(net, cond, null, 2.0), x, ts, LIN, sampler="dpmpp_2m")
    assert net.batches == [4] * 12
    combined = D.sample(lambda x, t: cond_net(x, t, null) + 2.0 * (cond_net(x, t, cond) - cond_net(x, t, null)),
                        x, ts, LIN, sampler="dpmpp_2m")
    np.testing.assert_allclose(guided, combined, rtol=1e-12, atol=1e-12)
    plain = D.sample(lambda x, t: cond_net(x, t, cond), x, ts, LIN, sampler="dpmpp_2m")
    assert np.abs(guided - plain).max() > 1e-2


def test_cfg_shape_errors():
    with pytest.raises(ValueError, match="null_cond: shape"):
        D.classifier_free(cond_net, np.zeros((2, 1)), np.zeros((3, 1)), 1.5)
    fn = D.classifier_free(lambda x, t, c: x[:1], np.zeros((2, 1)), np.zeros((2, 1)), 1.5)
    with pytest.raises(ValueError, match=r"model output: batch 1, expected 4"):
        fn(np.zeros((2, 1)), np.zeros(2, np.int64))


def ideal_eps(x, t):
    ab = LIN.alpha_bar(t)[:, None]
    a, sg = np.sqrt(ab), np.sqrt(1 - ab)
    return sg * (x - a * M) / (a * a * S * S + sg * sg)


def noisy_classifier_grad(g):
    """d/dx_t log p(y | x_t) for the likelihood p(y | x0) ~ exp(g x0) and x0 ~ N(M, S^2): the posterior
    mean E[x0 | x_t] is affine in x_t with slope a S^2 / (a^2 S^2 + sigma^2), so the gradient is g times it."""
    def grad(x, t):
        ab = LIN.alpha_bar(t)[:, None]
        a = np.sqrt(ab)
        return np.broadcast_to(g * a * S * S / (ab * S * S + 1 - ab), x.shape)
    return grad


@pytest.mark.parametrize("scale", [1.0, 2.0])
@pytest.mark.parametrize("sampler, steps, spacing", [("ddim", 500, "linspace"), ("dpmpp_2m", 20, "logsnr")])
def test_classifier_guidance_shifts_the_mean_by_the_exact_amount(scale, sampler, steps, spacing):
    """Guidance with the true noisy classifier of p(y | x0) ~ exp(g x0) samples p(x0 | y) = N(M + scale g S^2, S^2):
    the mean moves up (g > 0) by scale * g * S^2 and the spread stays S."""
    g = 2.0
    shift = scale * g * S * S
    n = 4000
    ab = float(LIN.alpha_bar(999))
    x = (np.sqrt(ab) * (M + shift) + np.sqrt(ab * S * S + 1 - ab) * norm.ppf((np.arange(n) + 0.5) / n))[:, None]
    ts = D.sampling_timesteps(steps, spacing=spacing, schedule=LIN)
    hook = D.classifier_guidance(noisy_classifier_grad(g), scale, LIN)
    guided = D.sample(ideal_eps, x, ts, LIN, sampler=sampler, eps_hook=hook)
    assert guided.mean() - M == pytest.approx(shift, abs=0.01)
    assert guided.std() == pytest.approx(S, rel=0.03)
    unguided = D.sample(ideal_eps, x, ts, LIN, sampler=sampler)
    # without guidance the ODE maps the same start back near N(M, S^2) (the start's tiny offset a*shift aside)
    assert unguided.mean() - M == pytest.approx(S * np.sqrt(ab) * shift / np.sqrt(ab * S * S + 1 - ab), abs=0.01)
    assert guided.mean() - unguided.mean() > 0.9 * shift


def test_classifier_guidance_formula_and_opposite_direction():
    x = np.random.default_rng(2).standard_normal((3, 2))
    t = np.array([100, 100, 100])
    eps = ideal_eps(x, t)
    grad = np.random.default_rng(3).standard_normal((3, 2))
    out = D.classifier_guidance(lambda x, t: grad, 1.7, LIN)(x, t, eps)
    np.testing.assert_allclose(out, eps - 1.7 * np.sqrt(1 - LIN.alpha_bar(100)) * grad, rtol=1e-14)
    n = 2000
    x = norm.ppf((np.arange(n) + 0.5) / n)[:, None]
    ts = D.sampling_timesteps(15, spacing="logsnr", schedule=LIN)
    down = D.sample(ideal_eps, x, ts, LIN, sampler="dpmpp_2m", eps_hook=D.classifier_guidance(noisy_classifier_grad(-2.0), 1.0, LIN))
    assert down.mean() < M - 0.4
    with pytest.raises(ValueError, match="classifier gradient: shape"):
        D.classifier_guidance(lambda x, t: grad[:1], 1.0, LIN)(np.zeros((3, 2)), t, eps)
