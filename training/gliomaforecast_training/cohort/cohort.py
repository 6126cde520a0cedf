"""The virtual patient cohort: anatomy, Fisher-Kolmogorov growth, resection, radiotherapy, imaging and
a clinical timeline, written as case manifests (``gliomaforecast.case/1``) plus a cohort index.

Timeline of a patient (days relative to the planning scan, day 0): the tumor grows from one (sometimes
two) seeds until its enhancing core reaches a drawn diagnosis volume; optionally the enhancing core is
resected 7-21 days before day 0; RT (60 Gy / 30 fractions, Monday-Friday) starts on day 14-35; 2-5
follow-up scans come after it at irregular gaps of 30-400 days (at most 60 days after a scan showing
suspected progression, and earlier when the FLAIR abnormality outgrows 150 mL in between). Everything follows from the seed.

Follow-up modes (``follow_up``): ``"default"`` is the clinical schedule above (unchanged, byte-identical
for a seed); ``"dense"`` scans every 30-60 days (uniform integers) from the end of RT until 12-18 months
after it, with no clinical rules (no early scans, no off-study), so that every forecast horizon has a
ground truth; ``scan_days`` scans on requested days (after the planning scan, day 0). The dense and
scheduled modes use realism version 3 (:data:`REALISM_CURRENT`; :mod:`.realism3`): realism 2's subclinical
distant focus of infiltrating cells outside the treated volume in some patients, plus ESTRO-EANO dosing,
radioresistant infiltration, enhancement and FLAIR change in irradiated brain, a FLAIR visible only from the GTV
border and two template brains, so that a realistic fraction of recurrences leaves the standard plan (see
docs/cohort.md, "Long-horizon follow-up and patterns of failure" and "Realism 3").
"""

from __future__ import annotations

import csv
import io as _io
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage

from gliomaforecast.evaluation.protocols import GAP_BINS, gap_bin
from gliomaforecast.geometry import Grid, resample_to
from gliomaforecast.io.case import SCHEMA as SCHEMA_CASE
from gliomaforecast.io.images import atomic_output_dir, check_output_dir, write_image
from gliomaforecast.targets.ctv import standard_ctv

from . import imaging, realism3, treatment
from .anatomy import Anatomy, deform, deform_v3, load_template
from .tumor_growth import FisherKolmogorov

SCHEMA_COHORT = "gliomaforecast.cohort/1"
GENERATOR_VERSION = 2

# Parameter ranges (see docs/cohort.md for the sources).
D_WHITE_RANGE = (0.03, 0.3)        # mm^2/day, log-uniform
D_RATIO = 10.0                     # D_white / D_grey
RHO_RANGE = (0.02, 0.05)           # 1/day, log-uniform
ALPHA_RANGE = (0.04, 0.09)         # 1/Gy, uniform; alpha/beta = 10 Gy (oxic cells)
CLEARANCE_RANGE = (15.0, 45.0)     # days, mean life of killed cells
OER_RANGE = (2.0, 3.0)             # oxygen enhancement ratio of the fully dense (hypoxic) core, uniform
DIAGNOSIS_CORE_ML = (8.0, 50.0)     # mL, log-uniform: enhancing core (density >= 0.8) at diagnosis
DIAGNOSIS_MAX_FLAIR_ML = 200.0     # mL: diagnosed at the latest when the FLAIR abnormality is this large
MAX_PRE_DIAGNOSIS_DAYS = 3000.0
PROGRESSION_ML = 150.0             # follow-up stops after a scan with a larger FLAIR abnormality
REGROWTH_FACTOR = 1.25             # FLAIR abnormality / its post-RT nadir that counts as suspected progression
CONFIRMATION_GAP_DAYS = 60         # days: at most this long to the next scan after suspected progression

# Long-horizon follow-up (modes "dense" and "scheduled"; the "default" mode above is unchanged).
FOLLOW_UP_MODES = ("default", "dense")
DENSE_GAP_DAYS = (30, 60)          # days between dense scans (and from the last RT fraction to the first), uniform integers
DENSE_END_DAYS = (365, 548)        # days after the last RT fraction to the end of dense follow-up (12-18 months)
DENSE_STOP_ML = 300.0              # dense follow-up ends after a scan with a larger FLAIR abnormality (off study)
REALISM_LEGACY = 1                 # the physics of generator version 2 (the default mode always uses it)
REALISM_FOCI = 2                   # + subclinical distant foci (out-of-margin recurrences)
REALISM_CURRENT = 3                # + ESTRO-EANO dose, radioresistant infiltration, visible-border FLAIR, two brains
REALISM_VERSIONS = (REALISM_LEGACY, REALISM_FOCI, REALISM_CURRENT)
# Realism 2: a subclinical focus of infiltrating tumour cells outside the treated volume (see docs/cohort.md)
DISTANT_FOCUS_PROBABILITY = 0.2    # fraction of patients with one
DISTANT_FOCUS_AMPLITUDE = (0.01, 0.1)     # peak density (fraction of capacity), log-uniform: invisible (< 0.16)
DISTANT_FOCUS_SIGMA_MM = 3.0       # Gaussian sd of the focus, mm
DISTANT_FOCUS_CTV_DISTANCE_MM = (5.0, 25.0)   # mm outside the planning CTV (20-40 mm from the target)


@dataclass(frozen=True)
class PatientParams:
    """Everything that defines one virtual patient (all drawn from its seed)."""

    patient_id: str
    seed: int
    d_white: float                  # mm^2/day
    d_grey: float                   # mm^2/day
    rho: float                      # 1/day
    alpha: float                    # 1/Gy
    alpha_beta: float               # Gy
    clearance_days: float           # days
    hypoxic_oer: float              # OER of the fully dense core (1 = no hypoxic resistance)
    seeds_index: tuple              # ((z, y, x), ...) voxel indices of the tumor origins
    seed_tissue: str                # "wm" or "gm": tissue of the first seed
    diagnosis_core_ml: float        # mL
    resection: bool
    resection_threshold: float      # density removed by resection
    resection_lead_days: int        # days from resection to the planning scan
    rt_start_day: int               # days after the planning scan
    followup_days: tuple            # drawn follow-up schedule (days); simulate() scans earlier on suspected progression
    necrosis_rim_mm: float          # mm
    prescription_gy: float = 60.0
    n_fractions: int = 30
    ctv_margin_mm: float = 15.0


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def diffusivity_map(anatomy: Anatomy, d_white: float, d_grey: float, exclude: np.ndarray | None = None) -> np.ndarray:
    """D (mm^2/day) per voxel: partial-volume mix of white and grey matter; zero where brain tissue is
    under 30% (CSF, outside the brain) and in ``exclude`` (e.g. a resection cavity)."""
    tissue = anatomy.wm + anatomy.gm
    d = (d_white * anatomy.wm + d_grey * anatomy.gm) * (tissue >= 0.3)
    if exclude is not None:
        d = d * ~np.asarray(exclude, dtype=bool)
    return d.astype(np.float32)


