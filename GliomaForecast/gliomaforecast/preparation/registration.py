"""Rigid and affine registration of one MRI session onto another (the planning scan), in millimetres.

Method: SimpleITK's ImageRegistrationMethod with Mattes mutual information (:data:`HISTOGRAM_BINS` bins, a
fixed random sample of at most :data:`MAX_SAMPLES` fixed voxels per level drawn with :data:`SAMPLING_SEED`), three
resolutions (shrink factors :data:`SHRINK_FACTORS`, Gaussian smoothing :data:`SMOOTHING_SIGMAS_MM` in mm),
regular-step gradient descent with scales from physical shifts (a step moves no voxel by more than about
:data:`MAX_STEP_MM` mm), started from the images' centres of mass (``CenteredTransformInitializer``, MOMENTS).
``rigid`` optimises an Euler transform (3 rotations in radians, 3 translations in mm); ``affine`` runs the rigid
registration first, then a 12-parameter affine transform started from it. Given the fixed brain mask, the metric
samples the brain grown by :data:`METRIC_MARGIN_MM` mm, its outline included. Both images are first rescaled to
[0, 1] between their :data:`INTENSITY_PERCENTILES` percentiles, so sessions of another intensity scaling (and
a few extreme voxels) register alike.

Conventions: arrays are (z, y, x) on a :class:`~gliomaforecast.geometry.Grid` (spacing in mm, LPS). A
transform follows ITK: it maps a physical point (mm) of the fixed image to the point of the moving image that
lies there, so resampling the moving image through it puts the moving image on the fixed grid.

Determinism: the metric's sample is drawn with a fixed seed and the registration runs on one thread (ITK's
default thread count is set to 1 while it runs, see :func:`one_thread`), so the same inputs give the same
transform, bit for bit, run after run and on machines of any core count with the same SimpleITK build.

Quality: do the edges line up? The normalised cross-correlation (Pearson's r, -1..1, higher is better) of the
gradient magnitudes (Gaussian derivative, sigma :data:`EDGE_SIGMA_MM` mm) of the fixed image and of the moving
image resampled through the transform, over the fixed brain mask (or, without one, the fixed image's foreground by
Otsu's threshold); fixed voxels that map outside the moving image take its background. It does not depend on
the intensity scaling, and it drops far less than the correlation of the intensities where a tumour changed the
signal of a large region between sessions (a good FLAIR registration after large growth: 0.89 against 0.48,
measured), while another patient's scan or a mirrored one stays low. A registration below :data:`MIN_QUALITY` is
refused with an :class:`~gliomaforecast.errors.InputError` that states the measured value.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..geometry import Grid, resample_to, to_sitk
from ..io.images import atomic_file
from .motion import motion_matrix

KINDS = ("rigid", "affine")
HISTOGRAM_BINS = 50
SHRINK_FACTORS = (4, 2, 1)
SMOOTHING_SIGMAS_MM = (2.0, 1.0, 0.0)
MAX_SAMPLES = 50_000  # the metric's sample per level: every voxel (inside the mask, when given) up to this many
METRIC_MARGIN_MM = 6.0  # the metric samples the fixed brain mask grown by this margin (mm)
SAMPLING_SEED = 30  # the metric's random sample: fixed, so a registration is reproducible
MAX_STEP_MM = 2.0  # the optimiser's first step (about the largest shift of a voxel, mm); halved on each reversal
MIN_STEP_MM = 1e-3  # the step (mm) at which the optimiser stops
MAX_ITERATIONS = 300  # per resolution level
INTENSITY_PERCENTILES = (0.5, 99.5)
EDGE_SIGMA_MM = 1.0  # the Gaussian derivative's sigma (mm) of the quality's gradient magnitudes
# Lowest accepted quality, between the two groups measured by benchmarks/bench_registration.py (results/
# registration.json): 150 recovered motions of the later sessions of the sample and 10 virtual patients (T1 and FLAIR,
# with and without the brain mask) score 0.79 and more (FLAIR after large tumour growth the lowest); another
# patient's T1 scores -0.17..0.33, the sample's T1 mirrored left-right 0.41, block-shuffled or noise about 0.
MIN_QUALITY = 0.6
QUALITY = "edge correlation with the fixed image"


@dataclass(frozen=True, eq=False)
class Registration:
    """The result of :func:`register`.

    ``transform``: maps fixed physical points (mm, LPS) to moving ones (ITK convention); an Euler3DTransform
    (``rigid``) or an AffineTransform (``affine``). ``metric``: the final Mattes mutual information (ITK's sign:
    negative, lower is better) at full resolution. ``quality``: see the module docstring (higher is better).
    ``iterations``: optimiser iterations, all levels and stages together."""

    transform: sitk.Transform
    kind: str
    metric: float
    quality: float
    iterations: int


def register(
    fixed: np.ndarray,
    fixed_grid: Grid,
    moving: np.ndarray,
    moving_grid: Grid,
    kind: str = "rigid",
    fixed_mask: np.ndarray | None = None,
    *,
    fixed_name: str = "fixed image",
    moving_name: str = "moving image",
    min_quality: float = MIN_QUALITY,
) -> Registration:
    """Register ``moving`` onto ``fixed`` (3D intensity images of any scale, each on its own grid, mm).

    ``kind``: ``rigid`` or ``affine``. ``fixed_mask``: the fixed brain (bool, on ``fixed_grid``); when given,
    the metric samples only there and within :data:`METRIC_MARGIN_MM` mm of it, and the quality is measured in
    it. ``fixed_name``/``moving_name`` name the
    images in errors (their files, when the caller has them). ``min_quality``: the lowest accepted quality,
    :data:`MIN_QUALITY` (sessions of one patient) unless the caller measured another for its own use (a template
    brain onto a patient: :mod:`.anatomy`). Raises InputError for an empty, constant, non-finite or 2D image, a
    mask of another shape or without a voxel, an unknown ``kind``, and a registration whose quality is below
    ``min_quality`` (the message states the measured quality)."""
    if kind not in KINDS:
        raise InputError(None, "kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    f = _normalised(checked_image(fixed, fixed_grid, fixed_name), fixed_name)
    m = _normalised(checked_image(moving, moving_grid, moving_name), moving_name)
    region = quality_region(f, fixed_grid, fixed_mask, fixed_name)
    f_img, m_img = to_sitk(f, fixed_grid), to_sitk(m, moving_grid)
    mask_img = None if fixed_mask is None else _metric_mask(region, fixed_grid)
    rigid = sitk.Euler3DTransform(
        sitk.CenteredTransformInitializer(
            f_img, m_img, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
        )
    )
    transform: sitk.Transform = rigid
    try:
        with one_thread():
            metric, iterations = _optimise(f_img, m_img, mask_img, rigid)
            if kind == "affine":
                transform = _affine_from(rigid)
                metric, more = _optimise(f_img, m_img, mask_img, transform)
                iterations += more
    except RuntimeError as exc:
        quality = registration_quality(f, fixed_grid, m, moving_grid, transform, region)
        detail = _sitk_error(exc)
        raise InputError(
            moving_name, "registration", f"will not register onto {fixed_name} ({detail}); quality {quality:.3f}"
        ) from None
    quality = registration_quality(f, fixed_grid, m, moving_grid, transform, region)
    if not quality >= min_quality:
        raise InputError(
            moving_name,
            "registration",
            f"will not register onto {fixed_name}: quality {quality:.3f} ({QUALITY}) is below {min_quality}",
        )
    return Registration(transform, kind, metric, quality, iterations)


_ONE_THREAD = threading.Lock()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """ITK's default thread count set to 1 while a registration runs, then restored. The registration's own
    thread count is not enough: with the default thread count, the same registration ends a few units in the
    last place apart from run to run (measured: SimpleITK 2.5). Registrations in one process take turns, so
    none restores the count while another runs."""
    with _ONE_THREAD:
        before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        try:
            yield
        finally:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def _optimise(
    fixed: sitk.Image, moving: sitk.Image, mask: sitk.Image | None, transform: sitk.Transform
) -> tuple[float, int]:
    """Optimise ``transform`` in place; returns the final metric value and the number of iterations."""
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentagePerLevel(_sampling_fractions(fixed, mask), SAMPLING_SEED)
    if mask is not None:
        reg.SetMetricFixedMask(mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=MAX_STEP_MM,
        minStep=MIN_STEP_MM,
        numberOfIterations=MAX_ITERATIONS,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(SHRINK_FACTORS))
    reg.SetSmoothingSigmasPerLevel(list(SMOOTHING_SIGMAS_MM))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(transform, inPlace=True)
    reg.SetNumberOfThreads(1)
    count = [0]
    reg.AddCommand(sitk.sitkIterationEvent, lambda: count.__setitem__(0, count[0] + 1))
    reg.Execute(fixed, moving)
    return float(reg.GetMetricValue()), count[0]


def _metric_mask(brain: np.ndarray, grid: Grid) -> sitk.Image:
    """Where the metric samples: ``brain`` grown by :data:`METRIC_MARGIN_MM` mm (an ellipsoidal kernel of that
    radius in mm on each axis), so that the brain's outline, the images' strongest edge, counts."""
    radius = [max(1, int(np.ceil(METRIC_MARGIN_MM / s))) for s in reversed(grid.spacing)]
    return sitk.BinaryDilate(to_sitk(brain.astype(np.uint8), grid), radius, sitk.sitkBall, 0.0, 1.0)


def _sampling_fractions(fixed: sitk.Image, mask: sitk.Image | None) -> list[float]:
    """The fraction of the fixed voxels (inside ``mask``) the metric samples at each level: all of them, up to
    :data:`MAX_SAMPLES`."""
    voxels = float(np.prod(fixed.GetSize()))
    if mask is not None:
        voxels = float(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    return [min(1.0, MAX_SAMPLES * shrink**3 / max(voxels, 1.0)) for shrink in SHRINK_FACTORS]


def _affine_from(rigid: sitk.Euler3DTransform) -> sitk.AffineTransform:
    """An affine transform equal to ``rigid`` (same matrix, translation in mm and centre in mm)."""
    affine = sitk.AffineTransform(3)
    affine.SetCenter(rigid.GetCenter())
    affine.SetMatrix(rigid.GetMatrix())
    affine.SetTranslation(rigid.GetTranslation())
    return affine


def _sitk_error(exc: RuntimeError) -> str:
    """The first sentence of ITK's error line in a SimpleITK exception (without ITK's class and address)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    line = next((ln for ln in lines if "ERROR" in ln), lines[-1] if lines else "")
    line = re.sub(r"^.*?ERROR:\s*(\w+\(0x[0-9a-fA-F]+\):\s*)?", "", line)
    return line.split(". ")[0][:160] or "SimpleITK failed"


