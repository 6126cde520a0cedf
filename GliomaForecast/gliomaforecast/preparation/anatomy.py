"""A patient's brain mask and tissue maps (white matter WM, grey matter GM, cerebrospinal fluid CSF) derived from one
scan that comes without them: a template brain (:mod:`.templates`) registered onto the scan, its maps propagated, then
refined by the scan's intensities.

Method (:func:`derive_anatomy`):

1. Registration: the template's T1, at the scan's working spacing (:func:`working_spacing`), registered onto the scan
   with :func:`~gliomaforecast.preparation.registration.register` (``kind="affine"``: rigid, then affine; Mattes
   mutual information, so T2 and FLAIR, whose contrast differs from T1's, register too). A template is another brain,
   so the edge-correlation quality is lower than between two sessions of one patient; a registration below
   :data:`MIN_TEMPLATE_QUALITY` is refused.
2. Propagation: the template's brain fraction and tissue probabilities resampled linearly onto the scan's grid
   through the transform: the priors.
3. Brain mask (:func:`refine_brain`): inside the propagated brain (fraction > 0.5) farther than :data:`BAND_MM` mm
   from its outline: brain; outside it farther than that: not brain; in the band between, brain where the intensity
   is above Otsu's threshold of the band's intensities. Then the largest connected component, holes filled, and a
   closing by a ball of :data:`CLOSING_MM` mm.
4. Tissue maps (:func:`tissue_posteriors`): an expectation-maximisation (EM) fit of a three-class Gaussian mixture of
   the intensities inside the brain, the propagated priors (tempered, :data:`PRIOR_POWER`, and mixed with
   :data:`PRIOR_FLOOR` of a uniform prior) weighting each voxel's classes: posterior ∝ prior x likelihood, started from
   the prior-weighted means and variances, :data:`EM_ITERATIONS` iterations. The excluded region (the tumour) takes
   no part in the fit and keeps the priors.

Conventions: arrays are (z, y, x) on a :class:`~gliomaforecast.geometry.Grid` (spacing mm, LPS); distances in mm.
Intensities are in the scan's own units (any scale). Deterministic: the same inputs give the same outputs, bit for
bit (the registration is; everything after it is plain arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage.filters import threshold_otsu

from ..errors import InputError
from ..geometry import Grid, resample_to
from .registration import register
from .templates import TEMPLATES, Template, load_template

MODALITIES = ("t1", "t1ce", "t2", "flair")
# Lowest accepted quality of a template registration (edge correlation, see registration.py). Measured by
# benchmarks/bench_derived_anatomy.py: template onto the sample and validation patients ...
MIN_TEMPLATE_QUALITY = 0.25
BAND_MM = 6.0  # the brain's outline is looked for within this distance (mm) of the propagated outline
CLOSING_MM = 4.0  # radius (mm) of the closing of the refined brain mask
EM_ITERATIONS = 8
PRIOR_POWER = 1.0  # the propagated priors are raised to this power (tempered) before normalisation
PRIOR_FLOOR = 0.05  # ...and mixed with this much of a uniform prior, so the intensities can overrule them
MAX_WORKING_SPACING_MM = 4.0
TISSUES = ("wm", "gm", "csf")


@dataclass(frozen=True, eq=False)
class DerivedAnatomy:
    """The result of :func:`derive_anatomy`, on the scan's grid: ``brain`` (bool), tissue probabilities ``wm``,
    ``gm``, ``csf`` (float32 in [0, 1], summing to 1 inside the brain, 0 outside), the ``template`` used, the
    registration's ``quality`` (edge correlation, -1..1) and ``method`` (one line describing the derivation)."""

    brain: np.ndarray
    wm: np.ndarray
    gm: np.ndarray
    csf: np.ndarray
    template: str
    quality: float
    method: str


@dataclass(frozen=True, eq=False)
class Priors:
    """Template maps propagated onto a scan's grid: ``brain`` fraction and ``wm``, ``gm``, ``csf`` probabilities
    (float32 in [0, 1])."""

    brain: np.ndarray
    wm: np.ndarray
    gm: np.ndarray
    csf: np.ndarray


