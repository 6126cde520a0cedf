"""A scan's brain mask from a template brain propagated onto it, refined by the scan's intensities.

Method (:func:`refine_brain`): inside the propagated brain (fraction > 0.5) deeper than :data:`BAND_MM` mm from its
outline: brain; outside it farther than that: not brain; in the band between, brain where the intensity is above
Otsu's threshold of the band's intensities (the brain's outline is the strongest edge there: brain against background
on a skull-stripped scan, tissue against CSF and bone on a whole head). Then the largest connected component, holes
filled, and a closing by a ball of :data:`CLOSING_MM` mm (sulci cut at the outline are closed again), holes filled.

Conventions: arrays are (z, y, x) on a grid of ``spacing`` (mm, array order); distances in mm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from ..errors import InputError

BAND_MM = 6.0  # the brain's outline is looked for within this distance (mm) of the propagated outline
CLOSING_MM = 4.0  # radius (mm) of the closing of the refined brain mask


def refine_brain(image: np.ndarray, spacing: tuple[float, ...], prior: np.ndarray) -> np.ndarray:
    """The brain mask (bool) of ``image`` (any intensity scale) from the propagated brain fraction ``prior`` (0..1,
    same shape), voxels of ``spacing`` mm (see the module docstring). A band without contrast keeps the propagated
    mask there. Raises InputError when the propagated brain misses the image."""
    inside = np.asarray(prior) > 0.5
    if not inside.any():
        raise InputError(None, "brain", "the propagated template brain misses the image")
    depth = signed_distance(inside, spacing)
    band = np.abs(depth) <= BAND_MM
    values = image[band]
    brain = depth > BAND_MM
    if values.size and float(values.max()) > float(values.min()):
        brain |= band & (image > threshold_otsu(values))
    else:
        brain |= band & inside
    brain = ndimage.binary_fill_holes(largest_component(brain))
    brain = ndimage.binary_closing(brain, ball(CLOSING_MM, spacing), border_value=0)
    return np.asarray(ndimage.binary_fill_holes(brain), dtype=bool)


def ball(radius_mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    """A ball of ``radius_mm`` (mm) as a structuring element (bool) on voxels of ``spacing`` (mm, array order)."""
    half = [int(np.floor(radius_mm / s)) for s in spacing]
    axes = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    dist2 = sum((a * s) ** 2 for a, s in zip(axes, spacing))
    return np.asarray(dist2 <= radius_mm**2 + 1e-9)


def signed_distance(mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Distance (mm, float32) to the outline of ``mask``: positive inside, negative outside."""
    inside = ndimage.distance_transform_edt(mask, sampling=spacing)
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
    return np.asarray(inside - outside, dtype=np.float32)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest face-connected component of ``mask`` (bool); ``mask`` itself when it has at most one."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return np.asarray(mask, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    return np.asarray(labels == int(np.argmax(sizes)) + 1)
