"""Masks <-> planar contours in patient mm: exact round trips on oblique anisotropic grids, holes joined to their outer
contour by keyhole channels (read the same by even-odd and by union), foreign keyhole contours, contours off the
grid's slices."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path as PolygonPath
from scipy import ndimage

from conftest import oblique_grid
from gliomaforecast.dicom.contours import (OffGridContour, fill_even_odd, keyhole, mask_contours, rasterize,
                                           slice_contours)
from gliomaforecast.geometry import Grid


@pytest.mark.parametrize("seed", range(6))
def test_round_trip_is_exact_on_oblique_grids(seed):
    rng = np.random.default_rng(seed)
    grid = oblique_grid((7, 30, 26), (2.5, 0.9, 1.1))
    noise = rng.random(grid.shape)
    mask = noise > 0.6 if seed % 2 else ndimage.gaussian_filter(noise, 1.5) > 0.5  # speckle or blobs
    contours = [c for polygons in mask_contours(mask, grid).values() for c in polygons]
    assert np.array_equal(rasterize(contours, grid), mask)


@pytest.mark.parametrize("seed", range(4))
def test_keyhole_contours_do_not_overlap_so_union_reads_like_even_odd(seed):
    rng = np.random.default_rng(seed)
    mask = ndimage.gaussian_filter(rng.random((40, 36)), 1.2) > 0.5  # blobs with holes and islands in them
    nested = slice_contours(mask)
    joined = keyhole(nested)
    centres = np.argwhere(np.ones(mask.shape, bool))
    fills = [PolygonPath(p).contains_points(centres).reshape(mask.shape) for p in joined]  # matplotlib's reading
    assert np.array_equal(np.sum(fills, axis=0), mask)  # each centre inside exactly one contour, or none
    assert np.array_equal(fill_even_odd(joined, mask.shape), mask)
    assert len(joined) < len(nested)  # these masks have holes


def test_a_hole_is_joined_to_its_outer_contour():
    ring = np.zeros((20, 20), bool)
    ring[3:17, 3:17] = True
    ring[7:12, 8:13] = False
    ring[9, 10] = True  # an island inside the hole: a contour of its own
    assert len(slice_contours(ring)) == 3
    grid = Grid.identity((1, 20, 20), (3.0, 1.0, 1.0))
    contours = mask_contours(ring[None], grid)[0]
    assert len(contours) == 2
    assert np.array_equal(rasterize(contours, grid)[0], ring)


def test_keyhole_contour_reads_as_a_ring():
    """One polygon that runs round the outside, in along a cut, round the hole the other way and back out."""
    grid = Grid.identity((1, 20, 20), (2.0, 1.0, 1.0))
    outer = [(2.5, 2.5), (2.5, 16.5), (16.5, 16.5), (16.5, 2.5)]
    hole = [(6.5, 6.5), (11.5, 6.5), (11.5, 11.5), (6.5, 11.5)]  # reversed winding
    yx = np.array([(2.5, 6.5), *outer[1:], outer[0], (2.5, 6.5), *hole, (6.5, 6.5)])
    points = grid.index_to_physical(np.column_stack([np.zeros(len(yx)), yx]))
    expected = np.zeros((20, 20), bool)
    expected[3:17, 3:17] = True
    expected[7:12, 7:12] = False
    got = rasterize([points], grid)[0]
    assert np.count_nonzero(got != expected) <= 5  # at most the voxel centres on the zero-width cut (row 3..6, x 6.5)
    assert not got[7:12, 7:12].any() and got[3:17, 3:6].all()


def test_contour_between_slices_is_refused():
    grid = Grid.identity((4, 10, 10), (3.0, 1.0, 1.0))
    square = np.array([[0.5, 0.5, 4.5], [0.5, 4.5, 4.5], [4.5, 4.5, 4.5], [4.5, 0.5, 4.5]])  # z = 4.5 mm: slice 1.5
    with pytest.raises(OffGridContour):
        rasterize([square], grid)
    square[:, 2] = 6.0
    assert rasterize([square], grid)[2].sum() == 16
