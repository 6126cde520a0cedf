"""The preparation figure (``prepare.png`` of ``gliomaforecast prepare``, and the report's "Preparation" section):
each later session's edges drawn on the planning scan, so a misregistration shows as edges that do not follow the
anatomy, and the brain mask's outline with the tissue maps on the planning scan.

Edges: the gradient magnitude (Gaussian derivative, sigma :data:`EDGE_SIGMA_MM` mm, per mm of the slice's pixel size)
of the session's image on the planning grid, shown where it lies in the top :data:`EDGE_SHOWN_FRACTION` of the
slice's brain voxels. Axial slices in the radiological view, like every figure of the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy import ndimage

from ..geometry import Grid
from ..io.case import TISSUE_NAMES, Case
from ..preparation.sessions import registration_pair
from .figures import _draw_background, _draw_letters, _slice_view, _window, save_png, slice_position

EDGE_SIGMA_MM = 1.0
EDGE_SHOWN_FRACTION = 0.15
TISSUE_COLOURS = {"wm": (0.2, 0.4, 1.0), "gm": (0.1, 0.8, 0.2), "csf": (1.0, 0.8, 0.1)}


def slice_edges(image_slice: np.ndarray, spacing_yx: Sequence[float], region: np.ndarray) -> np.ndarray:
    """The strongest edges of a 2D slice (bool): gradient magnitude (per mm; sigma :data:`EDGE_SIGMA_MM` mm) in the
    top :data:`EDGE_SHOWN_FRACTION` of its values inside ``region`` (bool, same shape)."""
    sigma = [EDGE_SIGMA_MM / float(s) for s in spacing_yx]
    magnitude = ndimage.gaussian_gradient_magnitude(np.asarray(image_slice, dtype=np.float64), sigma)
    inside = magnitude[region] if region.any() else magnitude.ravel()
    if inside.size == 0 or float(inside.max()) <= 0:
        return np.zeros(magnitude.shape, dtype=bool)
    return magnitude >= np.quantile(inside, 1.0 - EDGE_SHOWN_FRACTION)


def plot_preparation(
    path: Path,
    planning: np.ndarray,
    sessions: Sequence[tuple[str, np.ndarray]],
    brain: np.ndarray,
    tissue: Mapping[str, np.ndarray],
    grid: Grid,
    z: int,
    title: str,
) -> Path:
    """Axial slice ``z`` of the ``planning`` image (on ``grid``): one panel per (label, image) of ``sessions``
    (images on ``grid``) with that session's edges in red; a last panel with the ``brain`` mask's outline (cyan) and
    the ``tissue`` maps (wm blue, gm green, csf yellow, opacity = probability x 0.5). Returns ``path`` (PNG)."""
    view = _slice_view(grid, planning.shape)
    cols = len(sessions) + 1
    fig = Figure(figsize=(2.6 * cols + 0.4, 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, cols, squeeze=False)[0])
    window = _window(planning)
    region = view.cut(brain, z).astype(bool)
    for ax, (label, image) in zip(axes, sessions):
        _draw_background(ax, view, planning, z, window)
        edges = slice_edges(view.cut(image, z), (view.dy, view.dx), region)
        rgba = np.zeros((*edges.shape, 4))
        rgba[edges] = (1.0, 0.1, 0.1, 0.9)
        ax.imshow(rgba, extent=view.extent, interpolation="nearest")
        ax.set_title(label, fontsize="small")
        _draw_letters(ax, view)
    ax = axes[-1]
    _draw_background(ax, view, planning, z, window)
    rgba = np.zeros((*region.shape, 4))
    for name, colour in TISSUE_COLOURS.items():
        if name in tissue:
            p = np.clip(view.cut(tissue[name], z).astype(float), 0, 1)
            stronger = p * 0.5 > rgba[..., 3]
            rgba[stronger] = (*colour, 0.0)
            rgba[..., 3] = np.maximum(rgba[..., 3], p * 0.5)
    ax.imshow(rgba, extent=view.extent, interpolation="nearest")
    if region.any() and not region.all():
        ax.contour(
            np.arange(view.nx) * view.dx,
            np.arange(view.ny) * view.dy,
            region.astype(np.float32),
            levels=[0.5],
            colors=["cyan"],
            linewidths=1.0,
        )
    ax.set_title("brain mask, WM / GM / CSF", fontsize="small")
    _draw_letters(ax, view)
    fig.suptitle(f"{title} ({slice_position(grid, z)})", fontsize="medium")
    return save_png(fig, path)


def plot_case_preparation(case: Case, path: Path) -> Path | None:
    """:func:`plot_preparation` of a case on one grid: every later session's image of its registration's sequence
    (from the ``preparation`` record; for a case without one, the pair :func:`registration_pair` would choose) on the
    planning scan's, at the axial slice through the centre of the first GTV, with the brain mask (the whole slice
    without one) and the tissue maps the case has. None (nothing written) when the first scan has no MR image;
    later sessions without one get no panel."""
    first = case.timepoints[0]
    if not first.images:
        return None
    records = {r["timepoint"]: r for r in (case.preparation or {}).get("registration", [])}
    panels, fixed = [], None
    for tp in case.timepoints[1:]:
        record = records.get(tp.index)
        if not tp.images:
            continue
        f_mod, m_mod = (record["fixed"], record["moving"]) if record else registration_pair(first.images, tp.images)
        fixed = fixed or f_mod
        quality = "" if record is None or record.get("quality") is None else f", quality {record['quality']:.2f}"
        panels.append((f"day {tp.day:g} {m_mod}{quality}", case.image(tp, m_mod)))
    fixed = fixed or registration_pair(first.images, first.images)[0]
    brain = case.brain_mask()
    tissue = {k: t for k in TISSUE_NAMES if (t := case.tissue(k)) is not None}
    z = int(round(float(np.nonzero(case.gtv(first))[0].mean())))
    return plot_preparation(
        path,
        case.image(first, fixed),
        panels,
        np.ones(case.grid.shape, dtype=bool) if brain is None else brain,
        tissue,
        case.grid,
        z,
        f"{case.patient_id}: each session's edges on the planning {fixed} (day {first.day:g})",
    )