def draw_params(rng: np.random.Generator, anatomy: Anatomy, patient_id: str, seed: int,
                n_followups: int | None = None, d_white_range: tuple[float, float] = D_WHITE_RANGE) -> PatientParams:
    """Draw a patient's parameters and timeline (see the module docstring and docs/cohort.md); D_white
    (mm^2/day) log-uniform in ``d_white_range``."""
    spacing = anatomy.grid.spacing
    depth = ndimage.distance_transform_edt(anatomy.brain, sampling=spacing)
    z_mm = anatomy.grid.index_to_physical(np.stack(np.indices(anatomy.brain.shape), axis=-1))[..., 2]
    supratentorial = z_mm > -5.0  # MNI z (mm): above the tentorium, roughly
    seed_tissue = "wm" if rng.random() < 0.8 else "gm"
    prob = anatomy.wm if seed_tissue == "wm" else anatomy.gm
    candidates = np.argwhere((prob > 0.6) & (depth > 15.0) & supratentorial)
    first = tuple(int(i) for i in candidates[rng.integers(len(candidates))])
    seeds = [first]
    if rng.random() < 0.15:  # multifocal: a second focus 15-35 mm away in white matter
        dist = np.sqrt(sum(((candidates[:, a] - first[a]) * spacing[a]) ** 2 for a in range(3)))
        wm_ok = anatomy.wm[tuple(candidates.T)] > 0.6
        near = candidates[(dist > 15.0) & (dist < 35.0) & wm_ok]
        if len(near):
            seeds.append(tuple(int(i) for i in near[rng.integers(len(near))]))
    d_white = _log_uniform(rng, *d_white_range)
    oer = float(rng.uniform(*OER_RANGE))
    rt_start = int(rng.integers(14, 36))
    rt_end = rt_start + 40
    n_fu = int(rng.integers(2, 6)) if n_followups is None else int(n_followups)
    days = [rt_end + int(rng.integers(21, 61))]
    for _ in range(n_fu - 1):
        gap = float(np.clip(np.exp(rng.normal(np.log(100.0), 0.6)), 30.0, 400.0))
        days.append(days[-1] + int(round(gap)))
    return PatientParams(
        patient_id=patient_id, seed=int(seed), d_white=d_white, d_grey=d_white / D_RATIO,
        rho=_log_uniform(rng, *RHO_RANGE), alpha=float(rng.uniform(*ALPHA_RANGE)), alpha_beta=10.0,
        clearance_days=float(rng.uniform(*CLEARANCE_RANGE)), hypoxic_oer=oer, seeds_index=tuple(seeds), seed_tissue=seed_tissue,
        diagnosis_core_ml=_log_uniform(rng, *DIAGNOSIS_CORE_ML), resection=bool(rng.random() < 0.5),
        resection_threshold=float(rng.uniform(0.75, 0.9)), resection_lead_days=int(rng.integers(7, 22)),
        rt_start_day=rt_start, followup_days=tuple(days), necrosis_rim_mm=float(rng.uniform(3.0, 5.0)))


@dataclass
class Scan:
    """Simulated truth at one scan day: total and living density, float32."""

    day: int
    density: np.ndarray
    living: np.ndarray


@dataclass
class Simulation:
    """The result of :func:`simulate`: scans, cavity (bool or None), dose (Gy), CTV, days from the
    first cell to the planning scan, solver steps; ``extra["pre_diagnosis"]`` lists (solver day,
    FLAIR mL, core mL) every 5 days before diagnosis."""

    scans: list[Scan]
    cavity: np.ndarray | None
    dose: np.ndarray
    ctv: np.ndarray
    days_before_planning: float
    steps: int = 0
    extra: dict = field(default_factory=dict)


def _seed_density(shape, spacing, centre, sigma_mm: float, amplitude: float) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    r2 = sum(((g - c) * h) ** 2 for g, c, h in zip(grids, centre, spacing))
    return (amplitude * np.exp(-0.5 * r2 / sigma_mm ** 2)).astype(np.float32)


def flair_volume_ml(density: np.ndarray, voxel_ml: float) -> float:
    """Volume (mL) of the FLAIR abnormality (density >= the FLAIR threshold)."""
    return float(np.count_nonzero(density >= imaging.FLAIR_THRESHOLD)) * voxel_ml


def core_volume_ml(density: np.ndarray, voxel_ml: float) -> float:
    """Volume (mL) of the enhancing core (density >= the enhancement threshold, necrosis included)."""
    return float(np.count_nonzero(density >= imaging.ENHANCING_THRESHOLD)) * voxel_ml


@dataclass(frozen=True)
class FollowUp:
    """How a patient is followed up after RT and with which physics (see the module docstring).

    ``mode`` is ``"default"`` (the clinical schedule), ``"dense"`` or ``"scheduled"`` (``scan_days``,
    days after the planning scan, strictly increasing, > 0); ``realism`` the physics version
    (1 = generator version 2 as shipped, 2 = + distant foci); ``end_day``, for ``"dense"``, fixes the
    last possible scan day (days after the last RT fraction; else drawn in 12-18 months)."""

    mode: str = "default"
    scan_days: tuple = ()
    realism: int = REALISM_LEGACY
    end_day: int | None = None

    @property
    def legacy(self) -> bool:
        return self.mode == "default" and self.realism == REALISM_LEGACY

    def describe(self) -> dict:
        out = {"mode": self.mode, "realism": self.realism}
        if self.mode == "scheduled":
            out["scan_days"] = list(self.scan_days)
        return out


def check_scan_days(days) -> tuple[int, ...]:
    """Requested scan days (days after the planning scan) as a tuple of ints; raises ValueError unless
    they are non-empty, whole, non-negative and strictly increasing. Day 0 (the planning scan, always
    taken) may be listed first and is dropped; at least one later day must remain."""
    try:
        values = [float(d) for d in days]
    except (TypeError, ValueError):
        raise ValueError(f"expected whole numbers of days, got {days!r}") from None
    if not values:
        raise ValueError("no scan days given")
    if not all(np.isfinite(v) and v == int(v) for v in values):
        raise ValueError(f"scan days must be whole numbers of days, got {list(days)}")
    ints = [int(v) for v in values]
    if min(ints) < 0:
        raise ValueError(f"scan days must be >= 0 (days after the planning scan), got {min(ints)}")
    if any(b <= a for a, b in zip(ints, ints[1:])):
        raise ValueError(f"scan days must be strictly increasing, got {ints}")
    if ints[0] == 0:
        ints = ints[1:]
    if not ints:
        raise ValueError("at least one scan day after the planning scan (day 0) is needed")
    return tuple(ints)


def make_follow_up(follow_up: str = "default", scan_days=None, realism: int | None = None,
                   end_day: int | None = None) -> FollowUp:
    """Validate and combine the follow-up options (ValueError on bad input): ``scan_days`` selects the
    scheduled mode (only with ``follow_up="default"``); ``realism`` defaults to 1 for the default mode
    and 2 otherwise."""
    if follow_up not in FOLLOW_UP_MODES:
        raise ValueError(f"unknown follow-up mode {follow_up!r} (expected one of {', '.join(FOLLOW_UP_MODES)})")
    mode = follow_up
    days: tuple = ()
    if scan_days is not None:
        if follow_up != "default":
            raise ValueError("scan days and a follow-up mode other than default exclude each other")
        mode, days = "scheduled", check_scan_days(scan_days)
    if end_day is not None and (mode != "dense" or int(end_day) < DENSE_GAP_DAYS[0]):
        raise ValueError(f"an end day needs dense follow-up and >= {DENSE_GAP_DAYS[0]} days, got {end_day}")
    if realism is None:
        realism = REALISM_LEGACY if mode == "default" else REALISM_CURRENT
    if realism not in REALISM_VERSIONS:
        raise ValueError(f"unknown realism version {realism!r} (expected one of {REALISM_VERSIONS})")
    if mode == "default" and realism != REALISM_LEGACY:
        raise ValueError(f"realism {realism} needs dense or scheduled follow-up (the default schedule keeps version 1)")
    return FollowUp(mode, days, int(realism), None if end_day is None else int(end_day))


