"""Evaluation: coverage, Dice, HD95, volumes, cohort statistics, probability-map and image metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import cdist
from skimage import metrics as skm

from gliomaforecast import evaluation as ev


def box(shape, lo, hi):
    m = np.zeros(shape, bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return m


# --- target metrics -------------------------------------------------------------------------------

def test_recurrence_definitions_from_brats_labels():
    labels = np.array([[[0, 1, 2, 3, 4]]])
    np.testing.assert_array_equal(ev.recurrence_mask(labels, "enhancing"), [[[0, 0, 0, 1, 0]]])
    np.testing.assert_array_equal(ev.recurrence_mask(labels, "enhancing+necrosis"), [[[0, 1, 0, 1, 0]]])
    np.testing.assert_array_equal(ev.tumor_core(labels), [[[0, 1, 0, 1, 0]]])
    with pytest.raises(ValueError, match="unknown recurrence"):
        ev.recurrence_mask(labels, "edema")


def test_coverage_dice_volumes():
    shape = (4, 10, 10)
    target = box(shape, (0, 0, 0), (4, 10, 5))
    recurrence = box(shape, (1, 2, 3), (3, 6, 8))  # 2 x 4 x 5 = 40 voxels, 2 x 4 x 2 = 16 covered
    assert ev.coverage(target, recurrence) == pytest.approx(16 / 40)
    assert ev.dice(target, recurrence) == pytest.approx(2 * 16 / (200 + 40))
    spacing = (5.0, 1.0, 0.5)  # 2.5 mm^3 per voxel
    assert ev.volume_ml(recurrence, spacing) == pytest.approx(40 * 2.5 / 1000)
    assert ev.missed_volume_ml(target, recurrence, spacing) == pytest.approx(24 * 2.5 / 1000)
    assert math.isnan(ev.coverage(target, np.zeros(shape, bool)))
    assert ev.dice(np.zeros(shape, bool), np.zeros(shape, bool)) == 1.0
    with pytest.raises(ValueError, match="one grid"):
        ev.coverage(target, recurrence[:-1])


def _hd95_reference(a, b, spacing):
    """Brute-force symmetric HD95 between face-boundary voxel centres (the definition in the docstring)."""
    from scipy import ndimage

    def surface(m):
        return np.argwhere(m & ~ndimage.binary_erosion(m, border_value=0)) * np.asarray(spacing)

    d = cdist(surface(a), surface(b))
    return max(np.percentile(d.min(1), 95), np.percentile(d.min(0), 95))


def test_hd95_is_spacing_aware_and_matches_brute_force():
    rng = np.random.default_rng(2)
    shape = (8, 20, 20)
    a = box(shape, (2, 4, 4), (6, 12, 12))
    b = box(shape, (3, 6, 8), (7, 16, 18)) | (rng.random(shape) > 0.995)
    for spacing in [(1.0, 1.0, 1.0), (5.0, 1.0, 1.0), (2.0, 0.5, 0.8)]:
        assert ev.hd95(a, b, spacing) == pytest.approx(_hd95_reference(a, b, spacing))
    # a shift of 2 voxels along z is 10 mm on a 5 mm axis
    c = np.roll(a, 2, axis=0)
    assert ev.hd95(a, c, (5.0, 1.0, 1.0)) == pytest.approx(10.0)
    assert ev.hd95(a, a, (5.0, 1.0, 1.0)) == 0.0
    assert math.isnan(ev.hd95(a, np.zeros(shape, bool), (1, 1, 1)))


def test_compare_plans_wilcoxon_and_effect_size():
    model = [0.9, 0.8, 0.75, 0.6, 0.95, 0.5, 0.7, np.nan]
    standard = [0.7, 0.8, 0.6, 0.65, 0.8, 0.3, 0.4, 0.5]
    res = ev.compare_plans(model, standard, patient_ids=[f"P{i}" for i in range(8)])
    expected = stats.wilcoxon(model[:7], standard[:7], zero_method="wilcox")
    assert res.n == 7 and res.n_excluded == 1
    assert res.p_value == pytest.approx(expected.pvalue) and res.statistic == pytest.approx(expected.statistic)
    # differences (non-zero): .2 .15 -.05 .15 .2 .3 -> ranks of |d|: 4.5 2.5 1 2.5 4.5 6; R- = 1, R+ = 20
    assert res.effect_size == pytest.approx((20 - 1) / 21)
    assert res.mean_model == pytest.approx(np.mean(model[:7]))
    assert res.rows[7]["patient_id"] == "P7" and math.isnan(res.rows[7]["model"])
    assert res.rows[0]["difference"] == pytest.approx(0.2)
    assert ev.compare_plans(standard, model).effect_size == pytest.approx(-res.effect_size)
    with pytest.raises(ValueError, match="no patient"):
        ev.compare_plans([0.5, 0.6], [0.5, 0.6])
    with pytest.raises(ValueError, match="paired"):
        ev.compare_plans([0.5, 0.6], [0.5])


def test_compare_plans_csv(tmp_path):
    res = ev.compare_plans([0.9, 0.2, 0.5], [0.1, 0.3, 0.2], patient_ids=["a", "b", "c"])
    text = res.write_csv(tmp_path / "t.csv").read_text().splitlines()
    assert text[0] == "patient_id,model,standard,difference" and text[2].startswith("b,0.2,0.3,")


# --- probability maps -----------------------------------------------------------------------------

def test_probability_metrics_against_direct_formulas():
    rng = np.random.default_rng(4)
    p = rng.random((6, 9, 9))
    q = rng.random((6, 9, 9))
    assert ev.rmse(p, q) == pytest.approx(np.sqrt(np.mean((p - q) ** 2)))
    assert ev.bce(p, q) == pytest.approx(-np.mean(q * np.log(p) + (1 - q) * np.log(1 - p)))
    assert ev.kl_divergence(p, q) == pytest.approx(stats.entropy(q.ravel(), p.ravel()))
    assert ev.kl_divergence(p, 3 * p / 3) == pytest.approx(0.0, abs=1e-12)
    assert ev.dice_at_threshold(p, q) == pytest.approx(ev.dice(p > 0.8, q > 0.8))
    keep = (p > 0.2) | (q > 0.2)
    assert ev.pearson_r(p, q) == pytest.approx(stats.pearsonr(p[keep], q[keep])[0])
    assert ev.pearson_r(p, p) == pytest.approx(1.0)
    mask = p > 0.5
    assert ev.rmse(p, q, mask=mask) == pytest.approx(np.sqrt(np.mean((p[mask] - q[mask]) ** 2)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ev.rmse(p * 2, q)
    with pytest.raises(ValueError, match="one grid"):
        ev.bce(p, q[:-1])


def test_ece_and_reliability_diagram():
    rng = np.random.default_rng(5)
    p = rng.random(200000)
    calibrated = (rng.random(p.size) < p).astype(float)
    assert ev.expected_calibration_error(p, calibrated) < 0.01
    overconfident = (rng.random(p.size) < 0.5).astype(float)
    # a constant 0.5 truth against uniform predictions: ECE = mean |0.5 - bin centre| = 0.25
    assert ev.expected_calibration_error(p, overconfident) == pytest.approx(0.25, abs=0.01)
    d = ev.reliability_diagram(np.array([0.05, 0.05, 0.95, 1.0]), np.array([0.0, 1.0, 1.0, 1.0]), n_bins=10)
    assert d.counts.tolist() == [2, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert d.frequency[0] == 0.5 and d.confidence[9] == pytest.approx(0.975)
    assert np.isnan(d.confidence[3])
    assert d.ece == pytest.approx(0.5 * 0.45 + 0.5 * 0.025)
    fig = ev.plot_reliability_diagram(d)
    assert len(fig.axes) == 2 and "ECE" in fig.axes[0].get_title()


# --- images ---------------------------------------------------------------------------------------

def test_psnr_ssim_match_scikit_image():
    rng = np.random.default_rng(6)
    ref = rng.random((8, 32, 32)) * 100
    img = ref + rng.normal(0, 5, ref.shape)
    rng_ = ref.max() - ref.min()
    assert ev.psnr(img, ref) == pytest.approx(skm.peak_signal_noise_ratio(ref, img, data_range=rng_))
    assert ev.ssim(img, ref) == pytest.approx(skm.structural_similarity(ref, img, data_range=rng_))
    assert ev.ssim(ref, ref) == pytest.approx(1.0)
    assert ev.psnr(ref, ref) == math.inf
    assert ev.psnr(ref + 1, ref) > ev.psnr(img, ref)
    with pytest.raises(ValueError, match="constant"):
        ev.psnr(img, np.zeros_like(ref))
