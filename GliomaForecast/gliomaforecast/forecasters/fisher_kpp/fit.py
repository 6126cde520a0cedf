"""Calibration of the Fisher-KPP model on a patient's own prior scans (units: mm, days, mm^2/day, 1/day).

Two GTVs (binary FLAIR abnormalities) identify the front velocity v = 2 sqrt(D_w rho) (mm/day) but not D
and rho separately (both thresholds of one travelling wave move at the same speed). So:

* the white-matter infiltration length lambda = sqrt(D_w / rho) (mm) is a literature prior: the geometric
  means of the ranges cited in docs/cohort.md, D_w 0.03-0.3 mm^2/day (Swanson et al., Cell Prolif
  2000;33:317; Harpold et al., J Neuropathol Exp Neurol 2007;66:1) and rho 0.02-0.05 /day (Pedicini et al.,
  Strahlenther Onkol 2014;190:925), give D_w/rho = 3.0 mm^2, lambda = 1.73 mm;
* v is fitted to the last two scans with the solver itself (:func:`fit_velocity`): the earlier GTV becomes
  an initial density (:func:`initial_density`), the model runs on the case's anatomy, and the time at
  which its visible region {u >= u_c} holds the later GTV's volume gives rho = tau / gap and
  v = 2 lambda rho. With D = lambda^2 rho f(x) (f = D / D_w from the tissue maps) the equation in
  tau = rho t is du/dtau = lambda^2 div(f grad u) + u (1 - u), one solve whatever rho is; the fit
  therefore includes the anatomy (grey matter, CSF barriers), the front's curvature and the grid's own
  numerical front speed;
* a second, shape-based estimate: the mean outward displacement of the earlier boundary (phi_earlier -
  phi_later on its boundary voxels, signed distances in mm; :func:`mean_boundary_shift`) of the scans
  against that of the model's fitted region; v rescaled by their ratio is ``v_boundary``. The
  calibration's uncertainty is sigma_v = hypot(sqrt(2) e h / gap, v_boundary - v): half a voxel (e = 0.5,
  spacing h mm) of error in each scan's mean boundary position, and the disagreement of the two estimates.
  A shrinking tumour has v = 0 and v_boundary its (negative) mean boundary speed, so sigma_v is at least the
  speed at which it is changing.

A shrinking or stable tumour (e.g. responding to radiotherapy) gives v = 0: growth is clipped at zero and
the notes say so; radiotherapy is not modelled as a kill term.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ... import sdf
from .solver import Integrator, crop_box

U_VISIBLE = 0.16
"""Visibility threshold of the FLAIR abnormality (fraction of the carrying capacity): Swanson et al.'s
T2/FLAIR detection threshold, as in the virtual cohort (docs/cohort.md)."""
D_WHITE_PRIOR = math.sqrt(0.03 * 0.3)
"""mm^2/day: geometric mean of the white-matter diffusivity range 0.03-0.3 mm^2/day."""
RHO_PRIOR = math.sqrt(0.02 * 0.05)
"""1/day: geometric mean of the proliferation range 0.02-0.05 /day."""
LENGTH_PRIOR = math.sqrt(D_WHITE_PRIOR / RHO_PRIOR)
"""mm: the white-matter infiltration length sqrt(D_w / rho) of the priors (1.73 mm)."""
V_MAX = 1.0
"""mm/day: the largest front velocity the fit considers (365 mm/yr, far beyond any glioma)."""
SEGMENTATION_ERROR_VOXELS = 0.5
"""Error (voxels) of a GTV's mean boundary position: half a voxel per scan (partial volume at the threshold)."""
TAU_STEP = 0.25
"""Largest step of dimensionless time rho t in the fit (bounds the reaction's splitting error)."""


