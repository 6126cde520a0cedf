"""Signed distance (mm) against a brute-force reference, and the logistic probability map."""

from __future__ import annotations

import numpy as np
import pytest

from gliomaforecast import sdf


def brute_force_signed_distance(mask: np.ndarray, spacing) -> np.ndarray:
    """The contract's definition evaluated over all voxel pairs (mm)."""
    pts = np.argwhere(np.ones_like(mask, bool)) * np.asarray(spacing, float)
    flat = mask.ravel()
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    to_tumor = d[:, flat].min(1)
    to_background = d[:, ~flat].min(1)
    return np.where(flat, -to_background, to_tumor).reshape(mask.shape)


@pytest.mark.parametrize("seed", range(12))
def test_signed_distance_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ndim = 2 + seed % 2
    shape = tuple(rng.integers(3, 10, size=ndim))
    mask = rng.random(shape) < rng.uniform(0.05, 0.8)
    if mask.all() or not mask.any():
        mask.flat[0] = not mask.flat[0]
    spacing = tuple(rng.uniform(0.4, 5.0, size=ndim))  # anisotropic, e.g. 1 x 1 x 5 mm
    phi = sdf.signed_distance(mask, spacing)
    assert phi.dtype == np.float32
    np.testing.assert_allclose(phi, brute_force_signed_distance(mask, spacing), atol=1e-4)


def test_tumor_touching_the_grid_edge_has_no_background_beyond_it() -> None:
    mask = np.zeros((1, 1, 8), bool)
    mask[0, 0, :5] = True  # voxels beyond x = -1 do not exist: nearest background is at x = 5
    phi = sdf.signed_distance(mask, (1.0, 1.0, 2.0))
    np.testing.assert_allclose(phi[0, 0], [-10, -8, -6, -4, -2, 2, 4, 6])


def test_anisotropic_spacing_is_used_in_mm() -> None:
    mask = np.zeros((9, 9, 9), bool)
    mask[4, 4, 4] = True
    phi = sdf.signed_distance(mask, (5.0, 1.0, 1.0))
    assert phi[6, 4, 4] == pytest.approx(10.0)
    assert phi[4, 6, 4] == pytest.approx(2.0)
    assert phi[4, 4, 4] == pytest.approx(-1.0)


def test_empty_full_and_nonbinary_masks_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        sdf.signed_distance(np.zeros((4, 4, 4), bool), (1, 1, 1))
    with pytest.raises(ValueError, match="whole grid"):
        sdf.signed_distance(np.ones((4, 4, 4), bool), (1, 1, 1))
    with pytest.raises(ValueError, match="binary"):
        sdf.signed_distance(np.full((4, 4), 2), (1, 1))
    with pytest.raises(ValueError, match="spacing"):
        sdf.signed_distance(np.eye(4, dtype=bool), (1, 0))


def test_probability_at_known_distances() -> None:
    mask = np.zeros((1, 1, 60), bool)
    mask[0, 0, :20] = True
    p = sdf.tumor_probability(mask, (1.0, 1.0, 1.0))  # beta 0.1 /mm, mu 15 mm
    phi = sdf.signed_distance(mask, (1.0, 1.0, 1.0))
    assert p[0, 0, 34] == pytest.approx(0.5, abs=1e-6)  # 15 mm outside the tumor
    assert np.all(p[0, 0, :20] > 0.8)  # P > 0.8 everywhere inside the GTV
    assert p[0, 0, 20] == pytest.approx(1 / (1 + np.exp(0.1 * (1 - 15))), rel=1e-6)
    assert np.all(np.diff(p[0, 0]) <= 0)  # decreasing with the distance
    np.testing.assert_allclose(sdf.signed_distance_from_probability(p), phi, atol=2e-3)
    q = sdf.tumor_probability(mask, (1.0, 1.0, 1.0), beta=0.5, mu=5.0)
    assert q[0, 0, 24] == pytest.approx(0.5, abs=1e-6)


def test_probability_is_bounded_and_the_inverse_is_finite() -> None:
    phi = np.array([-1e4, -50.0, 0.0, 15.0, 100.0, 1e4])
    p = sdf.probability_from_signed_distance(phi)
    assert np.all((p >= 0) & (p <= 1))
    back = sdf.signed_distance_from_probability(p)
    assert np.all(np.isfinite(back))
    np.testing.assert_allclose(back[1:5], phi[1:5], rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="beta"):
        sdf.probability_from_signed_distance(phi, beta=0.0)


def test_refusals_name_what_is_wrong() -> None:
    mask = np.zeros((5, 5), bool)
    with pytest.raises(ValueError, match="^mask is empty: the signed distance is undefined$"):
        sdf.signed_distance(mask, (1.0, 1.0))
    with pytest.raises(ValueError, match="^mask fills the whole grid: the signed distance is undefined$"):
        sdf.signed_distance(~mask, (1.0, 1.0))
    with pytest.raises(ValueError, match=r"^beta must be a positive slope in 1/mm, got -1\.0$"):
        sdf.probability_from_signed_distance(np.zeros(3), beta=-1.0)
    with pytest.raises(ValueError, match=r"^mu must be a finite distance in mm, got nan$"):
        sdf.signed_distance_from_probability(np.full(3, 0.5), mu=float("nan"))


def test_maps_are_float32_computed_in_double_precision() -> None:
    """Both logistic maps work in float64 and return float32: each voxel equals the double-precision formula rounded
    once (float32 arithmetic inside would round at every step)."""
    phi = np.linspace(-40.0, 60.0, 2001).astype(np.float32)
    beta, mu = 0.37, 3.3
    p = sdf.probability_from_signed_distance(phi, beta, mu)
    assert p.dtype == np.float32
    z = phi.astype(np.float64) - mu
    np.testing.assert_array_equal(p, (0.5 - 0.5 * np.tanh(0.5 * beta * z)).astype(np.float32))
    back = sdf.signed_distance_from_probability(p, beta, mu)
    assert back.dtype == np.float32
    q = np.clip(p.astype(np.float64), 1e-7, 1.0 - 1e-7)
    np.testing.assert_array_equal(back, (mu + (np.log1p(-q) - np.log(q)) / beta).astype(np.float32))


def test_tumor_threshold_and_region_are_the_boundary_phi_0() -> None:
    """P(phi = 0) = 1 / (1 + exp(-beta mu)) for any beta and mu; the region P >= it is phi <= 0, its boundary
    included."""
    for beta, mu in ((0.1, 15.0), (0.5, 2.0), (1.0, 0.0)):
        expected = 1.0 / (1.0 + np.exp(-beta * mu))
        assert sdf.tumor_threshold(beta, mu) == pytest.approx(expected, rel=1e-6)
        phi = np.array([-1.0, 0.0, 1e-3, 1.0], np.float32)
        p = sdf.probability_from_signed_distance(phi, beta, mu)
        assert sdf.tumor_region(p, beta, mu).tolist() == [True, True, False, False]
    assert sdf.TUMOR_THRESHOLD == pytest.approx(1.0 / (1.0 + np.exp(-0.1 * 15.0)), rel=1e-6)  # 0.8176
