"""Metrics for forecast probability maps against reference maps (multi-task diffusion paper, section
"Evaluation"): RMSE, BCE, KL, Dice at P > 0.8, Pearson r on P > 0.2, and calibration (ECE with the
data and figure of a reliability diagram).

Probabilities are arrays of values in [0, 1] of any shape (2D slices or 3D volumes). The reference
map may be soft (a logistic GTV probability) or hard (0/1). An optional bool ``mask`` restricts every
metric to some voxels (e.g. the brain).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-7  # probabilities are clipped to [EPS, 1 - EPS] inside logarithms


def _maps(
    predicted: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predicted, dtype=np.float64)
    q = np.asarray(reference, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"predicted {p.shape} and reference {q.shape} maps are not on one grid")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != p.shape:
            raise ValueError(f"mask {mask.shape} is not on the maps' grid {p.shape}")
        p, q = p[mask], q[mask]
    else:
        p, q = p.ravel(), q.ravel()
    if p.size == 0:
        raise ValueError("no voxels to evaluate")
    for name, m in (("predicted", p), ("reference", q)):
        if not np.all((m >= 0) & (m <= 1)):
            raise ValueError(f"{name} map must hold probabilities in [0, 1] (no NaN)")
    return p, q


def rmse(predicted: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root mean square error between two probability maps."""
    p, q = _maps(predicted, reference, mask)
    return float(np.sqrt(np.mean((p - q) ** 2)))


def bce(predicted: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean binary cross-entropy (nats) of the predicted map against the (soft) reference labels."""
    p, q = _maps(predicted, reference, mask)
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(q * np.log(p) + (1 - q) * np.log1p(-p)))


def kl_divergence(predicted: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """KL(reference || predicted) in nats between the two maps seen as spatial distributions of tumor
    presence: each map is normalized to sum 1 over the voxels, then sum r log(r / p). Zero when the
    maps are proportional; raises ``ValueError`` when either map sums to zero."""
    p, q = _maps(predicted, reference, mask)
    if not (p.sum() > 0 and q.sum() > 0):
        raise ValueError("KL divergence needs maps with some tumor probability (they sum to zero)")
    p = np.maximum(p / p.sum(), EPS / p.size)
    q = q / q.sum()
    nz = q > 0
    return float(np.sum(q[nz] * (np.log(q[nz]) - np.log(p[nz]))))


def dice_at_threshold(
    predicted: np.ndarray, reference: np.ndarray, threshold: float = 0.8, mask: np.ndarray | None = None
) -> float:
    """Dice of the two maps binarized at P > ``threshold`` (0.8: inside the GTV for the logistic map);
    1.0 when both are empty."""
    p, q = _maps(predicted, reference, mask)
    a, b = p > threshold, q > threshold
    total = int(a.sum()) + int(b.sum())
    return 2.0 * float(np.count_nonzero(a & b)) / total if total else 1.0


def pearson_r(
    predicted: np.ndarray, reference: np.ndarray, threshold: float = 0.2, mask: np.ndarray | None = None
) -> float:
    """Pearson correlation of the two maps over the voxels where either exceeds ``threshold`` (the
    tumor and its surroundings, low-density background dropped). NaN when fewer than two voxels
    qualify or either map is constant there."""
    p, q = _maps(predicted, reference, mask)
    keep = (p > threshold) | (q > threshold)
    p, q = p[keep], q[keep]
    if p.size < 2 or np.all(p == p[0]) or np.all(q == q[0]):
        return float("nan")
    return float(np.corrcoef(p, q)[0, 1])


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Per-bin calibration data: ``bin_edges`` (n_bins + 1 edges in [0, 1]), ``confidence`` (mean
    predicted probability per bin), ``frequency`` (mean reference value per bin: the observed
    frequency), ``counts`` (voxels per bin). Empty bins hold NaN confidence and frequency."""

    bin_edges: np.ndarray
    confidence: np.ndarray
    frequency: np.ndarray
    counts: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error: sum over bins of (count / total) * |frequency - confidence|."""
        used = self.counts > 0
        weights = self.counts[used] / self.counts.sum()
        return float(np.sum(weights * np.abs(self.frequency[used] - self.confidence[used])))


def reliability_diagram(
    predicted: np.ndarray, reference: np.ndarray, n_bins: int = 10, mask: np.ndarray | None = None
) -> ReliabilityDiagram:
    """Bin the predicted probabilities into ``n_bins`` equal-width bins of [0, 1] (the last bin closed)
    and compare each bin's mean prediction with the mean reference value there."""
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a whole number >= 1, got {n_bins}")
    p, q = _maps(predicted, reference, mask)
    n_bins = int(n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(index, weights=p, minlength=n_bins) / counts
        frequency = np.bincount(index, weights=q, minlength=n_bins) / counts
    return ReliabilityDiagram(edges, confidence, frequency, counts)


def expected_calibration_error(
    predicted: np.ndarray, reference: np.ndarray, n_bins: int = 10, mask: np.ndarray | None = None
) -> float:
    """Expected calibration error of a probability map (equal-width bins; see :func:`reliability_diagram`)."""
    return reliability_diagram(predicted, reference, n_bins, mask).ece


def plot_reliability_diagram(diagram: ReliabilityDiagram, title: str = "Calibration"):
    """A matplotlib ``Figure`` (no pyplot, no display needed) of the reliability diagram: observed
    frequency against mean predicted probability per bin, the diagonal of perfect calibration, and
    the bin counts below. Save it with ``fig.savefig(path)``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 5.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    centres = 0.5 * (diagram.bin_edges[:-1] + diagram.bin_edges[1:])
    width = np.diff(diagram.bin_edges)
    used = diagram.counts > 0
    top.plot([0, 1], [0, 1], "--", color="0.5", label="perfect calibration")
    top.bar(
        centres[used], diagram.frequency[used], width=width[used], edgecolor="k", alpha=0.6, label="observed frequency"
    )
    top.plot(diagram.confidence[used], diagram.frequency[used], "o-", color="C3", label="bin mean")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("observed frequency")
    top.set_title(f"{title} (ECE {diagram.ece:.4f})")
    top.legend(loc="upper left", fontsize="small")
    bottom.bar(centres, diagram.counts, width=width, color="0.6", edgecolor="k")
    if diagram.counts.max() > 100 * diagram.counts[used].min():  # counts spanning decades: log axis
        bottom.set_yscale("log")
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("voxels")
    return fig