def last_fraction_day(p: PatientParams) -> int:
    """Day (after the planning scan) of the last RT fraction."""
    return int(treatment.fraction_days(p.rt_start_day, p.n_fractions)[-1])


def draw_dense_days(rng: np.random.Generator, p: PatientParams, end_day: int | None = None) -> tuple[tuple, int]:
    """Dense follow-up: scan days every 30-60 days (uniform integers) from the last RT fraction up to its
    end (days after the last fraction, drawn in 12-18 months unless given). Returns (days, end day
    after the planning scan)."""
    rt_end = last_fraction_day(p)
    end = rt_end + (int(rng.integers(DENSE_END_DAYS[0], DENSE_END_DAYS[1] + 1)) if end_day is None else int(end_day))
    days, day = [], rt_end
    while True:
        day += int(rng.integers(DENSE_GAP_DAYS[0], DENSE_GAP_DAYS[1] + 1))
        if day > end:
            break
        days.append(day)
    return tuple(days), end


@dataclass(frozen=True)
class DistantFocus:
    """Realism 2: a subclinical focus of infiltrating cells added at the planning scan, outside the CTV."""

    index: tuple                    # (z, y, x) voxel index of its centre
    amplitude: float                # peak density (fraction of capacity)
    ctv_distance_mm: float          # distance of its centre from the planning CTV, mm


def draw_distant_focus(rng: np.random.Generator, anatomy: Anatomy, ctv: np.ndarray) -> DistantFocus | None:
    """With probability DISTANT_FOCUS_PROBABILITY, a focus in white matter (> 60%) at 5-25 mm outside the
    planning CTV (tumour cells migrate along white-matter tracts beyond the visible abnormality)."""
    if rng.random() >= DISTANT_FOCUS_PROBABILITY:
        return None
    dist = ndimage.distance_transform_edt(~ctv, sampling=anatomy.grid.spacing)
    lo, hi = DISTANT_FOCUS_CTV_DISTANCE_MM
    candidates = np.argwhere((anatomy.wm > 0.6) & anatomy.brain & (dist >= lo) & (dist <= hi))
    if not len(candidates):
        return None
    idx = tuple(int(i) for i in candidates[rng.integers(len(candidates))])
    return DistantFocus(idx, _log_uniform(rng, *DISTANT_FOCUS_AMPLITUDE), round(float(dist[idx]), 3))


@dataclass
class _Planning:
    scans: list          # [the planning scan]
    cavity: np.ndarray | None
    ctv: np.ndarray
    dose: np.ndarray
    t0: float            # the planning scan, in solver days
    history: list        # (solver day, FLAIR mL, core mL) before diagnosis


def _grow_and_plan(anatomy: Anatomy, p: PatientParams,
                   realism: int = REALISM_LEGACY) -> tuple[FisherKolmogorov, _Planning]:
    """Growth from the seeds to diagnosis, the resection, the planning scan, its CTV and the dose map
    (shared by every follow-up mode). The CTV grows the GTV + cavity by 15 mm; realism 3 irradiates the
    ESTRO-EANO plan (core + cavity + 15 mm, :func:`realism3.dose_target`)."""
    spacing, voxel_ml = anatomy.grid.spacing, anatomy.grid.voxel_volume_ml
    solver = FisherKolmogorov(diffusivity_map(anatomy, p.d_white, p.d_grey), spacing, p.rho,
                              clearance_days=p.clearance_days)
    for i, centre in enumerate(p.seeds_index):
        solver.seed(_seed_density(solver.u.shape, spacing, centre, 3.0, 0.5 if i == 0 else 0.15))
    history: list[tuple[float, float, float]] = []
    while (core_volume_ml(solver.density, voxel_ml) < p.diagnosis_core_ml
           and flair_volume_ml(solver.density, voxel_ml) < DIAGNOSIS_MAX_FLAIR_ML
           and solver.day < MAX_PRE_DIAGNOSIS_DAYS):
        solver.advance(solver.day + 5.0)
        history.append((solver.day, flair_volume_ml(solver.density, voxel_ml), core_volume_ml(solver.density, voxel_ml)))
    t0 = solver.day + (p.resection_lead_days if p.resection else 0.0)  # planning scan, in solver days
    cavity = None
    if p.resection:
        cavity = treatment.resection_cavity(solver.density, p.resection_threshold, anatomy.brain)
        solver.remove(cavity)
        solver.set_diffusivity(diffusivity_map(anatomy, p.d_white, p.d_grey, exclude=cavity))
    solver.advance(t0)
    scans = [Scan(0, solver.density.copy(), solver.u.copy())]
    labels0 = imaging.brats_labels(scans[0].density, spacing, cavity, p.necrosis_rim_mm)
    if realism >= REALISM_CURRENT:
        ctv = realism3.dose_target(labels0, spacing, anatomy.brain)
    else:
        gtv0 = imaging.gtv_from_labels(labels0)
        target = gtv0 | cavity if cavity is not None else gtv0
        ctv = standard_ctv(target, spacing, p.ctv_margin_mm, anatomy.brain)
    dose = treatment.dose_map(ctv, spacing, p.prescription_gy)
    return solver, _Planning(scans, cavity, ctv, dose, t0, history)


def simulate(anatomy: Anatomy, p: PatientParams, follow_up: FollowUp | None = None,
             rng: np.random.Generator | None = None) -> Simulation:
    """Grow, treat and image-sample the tumor of patient ``p`` on ``anatomy``: returns the densities at
    the planning scan (day 0) and at every follow-up, the cavity, the CTV and the dose map.

    ``follow_up`` (default: the clinical schedule of ``p.followup_days``): with another mode the scans
    are taken exactly on ``p.followup_days`` (no clinical rules) and, for realism 2, ``rng`` draws the
    distant focus after the planning CTV is known (recorded in ``extra["distant_focus"]``)."""
    if follow_up is not None and not follow_up.legacy:
        return _simulate_scheduled(anatomy, p, follow_up, rng)
    solver, pre = _grow_and_plan(anatomy, p)
    scans, cavity, ctv, dose, t0, history = pre.scans, pre.cavity, pre.ctv, pre.dose, pre.t0, pre.history
    voxel_ml = anatomy.grid.voxel_volume_ml
    oer = treatment.oxygen_enhancement_ratio(solver.density, p.hypoxic_oer)
    sf = treatment.surviving_fraction(dose / p.n_fractions / oer, p.alpha, p.alpha_beta)
    for day in treatment.fraction_days(p.rt_start_day, p.n_fractions):
        solver.advance(t0 + day)
        solver.irradiate(sf)
    previous, nadir_ml = None, np.inf
    for i, day in enumerate(p.followup_days):
        if previous is not None:
            flair_ml = flair_volume_ml(previous.density, voxel_ml)
            if i >= 2 and flair_ml > PROGRESSION_ML:
                break  # progressed: off study (second-line treatment) after at least two follow-ups
            gap = day - p.followup_days[i - 1]
            if flair_ml > PROGRESSION_ML or (i >= 2 and flair_ml > REGROWTH_FACTOR * nadir_ml):
                gap = min(gap, CONFIRMATION_GAP_DAYS)  # suspected progression: an earlier confirmation scan
            day = previous.day + gap
            # clinical progression (symptoms) brings the scan forward: checked every 10 days, >= 30 days apart
            for check in range(previous.day + 30, day, 10):
                solver.advance(t0 + check)
                if flair_volume_ml(solver.density, voxel_ml) > PROGRESSION_ML:
                    day = check
                    break
        solver.advance(t0 + day)
        previous = Scan(int(day), solver.density.copy(), solver.u.copy())
        nadir_ml = min(nadir_ml, flair_volume_ml(previous.density, voxel_ml))
        scans.append(previous)
    return Simulation(scans, cavity, dose, ctv, days_before_planning=float(t0), steps=solver.steps,
                      extra={"pre_diagnosis": history})


