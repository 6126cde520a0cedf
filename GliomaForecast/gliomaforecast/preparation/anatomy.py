"""A patient's brain mask and tissue maps (white matter WM, grey matter GM, cerebrospinal fluid CSF) derived from one
scan that comes without them: a template brain (:mod:`.templates`) registered onto the scan, its maps propagated, then
refined by the scan's intensities.

Method (:func:`derive_anatomy`):

1. Registration: the template's T1, at the scan's working spacing (:func:`working_spacing`), registered onto the scan
   with :func:`~gliomaforecast.preparation.registration.register` (``kind="affine"``: rigid, then affine; Mattes
   mutual information, so T2 and FLAIR, whose contrast differs from T1's, register too). A template is another brain,
   so its edge-correlation quality is lower than that of two sessions of one patient; a registration below
   :data:`MIN_TEMPLATE_QUALITY` is refused.
2. Propagation (:func:`propagate`): the template's brain fraction and tissue probabilities resampled linearly onto
   the scan's grid through the transform: the priors.
3. Brain mask: :func:`~gliomaforecast.preparation.brain.refine_brain` (Otsu's threshold within a band about the
   propagated outline, largest component, holes filled, closing in mm).
4. Tissue maps: :func:`~gliomaforecast.preparation.tissue.tissue_posteriors` (EM Gaussian mixture of the intensities
   inside the brain, weighted by the priors, with a bias field; the excluded tumour keeps the priors), then the priors
   refined by demons of their tissue image onto the posteriors' (:func:`~gliomaforecast.preparation.tissue.tissue_warp`)
   and the mixture fitted again.

Conventions: arrays are (z, y, x) on a :class:`~gliomaforecast.geometry.Grid` (spacing mm, LPS); distances in mm.
Intensities are in the scan's own units (any scale). Deterministic: the same inputs give the same outputs, bit for
bit (the registration and the demons run on one thread; the rest is plain arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..geometry import Grid, resample_to
from .brain import refine_brain
from .registration import checked_image, register
from .templates import TEMPLATES, Template, load_template
from .tissue import tissue_posteriors, tissue_warp, warped

MODALITIES = ("t1", "t1ce", "t2", "flair")
# Lowest accepted quality of a template registration (edge correlation, see registration.py), between the two groups
# measured by benchmarks/bench_derived_anatomy.py (results/derived_anatomy.json): both templates onto the T1 of the
# sample and of 10 validation patients score 0.26..0.55, SRI24 onto their T1CE, T2 and FLAIR 0.26..0.36 (a template is
# another brain: a session of the same patient scores 0.79 and more); noise scores -0.005, a block-shuffled T1 0.013.
MIN_TEMPLATE_QUALITY = 0.15
MAX_WORKING_SPACING_MM = 4.0  # the template's spacing follows the scan's, up to this (mm)


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
    brain = refine_brain(img, grid.spacing, priors.brain)
    maps = (priors.wm, priors.gm, priors.csf)
    first = tissue_posteriors(img, grid, brain, maps, excl)
    wm, gm, csf = tissue_posteriors(img, grid, brain, warped(maps, grid, tissue_warp(first, maps, grid, brain)), excl)
    method = (
        f"{template} template T1 ({tpl.grid.spacing[0]:g} mm) registered onto the {modality} image (affine, quality "
        f"{reg.quality:.3f}); brain: propagated mask refined by Otsu's threshold near its outline; tissue: EM "
        "Gaussian mixture weighted by the propagated priors (bias field), priors refined by demons, EM again"
    )
    return DerivedAnatomy(brain, wm, gm, csf, template, float(reg.quality), method)


def working_spacing(grid: Grid) -> float:
    """The template's spacing (mm, isotropic) for a scan on ``grid``: the scan's median spacing, within 1 mm (the
    templates' own) and :data:`MAX_WORKING_SPACING_MM`."""
    return float(min(max(float(np.median(grid.spacing)), 1.0), MAX_WORKING_SPACING_MM))


def _checked_image(image: np.ndarray, grid: Grid, modality: str) -> np.ndarray:
    """``image`` as float32 after the registration's checks (:func:`~.registration.checked_image`: 3D, on ``grid``,
    real, finite) and one more: not constant."""
    name = f"{modality} image"
    out = checked_image(image, grid, name, "deriving the anatomy")
    if not float(out.max()) > float(out.min()):
        raise InputError(name, "image", f"is empty: every voxel is {float(out.flat[0]):g}, no anatomy to derive")
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
