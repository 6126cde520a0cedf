"""Figures of the forecast report: axial overlays and target-volume comparison (PNG).

matplotlib's object API on the Agg canvas (no pyplot state, no display); PNGs are saved without the
``Software`` metadata entry so that identical inputs give identical bytes. Slices are drawn in mm
(the extent comes from the grid spacing) in the radiological view: anterior at the top, the patient's
right on the left of the image (see :func:`display_flips`), with orientation letters on the edges
(:func:`edge_letters`) and each slice's position in patient coordinates, RAS mm as Slicer shows them
(:func:`slice_position`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..geometry import Grid

PNG_METADATA = {"Software": None}
PROBABILITY_SHOWN_FROM = 0.1
"""Tumour probabilities below this are transparent in the overlays; above it the opacity grows with P."""
PROBABILITY_MAX_ALPHA = 0.7
UNCERTAINTY_SHOWN_FROM = 0.01
"""Uncertainty (SD of the probability) below this is transparent in the overlays."""
_LPS_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))  # (negative, positive) end of the LPS x, y, z axes
CONTOURS: tuple[tuple[str, str, Literal["solid", "dashed"]], ...] = (
    ("GTV (last scan)", "lime", "solid"),
    ("CTV standard", "tab:cyan", "solid"),
    ("CTV forecast", "tab:orange", "dashed"),
)


def save_png(fig: Figure, path: Path, dpi: int = 100) -> Path:
    """Save ``fig`` as a reproducible PNG (no software/time metadata) at ``dpi`` and return ``path``."""
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=dpi, metadata=PNG_METADATA)
    return path


def axial_levels(mask: np.ndarray, n: int = 4) -> list[int]:
    """``n`` distinct axial (z) indices spread evenly over the z-extent of ``mask`` (fewer when the mask
    spans fewer slices); the middle slice of the volume when the mask is empty."""
    zs = np.flatnonzero(np.asarray(mask).reshape(mask.shape[0], -1).any(axis=1))
    if zs.size == 0:
        return [mask.shape[0] // 2]
    if zs.size <= n:
        return [int(z) for z in zs]
    # interior points of an even split of [first, last]: avoid the (often tiny) end slices
    picks = np.linspace(zs[0], zs[-1], n + 2)[1:-1]
    return sorted({int(round(z)) for z in picks})


def display_flips(direction: Sequence[float]) -> tuple[bool, bool]:
    """Whether to flip the (y, x) array axes of an axial slice for the radiological view (rows running
    anterior -> posterior, columns patient right -> left, i.e. along +y and +x of LPS), from the grid's
    ITK direction matrix (row-major 3 x 3): an index axis whose direction points mostly against its
    LPS axis is flipped."""
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    return bool(d[1, 1] < 0), bool(d[0, 0] < 0)


def axis_letter(vector_lps: Sequence[float] | np.ndarray) -> str:
    """The patient direction a physical vector (LPS) points to most: R, L, A, P, I or S."""
    v = np.asarray(vector_lps, dtype=float)
    axis = int(np.argmax(np.abs(v)))
    return _LPS_LETTERS[axis][int(v[axis] > 0)]


def edge_letters(direction: Sequence[float], flips: tuple[bool, bool]) -> dict[str, str]:
    """The patient direction at each edge (``left``, ``right``, ``top``, ``bottom``) of an axial slice drawn with
    row 0 at the top and ``flips`` (y, x) applied, from the grid's ITK direction (row-major 3 x 3, LPS)."""
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    right = d[:, 0] * (-1.0 if flips[1] else 1.0)  # the array x axis (ITK index 0) runs to the right
    down = d[:, 1] * (-1.0 if flips[0] else 1.0)
    return {
        "right": axis_letter(right),
        "left": axis_letter(-right),
        "bottom": axis_letter(down),
        "top": axis_letter(-down),
    }


def slice_position(grid: Grid, z: int) -> str:
    """Where slice ``z`` lies in patient coordinates, as Slicer labels a slice view: the RAS coordinate (mm) of
    the slice centre along the axis its normal points to most, e.g. ``S 12.0 mm``."""
    ny, nx = grid.shape[1:]
    lps = grid.index_to_physical(np.array([z, (ny - 1) / 2.0, (nx - 1) / 2.0]))
    ras = np.array([-lps[0], -lps[1], lps[2]])
    axis = int(np.argmax(np.abs(grid.direction_matrix[:, 2])))
    return f"{'RAS'[axis]} {ras[axis]:.1f} mm"


def probability_alpha(p: np.ndarray) -> np.ndarray:
    """Opacity of the probability overlay per pixel: 0 (transparent) below :data:`PROBABILITY_SHOWN_FROM`, else
    :data:`PROBABILITY_MAX_ALPHA` times P, so a negligible probability never darkens the image."""
    p = np.asarray(p, dtype=float)
    return np.where(p >= PROBABILITY_SHOWN_FROM, PROBABILITY_MAX_ALPHA * np.clip(p, 0.0, 1.0), 0.0)