def _simulate_scheduled(anatomy: Anatomy, p: PatientParams, follow_up: FollowUp,
                        rng: np.random.Generator | None) -> Simulation:
    """simulate() for the dense and scheduled modes: the same growth, resection, CTV and dose; scans on
    exactly ``p.followup_days`` (a scan on a fraction day comes before that fraction)."""
    solver, pre = _grow_and_plan(anatomy, p, follow_up.realism)
    scans, cavity, ctv, dose, t0, history = pre.scans, pre.cavity, pre.ctv, pre.dose, pre.t0, pre.history
    spacing, voxel_ml = anatomy.grid.spacing, anatomy.grid.voxel_volume_ml
    extra: dict = {"pre_diagnosis": history, "distant_focus": None}
    if follow_up.realism >= REALISM_FOCI:
        if rng is None:
            raise ValueError(f"realism {follow_up.realism} needs the patient's random generator")
        focus = draw_distant_focus(rng, anatomy, ctv)
        if focus is not None:  # invisible at planning (amplitude < the FLAIR threshold), so not in the GTV
            solver.seed(_seed_density(solver.u.shape, spacing, focus.index, DISTANT_FOCUS_SIGMA_MM, focus.amplitude))
            extra["distant_focus"] = focus
    if follow_up.realism >= REALISM_CURRENT:
        alpha_inf = float(rng.uniform(*realism3.ALPHA_INFILTRATIVE_RANGE))
        alpha_core = float(rng.uniform(*realism3.ALPHA_CORE_RANGE))
        extra.update(alpha_infiltrative=alpha_inf, alpha_core=alpha_core)
        sf = realism3.surviving_fraction_map(solver.density, dose, p.n_fractions, alpha_core, alpha_inf, p.alpha_beta,
                                             p.hypoxic_oer)
    else:
        oer = treatment.oxygen_enhancement_ratio(solver.density, p.hypoxic_oer)
        sf = treatment.surviving_fraction(dose / p.n_fractions / oer, p.alpha, p.alpha_beta)
    fractions = set(float(d) for d in treatment.fraction_days(p.rt_start_day, p.n_fractions))
    scan_days = set(int(d) for d in p.followup_days)
    extra["stopped_after_day"] = None
    for day in sorted(fractions | set(float(d) for d in scan_days)):
        solver.advance(t0 + day)
        if day in scan_days:
            scans.append(Scan(int(day), solver.density.copy(), solver.u.copy()))
            if follow_up.mode == "dense" and flair_volume_ml(scans[-1].density, voxel_ml) > DENSE_STOP_ML:
                extra["stopped_after_day"] = int(day)  # off study (second-line treatment or death)
                break
        if day in fractions:
            solver.irradiate(sf)
    return Simulation(scans, cavity, dose, ctv, days_before_planning=float(t0), steps=solver.steps, extra=extra)


# --- writing ---------------------------------------------------------------------------------------

def _grid_for_spacing(grid: Grid, spacing_zyx) -> Grid:
    """A grid over the same physical box as ``grid`` with another spacing (mm, array order)."""
    extent = [n * h for n, h in zip(grid.shape, grid.spacing)]
    shape = tuple(max(1, int(round(e / h))) for e, h in zip(extent, spacing_zyx))
    # keep the box's outer corner: first voxel centre half a new voxel inside it
    corner = np.asarray(grid.index_to_physical(np.full(3, -0.5)))
    shift = np.asarray(grid.direction_matrix) @ (np.asarray(spacing_zyx[::-1], dtype=float) / 2)
    return Grid(shape, tuple(float(h) for h in spacing_zyx), tuple(corner + shift), grid.direction)


class _Writer:
    """Writes volumes of one case to a folder on the working grid, or resampled to clinical spacing
    (images: slice-profile blur then linear; labels and masks: nearest neighbour)."""

    def __init__(self, folder: Path, grid: Grid, clinical_spacing_zyx=None):
        self.folder, self.grid = folder, grid
        self.out_grid = grid if clinical_spacing_zyx is None else _grid_for_spacing(grid, clinical_spacing_zyx)

    def _on_grid(self, array: np.ndarray, label: bool) -> np.ndarray:
        if self.out_grid is self.grid:
            return array
        if label:
            return resample_to(array, self.grid, self.out_grid, label=True)
        fwhm = [max(o, h) for o, h in zip(self.out_grid.spacing, self.grid.spacing)]
        sigma = [np.sqrt(max(f ** 2 - h ** 2, 0.0)) / 2.3548 / h for f, h in zip(fwhm, self.grid.spacing)]
        blurred = ndimage.gaussian_filter(array.astype(np.float32), sigma)
        return resample_to(blurred, self.grid, self.out_grid)

    def image(self, name: str, array: np.ndarray, dtype) -> str:
        out = self._on_grid(array, label=False)
        if np.issubdtype(np.dtype(dtype), np.integer):
            out = np.rint(out)
        write_image(self.folder / name, out.astype(dtype), self.out_grid)
        return name

    def label(self, name: str, array: np.ndarray) -> np.ndarray:
        out = self._on_grid(array, label=True)
        write_image(self.folder / name, out, self.out_grid)
        return out


def _quantize(a: np.ndarray, step: float) -> np.ndarray:
    """Round to multiples of ``step`` (a power of two keeps the values exact and the files small)."""
    return (np.rint(np.asarray(a, dtype=np.float32) / step) * step).astype(np.float32)


