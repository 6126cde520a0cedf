"""Which forecasts an evaluation scores: pairing rules of the evaluation protocols, on scan days (days).

- ``last-scan``: the last scan forecast from all earlier ones (one task per patient).
- ``horizon`` (``min_days``-``max_days``): for every input prefix (the first i scans, i >= the forecaster's fewest
  scans) and every later scan j with ``min_days <= t_j - t_i <= max_days``, one forecast of scan j from scans 1..i.
- ``recurrence`` (PREDICT-GBM): the inputs are the scans up to and including the RT planning scan (the last scan on
  or before ``rt_start_day``); the target is the first post-RT scan with progression: the enhancing volume
  (label 3, when the scan has BraTS labels) or the FLAIR abnormality (the GTV) reaches ``PROGRESSION_RATIO`` times
  its post-RT nadir (the smallest volume of the post-RT scans before it) and grows by at least
  ``PROGRESSION_MIN_ML``, whatever the gap. A ratio of 1.4 in volume is the volumetric equivalent of RANO's 25%
  increase of the sum of products of diameters (1.25^(3/2) = 1.40; Wen et al., J Clin Oncol 2010; Chang et al.,
  Neuro-Oncology 2019).

The forecaster only ever receives :func:`prefix_case`: a new case that holds the input scans and nothing of the
later ones (no paths, no cached volumes).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..io.case import DERIVED, Case

PROTOCOLS = ("last-scan", "horizon", "recurrence")
PAIRS = ("all", "first-per-bin")
# time-gap bins (days; upper edges inclusive) of the multi-task diffusion paper
GAP_BINS: tuple[tuple[str, float], ...] = (
    ("0-60", 60),
    ("61-120", 120),
    ("121-180", 180),
    ("181-280", 280),
    ("281-365", 365),
    (">365", math.inf),
)
PROGRESSION_RATIO = 1.4
PROGRESSION_MIN_ML = 0.5
ENHANCING_LABEL = 3


@dataclass(frozen=True)
class Protocol:
    """A protocol name and, for ``horizon``, the gap range (days, inclusive) and which of its pairs are scored
    (``pairs``: "all" or "first-per-bin")."""

    name: str = "last-scan"
    min_days: float = 0.0
    max_days: float = math.inf
    pairs: str = "all"

    def __post_init__(self) -> None:
        if self.name not in PROTOCOLS:
            raise InputError(None, "protocol", f"unknown protocol '{self.name}'; choose from {', '.join(PROTOCOLS)}")
        if self.pairs not in PAIRS:
            raise InputError(None, "pairs", f"unknown pair rule '{self.pairs}'; choose from {', '.join(PAIRS)}")
        if not (self.min_days >= 0 and self.max_days >= self.min_days):
            raise InputError(
                None, "horizon_days", f"empty range {self.min_days:g}-{self.max_days:g} days (need 0 <= MIN <= MAX)"
            )


def parse_horizon(text: str) -> tuple[float, float]:
    """``"90-365"`` -> (90.0, 365.0) days; anything else, or an empty range, is an InputError (field horizon_days)."""
    parts = str(text).split("-")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise InputError(None, "horizon_days", f"expected MIN-MAX in days (e.g. 90-365), got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi):
        raise InputError(None, "horizon_days", f"empty range {text!r} (need 0 <= MIN <= MAX days)")
    return lo, hi


def gap_bin(gap_days: float) -> str:
    """The time-gap bin (days) of ``GAP_BINS``: 0-60, 61-120, 121-180, 181-280, 281-365 or >365; a fractional gap
    goes to the first bin whose upper edge it does not exceed."""
    if not gap_days >= 0:
        raise ValueError(f"time gap must be a non-negative number of days, got {gap_days}")
    return next(label for label, upper in GAP_BINS if gap_days <= upper)


@dataclass(frozen=True)
class Task:
    """One scored forecast: the first ``n_inputs`` scans predict scan ``target`` (timepoint index)."""

    n_inputs: int
    target: int


def progression_scan(case: Case, volumes_ml: Callable[[int], tuple[float, float | None]]) -> tuple[int, int] | str:
    """(planning scan index, first progression index) of the ``recurrence`` protocol, or the reason none exists.
    ``volumes_ml(i)`` gives scan i's (GTV volume, enhancing volume or None) in mL."""
    if case.rt_start_day is None:
        return "no rt_start_day: the recurrence protocol needs RT"
    days = case.days
    planning = [i for i, d in enumerate(days) if d <= case.rt_start_day]
    if not planning:
        return f"no scan on or before the RT start (day {case.rt_start_day:g})"
    plan = planning[-1]
    post = list(range(plan + 1, len(days)))
    if len(post) < 2:
        return "fewer than two post-RT scans: no nadir to progress from"
    nadir_gtv, nadir_enh = volumes_ml(post[0])
    for j in post[1:]:
        gtv, enh = volumes_ml(j)
        grew = gtv >= PROGRESSION_RATIO * nadir_gtv and gtv - nadir_gtv >= PROGRESSION_MIN_ML
        if enh is not None and nadir_enh is not None:
            grew = grew or (enh >= PROGRESSION_RATIO * nadir_enh and enh - nadir_enh >= PROGRESSION_MIN_ML)
        if grew:
            return plan, j
        nadir_gtv = min(nadir_gtv, gtv)
        if enh is not None:
            nadir_enh = enh if nadir_enh is None else min(nadir_enh, enh)
    return "no post-RT progression (RANO-like growth over the nadir) among the scans"


