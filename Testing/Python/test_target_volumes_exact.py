"""Both CTVs of targets/volumes.py against an independent construction (issue 34): the seed takes an open resection
cavity, the standard CTV is every brain voxel within the margin of it (scipy's exact EDT), voxels outside the brain
and on the barrier stay out of both CTVs even when enclosed or top-ranked, and masks may come as 0/1 numbers of any
type (as read from NIfTI)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from conftest import ball
from gliomaforecast.targets.volumes import build_targets, cavity_from_labels, standard_target, target_seed

SPACING = (2.0, 1.0, 1.0)
SHAPE = (16, 40, 40)
MARGIN = 10.0


@pytest.fixture(scope="module")
def scene() -> dict[str, np.ndarray]:
    gtv = ball(SHAPE, (8, 20, 14), 5.0, SPACING)
    cavity = ball(SHAPE, (8, 20, 22), 4.0, SPACING) & ~gtv  # beside the GTV, open to the brain: not enclosed by it
    brain = np.ones(SHAPE, np.uint8)
    brain[:, :, 34:] = 0  # the brain ends 8 mm from the cavity, inside the margin
    brain[7:9, 19:22, 5:7] = 0  # a pocket outside the brain (a ventricle), enclosed, 3-4 mm from the GTV
    barrier = np.zeros(SHAPE, np.uint8)
    barrier[:, 30:32, :34] = 1  # a wall 5 mm beyond the seed's edge
    return {"gtv": gtv, "cavity": cavity, "brain": brain, "barrier": barrier}


def test_the_cavity_of_a_label_map() -> None:
    labels = np.zeros((4, 5, 6), np.int16)
    labels[1, 1:3, 1:4] = 4
    labels[2, 2, 2], labels[3, 3, 3], labels[0, 0, 0] = 1, 2, 3
    cavity = cavity_from_labels(labels)
    assert cavity.dtype == bool and np.array_equal(cavity, labels == 4)
    assert cavity_from_labels(np.where(labels == 4, 2, labels)) is None  # labels without a cavity
    assert cavity_from_labels(None) is None


def test_the_seed_takes_an_open_cavity_from_masks_of_any_number_type(scene) -> None:
    gtv, cavity = scene["gtv"], scene["cavity"]
    union = gtv | cavity
    assert not np.array_equal(ndimage.binary_fill_holes(gtv), union)  # the cavity is not enclosed by the GTV
    for dtype in (bool, np.uint8, np.float32):
        seed = target_seed(gtv.astype(dtype), cavity.astype(dtype))
        assert seed.dtype == bool and np.array_equal(seed, union), dtype
    assert np.array_equal(target_seed(gtv.astype(np.float32)), gtv)


def test_the_standard_ctv_is_every_brain_voxel_within_the_margin_of_gtv_and_cavity(scene) -> None:
    gtv, cavity, brain = scene["gtv"], scene["cavity"], scene["brain"]
    standard = standard_target(gtv, SPACING, MARGIN, cavity=cavity, brain_mask=brain)
    expected = (ndimage.distance_transform_edt(~(gtv | cavity), sampling=SPACING) <= MARGIN) & brain.astype(bool)
    assert np.array_equal(standard, expected)
    assert not standard[7:9, 19:22, 5:7].any()  # the enclosed pocket outside the brain stays out
    assert standard[:, :, 33].any() and not standard[:, :, 34:].any()


def test_both_ctvs_keep_off_the_brains_outside_and_the_barrier_even_where_the_score_is_highest(scene) -> None:
    gtv, cavity, brain, barrier = scene["gtv"], scene["cavity"], scene["brain"], scene["barrier"]
    outside = brain == 0
    score = np.where(outside | (barrier == 1), 2.0, 0.0).astype(np.float32)  # the forecast would treat them first
    score += ndimage.gaussian_filter((gtv | cavity).astype(np.float32), 3.0)
    for kwargs, keep_out in (
        ({"brain_mask": brain}, outside),
        ({"brain_mask": brain, "barrier": barrier}, outside | (barrier == 1)),
        ({"barrier": barrier}, barrier == 1),
    ):
        t = build_targets(gtv, SPACING, MARGIN, score=score, cavity=cavity, **kwargs)
        assert np.array_equal(t.seed, gtv | cavity)
        assert np.array_equal(t.standard, standard_target(gtv, SPACING, MARGIN, cavity=cavity, **kwargs))
        for name, target in (("standard", t.standard), ("forecast", t.forecast)):
            assert not (target & keep_out).any(), (name, sorted(kwargs))
            assert target[gtv | cavity].all(), (name, sorted(kwargs))
        assert np.count_nonzero(t.forecast) == np.count_nonzero(t.standard) and t.forecast_shortfall == 0
    # without a brain mask the outside of this one is ordinary tissue: the top-ranked voxels are taken there
    free = build_targets(gtv, SPACING, MARGIN, score=score, cavity=cavity)
    assert free.forecast[outside].any() and free.standard[7:9, 19:22, 5:7].all()