def generate_patient(seed: int, out_dir: str | Path, spacing: float = 2.0, *, patient_id: str | None = None,
                     clinical_spacing: tuple[float, float, float] | None = None,
                     n_followups: int | None = None, follow_up: str | FollowUp = "default",
                     scan_days: Sequence[int] | None = None, realism: int | None = None) -> dict:
    """Simulate one virtual patient from ``seed`` and write it to ``out_dir`` (atomically): NIfTI
    volumes, ``case.json`` (schema gliomaforecast.case/1) and ``simulation.json`` (parameters).

    ``spacing`` is the isotropic working grid (mm); ``clinical_spacing`` (x, y, z mm, e.g. (1, 1, 5))
    resamples the delivered volumes; ``n_followups`` fixes the number of follow-ups of the default
    schedule (else 2-5, fewer when the tumor progresses beyond 150 mL). ``follow_up`` ("default",
    "dense" or a :class:`FollowUp`), ``scan_days`` (requested days after the planning scan) and
    ``realism`` select the long-horizon modes (see :func:`make_follow_up`); the default reproduces
    the shipped generator byte for byte. Returns the patient's row of the cohort index."""
    fu = follow_up if isinstance(follow_up, FollowUp) else make_follow_up(follow_up, scan_days, realism)
    if not fu.legacy and n_followups is not None:
        raise ValueError("n_followups applies to the default follow-up schedule only")
    seq = np.random.SeedSequence(int(seed))
    rng = np.random.default_rng(seq)
    anatomy_info: dict = {}
    if fu.realism >= REALISM_CURRENT:
        anatomy = _anatomy_v3(rng, float(spacing), anatomy_info)
    else:
        anatomy = deform(load_template(float(spacing)), rng)
    pid = patient_id or f"VP-{int(seed):04d}"
    end = None
    for _attempt in range(20):  # redraw the tumor when a scan would show no abnormality at all
        d_range = realism3.D_WHITE_RANGE if fu.realism >= REALISM_CURRENT else D_WHITE_RANGE
        params = draw_params(rng, anatomy, pid, int(seed), n_followups, d_range)
        if fu.realism >= REALISM_CURRENT:
            d_white = realism3.capped_d_white(params.d_white, params.rho)
            params = replace(params, d_white=d_white, d_grey=d_white / D_RATIO)
        if fu.mode == "dense":
            days, end = draw_dense_days(rng, params, fu.end_day)
            params = replace(params, followup_days=days)
        elif fu.mode == "scheduled":
            params = replace(params, followup_days=tuple(fu.scan_days))
        sim = simulate(anatomy, params, fu, rng) if not fu.legacy else simulate(anatomy, params)
        labels = _scan_labels(anatomy, params, sim, fu)
        if all(imaging.gtv_from_labels(lab).any() for lab in labels):
            break
    else:
        raise RuntimeError(f"seed {seed}: no patient with a visible tumor at every scan in 20 draws")
    follow_info = None
    if not fu.legacy:
        focus = sim.extra.get("distant_focus")
        follow_info = {**fu.describe(), "attempts": _attempt + 1,
                       "last_fraction_day": last_fraction_day(params),
                       "distant_focus": None if focus is None else _jsonable(asdict(focus))}
        if fu.realism >= REALISM_CURRENT:
            follow_info["anatomy"] = _jsonable(anatomy_info)
            follow_info["alpha_infiltrative"] = round(sim.extra["alpha_infiltrative"], 6)
            follow_info["alpha_core"] = round(sim.extra["alpha_core"], 6)
            follow_info["dose_plan"] = realism3.DOSE_PLAN
        if fu.mode == "dense":
            follow_info["end_day"] = end
            follow_info["stopped_after_day"] = sim.extra.get("stopped_after_day")
    changes: list = [None] * len(labels)
    visible_from = None
    if fu.realism >= REALISM_CURRENT:
        visible_from = imaging.FLAIR_THRESHOLD
        change = realism3.treatment_change(sim.scans[0].density, sim.dose, sim.cavity)
        changes = [None if s.day <= params.rt_start_day else change for s in sim.scans]
        labels = [lab if c is None else realism3.with_treatment_change(lab, c) for lab, c in zip(labels, changes)]
    return _write_patient(Path(out_dir), anatomy, params, sim, labels, rng, clinical_spacing, follow_info,
                          visible_from, changes)


def _scan_labels(anatomy: Anatomy, params: PatientParams, sim: Simulation, fu: FollowUp) -> list[np.ndarray]:
    """The BraTS labels of every scan; after RT under realism 3 irradiated brain enhances at a lower density."""
    spacing, rim, before = anatomy.grid.spacing, params.necrosis_rim_mm, imaging.ENHANCING_THRESHOLD
    post = imaging.ENHANCING_THRESHOLD
    if fu.realism >= REALISM_CURRENT:
        post = realism3.enhancing_threshold_map(sim.dose)
    return [imaging.brats_labels(s.density, spacing, sim.cavity, rim,
                                 enhancing_threshold=post if s.day > params.rt_start_day else before)
            for s in sim.scans]


def _anatomy_v3(rng: np.random.Generator, spacing: float, info: dict) -> Anatomy:
    """Realism 3's anatomy: one of the template brains (drawn) with the stronger shape variation; ``info`` gets
    the template's name and the drawn shape factors."""
    name = realism3.TEMPLATE_NAMES[int(rng.integers(len(realism3.TEMPLATE_NAMES)))]
    info["template"] = name
    return deform_v3(load_template(spacing, name=name), rng, record=info)


def _write_patient(out_dir: Path, anatomy: Anatomy, params: PatientParams, sim: Simulation,
                   labels: list[np.ndarray], rng: np.random.Generator, clinical_spacing,
                   follow_info: dict | None = None, visible_from: float | None = None,
                   changes: list | None = None) -> dict:
    spacing_zyx = None if clinical_spacing is None else tuple(float(v) for v in clinical_spacing)[::-1]
    wm, gm, csf = anatomy.wm, anatomy.gm, anatomy.csf
    if sim.cavity is not None:
        wm, gm, csf = wm * ~sim.cavity, gm * ~sim.cavity, np.where(sim.cavity, 1.0, csf)
    rows = []
    with atomic_output_dir(out_dir) as tmp:
        w = _Writer(tmp, anatomy.grid, spacing_zyx)
        timepoints = []
        for scan, lab, change in zip(sim.scans, labels, changes or [None] * len(labels)):
            tag = f"d{scan.day:03d}"
            images = imaging.synthesize(anatomy, scan.density, lab, rng, visible_from=visible_from, changed=change)
            entry = {"day": scan.day,
                     "images": {m: w.image(f"{tag}_{m}.nii.gz", images[m], np.int16) for m in imaging.MODALITIES}}
            lab_out = w.label(f"{tag}_seg.nii.gz", lab)
            gtv = imaging.gtv_from_labels(lab_out)
            write_image(tmp / f"{tag}_gtv.nii.gz", gtv.astype(np.uint8), w.out_grid)  # already on out_grid
            entry.update(gtv=f"{tag}_gtv.nii.gz", labels=f"{tag}_seg.nii.gz")
            timepoints.append(entry)
            voxel_ml = w.out_grid.voxel_volume_ml
            rows.append({"day": scan.day, "gtv_ml": round(float(gtv.sum()) * voxel_ml, 3),
                         "core_ml": round(float(np.isin(lab_out, (1, 3)).sum()) * voxel_ml, 3),
                         "enhancing_ml": round(float((lab_out == 3).sum()) * voxel_ml, 3),
                         "cavity_ml": round(float((lab_out == 4).sum()) * voxel_ml, 3)})
        w.image("rtdose.nii.gz", _quantize(sim.dose, 1 / 64), np.float32)
        w.label("brain_mask.nii.gz", anatomy.brain.astype(np.uint8))
        for name, arr in (("wm", wm), ("gm", gm), ("csf", csf)):
            w.image(f"{name}.nii.gz", np.clip(_quantize(arr, 1 / 256), 0, 1), np.float32)
        case = {"schema": SCHEMA_CASE, "patient_id": params.patient_id, "rt_start_day": params.rt_start_day,
                "description": "virtual patient (gliomaforecast_training.cohort); see simulation.json",
                "timepoints": timepoints, "dose": "rtdose.nii.gz", "brain_mask": "brain_mask.nii.gz",
                "tissue": {"wm": "wm.nii.gz", "gm": "gm.nii.gz", "csf": "csf.nii.gz"}}
        (tmp / "case.json").write_text(json.dumps(case, indent=1) + "\n")
        sim_info = {"generator_version": GENERATOR_VERSION, "parameters": _jsonable(asdict(params)),
                    "working_spacing_mm": list(anatomy.grid.spacing),
                    "clinical_spacing_xyz_mm": None if clinical_spacing is None else list(map(float, clinical_spacing)),
                    "days_from_first_cell_to_planning": round(sim.days_before_planning, 3),
                    "solver_steps": sim.steps, "scans": rows}
        if follow_info is not None:  # long-horizon modes only: the default output stays byte-identical
            sim_info["follow_up"] = follow_info
        (tmp / "simulation.json").write_text(json.dumps(sim_info, indent=1) + "\n")
    row = {"patient_id": params.patient_id, "seed": params.seed, "scans": rows,
           "parameters": _jsonable(asdict(params))}
    if follow_info is not None:
        row["follow_up"] = follow_info
    return row


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return round(float(obj), 6)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def patient_seeds(n: int, seed: int) -> list[int]:
    """The per-patient seeds of a cohort of ``n`` patients from ``seed`` (patient i's does not depend on n)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(int(seed)).spawn(int(n))]


def _cohort_patient(seed: int, folder: Path, spacing: float, pid: str,
                    clinical_spacing: tuple[float, float, float] | None, follow_up: FollowUp) -> dict:
    """One patient of :func:`generate_cohort` (a top-level function, so worker processes can run it)."""
    row = generate_patient(seed, folder, spacing, patient_id=pid, clinical_spacing=clinical_spacing,
                           follow_up=follow_up)
    row["case"] = f"{pid}/case.json"
    return row


_STAGING = ".staging"  # inside the cohort's temporary folder: where dask workers build their patients


def _distributed_patient(seed: int, folder: Path, spacing: float, pid: str,
                         clinical_spacing: tuple[float, float, float] | None, follow_up: FollowUp) -> dict:
    """One patient of :func:`generate_cohort` as a dask task (``--scheduler``): built in a folder of its own under
    ``<cohort temporary>/.staging`` (so that no other task, on this host or another, touches its temporaries),
    then renamed to ``folder``. A rerun of the task (its first worker died) replaces whatever the first run left
    there whole; the client renames the cohort's temporary folder into place only when every task has finished."""
    import shutil
    import socket
    import uuid

    folder = Path(folder)
    staging = folder.parent / _STAGING
    staging.mkdir(exist_ok=True)  # not parents=True: a stray rerun after the cohort was committed recreates nothing
    own = staging / f"{pid}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    own.mkdir()
    try:
        row = _cohort_patient(seed, own / pid, spacing, pid, clinical_spacing, follow_up)
        for _attempt in range(5):
            try:
                os.rename(own / pid, folder)  # onto nothing (or an empty folder): one rename
                break
            except OSError:
                if not folder.exists():
                    raise
                os.rename(folder, own / "replaced")  # an earlier run's patient: set aside, then removed below
                shutil.rmtree(own / "replaced")
        else:
            raise RuntimeError(f"{pid}: could not put the patient folder in place")
    finally:
        shutil.rmtree(own, ignore_errors=True)
    return row