def plan_tasks(
    case: Case,
    protocol: Protocol,
    min_scans: int,
    volumes_ml: Callable[[int], tuple[float, float | None]] | None = None,
) -> tuple[list[Task], str | None]:
    """The tasks of ``protocol`` for a forecaster that needs ``min_scans`` input scans, and the reason when there
    is none. ``volumes_ml`` is needed by ``recurrence`` only (see :func:`progression_scan`)."""
    n = len(case.timepoints)
    days = case.days
    if protocol.name == "last-scan":
        if n - 1 < min_scans:
            return (
                [],
                f"{n} scans; the last-scan protocol needs at least {min_scans + 1} ({min_scans} inputs and the truth)",
            )
        return [Task(n - 1, n - 1)], None
    if protocol.name == "horizon":
        tasks = [
            Task(i, j)
            for i in range(min_scans, n)
            for j in range(i, n)
            if protocol.min_days <= days[j] - days[i - 1] <= protocol.max_days
        ]
        if protocol.pairs == "first-per-bin":
            tasks = first_per_bin(tasks, days)
        if not tasks:
            return [], (
                f"no (inputs, later scan) pair with a gap of {protocol.min_days:g}-{protocol.max_days:g} days "
                f"and at least {min_scans} input scans (scan days {', '.join(f'{d:g}' for d in days)})"
            )
        return tasks, None
    if volumes_ml is None:
        raise TypeError("the recurrence protocol needs volumes_ml")
    found = progression_scan(case, volumes_ml)
    if isinstance(found, str):
        return [], found
    plan, target = found
    if plan + 1 < min_scans:
        return [], f"{plan + 1} scans up to the RT planning scan; the forecaster needs {min_scans}"
    return [Task(plan + 1, target)], None


def first_per_bin(tasks: list[Task], days: Sequence[float] | np.ndarray) -> list[Task]:
    """Per time-gap bin, the task with the fewest input scans, then the earliest target (``days``: scan days)."""
    chosen: dict[str, Task] = {}
    for task in sorted(tasks, key=lambda t: (t.n_inputs, t.target)):
        chosen.setdefault(gap_bin(days[task.target] - days[task.n_inputs - 1]), task)
    return sorted(chosen.values(), key=lambda t: (t.n_inputs, t.target))


def prefix_case(case: Case, n_inputs: int) -> Case:
    """A new case with the first ``n_inputs`` scans only: later scans' paths and cached volumes are not in it, nor
    any volume derived from the scans (``Case.derived``: the prefix computes its own)."""
    keep = case.timepoints[:n_inputs]
    cache = {
        k: v
        for k, v in case._cache.items()
        if k[0] != DERIVED
        and not (len(k) > 1 and isinstance(k[1], int) and k[0] in ("image", "labels", "gtv") and k[1] >= n_inputs)
    }
    prefix = dataclasses.replace(case, timepoints=list(keep), _cache=cache)
    for name in ("grid", "reference"):
        if name in case.__dict__:
            prefix.__dict__[name] = case.__dict__[name]
    return prefix


def scan_volumes(case: Case) -> Callable[[int], tuple[float, float | None]]:
    """``volumes_ml(i)``: scan i's GTV volume and enhancing (label 3) volume (None without labels), in mL."""
    ml = case.grid.voxel_volume_ml

    def volumes(i: int) -> tuple[float, float | None]:
        tp = case.timepoints[i]
        labels = case.labels(tp)
        enhancing = None if labels is None else float(np.count_nonzero(labels == ENHANCING_LABEL) * ml)
        return float(np.count_nonzero(case.gtv(tp)) * ml), enhancing

    return volumes


def recurrence_task(case: Case, min_scans: int = 1) -> tuple[Case, int] | None:
    """The ``recurrence`` protocol's inputs for one case: (the case cut to the scans up to the planning scan, the
    target scan's index), or None when the protocol scores no forecast for it (no RT, no progression...)."""
    tasks, _ = plan_tasks(case, Protocol("recurrence"), min_scans, scan_volumes(case))
    return (prefix_case(case, tasks[0].n_inputs), tasks[0].target) if tasks else None
