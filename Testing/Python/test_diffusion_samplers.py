"""DDPM / DDIM / DPM-Solver++(2M) of the diffusion runtime: against MONAI where MONAI is right, against a
float64 reference at N = 10 where it is not, and on Gaussian data whose ideal denoiser is closed form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from gliomaforecast import diffusion as D

torch = pytest.importorskip("torch")
schedulers = pytest.importorskip("monai.networks.schedulers")

LIN = D.make_schedule("linear")
M, S = 1.5, 0.5  # toy data x0 ~ N(M, S^2), independent per pixel


def known_output(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """A smooth, t-dependent stand-in for a network (used as eps, x0 or v)."""
    tt = np.asarray(t, dtype=np.float64).reshape(-1, *([1] * (x.ndim - 1)))
    return 0.6 * np.tanh(x) + 0.2 * np.sin(tt / 70.0) + 0.05 * x * np.cos(tt / 130.0)


def ideal_eps(schedule, m=M, s=S):
    """E[eps | x_t] for x0 ~ N(m, s^2): sigma (x_t - a m) / (a^2 s^2 + sigma^2)."""
    def fn(x, t):
        ab = schedule.alpha_bar(np.asarray(t)).reshape(-1, *([1] * (x.ndim - 1)))
        a, sg = np.sqrt(ab), np.sqrt(1 - ab)
        return sg * (x - a * m) / (a * a * s * s + sg * sg)
    return fn


def exact_start(schedule, t, n, m=M, s=S, rng=None):
    """n samples of the exact marginal at t: N(a m, a^2 s^2 + sigma^2); normal quantiles when rng is None."""
    ab = float(schedule.alpha_bar(int(t)))
    z = norm.ppf((np.arange(n) + 0.5) / n) if rng is None else rng.standard_normal(n)
    return (np.sqrt(ab) * m + np.sqrt(ab * s * s + 1 - ab) * z)[:, None]


def float64_tables(scheduler, schedule=LIN):
    """Give MONAI our float64 tables (the same definitions; the float32 ones are compared in
    test_diffusion_schedules), so that the comparison tests the stepping algorithm, not rounding."""
    scheduler.betas = torch.from_numpy(schedule.betas.copy())
    scheduler.alphas = torch.from_numpy(schedule.alphas.copy())
    scheduler.alphas_cumprod = torch.from_numpy(schedule.alphas_cumprod.copy())
    scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    if hasattr(scheduler, "final_alpha_cumprod"):
        scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return schedule


def monai_loop(scheduler, x, timesteps, fn, seed, **step_kwargs):
    g = torch.Generator().manual_seed(seed)
    xt = torch.from_numpy(x.copy())
    for t in timesteps:
        out = torch.from_numpy(fn(xt.numpy(), np.full(x.shape[0], int(t))))
        xt, _ = scheduler.step(out, int(t), xt, generator=g, **step_kwargs)
    return xt.numpy()


def torch_noise(seed):
    g = torch.Generator().manual_seed(seed)
    return lambda shape: torch.randn(shape, dtype=torch.float64, generator=g).numpy()


@pytest.mark.parametrize("prediction", ["epsilon", "sample", "v_prediction"])
def test_ddpm_matches_monai_at_full_length(prediction):
    """MONAI's DDPM steps to t - 1, which is right when every timestep is listed (N = T = 1000)."""
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 4))
    ref = schedulers.DDPMScheduler(1000, clip_sample=False, prediction_type=prediction)
    sch = float64_tables(ref)
    ref.set_timesteps(1000)
    ts = D.sampling_timesteps(1000)
    np.testing.assert_array_equal(ts, ref.timesteps.numpy())
    expected = monai_loop(ref, x, ts, known_output, seed=7)
    ours = D.sample(known_output, x, ts, sch, sampler="ddpm", prediction=prediction, noise_fn=torch_noise(7))
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-9)