def derive_anatomy(
    image: np.ndarray,
    grid: Grid,
    *,
    modality: str,
    template: str = "sri24",
    exclude: np.ndarray | None = None,
) -> DerivedAnatomy:
    """The brain mask and WM, GM, CSF maps of the scan ``image`` (3D, any intensity scale, on ``grid``) of
    ``modality`` (one of :data:`MODALITIES`; T1 preferred), derived from the ``template`` brain (see the module
    docstring). ``exclude``: the tumour (bool, on ``grid``), left out of the intensity model (its tissue maps are the
    propagated template's). Raises InputError for an image that is not 3D, not on its grid, non-finite, empty or
    constant, an unknown modality or template, an ``exclude`` of another shape, a template that is not installed, and
    a registration whose quality is below :data:`MIN_TEMPLATE_QUALITY`."""
    if modality not in MODALITIES:
        raise InputError(None, "modality", f"must be one of {', '.join(MODALITIES)}, got {modality!r}")
    if template not in TEMPLATES:
        raise InputError(None, "template", f"must be one of {', '.join(TEMPLATES)}, got {template!r}")
    img = _checked_image(image, grid, modality)
    excl = _checked_exclude(exclude, grid)
    tpl = load_template(template, working_spacing(grid))
    reg = register(
        img,
        grid,
        tpl.t1,
        tpl.grid,
        "affine",
        fixed_name=f"{modality} image",
        moving_name=f"{template} template",
        min_quality=MIN_TEMPLATE_QUALITY,
    )
    priors = propagate(tpl, grid, reg.transform)
    brain = refine_brain(img, grid, priors.brain)
    wm, gm, csf = tissue_posteriors(img, brain, priors, excl)
    method = (
        f"{template} template (T1, {tpl.grid.spacing[0]:g} mm) registered onto the {modality} image (affine, quality "
        f"{reg.quality:.3f}); brain: propagated mask refined by Otsu within {BAND_MM:g} mm of its outline; tissue: "
        f"{EM_ITERATIONS}-iteration EM Gaussian mixture weighted by the propagated priors"
    )
    return DerivedAnatomy(brain, wm, gm, csf, template, float(reg.quality), method)


def working_spacing(grid: Grid) -> float:
    """The template's spacing (mm, isotropic) for a scan on ``grid``: the scan's median spacing, within 1 mm (the
    templates' own) and :data:`MAX_WORKING_SPACING_MM`."""
    return float(min(max(float(np.median(grid.spacing)), 1.0), MAX_WORKING_SPACING_MM))