def initial_density(phi: np.ndarray, length_mm: float, u_c: float = U_VISIBLE) -> np.ndarray:
    """Tumour density (0-1, float32) from the signed distance ``phi`` (mm, negative inside) of a GTV:
    u = 1 / (1 + (1 - u_c) / u_c exp(phi / length)). It is u_c on the boundary, tends to 1 inside and decays
    as exp(-phi / length) outside, the tail of the minimal-speed travelling wave when length = sqrt(D / rho)."""
    if not (length_mm > 0 and 0 < u_c < 1):
        raise ValueError(f"need length_mm > 0 and 0 < u_c < 1, got {length_mm}, {u_c}")
    z = np.clip(np.asarray(phi, dtype=np.float64) / length_mm + math.log((1.0 - u_c) / u_c), -50.0, 50.0)
    return (1.0 / (1.0 + np.exp(z))).astype(np.float32)


def seeded_density(
    gtv: np.ndarray, phi: np.ndarray, domain: np.ndarray, length_mm: float, u_c: float = U_VISIBLE
) -> np.ndarray:
    """The initial density of a forecast or fit: :func:`initial_density` of the GTV's signed distance ``phi``
    (mm) inside the ``domain`` (D > 0), the GTV itself (1 inside, 0 outside) where D = 0 (voxels the model
    cannot move)."""
    return np.where(domain, initial_density(phi, length_mm, u_c), np.asarray(gtv, dtype=np.float32))


def mean_boundary_shift(
    earlier: np.ndarray, phi_earlier: np.ndarray, phi_later: np.ndarray, relative_d: np.ndarray | None = None
) -> float:
    """The mean outward displacement (mm) of the boundary of ``earlier`` (bool): phi_earlier - phi_later
    (signed distances, mm) averaged over its boundary voxels, zero for an unchanged mask. With
    ``relative_d`` (f = D / D_w) each voxel is weighted by sqrt(f) (the local front speed relative to white
    matter) and the result is the white-matter equivalent sum(s sqrt(f)) / sum(f) (least squares)."""
    earlier = np.asarray(earlier, dtype=bool)
    boundary = earlier & ~ndimage.binary_erosion(earlier)
    shift = (np.asarray(phi_earlier, dtype=np.float64) - phi_later)[boundary]
    if relative_d is None:
        return float(shift.mean())
    f = np.asarray(relative_d, dtype=np.float64)[boundary]
    return float((shift * np.sqrt(f)).sum() / f.sum()) if f.sum() > 0 else 0.0


@dataclass(frozen=True)
class VelocityFit:
    """The solver fit of one pair of scans: ``v`` (mm/day, >= 0), the dimensionless time ``tau`` = rho gap,
    the visible volumes (mL) of the earlier GTV, the later GTV and the model at tau, the Dice of the model's
    visible region with the later GTV, the mean outward boundary displacement (mm) of the scans
    (``shift_mm``) and of the model (``model_shift_mm``), and ``clipped`` when the later GTV was not larger
    (v set to 0)."""

    v: float
    tau: float
    earlier_ml: float
    later_ml: float
    model_ml: float
    dice: float
    shift_mm: float
    model_shift_mm: float
    clipped: bool


