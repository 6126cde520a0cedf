"""The evaluation metrics pinned down exactly (issue 34: tests that a wrong metric cannot pass): HD95 against MONAI on
anisotropic grids, every probability metric under a mask equal to the metric of the masked voxels, thresholds
strict, the refusals in full, volumes in mL (3D) and mm^2 (2D)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gliomaforecast import evaluation as ev
from gliomaforecast.evaluation import probability as pm


def _blob(shape, centre, radii, rng) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)) <= 1.0
    return inside ^ (rng.random(shape) < 0.02)  # a ragged surface


@pytest.mark.parametrize("spacing", [(2.0, 0.7, 1.3), (1.0, 1.0, 5.0)])
def test_hd95_equals_monai_on_anisotropic_grids(spacing) -> None:
    import torch
    from monai.metrics import compute_hausdorff_distance

    rng = np.random.default_rng(3)
    for _ in range(3):
        a = _blob((18, 20, 16), (9, 10, 8), (5, 6, 4), rng)
        b = _blob((18, 20, 16), (10, 9, 8), (4, 7, 5), rng)
        reference = compute_hausdorff_distance(
            torch.from_numpy(a[None, None]), torch.from_numpy(b[None, None]), percentile=95, spacing=list(spacing)
        )
        assert ev.hd95(a, b, spacing) == pytest.approx(float(reference), abs=1e-5)


def test_masks_must_be_binary_and_named() -> None:
    a = np.zeros((4, 4, 4), np.uint8)
    a[1:3, 1:3, 1:3] = 1
    two = a * 2
    for call, name in (
        (lambda: ev.dice(a, two), "mask b"),
        (lambda: ev.dice(two, a), "mask a"),
        (lambda: ev.hd95(two, a, (1, 1, 1)), "mask a"),
        (lambda: ev.hd95(a, two, (1, 1, 1)), "mask b"),
        (lambda: ev.coverage(two, a), "target"),
        (lambda: ev.coverage(a, two), "recurrence"),
        (lambda: ev.missed_volume_ml(two, a, (1, 1, 1)), "target"),
        (lambda: ev.missed_volume_ml(a, two, (1, 1, 1)), "recurrence"),
        (lambda: ev.volume_ml(two, (1, 1, 1)), "mask"),
    ):
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value) == f"{name} must be binary (0/1 or bool)"
    assert ev.dice(a, a.astype(bool)) == 1.0 and ev.coverage(a, a) == 1.0  # 0/1 integers are masks


def test_volumes_in_ml_and_mm2() -> None:
    cube = np.zeros((4, 5, 6), bool)
    cube[:2, :2, :2] = True
    assert ev.volume_ml(cube, (2.0, 3.0, 5.0)) == pytest.approx(8 * 30.0 / 1000.0)
    assert ev.volume_ml(cube[0], (3.0, 5.0)) == pytest.approx(4 * 15.0)  # 2D: mm^2


def test_probability_metrics_under_a_mask_are_the_masked_voxels() -> None:
    rng = np.random.default_rng(5)
    p, q = rng.random((6, 7, 8)), rng.random((6, 7, 8))
    mask = (rng.random(p.shape) < 0.4).astype(np.uint8)  # 0/1 integers
    inside = mask.astype(bool)
    for metric in (pm.rmse, pm.bce, pm.kl_divergence, pm.dice_at_threshold, pm.pearson_r,
                   pm.expected_calibration_error):
        masked = metric(p, q, mask=mask)
        assert masked == pytest.approx(metric(p[inside], q[inside]), rel=1e-12), metric.__name__
        assert masked != pytest.approx(metric(p, q), rel=1e-6), metric.__name__


def test_thresholds_are_strict_and_edges_defined() -> None:
    p = np.array([0.9, 0.8, 0.1])
    q = np.array([0.9, 0.9, 0.1])
    assert pm.dice_at_threshold(p, q) == pytest.approx(2 / 3)  # 0.8 itself is not above 0.8
    assert pm.dice_at_threshold(q, p) == pytest.approx(2 / 3)
    assert pm.dice_at_threshold(np.zeros(3), np.zeros(3)) == 1.0  # both empty
    assert pm.dice_at_threshold(np.ones(3), np.zeros(3)) == 0.0
    # Pearson over voxels above 0.2 in either map; exactly 0.2 is left out
    kept = pm.pearson_r(np.array([0.2, 0.5, 0.9, 0.3]), np.array([0.2, 0.6, 0.7, 0.1]))
    assert kept == pytest.approx(np.corrcoef([0.5, 0.9, 0.3], [0.6, 0.7, 0.1])[0, 1])
    assert pm.pearson_r(np.array([0.5, 0.9]), np.array([0.1, 0.7])) == pytest.approx(1.0)  # two voxels suffice
    assert math.isnan(pm.pearson_r(np.array([0.5, 0.9]), np.array([0.7, 0.7])))  # constant reference
    assert math.isnan(pm.pearson_r(np.array([0.5, 0.5]), np.array([0.1, 0.7])))  # constant prediction
    assert math.isnan(pm.pearson_r(np.array([0.5, 0.1]), np.array([0.1, 0.1])))  # one voxel kept


def test_bce_kl_and_calibration_values() -> None:
    assert pm.bce(np.array([1.0]), np.array([0.0])) == pytest.approx(-math.log(pm.EPS), rel=1e-6)
    assert pm.bce(np.array([0.0]), np.array([1.0])) == pytest.approx(-math.log(pm.EPS), rel=1e-6)
    assert pm.bce(np.array([0.25]), np.array([1.0])) == pytest.approx(-math.log(0.25))
    # KL(q || p) of normalised maps; voxels with q = 0 add nothing
    p, q = np.array([0.2, 0.2, 0.6]), np.array([0.5, 0.0, 0.5])
    pn, qn = p / p.sum(), q / q.sum()
    assert pm.kl_divergence(p, q) == pytest.approx(qn[0] * math.log(qn[0] / pn[0]) + qn[2] * math.log(qn[2] / pn[2]))
    for zero in ((np.zeros(3), q), (p, np.zeros(3))):
        with pytest.raises(ValueError) as err:
            pm.kl_divergence(*zero)
        assert str(err.value) == "KL divergence needs maps with some tumor probability (they sum to zero)"
    diagram = pm.reliability_diagram(np.array([0.05, 0.30, 0.30]), np.array([0.0, 1.0, 0.0]), n_bins=4)
    assert diagram.counts.tolist() == [1, 2, 0, 0]  # empty top bins still listed
    np.testing.assert_allclose(diagram.bin_edges, [0.0, 0.25, 0.5, 0.75, 1.0])
    assert np.isnan(diagram.confidence[2:]).all() and np.isnan(diagram.frequency[2:]).all()
    np.testing.assert_allclose(diagram.confidence[:2], [0.05, 0.30])
    np.testing.assert_allclose(diagram.frequency[:2], [0.0, 0.5])
    assert diagram.ece == pytest.approx((abs(0.0 - 0.05) + 2 * abs(0.5 - 0.30)) / 3)
    assert pm.expected_calibration_error(np.full(4, 0.5), np.full(4, 0.5), n_bins=1) == 0.0
    for bad in (0, 2.5):
        with pytest.raises(ValueError) as err:
            pm.reliability_diagram(np.zeros(2), np.zeros(2), n_bins=bad)
        assert str(err.value) == f"n_bins must be a whole number >= 1, got {bad}"


def test_map_refusals_in_full() -> None:
    p = np.full((3, 3), 0.5)
    cases = [
        (lambda: pm.rmse(p, p[:2]), "predicted (3, 3) and reference (2, 3) maps are not on one grid"),
        (lambda: pm.rmse(p, p, mask=np.ones((3, 2), bool)), "mask (3, 2) is not on the maps' grid (3, 3)"),
        (lambda: pm.rmse(p, p, mask=np.zeros((3, 3), bool)), "no voxels to evaluate"),
        (lambda: pm.rmse(p + 1, p), "predicted map must hold probabilities in [0, 1] (no NaN)"),
        (lambda: pm.rmse(p, p * np.nan), "reference map must hold probabilities in [0, 1] (no NaN)"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value) == message
    assert pm.rmse(np.array([0.5]), np.array([0.0])) == 0.5  # one voxel is enough