def _run_on_client(client, args: list[tuple], rows: dict[int, dict], bar) -> None:
    """Every patient of ``args`` as a task on the dask ``client`` (keys unique to this cohort); ``rows[i]`` as each
    finishes. Each future is released as soon as its row is here, so a worker that dies later holding a finished
    result does not make the scheduler rerun that patient; a task lost with its worker before finishing is rerun
    by the scheduler and waited for. A patient's exception is raised (the rest cancelled)."""
    import uuid

    from distributed import as_completed

    prefix = f"cohort-patient-{uuid.uuid4().hex[:12]}"
    futures = {client.submit(_distributed_patient, *a, key=f"{prefix}-{i}", pure=False): i
               for i, a in enumerate(args)}
    try:
        for future in as_completed(list(futures)):
            i = futures.pop(future)
            rows[i] = future.result()
            future.release()
            if bar is not None:
                bar.update()
    finally:
        if futures:
            client.cancel(list(futures))


def _check_workers_import(client, out_dir: str | Path) -> None:
    """Every worker can import the generator (the training package installed there), else an InputError naming
    the first worker that cannot. Runs the builtin ``exec`` there: nothing of this package has to unpickle."""
    from gliomaforecast.errors import InputError

    answers = client.run(exec, f"import {__name__}", on_error="return")
    failed = sorted((worker, exc) for worker, exc in answers.items() if isinstance(exc, BaseException))
    if failed:
        worker, exc = failed[0]
        raise InputError(out_dir, None, f"worker {worker} cannot import the cohort generator ({type(exc).__name__}: "
                                        f"{exc}); install gliomaforecast and its training package on every worker")


def generate_cohort(n: int, seed: int, out_dir: str | Path, spacing: float = 2.0, *,
                    clinical_spacing: tuple[float, float, float] | None = None, progress: bool = False,
                    follow_up: str = "default", scan_days: Sequence[int] | None = None,
                    realism: int | None = None, jobs: int = 1, client=None) -> Path:
    """Generate ``n`` patients (``VP-0001``...) from ``seed`` into ``out_dir`` (atomically, with a tqdm
    bar when ``progress``) plus the index ``cohort.json`` and ``cohort.csv``. Returns the index path.
    Patient i's seed is drawn from ``numpy.random.SeedSequence(seed)``, so a patient does not depend
    on ``n``, nor on ``jobs`` (worker processes, each making whole patients), nor on ``client`` (a
    dask.distributed Client, ``--scheduler``: patients as tasks on its workers, which must see ``out_dir``'s parent
    folder, a shared filesystem; see docs/scaling.md). ``follow_up``, ``scan_days`` and ``realism``: see
    :func:`generate_patient`."""
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if int(jobs) < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    fu = make_follow_up(follow_up, scan_days, realism)
    seeds = patient_seeds(n, seed)
    if client is not None:
        from gliomaforecast.scheduling import check_workers_see

        check_output_dir(out_dir)
        _check_workers_import(client, out_dir)
        check_workers_see(client, Path(out_dir).resolve().parent)  # before any work: workers write under it
    with atomic_output_dir(out_dir) as tmp:
        pids = [f"VP-{i + 1:04d}" for i in range(int(n))]
        args = [(seeds[i], tmp / pid, spacing, pid, clinical_spacing, fu) for i, pid in enumerate(pids)]
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=len(pids), desc="virtual patients", unit="patient")
        rows: dict[int, dict] = {}
        if client is not None:
            try:
                _run_on_client(client, args, rows, bar)
            finally:
                import shutil

                shutil.rmtree(tmp / _STAGING, ignore_errors=True)  # what killed workers left
        elif int(jobs) == 1:
            for i, a in enumerate(args):
                rows[i] = _cohort_patient(*a)
                if bar is not None:
                    bar.update()
        else:
            context = multiprocessing.get_context("spawn")  # no fork of a process holding library threads
            with ProcessPoolExecutor(max_workers=min(int(jobs), len(pids)), mp_context=context) as pool:
                futures = {pool.submit(_cohort_patient, *a): i for i, a in enumerate(args)}
                for future in as_completed(futures):
                    rows[futures[future]] = future.result()
                    if bar is not None:
                        bar.update()
        if bar is not None:
            bar.close()
        entries = [rows[i] for i in range(len(pids))]
        index = {"schema": SCHEMA_COHORT, "generator_version": GENERATOR_VERSION, "seed": int(seed), "n": int(n),
                 "spacing_mm": float(spacing),
                 "clinical_spacing_xyz_mm": None if clinical_spacing is None else list(map(float, clinical_spacing)),
                 "patients": entries}
        if not fu.legacy:
            index["follow_up"] = fu.describe()
            index["horizon_pairs"] = horizon_pair_counts(entries)
        (tmp / "cohort.json").write_text(json.dumps(index, indent=1) + "\n")
        (tmp / "cohort.csv").write_text(_csv(entries))
    return Path(out_dir) / "cohort.json"


def horizon_pair_counts(patients: Sequence[dict], min_prefix: int = 2) -> dict[str, int]:
    """Scored forecasts the horizon protocol can make, per gap bin (days): for every prefix of the first
    i >= ``min_prefix`` scans and every later scan j, one pair with gap t_j - t_i. ``patients`` are
    cohort-index entries (each with ``scans``: rows with ``day``). The bins are the core's evaluation bins
    (``gliomaforecast.evaluation.protocols.GAP_BINS``)."""
    counts = {label: 0 for label, _ in GAP_BINS}
    for entry in patients:
        days = [int(r["day"]) for r in entry["scans"]]
        for i in range(min_prefix - 1, len(days)):
            for j in range(i + 1, len(days)):
                gap = days[j] - days[i]
                if gap >= 0:
                    counts[gap_bin(gap)] += 1
    return counts