def fit_velocity(
    earlier: np.ndarray,
    later: np.ndarray,
    gap_days: float,
    relative_d: np.ndarray,
    spacing: Sequence[float],
    length_mm: float = LENGTH_PRIOR,
    u_c: float = U_VISIBLE,
) -> VelocityFit:
    """Fit the white-matter front velocity v (mm/day) that grows ``earlier`` into ``later`` (bool GTVs)
    over ``gap_days`` on the anatomy ``relative_d`` (f = D / D_w, 0 = no flux), with D_w / rho = length^2.

    The model's visible region is compared with ``later`` on the voxels it can reach (the domain f > 0 and
    the earlier GTV); tau is found by stepping until the visible volume passes the later one, then linear
    interpolation. v = 2 length tau / gap, capped at :data:`V_MAX`. Everything runs on a crop around both
    GTVs (signed distances on a box holding a mask's bounding box are exact there)."""
    if gap_days <= 0:
        raise ValueError(f"gap_days must be > 0, got {gap_days}")
    voxel_ml = float(np.prod(spacing)) / 1000.0
    earlier = np.asarray(earlier, dtype=bool)
    later = np.asarray(later, dtype=bool)
    tau_max = V_MAX * gap_days / (2.0 * length_mm)
    box = _fit_box(earlier, later, spacing, length_mm)
    earlier, later = earlier[box], later[box]
    f = np.asarray(relative_d, dtype=np.float32)[box]
    phi_earlier = sdf.signed_distance(earlier, spacing)
    phi_later = sdf.signed_distance(later, spacing)
    domain = f > 0
    target = later & (domain | earlier)
    u = seeded_density(earlier, phi_earlier, domain, length_mm, u_c)
    run = Integrator(u, (length_mm**2 * f).astype(np.float32), spacing, 1.0, dt_max=TAU_STEP)
    tau_fit, visible, clipped = _grow_to(run, u, int(np.count_nonzero(target)), tau_max, u_c)
    inter = np.count_nonzero(visible & later)
    dice = 2.0 * inter / max(np.count_nonzero(visible) + np.count_nonzero(later), 1)
    shift = mean_boundary_shift(earlier, phi_earlier, phi_later)
    model_shift = (
        mean_boundary_shift(earlier, phi_earlier, sdf.signed_distance(visible, spacing))
        if visible.any() and not visible.all()
        else 0.0
    )
    v = 0.0 if clipped else min(2.0 * length_mm * tau_fit / gap_days, V_MAX)
    return VelocityFit(
        v=v,
        tau=tau_fit,
        earlier_ml=np.count_nonzero(earlier) * voxel_ml,
        later_ml=np.count_nonzero(later) * voxel_ml,
        model_ml=float(np.count_nonzero(visible)) * voxel_ml,
        dice=float(dice),
        shift_mm=shift,
        model_shift_mm=model_shift,
        clipped=clipped,
    )


def _fit_box(earlier: np.ndarray, later: np.ndarray, spacing: Sequence[float], length_mm: float) -> tuple[slice, ...]:
    """The crop of a fit: both GTVs grown by the farthest reach (mm) of the later one beyond the earlier one, four
    infiltration lengths ``length_mm`` (mm) and two voxels."""
    near = crop_box(earlier | later, spacing, max(spacing))
    reach_mm = float(np.max(sdf.signed_distance(earlier[near], spacing)[later[near]], initial=0.0))
    return crop_box(earlier | later, spacing, reach_mm + 4.0 * length_mm + 2.0 * max(spacing))


def _grow_to(
    run: Integrator, u: np.ndarray, n_target: int, tau_max: float, u_c: float
) -> tuple[float, np.ndarray, bool]:
    """(tau, visible region, clipped): ``run`` (from the density ``u``) is stepped until its visible region
    {u >= u_c} holds ``n_target`` voxels or tau (dimensionless time rho t) reaches ``tau_max``; tau is
    interpolated linearly between the last two steps and the region is that of the step nearer it. ``clipped``
    (tau 0, the initial region) when the initial region already holds ``n_target`` voxels."""
    previous_tau, previous_n = 0.0, int(np.count_nonzero(u >= u_c))
    visible = u >= u_c
    tau_fit, clipped = 0.0, n_target <= previous_n
    tau = 0.0
    while not clipped and tau < tau_max:
        step = min(run.dt, tau_max - tau)
        u = run.advance(step)
        tau += step
        now = u >= u_c
        n = int(np.count_nonzero(now))
        if n >= n_target or tau >= tau_max:
            frac = min((n_target - previous_n) / max(n - previous_n, 1), 1.0)
            tau_fit = previous_tau + frac * (tau - previous_tau)
            if frac >= 0.5:  # the region at the step nearer the fitted time
                visible = now
            break
        previous_tau, previous_n, visible = tau, n, now
    return tau_fit, visible, clipped


