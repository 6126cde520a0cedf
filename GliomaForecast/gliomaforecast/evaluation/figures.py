"""Box plots of a cohort evaluation (PNG): probability-map metrics per forecaster, and recurrence
coverage of the standard CTV vs each forecaster's iso-volumetric CTV with the Wilcoxon p-value.

matplotlib object API on the Agg canvas; saved without software metadata (reproducible bytes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..output.figures import save_png

METRIC_PANELS = (
    ("rmse", "RMSE"),
    ("bce", "BCE (nats)"),
    ("kl", "KL (nats)"),
    ("ece", "ECE"),
    ("dice_tumor", "Dice (tumor: phi <= 0)"),
    ("hd95_mm", "HD95 (mm)"),
)
COVERAGE_PANELS = (("enhancing", "enhancing"), ("enhancing+necrosis", "enhancing_necrosis"), ("gtv", "gtv"))


def _finite(values) -> np.ndarray:
    v = np.asarray(list(values), dtype=np.float64)
    return v[np.isfinite(v)]


def _p_text(test: dict) -> str:
    p = test.get("p_value")
    return "p n/a" if p is None or not math.isfinite(p) else f"p = {p:.2g}"


def plot_boxplots(path: Path, rows: Sequence[dict], forecasters: Sequence[str], summary: dict) -> Path:
    """Write the box-plot figure of the per-patient ``rows`` (columns of ``evaluation.cohort.COLUMNS``)
    to ``path``; ``summary`` (``evaluation.cohort.summarize``) gives the Wilcoxon p-values."""
    fig = Figure(figsize=(10.5, 9.0), layout="constrained")
    axes = fig.subplots(3, 3).ravel()
    by_name = {n: [r for r in rows if r["forecaster"] == n] for n in forecasters}
    for ax, (metric, label) in zip(axes, METRIC_PANELS):
        data = [_finite(r[metric] for r in by_name[n]) for n in forecasters]
        _boxes(ax, data, list(forecasters))
        ax.set_title(label, fontsize="medium")
    for ax, (definition, suffix) in zip(axes[len(METRIC_PANELS) :], COVERAGE_PANELS):
        first = next((by_name[n] for n in forecasters if by_name[n]), [])
        data = [_finite(r[f"coverage_standard_{suffix}"] for r in first)]
        names = ["standard"]
        pvals = []
        for n in forecasters:
            data.append(_finite(r[f"coverage_forecast_{suffix}"] for r in by_name[n]))
            names.append(n)
            test = summary["forecasters"].get(n, {}).get("coverage", {}).get(definition, {}).get("wilcoxon", {})
            pvals.append(f"{n} {_p_text(test)}")
        _boxes(ax, data, names)
        ax.set_ylim(-0.02, 1.02)
        what = "whole future GTV" if definition == "gtv" else definition
        ax.set_title(f"coverage, {what}\n" + "; ".join(pvals), fontsize="small")
    n_patients = len({r["patient_id"] for r in rows})
    fig.suptitle(
        f"Cohort evaluation: {n_patients} patients (last scan forecast from the earlier ones)", fontsize="medium"
    )
    return save_png(fig, path)


def _boxes(ax, data: list[np.ndarray], names: list[str]) -> None:
    positions = np.arange(1, len(data) + 1)
    shown = [d if d.size else np.array([np.nan]) for d in data]
    ax.boxplot(
        shown,
        positions=positions,
        widths=0.6,
        showmeans=True,
        showfliers=False,  # every point is drawn
        meanprops={"marker": "^", "markersize": 5},
    )
    for x, d in zip(positions, data):
        if d.size:
            jitter = np.linspace(-0.15, 0.15, d.size) if d.size > 1 else np.zeros(1)
            ax.plot(x + jitter, d, ".", color="0.3", markersize=3)
    ax.set_xticks(positions, names, fontsize="small")
    ax.grid(axis="y", color="0.9")