_CSV_PARAMS = ("d_white", "d_grey", "rho", "alpha", "clearance_days", "resection", "rt_start_day", "seed_tissue")


def _csv(entries: list[dict]) -> str:
    buf = _io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["patient_id", "case", "day", "gtv_ml", "core_ml", "enhancing_ml", "cavity_ml",
                     "multifocal", *_CSV_PARAMS])
    for e in entries:
        p = e["parameters"]
        for r in e["scans"]:
            writer.writerow([e["patient_id"], e["case"], r["day"], r["gtv_ml"], r["core_ml"], r["enhancing_ml"],
                             r["cavity_ml"], int(len(p["seeds_index"]) > 1), *(p[k] for k in _CSV_PARAMS)])
    return buf.getvalue()


# --- realism measurements ------------------------------------------------------------------------------

PROGRESSION_MIN_ML = 1.0           # enhancing volume (mL) a progression must reach (RANO measurable, ~10 x 10 mm)


def first_progression(days: Sequence[int], enhancing_ml: Sequence[float], after_day: int) -> int | None:
    """Index of the first scan after ``after_day`` (the last RT fraction) whose enhancing volume (mL) is
    >= PROGRESSION_MIN_ML and >= REGROWTH_FACTOR (1.25) x its post-RT nadir so far; None without one."""
    nadir = None
    for k, (day, ml) in enumerate(zip(days, enhancing_ml)):
        if day <= after_day:
            continue
        if nadir is not None and ml >= PROGRESSION_MIN_ML and ml >= REGROWTH_FACTOR * nadir:
            return k  # the first post-RT scan is the baseline: no progression is called on it
        nadir = ml if nadir is None else min(nadir, ml)
    return None


def recurrence_pattern(recurrence: np.ndarray, ctv: np.ndarray, voxel_ml: float, min_component_ml: float = 0.1) -> dict:
    """Where a recurrence (bool mask, e.g. the enhancing label at first progression) lies relative to the
    CTV: volume, volume outside, fraction inside, and the classes of Gebhardt et al. 2014 (in-field > 80%
    inside, marginal 20-80%, distant < 20%; they used the 95% isodose, here the CTV), for the whole
    recurrence (``class``) and per connected lesion (26-connected, >= ``min_component_ml``): whether it
    has a marginal or a distant component (``components``)."""
    rec = np.asarray(recurrence, bool)
    ctv = np.asarray(ctv, bool)
    n = int(rec.sum())
    outside = int((rec & ~ctv).sum())
    inside = 1.0 - outside / n if n else float("nan")

    def kind(frac: float) -> str:
        return "in-field" if frac > 0.8 else "marginal" if frac >= 0.2 else "distant"

    comps = {"in-field": 0, "marginal": 0, "distant": 0}
    lab, n_lab = ndimage.label(rec, structure=np.ones((3, 3, 3), bool))
    if n_lab:
        sizes = np.bincount(lab.ravel(), minlength=n_lab + 1)
        ins = np.bincount(lab[ctv].ravel(), minlength=n_lab + 1)
        for c in range(1, n_lab + 1):
            if sizes[c] * voxel_ml >= min_component_ml:
                comps[kind(ins[c] / sizes[c])] += 1
    return {"recurrence_ml": round(n * voxel_ml, 3), "outside_ml": round(outside * voxel_ml, 3),
            "fraction_inside": round(inside, 4), "class": kind(inside) if n else None, "components": comps}


ISODOSE_FRACTION = 0.95           # patterns of failure are classified against this isodose (Gebhardt et al. 2014)


def recurrence_protocol_row(case, labels: list[np.ndarray], margin_mm: float = 15.0) -> dict:
    """The core's ``recurrence`` protocol on one written case (``labels``: its BraTS maps per scan): the
    progression scan's day, its enhancing volume (mL), the coverage of its enhancing tumour by the ``estro-eano``
    standard plan (core + cavity + ``margin_mm`` inside the brain, as the core builds it) and by the FLAIR plan
    (GTV + cavity + margin), and the enhancing recurrence's class against the estro-eano plan (Gebhardt et al.)."""
    from gliomaforecast.evaluation.protocols import recurrence_task
    from gliomaforecast.targets.standard_plan import plan_seed
    from gliomaforecast.targets.volumes import standard_target

    task = recurrence_task(case)
    if task is None:
        return {"progression_day": None}
    planning, target = task
    plan_labels = labels[len(planning.timepoints) - 1]
    rec = labels[target] == imaging.ENHANCING
    vml, spacing, brain = case.grid.voxel_volume_ml, case.grid.spacing, case.brain_mask()
    out = {"progression_day": int(case.days[target]), "enhancing_ml": round(float(rec.sum()) * vml, 3)}
    for name in ("estro-eano", "flair"):
        seed = plan_seed(imaging.gtv_from_labels(plan_labels), plan_labels, name)
        plan = standard_target(seed.tumour, spacing, margin_mm, cavity=seed.cavity, brain_mask=brain)
        key = name.replace("-", "_")
        out[f"{key}_plan_ml"] = round(float(plan.sum()) * vml, 3)
        out[f"{key}_coverage"] = round(float((rec & plan).sum()) / float(rec.sum()), 4) if rec.any() else None
        if name == "estro-eano":
            out["estro_eano_plan_convention"] = seed.convention
            out["class"] = recurrence_pattern(rec, plan, vml)["class"] if rec.any() else None
    dose = case.dose()
    if dose is not None and rec.any():  # the published series classify against the 95 % isodose
        isodose = np.asarray(dose) >= ISODOSE_FRACTION * float(np.max(dose))
        out["class_vs_95_isodose"] = recurrence_pattern(rec, isodose, vml)["class"]
    return out


FLAIR_BAND_MM = (2.0, 6.0)         # the shell outside the GTV where a hyperintense band would show, mm
FLAIR_REFERENCE_MM = (20.0, 40.0)  # normal-appearing white matter this far from the GTV, mm


def flair_band(case, labels: np.ndarray) -> dict:
    """Hyperintensity of the planning FLAIR just outside the drawn GTV: the mean FLAIR of white matter (> 80%) in a
    shell FLAIR_BAND_MM (mm) outside the GTV minus that of white matter FLAIR_REFERENCE_MM away, in standard
    deviations of the reference (``contrast_sd``; about 0 when the GTV ends where the FLAIR looks abnormal)."""
    tp = case.timepoints[0]
    flair = np.asarray(case.image(tp, "flair"), dtype=np.float64)
    wm = np.asarray(case.tissue("wm")) > 0.8
    gtv = imaging.gtv_from_labels(labels) | (labels == imaging.CAVITY)
    dist = ndimage.distance_transform_edt(~gtv, sampling=case.grid.spacing)
    ring = wm & (dist > FLAIR_BAND_MM[0]) & (dist <= FLAIR_BAND_MM[1])
    ref = wm & (dist > FLAIR_REFERENCE_MM[0]) & (dist <= FLAIR_REFERENCE_MM[1])
    if ring.sum() < 10 or ref.sum() < 10:
        return {"contrast_sd": None}
    sd = float(flair[ref].std())
    return {"contrast_sd": round((float(flair[ring].mean()) - float(flair[ref].mean())) / max(sd, 1e-6), 3)}