def _window(image: np.ndarray) -> tuple[float, float]:
    """Display window of a background image: its 1st and 99th percentiles over non-zero voxels."""
    values = image[image != 0]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [1.0, 99.0])
    return float(lo), float(hi if hi > lo else lo + 1.0)


@dataclass(frozen=True)
class _SliceView:
    """How an axial slice is drawn: the radiological ``flips`` of its (y, x) array axes, its pixel size (``dy``,
    ``dx``, mm) and size (``ny``, ``nx``), its ``extent`` in mm and the patient direction at each edge (``letters``)."""

    flips: tuple[bool, bool]
    dy: float
    dx: float
    ny: int
    nx: int
    letters: dict[str, str]

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """The image extent (mm) for ``imshow``: left, right, bottom, top."""
        return (-0.5 * self.dx, (self.nx - 0.5) * self.dx, (self.ny - 0.5) * self.dy, -0.5 * self.dy)

    def cut(self, volume: np.ndarray, z: int) -> np.ndarray:
        """Axial slice ``z`` of ``volume`` (z, y, x) with the flips applied."""
        axes_flipped = tuple(a for a, f in zip((0, 1), self.flips) if f)
        return np.flip(volume[z], axis=axes_flipped) if axes_flipped else volume[z]


def _slice_view(grid: Grid, shape: Sequence[int]) -> _SliceView:
    """The :class:`_SliceView` of volumes of ``shape`` (z, y, x) on ``grid``."""
    flips = display_flips(grid.direction)
    ny, nx = shape[1:]
    return _SliceView(
        flips, float(grid.spacing[1]), float(grid.spacing[2]), ny, nx, edge_letters(grid.direction, flips)
    )


def _draw_background(
    ax: Axes, view: _SliceView, background: np.ndarray | None, z: int, window: tuple[float, float]
) -> None:
    """Slice ``z`` of ``background`` in grey within ``window`` (its display range), or a black slice without one."""
    if background is not None:
        lo, hi = window
        ax.imshow(view.cut(background, z), cmap="gray", vmin=lo, vmax=hi, extent=view.extent, interpolation="nearest")
    else:
        ax.imshow(np.zeros((view.ny, view.nx)), cmap="gray", vmin=0, vmax=1, extent=view.extent)


def _draw_probability(ax: Axes, view: _SliceView, probability: np.ndarray, z: int) -> AxesImage:
    """Slice ``z`` of the tumour probability, transparent below :data:`PROBABILITY_SHOWN_FROM`."""
    p = view.cut(probability, z).astype(float)
    alpha = probability_alpha(p)
    shown = np.where(alpha > 0, p, np.nan)
    return ax.imshow(shown, cmap="inferno", vmin=0, vmax=1, alpha=alpha, extent=view.extent, interpolation="nearest")


def _draw_uncertainty(ax: Axes, view: _SliceView, uncertainty: np.ndarray, z: int) -> AxesImage:
    """Slice ``z`` of the uncertainty (SD of the probability), transparent below :data:`UNCERTAINTY_SHOWN_FROM`, on
    the colour range of the whole volume."""
    u = view.cut(uncertainty, z)
    shown = np.where(u >= UNCERTAINTY_SHOWN_FROM, u, np.nan)
    return ax.imshow(
        shown,
        cmap="viridis",
        vmin=0,
        vmax=max(float(np.max(uncertainty)), 1e-6),
        alpha=0.7,
        extent=view.extent,
        interpolation="nearest",
    )


def _draw_contours(ax: Axes, view: _SliceView, masks: Sequence[np.ndarray], z: int) -> None:
    """The contours of ``masks`` on slice ``z``, in the colours and line styles of :data:`CONTOURS`."""
    for mask, (_, colour, style) in zip(masks, CONTOURS):
        m = view.cut(mask, z)
        if m.any() and not m.all():
            ax.contour(
                np.arange(view.nx) * view.dx,
                np.arange(view.ny) * view.dy,
                m.astype(np.float32),
                levels=[0.5],
                colors=[colour],
                linestyles=style,
                linewidths=1.2,
            )


def _draw_letters(ax: Axes, view: _SliceView) -> None:
    """No ticks; the patient direction at each edge of the slice."""
    ax.set_xticks([])
    ax.set_yticks([])
    for where, (x, y, ha, va) in {
        "left": (0.02, 0.5, "left", "center"),
        "right": (0.98, 0.5, "right", "center"),
        "top": (0.5, 0.98, "center", "top"),
        "bottom": (0.5, 0.02, "center", "bottom"),
    }.items():
        ax.text(
            x,
            y,
            view.letters[where],
            transform=ax.transAxes,
            ha=ha,
            va=va,
            color="yellow",
            fontsize="small",
            fontweight="bold",
        )


