"""Noise schedules and timestep lists of the diffusion runtime against MONAI 1.6's definitions."""

from __future__ import annotations

import numpy as np
import pytest

from gliomaforecast import diffusion as D

torch = pytest.importorskip("torch")
schedulers = pytest.importorskip("monai.networks.schedulers")


@pytest.mark.parametrize("ours, monai_name", [("linear", "linear_beta"), ("scaled_linear", "scaled_linear_beta")])
def test_linear_tables_match_monai(ours, monai_name):
    mine = D.make_schedule(ours)
    ref = schedulers.DDPMScheduler(num_train_timesteps=1000, schedule=monai_name)
    assert mine.alphas_cumprod.dtype == np.float64 and mine.num_train_timesteps == 1000
    np.testing.assert_allclose(mine.betas, ref.betas.double().numpy(), rtol=5e-7)  # MONAI: float32 linspace
    np.testing.assert_allclose(mine.alphas, ref.alphas.double().numpy(), rtol=2e-7)
    np.testing.assert_allclose(mine.alphas_cumprod, ref.alphas_cumprod.double().numpy(), rtol=2e-5)
    np.testing.assert_array_equal(D.make_schedule(monai_name).alphas_cumprod, mine.alphas_cumprod)


def test_cosine_table_matches_monai():
    """MONAI builds the cosine table in the default float dtype: in float64 it is ours to rounding; in float32
    its 1 - f(t+1)/f(t) loses up to 3e-5 near t = T where f is tiny."""
    mine = D.make_schedule("cosine")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ref64 = schedulers.DDPMScheduler(num_train_timesteps=1000, schedule="cosine")
    finally:
        torch.set_default_dtype(previous)
    assert ref64.betas.dtype == torch.float64
    np.testing.assert_allclose(mine.betas, ref64.betas.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(mine.alphas_cumprod, ref64.alphas_cumprod.numpy(), rtol=1e-11, atol=1e-15)
    ref32 = schedulers.DDPMScheduler(num_train_timesteps=1000, schedule="cosine")
    np.testing.assert_allclose(mine.betas, ref32.betas.double().numpy(), atol=5e-5)
    np.testing.assert_allclose(mine.alphas_cumprod, ref32.alphas_cumprod.double().numpy(), rtol=1e-4, atol=1e-7)


def test_closed_forms_and_clean_level():
    lin = D.make_schedule("linear")
    np.testing.assert_allclose(lin.betas[[0, -1]], [1e-4, 2e-2])
    np.testing.assert_allclose(lin.alphas_cumprod, np.cumprod(1 - np.linspace(1e-4, 2e-2, 1000)), rtol=1e-14)
    sq = D.make_schedule("scaled_linear")
    np.testing.assert_allclose(np.sqrt(sq.betas), np.linspace(1e-2, np.sqrt(2e-2), 1000), rtol=1e-12)
    cos = D.make_schedule("cosine")
    f = np.cos((np.arange(1001) / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2
    np.testing.assert_allclose(cos.alphas_cumprod[:-1], f[1:-1] / f[0], rtol=1e-10)  # unclipped part
    assert cos.betas.max() == pytest.approx(0.999)
    assert lin.alpha_bar(-1) == 1.0 and lin.alpha_bar(np.array([0, 999])).tolist() == lin.alphas_cumprod[[0, -1]].tolist()


def test_timestep_lists():
    lin = D.make_schedule("linear")
    np.testing.assert_array_equal(D.sampling_timesteps(10), [999, 888, 777, 666, 555, 444, 333, 222, 111, 0])
    monai = schedulers.DDIMScheduler(num_train_timesteps=1000)
    for n in (10, 50, 1000):
        monai.set_timesteps(n)
        np.testing.assert_array_equal(D.sampling_timesteps(n), monai.timesteps.numpy())
    np.testing.assert_array_equal(D.sampling_timesteps(10, spacing="leading"), np.arange(9, -1, -1) * 100)
    np.testing.assert_array_equal(D.sampling_timesteps(4, start=300), [300, 200, 100, 0])
    for start in (None, 300, 5):
        ts = D.sampling_timesteps(6 if start != 5 else 6, start=start, spacing="logsnr", schedule=lin)
        assert ts[0] == (999 if start is None else start) and ts[-1] == 0 and np.all(np.diff(ts) < 0)
    # logsnr: equal steps in lambda = log(sqrt(ab) / sqrt(1 - ab)) up to rounding to integer timesteps
    ts = D.sampling_timesteps(10, spacing="logsnr", schedule=lin)
    lam = D.log_snr(lin)[ts]
    assert np.ptp(np.diff(lam)) < 0.15 * np.mean(np.diff(lam))


@pytest.mark.parametrize("kwargs, field", [
    (dict(num_steps=0), "steps"), (dict(num_steps=2.5), "steps"), (dict(num_steps=10, start=1000), "start"),
    (dict(num_steps=10, start=-1), "start"), (dict(num_steps=10, start=5), "steps"),
    (dict(num_steps=10, spacing="cubic"), "spacing"), (dict(num_steps=10, spacing="logsnr"), "spacing"),
    (dict(num_steps=10, start=100, spacing="leading"), "spacing")])
def test_bad_timestep_arguments(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}: ") as err:
        D.sampling_timesteps(**kwargs)
    assert str(err.value).count("\n") == 0


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="schedule: unknown schedule 'sigmoid'.*linear, scaled_linear, cosine"):
        D.make_schedule("sigmoid")
    with pytest.raises(ValueError, match="num_train_timesteps: must be an integer >= 1"):
        D.make_schedule("linear", 0)
    with pytest.raises(ValueError, match=r"timestep: must be in -1\.\.999"):
        D.make_schedule("linear").alpha_bar(1000)