def test_ddpm_single_steps_match_monai_with_clipping():
    x = np.random.default_rng(1).standard_normal((2, 1, 5, 5)) * 2
    ref = schedulers.DDPMScheduler(1000, clip_sample=True)
    sch = float64_tables(ref)
    for t in (999, 500, 37, 1, 0):
        out = known_output(x, np.array([t, t]))
        g = torch.Generator().manual_seed(3)
        z = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).numpy()
        want, want_x0 = ref.step(torch.from_numpy(out), t, torch.from_numpy(x), generator=g)
        got, got_x0 = D.ddpm_step(out, x, t, t - 1, sch, noise=z if t > 0 else None, clip_x0=(-1, 1))
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got_x0, want_x0.numpy(), rtol=1e-12, atol=1e-12)
        assert np.abs(got_x0).max() == 1.0


@pytest.mark.parametrize("prediction", ["epsilon", "sample", "v_prediction"])
@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_matches_monai_where_its_previous_index_is_right(prediction, eta):
    """N = 1000 (MONAI's own list, prev = t - 1) and N = 50 on the list 980, 960, ..., 0 where
    MONAI's prev = t - T // N is the next listed timestep."""
    x = np.random.default_rng(2).standard_normal((2, 1, 6, 6))
    ref = schedulers.DDIMScheduler(1000, clip_sample=False, prediction_type=prediction)
    sch = float64_tables(ref)
    for n, spacing in ((1000, "linspace"), (50, "leading")):
        ref.set_timesteps(n)
        ts = D.sampling_timesteps(n, spacing=spacing)
        ref.timesteps = torch.from_numpy(ts)
        assert all(int(a) - 1000 // n == int(b) for a, b in zip(ts[:-1], ts[1:]))
        expected = monai_loop(ref, x, ts, known_output, seed=11, eta=eta)
        ours = D.sample(known_output, x, ts, sch, sampler="ddim", prediction=prediction, eta=eta,
                        noise_fn=torch_noise(11))
        assert np.abs(expected).max() > 0.1
        np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-9)


def reference_ddim(fn, x, ts, eta, noises):
    """DDIM written out in float64 with the correct previous index (the next listed timestep)."""
    ab = np.cumprod(1.0 - np.linspace(1e-4, 2e-2, 1000))
    x = x.copy()
    for i, t in enumerate(ts):
        ab_t = ab[t]
        ab_s = ab[ts[i + 1]] if i + 1 < len(ts) else 1.0
        e = fn(x, np.full(x.shape[0], t))
        x0 = (x - np.sqrt(1 - ab_t) * e) / np.sqrt(ab_t)
        sigma = eta * np.sqrt((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s))
        x = np.sqrt(ab_s) * x0 + np.sqrt(1 - ab_s - sigma**2) * e + sigma * noises[i]
    return x


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_ten_steps_matches_float64_reference_not_monai(eta):
    x = np.random.default_rng(3).standard_normal((2, 1, 4, 4))
    ts = D.sampling_timesteps(10)
    np.testing.assert_array_equal(ts, [999, 888, 777, 666, 555, 444, 333, 222, 111, 0])
    noises = np.random.default_rng(4).standard_normal((10, *x.shape))
    draws = iter(noises)
    ours = D.sample(known_output, x, ts, LIN, sampler="ddim", eta=eta, noise_fn=lambda shape: next(draws))
    expected = reference_ddim(known_output, x, ts, eta, noises)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)
    # the same steps one by one through the public step function
    xs = x.copy()
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else -1
        xs, _ = D.ddim_step(known_output(xs, np.full(2, t)), xs, int(t), int(s), LIN, eta=eta,
                            noise=noises[i] if s >= 0 else None)
    np.testing.assert_allclose(xs, expected, rtol=1e-12, atol=1e-12)
    if eta == 0.0:  # MONAI 1.6 on its own 10-step list steps 999 -> 899 (not 888): a different answer
        ref = schedulers.DDIMScheduler(1000, clip_sample=False)
        ref.set_timesteps(10)
        np.testing.assert_array_equal(ref.timesteps.numpy(), ts)
        monai = monai_loop(ref, x, ts, known_output, seed=0)
        assert np.abs(monai - expected).max() > 1e-2