def _overlay_legend(fig: Figure, masks: Sequence[np.ndarray], show_uncertainty: bool) -> None:
    """The legend of the overlays: the contours drawn and what is transparent."""
    handles: list[Artist] = [
        Line2D([], [], color=c, linestyle=ls, label=name) for (name, c, ls), _ in zip(CONTOURS, masks)
    ]
    handles.append(
        Patch(
            facecolor="none",
            edgecolor="0.5",
            label=f"transparent: P < {PROBABILITY_SHOWN_FROM:g} (opacity grows with P)",
        )
    )
    if show_uncertainty:
        handles.append(
            Patch(facecolor="none", edgecolor="0.5", label=f"transparent (bottom row): SD < {UNCERTAINTY_SHOWN_FROM:g}")
        )
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize="small", frameon=False)


def plot_overlays(
    path: Path,
    background: np.ndarray | None,
    probability: np.ndarray,
    uncertainty: np.ndarray | None,
    masks: Sequence[np.ndarray],
    grid: Grid,
    levels: Sequence[int],
    title: str,
) -> Path:
    """Axial overlays at ``levels`` (z indices) in the radiological view (:func:`display_flips` of the ``grid``),
    each titled with its position in RAS mm and with orientation letters on its edges: the forecast probability
    (colour; transparent below :data:`PROBABILITY_SHOWN_FROM`, opacity growing with P) on ``background`` (the last
    FLAIR, grey) with the contours of ``masks`` (GTV, CTV standard, CTV forecast; colours and line styles of
    :data:`CONTOURS`); a second row shows ``uncertainty`` (standard deviation of the probability; transparent
    below :data:`UNCERTAINTY_SHOWN_FROM`) when it is not all zero. The legend says what is transparent."""
    view = _slice_view(grid, probability.shape)
    show_unc = uncertainty is not None and float(np.max(uncertainty)) > 0
    rows, cols = (2 if show_unc else 1), len(levels)
    fig = Figure(figsize=(2.6 * cols + 0.9, 2.7 * rows + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    window = _window(background) if background is not None else (0.0, 1.0)
    prob_im = unc_im = None
    for j, z in enumerate(levels):
        for i in range(rows):
            ax = axes[i, j]
            _draw_background(ax, view, background, z, window)
            if i == 0:
                prob_im = _draw_probability(ax, view, probability, z)
                ax.set_title(slice_position(grid, z), fontsize="small")
            elif uncertainty is not None:
                unc_im = _draw_uncertainty(ax, view, uncertainty, z)
            _draw_contours(ax, view, masks, z)
            _draw_letters(ax, view)
    assert prob_im is not None  # levels is never empty
    fig.colorbar(prob_im, ax=axes[0, :].tolist(), shrink=0.8, label="tumor probability")
    if unc_im is not None:
        fig.colorbar(unc_im, ax=axes[1, :].tolist(), shrink=0.8, label="uncertainty (SD)")
    _overlay_legend(fig, masks, unc_im is not None)
    fig.suptitle(title, fontsize="medium")
    return save_png(fig, path)


def plot_volumes(path: Path, volumes_ml: Mapping[str, float], band_ml: tuple[float, ...] | None, title: str) -> Path:
    """Bar chart of the volumes (mL) in ``volumes_ml`` (name -> mL, in order); ``band_ml`` (median,
    lower 2.5 %, upper 97.5 %) of the growth model at the target day is drawn as a bar with error bars."""
    names = [n.replace(" (", "\n(") for n in volumes_ml]
    values = [float(v) for v in volumes_ml.values()]
    colours = ["0.4"] * len(names)
    if band_ml is not None:
        names.append("growth model\n(95% band)")
        values.append(float(band_ml[0]))
        colours.append("tab:blue")
    fig = Figure(figsize=(6.4, 3.4), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(names))
    bars = ax.bar(x, values, color=colours, edgecolor="k")
    if band_ml is not None:
        med, lo, hi = band_ml
        ax.errorbar([x[-1]], [med], yerr=[[med - lo], [hi - med]], fmt="none", ecolor="k", capsize=5)
    for bar, v in zip(bars, values):
        ax.annotate(
            f"{v:.1f}",
            (bar.get_x() + bar.get_width() / 2, v),
            ha="center",
            va="bottom",
            fontsize="small",
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax.set_xticks(x, names, fontsize="small")
    ax.set_ylabel("volume (mL)")
    ax.set_title(title, fontsize="medium")
    ax.margins(y=0.15)
    return save_png(fig, path)
