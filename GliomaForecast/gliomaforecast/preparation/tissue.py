"""White matter (WM), grey matter (GM) and cerebrospinal fluid (CSF) probabilities of a scan's brain, from template
priors propagated onto it and the scan's intensities.

:func:`tissue_posteriors`: an expectation-maximisation (EM) fit of a three-class Gaussian mixture of the intensities
inside the brain in which the priors weight each voxel's classes (posterior ∝ prior x likelihood). The priors are
smoothed by a Gaussian of :data:`PRIOR_SIGMA_MM` mm (an affine registration leaves the template's folds a few mm off
the patient's), normalised to sum to 1 and mixed with :data:`PRIOR_FLOOR` of a uniform prior (so the intensities can
overrule them; uniform where the template has no tissue). The fit starts from the prior-weighted means and variances
and runs :data:`EM_ITERATIONS` iterations (it stops early, keeping the last fit, should two class means swap order:
the fit would have left the priors' classes); from the second on, it also estimates a smooth multiplicative bias field
(MR intensity non-uniformity): the ratio of the Gaussian-smoothed (:data:`BIAS_SIGMA_MM` mm) intensities to the
smoothed intensities the classes predict, both weighted by the posterior over the class variance, scaled to a median
of 1. The final posterior weights the likelihood by the priors raised to :data:`FINAL_PRIOR_POWER` (tempered: the
priors place the classes for the fit, the intensities decide each voxel). Excluded voxels (a tumour) take no part in
the fit and keep the normalised priors.

:func:`tissue_warp`: a deformable refinement of the priors, modality-independent: symmetric-forces demons
(:data:`DEMONS_ITERATIONS` iterations, displacement smoothed by :data:`DEMONS_SIGMA_MM` mm) of the priors' tissue
image onto the posteriors' tissue image (WM, GM, CSF weighted :data:`TISSUE_CONTRAST`); its displacement field
carries the priors closer to the patient's folds and ventricles before a second fit.

Conventions: arrays are (z, y, x) on a :class:`~gliomaforecast.geometry.Grid` (spacing in mm); intensities in the
scan's own units. Deterministic: plain arithmetic, and the demons and the bias field's smoothing run on one thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..geometry import Grid, resample_to, to_sitk
from .registration import one_thread

TISSUES = ("wm", "gm", "csf")
PRIOR_SIGMA_MM = 4.0  # sd (mm) of the Gaussian smoothing of the propagated priors
PRIOR_FLOOR = 0.05  # the priors are mixed with this much of a uniform prior
EM_ITERATIONS = 20
BIAS_SIGMA_MM = 40.0  # sd (mm) of the Gaussian smoothing of the bias field's estimate
FINAL_PRIOR_POWER = 0.3  # the final posterior's priors are raised to this power (1: as in the fit)
DEMONS_ITERATIONS = 30
DEMONS_SIGMA_MM = 5.0  # sd (mm) of the Gaussian smoothing of the demons' displacement field
DEMONS_MARGIN_MM = 10.0  # the demons run over the brain's bounding box grown by this margin (mm)
TISSUE_CONTRAST = (1.0, 0.6, 0.2)  # the tissue image of WM, GM, CSF probabilities that the demons register


def tissue_posteriors(
    image: np.ndarray, grid: Grid, brain: np.ndarray, priors: Sequence[np.ndarray], exclude: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WM, GM, CSF probabilities (float32, summing to 1 inside ``brain``, 0 outside) of ``image`` on ``grid`` given
    the propagated ``priors`` (WM, GM, CSF, 0..1) (see the module docstring); the voxels of ``exclude`` (bool) keep
    the normalised priors."""
    smooth = [_smoothed(p, grid, PRIOR_SIGMA_MM) for p in priors]
    stacked = np.stack([p[brain] for p in smooth]).astype(np.float64)
    prior = _normalised(stacked)
    fit = ~np.asarray(exclude, dtype=bool)[brain]
    post = prior.copy()
    if np.count_nonzero(fit) >= len(TISSUES):
        index = tuple(i[fit] for i in np.nonzero(brain))
        x = image[brain][fit].astype(np.float64)
        post[:, fit] = _em(x, prior[:, fit], _normalised(stacked[:, fit] ** FINAL_PRIOR_POWER), index, grid)
    out = []
    for k in range(len(TISSUES)):
        m = np.zeros(brain.shape, dtype=np.float32)
        m[brain] = post[k]
        out.append(m)
    return out[0], out[1], out[2]


def _smoothed(array: np.ndarray, grid: Grid, sigma_mm: float) -> np.ndarray:
    return ndimage.gaussian_filter(np.asarray(array, dtype=np.float32), [sigma_mm / s for s in grid.spacing])


def _normalised(p: np.ndarray) -> np.ndarray:
    """Priors (3, n) normalised to sum to 1 (uniform where they are all about 0), mixed with :data:`PRIOR_FLOOR` of a
    uniform prior."""
    total = p.sum(axis=0)
    p = np.where(total > 1e-6, p / np.maximum(total, 1e-12), 1.0 / len(TISSUES))
    return (1.0 - PRIOR_FLOOR) * p + PRIOR_FLOOR / len(TISSUES)