def test_ddim_deterministic_noise_free_and_eta_one_stochastic():
    x = np.random.default_rng(5).standard_normal((2, 3))
    a, _ = D.ddim_step(known_output(x, [500, 500]), x, 500, 400, LIN)
    b, _ = D.ddim_step(known_output(x, [500, 500]), x, 500, 400, LIN)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="noise: a DDIM step with eta > 0 adds noise"):
        D.ddim_step(known_output(x, [500, 500]), x, 500, 400, LIN, eta=1.0)
    with pytest.raises(ValueError, match="noise: a DDPM step before the last adds noise"):
        D.ddpm_step(known_output(x, [500, 500]), x, 500, 499, LIN)


@pytest.mark.parametrize("schedule_name", ["linear", "scaled_linear", "cosine"])
def test_toy_gaussian_ddpm_reaches_mean_and_variance(schedule_name):
    sch = D.make_schedule(schedule_name)
    rng = np.random.default_rng(6)
    n = 20000
    x = exact_start(sch, 999, n, rng=rng)
    out = D.sample(ideal_eps(sch), x, D.sampling_timesteps(1000), sch, sampler="ddpm",
                   noise_fn=lambda shape: rng.standard_normal(shape))
    se_mean, se_std = S / np.sqrt(n), S / np.sqrt(2 * n)
    assert abs(out.mean() - M) < 4 * se_mean
    assert abs(out.std() - S) < 4 * se_std + 0.005  # + the small bias of fixed-small posterior variance


@pytest.mark.parametrize("sampler, steps, spacing, tol", [
    ("ddim", 1000, "linspace", 0.005), ("ddim", 200, "linspace", 0.02), ("dpmpp_2m", 20, "logsnr", 0.02),
    ("dpmpp_2m", 10, "logsnr", 0.04)])
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_toy_gaussian_deterministic_samplers(sampler, steps, spacing, tol, prediction):
    """From the exact marginal at t = 999 (normal quantiles), the probability-flow ODE maps onto
    N(M, S^2) exactly: what remains is the solver's discretisation error, relative to S (measured: DDIM
    -0.3 % at 1000 steps, -1.4 % at 200; DPM-Solver++(2M) +1.4 % at 20 calls, +3.2 % at 10)."""
    eps = ideal_eps(LIN)

    def model(x, t):  # the same ideal denoiser expressed as the network's prediction type
        if prediction == "epsilon":
            return eps(x, t)
        ab = LIN.alpha_bar(t)[:, None]
        e = eps(x, t)
        x0 = (x - np.sqrt(1 - ab) * e) / np.sqrt(ab)
        return np.sqrt(ab) * e - np.sqrt(1 - ab) * x0

    x = exact_start(LIN, 999, 4000)
    ts = D.sampling_timesteps(steps, spacing=spacing, schedule=LIN)
    calls = []
    out = D.sample(lambda x, t: calls.append(t[0]) or model(x, t), x, ts, LIN, sampler=sampler, prediction=prediction)
    assert calls == list(ts)
    assert abs(out.mean() - M) < 0.01 * S
    assert abs(out.std() / S - 1) < tol


def test_dpm_solver_beats_ddim_at_ten_calls():
    x = exact_start(LIN, 999, 4000)
    ts = D.sampling_timesteps(10, spacing="logsnr", schedule=LIN)
    errs = {s: abs(D.sample(ideal_eps(LIN), x, ts, LIN, sampler=s).std() - S) for s in ("ddim", "dpmpp_2m")}
    assert errs["dpmpp_2m"] < errs["ddim"] / 5