@dataclass(frozen=True)
class Calibration:
    """The patient's Fisher-KPP parameters: ``v`` (mm/day, white-matter front velocity), ``sigma_v`` (mm/day,
    its uncertainty), ``length_mm`` = sqrt(D_w / rho) (mm); derived ``rho`` (1/day) and ``d_white``
    (mm^2/day). ``fit`` is the solver fit of the last two scans, ``v_boundary`` the displacement estimate
    (mm/day), ``notes`` the lines a user should read."""

    v: float
    sigma_v: float
    length_mm: float
    fit: VelocityFit
    v_boundary: float
    first_day: float
    last_day: float
    notes: list[str] = field(default_factory=list)

    @property
    def rho(self) -> float:
        """Proliferation rate rho = v / (2 length) (1/day)."""
        return self.v / (2.0 * self.length_mm)

    @property
    def d_white(self) -> float:
        """White-matter diffusivity D_w = v length / 2 (mm^2/day)."""
        return self.v * self.length_mm / 2.0

    def draw_velocities(self, n: int, seed: int) -> np.ndarray:
        """``n`` velocities (mm/day) v + sigma_v z, z ~ N(0, 1) from ``seed``, clipped at 0 (deterministic)."""
        z = np.random.default_rng(seed).standard_normal(int(n))
        return np.maximum(self.v + self.sigma_v * z, 0.0)


def calibrate(
    gtvs: Sequence[np.ndarray],
    days: Sequence[float],
    relative_d: np.ndarray,
    spacing: Sequence[float],
    *,
    rt_start_day: float | None = None,
    length_mm: float = LENGTH_PRIOR,
    progress: Callable[[float, str], None] | None = None,
) -> Calibration:
    """Calibrate v (mm/day) on the last two of ``gtvs`` (bool masks at ``days``, days, increasing) on the
    anatomy ``relative_d`` (f = D / D_w, 0-1). See the module docstring for the method and the notes."""
    if len(gtvs) < 2 or len(gtvs) != len(days):
        raise ValueError(f"need at least two GTVs with one day each, got {len(gtvs)} GTVs and {len(days)} days")
    say = progress or (lambda _f, _m: None)
    earlier, later = np.asarray(gtvs[-2], dtype=bool), np.asarray(gtvs[-1], dtype=bool)
    t0, t1 = float(days[-2]), float(days[-1])
    gap = t1 - t0
    if gap <= 0:
        raise ValueError(f"scan days must increase, got {t0:g} then {t1:g}")
    say(0.0, f"calibrating the front velocity on days {t0:g}-{t1:g}")
    fit = fit_velocity(earlier, later, gap, relative_d, spacing, length_mm)
    if fit.clipped or fit.model_shift_mm <= 0:
        v_boundary = fit.shift_mm / gap  # the scans' own mean boundary speed (mm/day, negative when shrinking)
    else:
        v_boundary = fit.v * fit.shift_mm / fit.model_shift_mm  # v rescaled to the scans' boundary shift
    shift_mm = fit.shift_mm
    h = float(np.mean(spacing))
    sigma = math.hypot(SEGMENTATION_ERROR_VOXELS * math.sqrt(2.0) * h / gap, v_boundary - fit.v)
    notes = []
    if fit.clipped:
        notes.append(
            f"fisher-kpp: the GTV did not grow between days {t0:g} and {t1:g} ({fit.earlier_ml:.1f} -> "
            f"{fit.later_ml:.1f} mL, mean boundary displacement {shift_mm:+.1f} mm): front velocity "
            f"clipped at 0, the forecast holds the last GTV; the spread of the samples "
            f"({sigma:.3f} mm/day) allows regrowth"
        )
    if rt_start_day is not None and t0 < rt_start_day <= t1:
        notes.append(
            f"fisher-kpp: radiotherapy started on day {rt_start_day:g}, inside the calibration interval; "
            "the fitted velocity mixes growth and treatment response (no RT kill term is modelled)"
        )
    if rt_start_day is not None and rt_start_day > t1:
        notes.append(
            f"fisher-kpp: radiotherapy starts on day {rt_start_day:g}, after the last scan; the forecast "
            "is untreated growth (no RT kill term is modelled)"
        )
    if fit.v >= V_MAX:
        notes.append(f"fisher-kpp: the fitted front velocity reached its cap of {V_MAX:g} mm/day")
    say(1.0, "calibrated")
    return Calibration(
        v=fit.v,
        sigma_v=sigma,
        length_mm=length_mm,
        fit=fit,
        v_boundary=v_boundary,
        first_day=t0,
        last_day=t1,
        notes=notes,
    )