def _em(x: np.ndarray, prior: np.ndarray, final_prior: np.ndarray, index: tuple, grid: Grid) -> np.ndarray:
    """Posteriors (3, n) of the intensities ``x`` (n) of the voxels at ``index`` (on ``grid``) under the priors
    (3, n): :data:`EM_ITERATIONS` EM iterations with a bias field, then the posterior under ``final_prior``."""
    post = prior
    gain = np.ones_like(x)
    floor = 1e-6 * max(float(np.var(x)), 1e-12)
    fitted = (gain, np.zeros(len(TISSUES)), np.ones(len(TISSUES)))
    order = None
    for it in range(EM_ITERATIONS + 1):
        weight = post.sum(axis=1) + 1e-12
        mean = (post * (x / gain)).sum(axis=1) / weight
        var = np.maximum((post * (x / gain - mean[:, None]) ** 2).sum(axis=1) / weight, floor)
        order = np.argsort(mean) if order is None else order
        if not np.array_equal(np.argsort(mean), order):
            break  # two classes swapped places: the fit left the priors' classes, keep the last fit that did not
        if it > 0:
            gain = _bias_gain(x, post, mean, var, index, grid)
        fitted = (gain, mean, var)
        post = _posterior(x / gain, mean, var, prior)
    gain, mean, var = fitted
    return _posterior(x / gain, mean, var, final_prior)


def _posterior(x: np.ndarray, mean: np.ndarray, var: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """prior x Gaussian likelihood, normalised over the classes (3, n)."""
    log_post = np.log(prior) - 0.5 * ((x - mean[:, None]) ** 2 / var[:, None] + np.log(var)[:, None])
    log_post -= log_post.max(axis=0)
    post = np.exp(log_post)
    return post / post.sum(axis=0)


def _bias_gain(
    x: np.ndarray, post: np.ndarray, mean: np.ndarray, var: np.ndarray, index: tuple, grid: Grid
) -> np.ndarray:
    """The multiplicative bias field at the voxels (n): smoothed intensities over smoothed predicted intensities,
    both weighted by posterior / variance (:data:`BIAS_SIGMA_MM` mm), scaled to a median of 1."""
    w = post / var[:, None]
    total = w.sum(axis=0)
    predicted = (w * mean[:, None]).sum(axis=0) / total
    ratio = _blurred(total * x, index, grid) / np.maximum(_blurred(total * predicted, index, grid), 1e-12)
    return ratio / float(np.median(ratio))


def _blurred(values: np.ndarray, index: tuple, grid: Grid) -> np.ndarray:
    """``values`` at the voxels ``index`` (0 elsewhere) smoothed by a Gaussian of :data:`BIAS_SIGMA_MM` mm (ITK's
    recursive Gaussian, on one thread), read back at ``index``."""
    volume = np.zeros(grid.shape, dtype=np.float64)
    volume[index] = values
    with one_thread():
        smooth = sitk.SmoothingRecursiveGaussian(to_sitk(volume, grid), BIAS_SIGMA_MM)
    return sitk.GetArrayViewFromImage(smooth)[index].astype(np.float64)


def tissue_image(maps: Sequence[np.ndarray]) -> np.ndarray:
    """WM, GM, CSF probabilities combined into one image (float32): :data:`TISSUE_CONTRAST` weighted sum."""
    return np.asarray(sum(c * np.asarray(m, dtype=np.float32) for c, m in zip(TISSUE_CONTRAST, maps)), np.float32)


def tissue_warp(
    posteriors: Sequence[np.ndarray], priors: Sequence[np.ndarray], grid: Grid, region: np.ndarray
) -> sitk.Transform:
    """A displacement field transform (ITK convention: scan points to points of the propagated priors, mm) that
    brings the ``priors``' tissue image onto the ``posteriors``' (both WM, GM, CSF on ``grid``): symmetric-forces
    demons, :data:`DEMONS_ITERATIONS` iterations, field smoothed by :data:`DEMONS_SIGMA_MM` mm, on one thread, over
    the bounding box of ``region`` (bool, the brain) grown by :data:`DEMONS_MARGIN_MM` mm; 0 displacement outside."""
    box = _bounding_box(region, grid, DEMONS_MARGIN_MM)
    sub = Grid(
        tuple(s.stop - s.start for s in box),
        grid.spacing,
        tuple(grid.index_to_physical(np.asarray([s.start for s in box], dtype=float))),
        grid.direction,
    )
    demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    demons.SetNumberOfIterations(DEMONS_ITERATIONS)
    demons.SetStandardDeviations([DEMONS_SIGMA_MM / s for s in reversed(grid.spacing)])  # voxels, ITK order
    demons.SetNumberOfThreads(1)
    with one_thread():
        field = demons.Execute(to_sitk(tissue_image(posteriors)[box], sub), to_sitk(tissue_image(priors)[box], sub))
    full = np.zeros((*grid.shape, 3), dtype=np.float64)
    full[box] = sitk.GetArrayFromImage(field)
    return sitk.DisplacementFieldTransform(to_sitk(full, grid))


def _bounding_box(mask: np.ndarray, grid: Grid, margin_mm: float) -> tuple[slice, ...]:
    """The bounding box (slices) of ``mask``'s voxels grown by ``margin_mm`` (mm), within the grid."""
    idx = np.nonzero(mask)
    if not idx[0].size:
        return tuple(slice(0, n) for n in grid.shape)
    pad = [int(np.ceil(margin_mm / s)) for s in grid.spacing]
    return tuple(slice(max(int(i.min()) - p, 0), min(int(i.max()) + 1 + p, n)) for i, p, n in zip(idx, pad, grid.shape))


def warped(maps: Sequence[np.ndarray], grid: Grid, transform: sitk.Transform) -> list[np.ndarray]:
    """``maps`` (on ``grid``) resampled through ``transform`` (linear, 0 outside), clipped to [0, 1]."""
    return [np.clip(resample_to(m, grid, grid, transform=transform), 0.0, 1.0) for m in maps]
