"""Growth-curve figure (PNG): observed burdens, bootstrap median, 95% band, RT start and forecast day; the cap
(brain volume) when the fit has one, a box naming the fitted parameters that sit at a bound of their range, and
an arrow at a peak of the curve that no scan observed.

Uses matplotlib's object API with the Agg canvas (no pyplot state, no display needed); the file is
written atomically (temporary file in the same folder, then renamed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..errors import InputError
from ..io.images import atomic_file
from .checks import parameters_at_bounds, unobserved_bump
from .fit import GrowthFit


def bound_note(fit: GrowthFit) -> str:
    """The plot's note on the fitted parameters at a bound of their range ("" when none is)."""
    at_bounds = parameters_at_bounds(fit)
    if not at_bounds:
        return ""
    return "fitted at a bound (set by the bound, not the scans):\n" + "\n".join(b.describe() for b in at_bounds)


def plot_growth(
    fit: GrowthFit,
    path: str | Path,
    *,
    forecast_days: Sequence[float] | np.ndarray = (),
    unit: str = "mL",
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Draw ``fit`` into the PNG ``path`` and return the path. ``forecast_days`` (days) are marked with
    their median and 95% band; the time axis spans the scans, RT start and forecast days. ``unit`` is the
    burden unit shown on the y axis (mL for volumes, mm^2 for slice areas)."""
    path = _png_path(path)
    forecast = np.asarray(forecast_days, dtype=float).ravel()
    t, hi_t = _time_axis(fit, forecast)
    median, lower, upper = fit.predict(t)

    fig = Figure(figsize=(6.4, 4.0), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    _draw_fit(ax, fit, t, (median, lower, upper), forecast)
    _draw_warnings(ax, fit, upper, hi_t, unit)
    _label(ax, fit, median, upper, unit, title)
    fig.tight_layout()

    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _png_path(path: str | Path) -> Path:
    """``path`` as a Path; InputError unless it names a .png file in an existing folder."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(path, "output", "the growth figure is written as .png")
    if not path.parent.is_dir():
        raise InputError(path, "output", f"folder {path.parent} does not exist")
    return path


def _time_axis(fit: GrowthFit, forecast: np.ndarray) -> tuple[np.ndarray, float]:
    """(400 evenly spaced days spanning the scans, RT start and ``forecast`` days with a 5 % margin; the latest of
    those days)."""
    marks = [fit.days[0], fit.days[-1], *forecast]
    if fit.rt_start_day is not None:
        marks.append(fit.rt_start_day)
    lo_t, hi_t = min(marks), max(marks)
    pad = 0.05 * max(hi_t - lo_t, 1.0)
    return np.linspace(lo_t - pad, hi_t + pad, 400), hi_t


def _draw_fit(
    ax: Axes, fit: GrowthFit, t: np.ndarray, curve: tuple[np.ndarray, np.ndarray, np.ndarray], forecast: np.ndarray
) -> None:
    """The band and median ``curve`` (median, lower, upper) on days ``t``, the observed burdens, the RT start and the
    forecast days (days) with their median and 95% band."""
    median, lower, upper = curve
    ax.fill_between(t, lower, upper, color="tab:blue", alpha=0.2, linewidth=0, label="95% band (bootstrap)")
    ax.plot(t, median, color="tab:blue", label="median")
    ax.plot(fit.days, fit.burdens, "o", color="black", label="observed")
    if fit.rt_start_day is not None:
        ax.axvline(fit.rt_start_day, color="tab:red", linestyle="--", label=f"RT start (day {fit.rt_start_day:g})")
    if forecast.size:
        f_med, f_lo, f_hi = fit.predict(forecast)
        ax.errorbar(
            forecast, f_med, yerr=[f_med - f_lo, f_hi - f_med], fmt="s", color="tab:orange", capsize=4, label="forecast"
        )
        for day in forecast:
            ax.axvline(day, color="tab:orange", linestyle=":", linewidth=1)


def _draw_warnings(ax: Axes, fit: GrowthFit, upper: np.ndarray, hi_t: float, unit: str) -> None:
    """The cap (brain volume, ``unit``) when the band's ``upper`` edge reaches it, an arrow at a peak no scan
    observed (up to day ``hi_t``) and the box naming the parameters fitted at a bound."""
    if fit.cap is not None and float(np.max(upper)) >= fit.cap * (1.0 - 1e-9):
        ax.axhline(fit.cap, color="0.3", linestyle="-.", linewidth=1, label=f"cap: brain volume ({fit.cap:.0f} {unit})")
    bump = unobserved_bump(fit, hi_t)
    if bump is not None:
        ax.annotate(
            f"unobserved bump\n{bump[1]:.0f} {unit}, day {bump[0]:.0f}",
            bump[:2],
            xytext=(12, 12),
            textcoords="offset points",
            fontsize="x-small",
            color="tab:red",
            arrowprops={"arrowstyle": "->", "color": "tab:red"},
        )
    text = bound_note(fit)
    if text:
        ax.text(
            0.01,
            0.99,
            text,
            transform=ax.transAxes,
            ha="left",
            va="top",
            fontsize="x-small",
            color="tab:red",
            bbox={"facecolor": "white", "edgecolor": "tab:red", "alpha": 0.85},
        )


def _label(ax: Axes, fit: GrowthFit, median: np.ndarray, upper: np.ndarray, unit: str, title: str | None) -> None:
    """Axis labels, the title (the model and its R^2 unless ``title``), the burden range (cut at 3x the data) and
    the legend."""
    ax.set_xlabel("day")
    ax.set_ylabel(f"tumor burden ({unit})")
    r2 = "n/a" if not np.isfinite(fit.r_squared) else f"{fit.r_squared:.3f}"
    ax.set_title(title or f"{fit.model} model, R$^2$ = {r2}")
    top = min(float(np.max(upper)), 3.0 * max(float(np.max(fit.burdens)), float(np.max(median))))
    ax.set_ylim(0.0, 1.05 * top if top > 0 else 1.0)  # a very wide band is cut at 3x the data
    ax.legend(fontsize="small", loc="best")