def checked_image(array: np.ndarray, grid: Grid, name: str, purpose: str = "registration") -> np.ndarray:
    """``array`` as float32 after the checks every input image passes (3D, on ``grid``, not empty, finite)."""
    arr = np.asarray(array)
    if arr.ndim != 3 or grid.ndim != 3:
        raise InputError(name, "image", f"is {arr.ndim}D; {purpose} needs a 3D volume")
    if arr.shape != grid.shape:
        raise InputError(name, "image", f"shape {arr.shape} differs from its grid's {grid.shape}")
    if arr.size == 0:
        raise InputError(name, "image", f"is empty (shape {arr.shape})")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(name, "image", f"must hold real intensities, got {arr.dtype}")
    out = arr.astype(np.float32)
    if not np.isfinite(out).all():
        raise InputError(name, "image", f"holds {int((~np.isfinite(out)).sum())} non-finite voxels")
    return out


def _normalised(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` rescaled to [0, 1] between its :data:`INTENSITY_PERCENTILES` (its minimum and maximum when
    those coincide). A constant image (no signal, e.g. an empty scan) is an InputError; its quality is 0 (it has
    no edge to correlate)."""
    lo, hi = (float(v) for v in np.percentile(array, INTENSITY_PERCENTILES))
    if not hi > lo:
        lo, hi = float(array.min()), float(array.max())
    if not hi > lo:
        raise InputError(
            name, "image", f"is empty: every voxel is {lo:g}, nothing to register (quality 0.000, below {MIN_QUALITY})"
        )
    return np.clip((array - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def quality_region(fixed: np.ndarray, grid: Grid, mask: np.ndarray | None, name: str) -> np.ndarray:
    """Where the quality is measured: ``mask`` (checked), else the fixed image's foreground (Otsu's threshold)."""
    if mask is None:
        otsu = sitk.OtsuThreshold(to_sitk(fixed, grid), 0, 1)
        region = sitk.GetArrayFromImage(otsu).astype(bool)
        return region if region.any() else fixed > 0
    region = np.asarray(mask)
    if region.shape != grid.shape:
        raise InputError(name, "mask", f"shape {region.shape} differs from the image's {grid.shape}")
    region = region.astype(bool)
    if not region.any():
        raise InputError(name, "mask", "has no voxel inside")
    return region


def registration_quality(
    fixed: np.ndarray,
    fixed_grid: Grid,
    moving: np.ndarray,
    moving_grid: Grid,
    transform: sitk.Transform,
    region: np.ndarray,
) -> float:
    """The quality of ``transform`` (see the module docstring): the normalised cross-correlation (-1..1) of the
    gradient magnitudes (sigma :data:`EDGE_SIGMA_MM` mm) of ``fixed`` and of ``moving`` resampled onto the fixed
    grid through ``transform`` (linear; outside the moving image: its minimum), over the fixed voxels of
    ``region``; 0 where either has no edge there."""
    warped = resample_to(moving, moving_grid, fixed_grid, transform=transform, default_value=float(np.min(moving)))
    a = _edges(fixed, fixed_grid)[region]
    b = _edges(warped, fixed_grid)[region]
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def _edges(array: np.ndarray, grid: Grid) -> np.ndarray:
    """The gradient magnitude (per mm) of ``array`` after Gaussian smoothing of sigma :data:`EDGE_SIGMA_MM` mm."""
    image = to_sitk(np.asarray(array, dtype=np.float32), grid)
    edges = sitk.GradientMagnitudeRecursiveGaussian(image, EDGE_SIGMA_MM)
    return sitk.GetArrayFromImage(edges).astype(np.float64)


def resample_onto(
    array: np.ndarray, grid: Grid, transform: sitk.Transform, ref_grid: Grid, label: bool = False
) -> np.ndarray:
    """``array`` (on ``grid``) resampled onto ``ref_grid`` through ``transform`` (ITK convention: reference
    points to ``grid`` points, mm): linear for images (float32, 0 outside), nearest neighbour for masks and
    labels (``label=True``: the input dtype and values kept, 0 outside). Returns an array of ``ref_grid.shape``."""
    arr = np.asarray(array)
    if arr.shape != grid.shape:
        raise InputError(None, "image", f"shape {arr.shape} differs from its grid's {grid.shape}")
    return resample_to(arr, grid, ref_grid, label=label, transform=transform)


def target_registration_error(
    transform_true: sitk.Transform, transform_est: sitk.Transform, grid: Grid, mask: np.ndarray
) -> dict:
    """The distance (mm) between where ``transform_true`` and ``transform_est`` send each physical point of the
    voxels of ``mask`` (on ``grid``): ``{"median_mm", "mean_mm", "max_mm", "voxels"}``."""
    region = np.asarray(mask).astype(bool)
    if region.shape != grid.shape:
        raise InputError(None, "mask", f"shape {region.shape} differs from the grid's {grid.shape}")
    if not region.any():
        raise InputError(None, "mask", "has no voxel inside")
    points = grid.index_to_physical(np.argwhere(region))
    dist = np.linalg.norm(_mapped(transform_true, points) - _mapped(transform_est, points), axis=1)
    return {
        "median_mm": float(np.median(dist)),
        "mean_mm": float(dist.mean()),
        "max_mm": float(dist.max()),
        "voxels": int(dist.size),
    }


def _mapped(transform: sitk.Transform, points: np.ndarray) -> np.ndarray:
    """``points`` (n, 3; mm, x-y-z) sent through ``transform``: exactly, by its matrix and offset when it is
    linear (its image of the origin and of the unit vectors), else point by point."""
    origin = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)))
    matrix = motion_matrix(transform)
    probe = points[:: max(1, len(points) // 64)]
    if np.allclose(probe @ matrix.T + origin, [transform.TransformPoint(tuple(p)) for p in probe], atol=1e-6):
        return points @ matrix.T + origin
    return np.asarray([transform.TransformPoint(tuple(p)) for p in points])


def write_transform(transform: sitk.Transform, path: str | Path) -> Path:
    """Write ``transform`` (ITK convention, mm) to ``path`` (.tfm, ITK's text format), atomically: the file is
    complete or absent, never half written. Returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".tfm":
        raise InputError(path, "transform", "must be a .tfm file")
    with atomic_file(path) as tmp:
        sitk.WriteTransform(transform, str(tmp))
    return path


def read_transform(path: str | Path) -> sitk.Transform:
    """The transform in ``path`` (.tfm written by :func:`write_transform` or by Slicer/ITK), as its own class
    (e.g. Euler3DTransform) when SimpleITK knows it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "transform", "file not found")
    try:
        transform = sitk.ReadTransform(str(path))
    except RuntimeError as exc:
        raise InputError(path, "transform", f"cannot read transform ({_sitk_error(exc)})") from None
    return transform.Downcast()