def test_partial_noising_start():
    """SDEdit: x_k = sqrt(ab_k) c + sqrt(1 - ab_k) eps, denoised from k. For Gaussian data with the
    ideal denoiser: DDPM samples p(x0 | x_k), and DDIM follows the linear ODE map; both closed form."""
    k, c = 300, 0.2
    ab = float(LIN.alpha_bar(k))
    a, sg = np.sqrt(ab), np.sqrt(1 - ab)
    v = a * a * S * S + sg * sg
    eps = np.random.default_rng(8).standard_normal((4, 1))
    np.testing.assert_allclose(D.add_noise(np.full((4, 1), c), eps, k, LIN), a * c + sg * eps, rtol=1e-15)
    n = 20000
    rng = np.random.default_rng(9)
    x_k = D.add_noise(np.full((n, 1), c), rng.standard_normal((n, 1)), k, LIN)
    calls = []
    ddpm = D.sample(lambda x, t: calls.append(int(t[0])) or ideal_eps(LIN)(x, t), x_k, D.sampling_timesteps(k + 1, start=k),
                    LIN, sampler="ddpm", noise_fn=lambda shape: rng.standard_normal(shape))
    assert calls[0] == k and calls[-1] == 0 and len(calls) == k + 1
    mean = M + a * a * S * S / v * (c - M)
    var = S * S * sg * sg * (v + a * a * S * S) / v**2
    assert abs(ddpm.mean() - mean) < 4 * np.sqrt(var / n)
    assert abs(ddpm.var() / var - 1) < 0.05
    q = D.add_noise(np.full((4000, 1), c), norm.ppf((np.arange(4000) + 0.5) / 4000)[:, None], k, LIN)
    for sampler, steps, spacing, tol in (("ddim", 300, "linspace", 0.01), ("dpmpp_2m", 15, "logsnr", 0.01)):
        ts = D.sampling_timesteps(steps, start=k, spacing=spacing, schedule=LIN)
        ode = D.sample(ideal_eps(LIN), q, ts, LIN, sampler=sampler)
        assert abs(ode.mean() - (M + S * a / np.sqrt(v) * (c - M))) < tol * S
        assert abs(ode.std() / (S * sg / np.sqrt(v)) - 1) < 2 * tol
        assert abs(ode.mean() - c) < abs(M - c)  # the start's content survives a partial noising


def test_bad_arguments_raise_clear_value_errors():
    x = np.zeros((1, 2))
    with pytest.raises(ValueError, match="^prediction: unknown prediction type 'score'.*epsilon, sample, v_prediction"):
        D.sample(known_output, x, [10, 0], LIN, prediction="score")
    with pytest.raises(ValueError, match="^sampler: unknown sampler 'euler'"):
        D.sample(known_output, x, [10, 0], LIN, sampler="euler")
    with pytest.raises(ValueError, match="^timesteps: must lie in 0..999"):
        D.sample(known_output, x, [1000, 0], LIN)
    with pytest.raises(ValueError, match="^timesteps: must be strictly decreasing"):
        D.sample(known_output, x, [0, 10], LIN)
    with pytest.raises(ValueError, match=r"^timesteps: need a non-empty 1-D list of timesteps \(N >= 1\)"):
        D.sample(known_output, x, [], LIN)
    with pytest.raises(ValueError, match="^eta: must be >= 0"):
        D.sample(known_output, x, [10, 0], LIN, eta=-0.1)
    with pytest.raises(ValueError, match="^timestep: a step needs 0 <= t < 1000"):
        D.ddim_step(x, x, 1000, 10, LIN)
    with pytest.raises(ValueError, match="^timestep: a step needs .* t_prev < t"):
        D.ddpm_step(x, x, 10, 10, LIN)
    with pytest.raises(ValueError, match="^model output: shape"):
        D.sample(lambda x, t: np.zeros((2, 2)), x, [10, 0], LIN)
    with pytest.raises(ValueError, match=r"^timestep: must be in -1\.\.999, got 1001"):
        D.add_noise(x, x, 1001, LIN)