def brain_dice_pairs(case_paths: Sequence[Path]) -> list[float]:
    """Brain-mask Dice (physical space, ``anatomy.brain_mask_dice``) of patients 1-2, 3-4, ... of a cohort: how
    different the patients' brains are."""
    from gliomaforecast.io.case import load_case

    from .anatomy import mask_dice

    cases = [load_case(path) for path in case_paths]
    pairs = zip(cases[0::2], cases[1::2])
    return [round(mask_dice(a.brain_mask(), a.grid, b.brain_mask(), b.grid), 4) for a, b in pairs]


def summarize_recurrence_protocol(rows: Sequence[dict]) -> dict:
    """The realism-3 calibration figures over :func:`recurrence_protocol_row` rows: progressions, how many show
    enhancing tumour (any, and >= 1 mL), the mean per-patient enhancing coverage of both standard plans, and the
    classes of the enhancing recurrences against the estro-eano plan."""
    prog = [r for r in rows if r["progression_day"] is not None]
    enh = [r for r in prog if r["enhancing_ml"] > 0]

    def mean(key: str) -> float | None:
        vals = [r[key] for r in enh if r[key] is not None]
        return float(np.mean(vals)) if vals else None

    classes = {c: sum(r["class"] == c for r in enh) for c in ("in-field", "marginal", "distant")}
    out_frac = (classes["marginal"] + classes["distant"]) / len(enh) if enh else None
    iso = {c: sum(r.get("class_vs_95_isodose") == c for r in enh) for c in ("in-field", "marginal", "distant")}
    iso_frac = (iso["marginal"] + iso["distant"]) / len(enh) if enh else None
    return {"patients": len(rows), "progressions": len(prog), "with_enhancing": len(enh),
            "with_enhancing_fraction": len(enh) / len(prog) if prog else None,
            "with_enhancing_1ml": sum(r["enhancing_ml"] >= 1.0 for r in prog),
            "estro_eano_enhancing_coverage_mean": mean("estro_eano_coverage"),
            "flair_enhancing_coverage_mean": mean("flair_coverage"),
            "classes_vs_estro_eano": classes,
            "marginal_or_distant_fraction": out_frac,
            "classes_vs_95_isodose": iso,
            "marginal_or_distant_vs_95_isodose_fraction": iso_frac}


def measure_cohort_realism(cohort_dir: str | Path, margin_mm: float = 15.0) -> dict:
    """Patterns of failure and growth kinetics of a written cohort (see ``gliomaforecast-train
    cohort-realism``): per patient and summarised. The CTV is ``standard_ctv`` of the planning GTV plus
    cavity (labels 1-4 of the day-0 scan) with ``margin_mm``, inside the brain mask, as the generator's."""
    from gliomaforecast.io.case import load_case

    cohort_dir = Path(cohort_dir)
    index = json.loads((cohort_dir / "cohort.json").read_text())
    rows = []
    for entry in index["patients"]:
        case = load_case(cohort_dir / entry["case"])
        sim_info = json.loads((cohort_dir / entry["case"]).with_name("simulation.json").read_text())
        par = sim_info["parameters"]
        spacing, vml = case.grid.spacing, case.grid.voxel_volume_ml
        labels = [np.asarray(case.labels(tp)) for tp in case.timepoints]
        ctv = standard_ctv(labels[0] > 0, spacing, margin_mm, case.brain_mask())
        days = list(case.days)
        rt_end = int(treatment.fraction_days(par["rt_start_day"], par["n_fractions"])[-1])
        enh = [float((lab == imaging.ENHANCING).sum()) * vml for lab in labels]
        k = first_progression(days, enh, rt_end)
        focus = (sim_info.get("follow_up") or {}).get("distant_focus")
        row = {"patient_id": entry["patient_id"], "scans": len(days), "last_day": days[-1],
               "d_white_mm2_per_day": par["d_white"], "rho_per_day": par["rho"],
               "d_over_rho_mm2": round(par["d_white"] / par["rho"], 3),
               "velocity_wm_mm_per_year": round(365.0 * 2.0 * np.sqrt(par["d_white"] * par["rho"]), 1),
               "velocity_gm_mm_per_year": round(365.0 * 2.0 * np.sqrt(par["d_grey"] * par["rho"]), 1),
               "distant_focus": focus is not None, "progression_day": None}
        if k is not None:
            row["progression_day"] = days[k]
            row.update(recurrence_pattern(labels[k] == imaging.ENHANCING, ctv, vml))
        later_out = [d for d, lab in zip(days, labels) if d > rt_end and ((lab == imaging.ENHANCING) & ~ctv).any()]
        row["first_day_enhancing_outside_ctv"] = later_out[0] if later_out else None
        row["recurrence_protocol"] = recurrence_protocol_row(case, labels, margin_mm)
        row["flair_band"] = flair_band(case, labels[0])
        rows.append(row)
    prog = [r for r in rows if r["progression_day"] is not None]
    recurrence_summary = summarize_recurrence_protocol([r["recurrence_protocol"] for r in rows])
    bands = [r["flair_band"]["contrast_sd"] for r in rows if r["flair_band"]["contrast_sd"] is not None]
    dice = brain_dice_pairs([cohort_dir / e["case"] for e in index["patients"]])
    n_out = sum(r["outside_ml"] > 0 for r in prog)
    n_md = sum(r["class"] in ("marginal", "distant") for r in prog)
    n_marg_c = sum(r["components"]["marginal"] > 0 for r in prog)
    n_dist_c = sum(r["components"]["distant"] > 0 for r in prog)
    n_any_c = sum(r["components"]["marginal"] + r["components"]["distant"] > 0 for r in prog)
    rec_ml = sum(r["recurrence_ml"] for r in prog)
    out_ml = sum(r["outside_ml"] for r in prog)
    vel = np.array([r["velocity_wm_mm_per_year"] for r in rows])
    dr = np.array([r["d_over_rho_mm2"] for r in rows])
    summary = {
        "patients": len(rows), "progressions": len(prog),
        "median_progression_day": float(np.median([r["progression_day"] for r in prog])) if prog else None,
        "any_outside": n_out, "any_outside_fraction": n_out / len(prog) if prog else 0.0,
        "marginal_or_distant": n_md, "marginal_or_distant_fraction": n_md / len(prog) if prog else 0.0,
        "classes": {c: sum(r["class"] == c for r in prog) for c in ("in-field", "marginal", "distant")},
        "with_marginal_component": n_marg_c, "with_distant_component": n_dist_c,
        "with_marginal_or_distant_component": n_any_c,
        "with_marginal_or_distant_component_fraction": n_any_c / len(prog) if prog else 0.0,
        "outside_volume_fraction": out_ml / rec_ml if rec_ml else 0.0,
        "median_outside_fraction_of_recurrence": float(np.median([1 - r["fraction_inside"] for r in prog])) if prog else None,
        "ever_enhancing_outside_ctv": sum(r["first_day_enhancing_outside_ctv"] is not None for r in rows),
        "with_distant_focus": sum(r["distant_focus"] for r in rows),
        "velocity_wm_mm_per_year": {"median": float(np.median(vel)), "min": float(vel.min()), "max": float(vel.max())},
        "d_over_rho_mm2": {"median": float(np.median(dr)), "min": float(dr.min()), "max": float(dr.max())},
        "recurrence_protocol": recurrence_summary,
        "flair_band_contrast_sd": {"median": float(np.median(bands)), "max": float(np.max(bands))} if bands else None,
        "brain_mask_dice_pairs": {"n": len(dice), "median": float(np.median(dice)), "min": float(np.min(dice)),
                                  "max": float(np.max(dice))} if dice else None,
    }
    return {"cohort": str(cohort_dir), "margin_mm": margin_mm, "summary": _jsonable(summary), "patients": rows}
