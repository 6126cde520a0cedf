"""Target volumes: standard (Euclidean / geodesic) margin CTV, iso-volumetric CTV, and the ctv command."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from gliomaforecast.targets import ctv
from gliomaforecast.io import images as io
from gliomaforecast.cli import main
from gliomaforecast.geometry import Grid
from gliomaforecast.targets.volumes import build_targets, fill_holes


def ball(shape, centre, radius_mm, spacing=(1.0, 1.0, 1.0)):
    idx = np.indices(shape).astype(float)
    d2 = sum(((i - c) * s) ** 2 for i, c, s in zip(idx, centre, spacing))
    return d2 <= radius_mm ** 2


def brute_force_margin(gtv, spacing, margin):
    """Every voxel within ``margin`` mm of some GTV voxel centre, by checking all pairs."""
    pts = np.argwhere(gtv) * np.asarray(spacing)
    grid = np.argwhere(np.ones(gtv.shape, bool)) * np.asarray(spacing)
    d2 = ((grid[:, None, :] - pts[None, :, :]) ** 2).sum(-1).min(1)
    return (d2 <= margin ** 2 + 1e-9).reshape(gtv.shape)


# --- standard CTV ---------------------------------------------------------------------------------

def test_standard_matches_brute_force_on_anisotropic_grid():
    rng = np.random.default_rng(3)
    gtv = np.zeros((9, 14, 13), bool)
    gtv[4, 6:8, 5:7] = True
    gtv[tuple(rng.integers(0, s) for s in gtv.shape)] = True
    spacing = (2.5, 0.9, 1.1)
    out = ctv.standard_ctv(gtv, spacing, margin_mm=4.0)
    np.testing.assert_array_equal(out, brute_force_margin(gtv, spacing, 4.0))


def test_exact_margin_distance_is_included():
    # (9, 12, 0) voxels away is exactly 15 mm at 1 mm spacing: inside; (9, 12, 1) is 15.03 mm: outside.
    gtv = np.zeros((25, 30, 5), bool)
    gtv[0, 0, 0] = True
    out = ctv.standard_ctv(gtv, (1, 1, 1), 15.0)
    assert out[9, 12, 0] and not out[9, 12, 1]


def test_anisotropic_margin_is_in_mm_not_voxels():
    shape = (21, 41, 41)
    gtv = np.zeros(shape, bool)
    gtv[10, 20, 20] = True
    spacing = (5.0, 1.0, 1.0)  # 1 x 1 x 5 mm (x, y, z)
    out = ctv.standard_ctv(gtv, spacing, 15.0)
    voxel_unit = ndimage.distance_transform_edt(~gtv) <= 15.0  # the published platform's margin
    # along z the margin reaches 3 slices (15 mm), not 15 slices; in-plane it reaches 15 voxels
    assert out[13, 20, 20] and not out[14, 20, 20]
    assert voxel_unit[20, 20, 20]
    assert out[10, 20, 35] and not out[10, 20, 36]
    assert out.sum() < voxel_unit.sum() / 3
    # the mm margin is close to the ellipsoid volume 4/3 pi 15^3 mm^3
    assert abs(out.sum() * 5.0 - 4 / 3 * np.pi * 15 ** 3) / (4 / 3 * np.pi * 15 ** 3) < 0.05


def test_brain_mask_clips_margin_but_keeps_gtv():
    shape = (20, 30, 30)
    gtv = ball(shape, (10, 15, 8), 4)
    brain = np.zeros(shape, bool)
    brain[:, :, 6:] = True  # GTV sticks out of the brain on the left
    out = ctv.standard_ctv(gtv, (1, 1, 1), 5.0, brain_mask=brain)
    assert np.all(out[gtv])
    assert not np.any(out & ~brain & ~gtv)
    assert out[10, 15, 16] and not out[10, 15, 2]


def test_zero_margin_is_the_gtv():
    gtv = ball((10, 12, 12), (5, 6, 6), 3)
    np.testing.assert_array_equal(ctv.standard_ctv(gtv, (1, 1, 1), 0.0), gtv)


def test_gtv_filling_the_grid():
    gtv = np.ones((3, 4, 5), bool)
    assert ctv.standard_ctv(gtv, (1, 1, 1), 15.0).all()
    assert ctv.standard_ctv(gtv, (1, 1, 1), 15.0, barrier=np.zeros_like(gtv)).all()


def test_inputs_are_not_modified():
    gtv = ball((12, 12, 12), (6, 6, 6), 2)
    brain = np.ones_like(gtv)
    wall = np.zeros_like(gtv)
    copies = [a.copy() for a in (gtv, brain, wall)]
    ctv.standard_ctv(gtv, (1, 1, 1), 3.0, brain_mask=brain, barrier=wall)
    for a, c in zip((gtv, brain, wall), copies):
        np.testing.assert_array_equal(a, c)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 16), m1=st.floats(0, 8, allow_subnormal=False), m2=st.floats(0, 8, allow_subnormal=False),
       spacing=st.tuples(st.sampled_from([0.8, 1.0, 2.5, 5.0]), st.sampled_from([0.7, 1.0, 1.5]),
                         st.sampled_from([0.7, 1.0, 1.5])))
def test_standard_properties(seed, m1, m2, spacing):
    rng = np.random.default_rng(seed)
    shape = (8, 16, 16)
    gtv = rng.random(shape) > 0.995
    gtv[4, 8, 8] = True
    brain = ball(shape, (4, 8, 8), 9.0, spacing=(1, 1, 1)) | gtv
    small, large = sorted((m1, m2))
    a = ctv.standard_ctv(gtv, spacing, small, brain_mask=brain)
    b = ctv.standard_ctv(gtv, spacing, large, brain_mask=brain)
    assert np.all(a[gtv]) and np.all(b[gtv])  # GTV inside
    assert not np.any(b & ~brain)  # brain mask respected
    assert np.all(b[a])  # monotone in the margin
    np.testing.assert_array_equal(a, ctv.standard_ctv(gtv, spacing, small, brain_mask=brain))  # determinism
    np.testing.assert_array_equal(b, brute_force_margin(gtv, spacing, large) & brain)


# --- geodesic margin ------------------------------------------------------------------------------

def test_geodesic_without_barrier_agrees_with_euclidean():
    shape = (30, 50, 50)
    spacing = (2.0, 1.0, 1.0)
    gtv = ball(shape, (15, 25, 25), 8, spacing)
    eu = ctv.standard_ctv(gtv, spacing, 10.0)
    geo = ctv.standard_ctv(gtv, spacing, 10.0, barrier=np.zeros(shape, bool))
    assert abs(int(geo.sum()) - int(eu.sum())) / eu.sum() < 0.03
    # they differ only in a thin shell where the Euclidean distance is within 1 mm of the margin
    dist = ndimage.distance_transform_edt(~gtv, sampling=spacing)
    assert np.all(np.abs(dist[geo != eu] - 10.0) < 1.0)
    assert np.all(geo[dist <= 9.0]) and not np.any(geo[dist > 11.0])


def test_barrier_wall_stops_the_margin():
    shape = (20, 40, 40)
    gtv = ball(shape, (10, 20, 12), 3)
    wall = np.zeros(shape, bool)
    wall[:, :, 18] = True  # a full plane 6 mm from the tumor edge
    out = ctv.standard_ctv(gtv, (1, 1, 1), 15.0, barrier=wall)
    eu = ctv.standard_ctv(gtv, (1, 1, 1), 15.0)
    assert eu[:, :, 19:].any()  # Euclidean margin crosses the wall ...
    assert not out[:, :, 18:].any()  # ... the geodesic one stops in front of it
    assert out[10, 20, 17]


def test_barrier_with_a_hole_lets_the_margin_around_only_by_the_longer_path():
    shape = (3, 60, 40)
    gtv = np.zeros(shape, bool)
    gtv[1, 30, 10] = True
    wall = np.zeros(shape, bool)
    wall[:, :, 15] = True
    wall[:, 38:41, 15] = False  # a 3-voxel hole 8 mm off axis
    out = ctv.standard_ctv(gtv, (1, 1, 1), 15.0, barrier=wall)
    assert not out[wall].any()
    assert out[1, 39, 16]  # right behind the hole: about 10.3 mm by the path through it
    # straight behind the wall, 6 mm away in a straight line but about 15.6 mm around through the hole
    assert not out[1, 30, 16]
    assert ctv.standard_ctv(gtv, (1, 1, 1), 15.0)[1, 30, 16]


def test_gtv_walled_in_by_the_barrier_keeps_only_the_gtv():
    gtv = np.zeros((9, 9, 9), bool)
    gtv[4, 4, 4] = True
    wall = np.zeros_like(gtv)
    wall[3:6, 3:6, 3:6] = True
    np.testing.assert_array_equal(ctv.standard_ctv(gtv, (1, 1, 1), 5.0, barrier=wall), gtv)
    np.testing.assert_array_equal(ctv.standard_ctv(gtv, (1, 1, 1), 5.0, barrier=np.ones_like(gtv)), gtv)


def test_outside_brain_is_a_barrier_for_the_geodesic_margin():
    shape = (3, 40, 40)
    gtv = np.zeros(shape, bool)
    gtv[1, 20, 10] = True
    brain = np.ones(shape, bool)
    brain[:, :, 14] = False  # a sulcus-like gap through the whole slab
    out = ctv.standard_ctv(gtv, (1, 1, 1), 10.0, brain_mask=brain, barrier=np.zeros(shape, bool))
    assert not out[:, :, 14:].any()
    assert ctv.standard_ctv(gtv, (1, 1, 1), 10.0, brain_mask=brain)[1, 20, 16]


# --- iso-volumetric CTV ---------------------------------------------------------------------------

def test_iso_selects_highest_scores_and_keeps_gtv():
    score = np.arange(60, dtype=float).reshape(3, 4, 5)
    gtv = np.zeros(score.shape, bool)
    gtv[0, 0, 0] = True  # the lowest score
    out = ctv.isovolumetric_ctv(score, 6, (1, 1, 1), gtv=gtv)
    assert out.sum() == 6 and out[0, 0, 0]
    assert set(np.flatnonzero(out)) == {0, 55, 56, 57, 58, 59}


def test_iso_ties_go_to_the_closer_voxel_in_mm_then_lower_index():
    score = np.ones((1, 1, 9))
    gtv = np.zeros(score.shape, bool)
    gtv[0, 0, 6] = True
    out = ctv.isovolumetric_ctv(score, 3, (1, 1, 1), gtv=gtv)
    assert set(np.flatnonzero(out)) == {5, 6, 7}
    out = ctv.isovolumetric_ctv(score, 4, (1, 1, 1), gtv=gtv)
    assert set(np.flatnonzero(out)) == {4, 5, 6, 7}  # 4 and 8 are both 2 mm away: lower index wins
    # distance is in mm: on a 3 mm x 1 mm grid, the in-plane neighbours are closer than the z ones
    score = np.ones((3, 1, 3))
    gtv = np.zeros(score.shape, bool)
    gtv[1, 0, 1] = True
    out = ctv.isovolumetric_ctv(score, 3, (3.0, 1.0, 1.0), gtv=gtv)
    assert set(np.flatnonzero(out)) == {3, 4, 5}
    # without a GTV, ties go to the lower flat index
    out = ctv.isovolumetric_ctv(np.ones((2, 2, 2)), 3, (1, 1, 1))
    assert set(np.flatnonzero(out)) == {0, 1, 2}


def test_iso_fills_by_distance_when_too_few_positive_scores():
    score = np.zeros((1, 1, 12))
    score[0, 0, 9] = 0.7
    score[0, 0, 0] = np.nan
    gtv = np.zeros(score.shape, bool)
    gtv[0, 0, 2] = True
    out = ctv.isovolumetric_ctv(score, 5, (1, 1, 1), gtv=gtv)
    # chosen: GTV (2) and the positive voxel (9); fill at 1 mm: 1, 3, 8, 10 -> lowest indices 1, 3, 8
    assert set(np.flatnonzero(out)) == {1, 2, 3, 8, 9}
    # NaN ranks below every voxel with a score, however close it is
    out = ctv.isovolumetric_ctv(score, 11, (1, 1, 1), gtv=gtv)
    assert not out[0, 0, 0] and out.sum() == 11


def test_iso_all_nan_score_with_gtv_is_a_distance_margin():
    shape = (15, 21, 21)
    gtv = ball(shape, (7, 10, 10), 3)
    std = ctv.standard_ctv(gtv, (1, 1, 1), 4.0)
    out = ctv.isovolumetric_ctv(np.full(shape, np.nan), int(std.sum()), (1, 1, 1), gtv=gtv)
    np.testing.assert_array_equal(out, std)


def test_iso_matches_stable_argsort_reference_without_ties():
    rng = np.random.default_rng(0)
    shape = (20, 24, 24)
    score = rng.random(shape)
    brain = ball(shape, (10, 12, 12), 10)
    k = 700
    cand = np.flatnonzero(brain)
    ref = np.zeros(shape, bool)
    ref.flat[cand[np.argsort(score.flat[cand], kind="stable")[-k:]]] = True
    np.testing.assert_array_equal(ctv.isovolumetric_ctv(score, k, (1, 1, 1), brain_mask=brain), ref)


@settings(max_examples=40, deadline=None)
@given(score=hnp.arrays(np.float32, (6, 7, 8), elements=st.one_of(
           st.sampled_from([0.0, 0.5, 1.0, -1.0, np.nan]), st.floats(-2, 2, width=32, allow_subnormal=False))),
       n=st.integers(0, 400), seed=st.integers(0, 1000),
       spacing=st.tuples(st.sampled_from([1.0, 5.0]), st.sampled_from([1.0, 0.8]), st.just(1.0)))
def test_iso_properties(score, n, seed, spacing):
    rng = np.random.default_rng(seed)
    gtv = np.zeros(score.shape, bool)
    gtv[3, 3, 4] = True
    gtv |= rng.random(score.shape) > 0.97
    brain = (rng.random(score.shape) > 0.2) | gtv
    n = max(n, int(gtv.sum()))
    copy = score.copy()
    out = ctv.isovolumetric_ctv(score, n, spacing, gtv=gtv, brain_mask=brain)
    assert out.sum() == min(n, int(brain.sum()))  # exact volume (or every candidate)
    assert np.all(out[gtv])  # GTV inside
    assert not np.any(out & ~brain)  # brain mask respected
    np.testing.assert_array_equal(out, ctv.isovolumetric_ctv(score, n, spacing, gtv=gtv, brain_mask=brain))
    np.testing.assert_array_equal(score, copy)
    # every chosen positive voxel scores at least as high as any positive voxel left out
    chosen, left = out & ~gtv & (score > 0), ~out & brain & (score > 0)
    if chosen.any() and left.any():
        assert score[chosen].min() >= score[left].max()
    if left.any():  # positives are left out only when the fill was not needed
        assert not np.any(out & ~gtv & ~(score > 0))


# --- bad input ------------------------------------------------------------------------------------

def test_bad_input_standard():
    gtv = ball((10, 10, 10), (5, 5, 5), 2)
    with pytest.raises(ValueError, match="empty"):
        ctv.standard_ctv(np.zeros_like(gtv), (1, 1, 1))
    with pytest.raises(ValueError, match="margin"):
        ctv.standard_ctv(gtv, (1, 1, 1), -1.0)
    with pytest.raises(ValueError, match="margin"):
        ctv.standard_ctv(gtv, (1, 1, 1), float("nan"))
    with pytest.raises(ValueError, match="outside the brain mask"):
        brain = np.zeros_like(gtv)
        brain[0] = True
        ctv.standard_ctv(gtv, (1, 1, 1), brain_mask=brain)
    with pytest.raises(ValueError, match="shape"):
        ctv.standard_ctv(gtv, (1, 1, 1), brain_mask=np.ones((10, 10, 11), bool))
    with pytest.raises(ValueError, match="spacing"):
        ctv.standard_ctv(gtv, (1, 0, 1))
    with pytest.raises(ValueError, match="binary"):
        ctv.standard_ctv(gtv * 2, (1, 1, 1))


def test_bad_input_iso():
    gtv = ball((10, 10, 10), (5, 5, 5), 2)
    score = np.random.default_rng(0).random(gtv.shape)
    with pytest.raises(ValueError, match="shape"):
        ctv.isovolumetric_ctv(score[:-1], 50, (1, 1, 1), gtv=gtv)
    with pytest.raises(ValueError, match="smaller than the GTV"):
        ctv.isovolumetric_ctv(score, int(gtv.sum()) - 1, (1, 1, 1), gtv=gtv)
    with pytest.raises(ValueError, match="n_voxels"):
        ctv.isovolumetric_ctv(score, -3, (1, 1, 1))
    for bad in (2.5, float("nan"), "7", True):
        with pytest.raises(ValueError, match="n_voxels"):
            ctv.isovolumetric_ctv(score, bad, (1, 1, 1))
    assert ctv.isovolumetric_ctv(score, np.int64(40), (1, 1, 1), gtv=gtv).sum() == 40
    assert ctv.isovolumetric_ctv(score, 40.0, (1, 1, 1), gtv=gtv).sum() == 40
    with pytest.raises(ValueError, match="empty"):
        ctv.isovolumetric_ctv(score, 50, (1, 1, 1), gtv=np.zeros_like(gtv))
    with pytest.raises(ValueError, match="nothing to grow"):
        ctv.isovolumetric_ctv(np.full(gtv.shape, np.nan), 50, (1, 1, 1))
    # more voxels than candidates: every candidate (documented), no error
    brain = ball(gtv.shape, (5, 5, 5), 3)
    out = ctv.isovolumetric_ctv(score, 10 ** 6, (1, 1, 1), gtv=gtv, brain_mask=brain)
    np.testing.assert_array_equal(out, brain | gtv)


# --- command line ---------------------------------------------------------------------------------

@pytest.fixture()
def case_files(tmp_path):
    shape = (20, 30, 30)
    grid = Grid(shape, (2.0, 1.0, 1.0), (-10.0, 5.0, 3.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    gtv = ball(shape, (10, 15, 15), 4, grid.spacing)
    brain = ball(shape, (10, 15, 15), 13, grid.spacing) | gtv
    score = np.random.default_rng(1).random(shape).astype(np.float32)
    paths = {}
    for name, arr in (("gtv", gtv), ("brain", brain), ("score", score)):
        paths[name] = io.write_image(tmp_path / f"{name}.nii.gz", arr, grid)
    return tmp_path, grid, gtv, brain, score, paths


def test_cli_writes_targets(case_files, capsys):
    tmp, grid, gtv, brain, score, paths = case_files
    out = tmp / "targets"
    rc = main(["ctv", "--gtv", str(paths["gtv"]), "--score", str(paths["score"]), "--brain-mask",
               str(paths["brain"]), "--margin-mm", "6", "--out", str(out)])
    assert rc == 0
    std, g1 = io.read_mask(out / "ctv_standard.nii.gz", "ctv")
    fc, g2 = io.read_mask(out / "ctv_forecast.nii.gz", "ctv")
    assert g1.same_as(grid) and g2.same_as(grid)
    np.testing.assert_array_equal(std, ctv.standard_ctv(gtv, grid.spacing, 6.0, brain_mask=brain))
    # issue 17: both CTVs follow gliomaforecast.targets.volumes (no interior holes; this random score leaves some)
    targets = build_targets(gtv, grid.spacing, 6.0, score=score, brain_mask=brain)
    np.testing.assert_array_equal(fc, targets.forecast)
    assert not (fill_holes(fc, ~brain) & ~fc).any() and 0 <= std.sum() - fc.sum() == targets.forecast_shortfall <= 5
    plain = ctv.isovolumetric_ctv(score, int(std.sum()), grid.spacing, gtv, brain)
    assert (fill_holes(plain, ~brain) & ~plain).any()  # what the old CLI wrote had holes
    segs, g3 = io.read_segmentation(out / "targets.seg.nrrd")
    assert list(segs) == ["GTV", "CTV standard", "CTV forecast"] and g3.same_as(grid)
    np.testing.assert_array_equal(segs["CTV forecast"], fc)
    printed = capsys.readouterr().out
    assert f"{std.sum() * grid.voxel_volume_ml:.2f} mL" in printed


def test_cli_without_score_and_with_barrier(case_files):
    tmp, grid, gtv, brain, score, paths = case_files
    wall = np.zeros(gtv.shape, bool)
    wall[:, :, 21] = True
    io.write_image(tmp / "wall.nii.gz", wall, grid)
    out = tmp / "t"
    assert main(["ctv", "--gtv", str(paths["gtv"]), "--barrier", str(tmp / "wall.nii.gz"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["ctv_standard.nii.gz", "targets.json", "targets.seg.nrrd"]
    std, _ = io.read_mask(out / "ctv_standard.nii.gz", "ctv")
    assert std.any() and not std[:, :, 21:].any()


@pytest.mark.parametrize("problem", ["grid", "empty", "outside", "margin"])
def test_cli_bad_input_one_line_exit_2(case_files, capsys, problem):
    tmp, grid, gtv, brain, score, paths = case_files
    args = ["ctv", "--gtv", str(paths["gtv"]), "--score", str(paths["score"]), "--out", str(tmp / "o")]
    if problem == "grid":
        other = Grid(grid.shape, (1.0, 1.0, 1.0), grid.origin, grid.direction)
        io.write_image(tmp / "score2.nii.gz", score, other)
        args[4] = str(tmp / "score2.nii.gz")
    elif problem == "empty":
        io.write_image(tmp / "empty.nii.gz", np.zeros_like(gtv), grid)
        args[2] = str(tmp / "empty.nii.gz")
    elif problem == "outside":
        far = np.zeros_like(gtv)
        far[0, 0, 0] = True
        io.write_image(tmp / "far.nii.gz", far, grid)
        args += ["--brain-mask", str(tmp / "far.nii.gz")]
    else:
        args += ["--margin-mm", "-2"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error" in err and "Traceback" not in err
    assert {"grid": "score2.nii.gz", "empty": "empty.nii.gz", "outside": "far.nii.gz", "margin": "--margin-mm"}[problem] in err
    assert not (tmp / "o").exists()


def test_cli_barrier_over_the_whole_gtv_still_gives_a_forecast_ctv(case_files):
    tmp, grid, gtv, brain, score, paths = case_files
    wall = ndimage.binary_dilation(gtv, iterations=2)  # e.g. a tumor inside a ventricle outline
    io.write_image(tmp / "wall.nii.gz", wall, grid)
    out = tmp / "t"
    assert main(["ctv", "--gtv", str(paths["gtv"]), "--score", str(paths["score"]), "--brain-mask",
                 str(paths["brain"]), "--barrier", str(tmp / "wall.nii.gz"), "--out", str(out)]) == 0
    std, _ = io.read_mask(out / "ctv_standard.nii.gz", "ctv")
    fc, _ = io.read_mask(out / "ctv_forecast.nii.gz", "ctv")
    np.testing.assert_array_equal(fc, ctv.isovolumetric_ctv(score, int(std.sum()), grid.spacing, gtv,
                                                            (brain & ~wall) | gtv))
    assert fc[gtv].all() and not fc[wall & ~gtv].any()


def test_refusals_name_the_input_exactly():
    """The whole message, not a word of it: each names the input at fault (issue 34: a mutated name or text must
    fail a test)."""
    gtv = ball((10, 10, 10), (5, 5, 5), 2)
    score = np.random.default_rng(0).random(gtv.shape)
    cases = [
        (lambda: ctv.standard_ctv(np.zeros_like(gtv), (1, 1, 1)),
         "GTV is empty: there is no tumor to draw a target around"),
        (lambda: ctv.standard_ctv(gtv, (1, 1, 1), brain_mask=np.eye(10, dtype=bool)[None].repeat(10, 0) & ~gtv),
         "GTV lies entirely outside the brain mask (check that both share one grid)"),
        (lambda: ctv.standard_ctv(gtv[None], (1, 1, 1, 1)), "gtv must be a 2D or 3D mask, got 4D"),
        (lambda: ctv.standard_ctv(gtv, (1, 1, 1), brain_mask=np.ones((10, 10, 11), bool)),
         "brain mask has shape (10, 10, 11), expected (10, 10, 10) (all inputs must share one grid)"),
        (lambda: ctv.standard_ctv(gtv, (1, 1, 1), barrier=np.ones((9, 10, 10), bool)),
         "barrier has shape (9, 10, 10), expected (10, 10, 10) (all inputs must share one grid)"),
        (lambda: ctv.isovolumetric_ctv(score, 50, (1, 1, 1), gtv=gtv[:, :, :9]),
         "gtv has shape (10, 10, 9), expected (10, 10, 10) (all inputs must share one grid)"),
        (lambda: ctv.isovolumetric_ctv(score, 50, (1, 1, 1), brain_mask=np.ones((10, 9, 10), bool)),
         "brain mask has shape (10, 9, 10), expected (10, 10, 10) (all inputs must share one grid)"),
        (lambda: ctv.isovolumetric_ctv(score[0, 0], 5, (1,)), "score must be a real-valued 2D or 3D map, got 1D float64"),
        (lambda: ctv.isovolumetric_ctv(np.full(gtv.shape, np.nan), 50, (1, 1, 1)),
         "no voxel scores above zero and there is no GTV: nothing to grow the target from"),
        (lambda: ctv.isovolumetric_ctv(score, 10, (1, 1, 1), gtv=gtv, brain_mask=np.zeros_like(gtv)),
         "GTV lies entirely outside the brain mask (check that both share one grid)"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value) == message
    with pytest.raises(ValueError, match="^score must be a real-valued 2D or 3D map, got 3D <U"):
        ctv.isovolumetric_ctv(score.astype(str), 5, (1, 1, 1))


def test_zero_voxels_is_the_gtv_alone_and_an_empty_target_without_one():
    gtv = ball((10, 10, 10), (5, 5, 5), 2)
    score = np.random.default_rng(1).random(gtv.shape)
    assert not ctv.isovolumetric_ctv(score, 0, (1, 1, 1)).any()
    np.testing.assert_array_equal(ctv.isovolumetric_ctv(score, int(gtv.sum()), (1, 1, 1), gtv=gtv), gtv)


def test_largest_selects_exactly_k_from_zero_to_all():
    values = np.array([3.0, 1.0, 3.0, 2.0, 0.5])
    assert ctv._largest(values, 0).tolist() == [False] * 5
    assert ctv._largest(values, 1).tolist() == [True, False, False, False, False]  # tie: the earlier position
    assert ctv._largest(values, 2).tolist() == [True, False, True, False, False]
    assert ctv._largest(values, 5).all() and ctv._largest(values, 9).all()
    later_wins = ctv._largest(values, 1, tie_key=lambda positions: positions.astype(float))
    assert later_wins.tolist() == [False, False, True, False, False]


def test_iso_takes_the_last_voxels_from_the_unscored_ones():
    """Too few positive scores: the scored voxels come first by distance, then the NaN ones, down to the last
    voxel asked for."""
    gtv = np.zeros((7, 7, 7), bool)
    gtv[3, 3, 3] = True
    score = np.full(gtv.shape, np.nan)
    score[3, 3, 1] = 0.9  # one positive
    score[3, 3, 5], score[3, 5, 3] = 0.0, -1.0  # two scored, not positive
    n = 1 + 1 + 2 + 1  # the GTV, the positive, both scored, one unscored
    out = ctv.isovolumetric_ctv(score, n, (1.0, 1.0, 1.0), gtv=gtv)
    assert out.sum() == n
    assert out[3, 3, 1] and out[3, 3, 5] and out[3, 5, 3]
    assert np.isnan(score[out & ~gtv]).sum() == 1