def _checked_image(image: np.ndarray, grid: Grid, modality: str) -> np.ndarray:
    """``image`` as float32 after the checks: 3D, on ``grid``, real, finite, not constant."""
    arr = np.asarray(image)
    name = f"{modality} image"
    if arr.ndim != 3 or grid.ndim != 3:
        raise InputError(name, "image", f"is {arr.ndim}D; deriving the anatomy needs a 3D volume")
    if arr.shape != grid.shape:
        raise InputError(name, "image", f"shape {arr.shape} differs from its grid's {grid.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(name, "image", f"must hold real intensities, got {arr.dtype}")
    out = arr.astype(np.float32)
    if not np.isfinite(out).all():
        raise InputError(name, "image", f"holds {int((~np.isfinite(out)).sum())} non-finite voxels")
    if out.size == 0 or not float(out.max()) > float(out.min()):
        value = f"{float(out.flat[0]):g}" if out.size else "nothing"
        raise InputError(name, "image", f"is empty: every voxel is {value}, no anatomy to derive")
    return out


def _checked_exclude(exclude: np.ndarray | None, grid: Grid) -> np.ndarray:
    """The excluded region as bool on ``grid`` (none: all False)."""
    if exclude is None:
        return np.zeros(grid.shape, dtype=bool)
    arr = np.asarray(exclude)
    if arr.shape != grid.shape:
        raise InputError(None, "exclude", f"shape {arr.shape} differs from the image's {grid.shape}")
    return arr.astype(bool)


def propagate(tpl: Template, grid: Grid, transform: sitk.Transform) -> Priors:
    """The template ``tpl``'s brain fraction and tissue probabilities on ``grid`` through ``transform`` (ITK
    convention: scan points to template points, mm), linear, 0 outside the template."""
    maps = [
        np.clip(resample_to(a, tpl.grid, grid, transform=transform), 0.0, 1.0)
        for a in (tpl.brain_fraction, tpl.wm, tpl.gm, tpl.csf)
    ]
    return Priors(*maps)


def _ball(radius_mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    """A ball of ``radius_mm`` (mm) as a structuring element on voxels of ``spacing`` (mm, array order)."""
    half = [int(np.floor(radius_mm / s)) for s in spacing]
    axes = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    dist2 = sum((a * s) ** 2 for a, s in zip(axes, spacing))
    return np.asarray(dist2 <= radius_mm**2 + 1e-9)


def _signed_distance(mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Distance (mm) to the outline of ``mask``: positive inside, negative outside."""
    inside = ndimage.distance_transform_edt(mask, sampling=spacing)
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
    return (inside - outside).astype(np.float32)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return np.asarray(labels == int(np.argmax(sizes)) + 1)


def refine_brain(image: np.ndarray, grid: Grid, prior: np.ndarray) -> np.ndarray:
    """The brain mask (bool) of ``image`` from the propagated brain fraction ``prior`` (see the module docstring,
    step 3). The band's threshold is Otsu's of its intensities; a band without contrast keeps the propagated mask."""
    inside = prior > 0.5
    if not inside.any():
        raise InputError(None, "brain", "the propagated template brain misses the image")
    depth = _signed_distance(inside, grid.spacing)
    band = np.abs(depth) <= BAND_MM
    values = image[band]
    brain = depth > BAND_MM
    if values.size and float(values.max()) > float(values.min()):
        brain |= band & (image > threshold_otsu(values))
    else:
        brain |= band & inside
    brain = ndimage.binary_fill_holes(_largest_component(brain))
    brain = ndimage.binary_closing(brain, _ball(CLOSING_MM, grid.spacing), border_value=0)
    return np.asarray(ndimage.binary_fill_holes(brain))


def _normalised_priors(priors: Priors, brain: np.ndarray) -> np.ndarray:
    """The priors (3, n) of the brain's voxels in :data:`TISSUES` order: tempered, normalised, mixed with a uniform
    prior (uniform where the template has no tissue)."""
    p = np.stack([getattr(priors, k)[brain] for k in TISSUES]).astype(np.float64) ** PRIOR_POWER
    total = p.sum(axis=0)
    p = np.where(total > 1e-6, p / np.maximum(total, 1e-12), 1.0 / 3.0)
    return (1.0 - PRIOR_FLOOR) * p + PRIOR_FLOOR / 3.0


def _em(x: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Posteriors (3, n) of a three-class Gaussian mixture of intensities ``x`` (n) with per-voxel priors ``prior``
    (3, n): started from the prior-weighted means and variances, :data:`EM_ITERATIONS` EM iterations."""
    post = prior
    floor = 1e-6 * max(float(np.var(x)), 1e-12)
    for _ in range(EM_ITERATIONS + 1):
        weight = post.sum(axis=1) + 1e-12
        mean = (post * x).sum(axis=1) / weight
        var = np.maximum((post * (x - mean[:, None]) ** 2).sum(axis=1) / weight, floor)
        log_like = -0.5 * ((x - mean[:, None]) ** 2 / var[:, None] + np.log(var)[:, None])
        log_post = np.log(prior) + log_like
        log_post -= log_post.max(axis=0)
        post = np.exp(log_post)
        post /= post.sum(axis=0)
    return post


def tissue_posteriors(
    image: np.ndarray, brain: np.ndarray, priors: Priors, exclude: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WM, GM, CSF probabilities (float32, summing to 1 inside ``brain``, 0 outside) of ``image`` (see the module
    docstring, step 4); the voxels of ``exclude`` keep the normalised priors."""
    prior = _normalised_priors(priors, brain)
    fit = ~exclude[brain]
    post = prior.copy()
    if np.count_nonzero(fit) >= 3:
        post[:, fit] = _em(image[brain][fit].astype(np.float64), prior[:, fit])
    out = []
    for k in range(len(TISSUES)):
        m = np.zeros(brain.shape, dtype=np.float32)
        m[brain] = post[k]
        out.append(m)
    return out[0], out[1], out[2]
