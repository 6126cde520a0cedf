"""Fisher-Kolmogorov glioma growth: du/dt = div(D(x) grad u) + rho u (1 - u - k).

``u`` is the living tumor-cell density (fraction of the carrying capacity, in [0, 1]) and ``k`` the
density of cells killed by radiotherapy that still occupy space until cleared (dk/dt = -k / tau).
D (mm^2/day) is per voxel; D = 0 marks voxels outside the tumor's domain (CSF, resection cavity,
outside the brain): faces touching them carry no flux, so nothing enters the CSF or leaves the brain.

Scheme (operator splitting, per step dt):
* diffusion: explicit conservative finite volumes; the face diffusivity is the harmonic mean of its two
  voxels. The step respects the stability (and positivity) limit dt <= 1 / (2 Dmax sum_i 1/h_i^2),
  which also keeps u in [0, 1] (the update is a convex combination of neighbours).
* reaction: the exact solution of the logistic equation over dt, with capacity 1 - k held fixed.
The work is restricted to an active window (bounding box of u + k > ``eps`` plus a margin, grown as the
tumor spreads, zero-flux at its faces); arrays are float32.
"""

from __future__ import annotations

from typing import Sequence

from dataclasses import dataclass

import numpy as np

DEFAULT_EPS = 1e-7


def stable_time_step(d_max: float, spacing: Sequence[float], safety: float = 0.9) -> float:
    """The largest explicit diffusion step (days) for diffusivity ``d_max`` (mm^2/day) on ``spacing``
    (mm), times ``safety``: safety / (2 d_max sum_i 1/h_i^2)."""
    inv = sum(1.0 / float(h) ** 2 for h in spacing)
    if d_max <= 0:
        return np.inf
    return safety / (2.0 * float(d_max) * inv)


def face_conductances(d: np.ndarray, spacing: Sequence[float], dt: float) -> list[np.ndarray]:
    """Per axis, dt * D_face / h^2 on the faces between neighbouring voxels (shape n-1 along the axis),
    with D_face the harmonic mean of the two voxels' D (zero when either is zero)."""
    d = np.asarray(d, dtype=np.float64)
    out = []
    for axis, h in enumerate(spacing):
        a = np.moveaxis(d, axis, 0)
        lo, hi = a[:-1], a[1:]
        s = lo + hi
        face = np.divide(2.0 * lo * hi, s, out=np.zeros_like(s), where=s > 0)
        out.append(np.ascontiguousarray(np.moveaxis(face * (dt / float(h) ** 2), 0, axis), dtype=np.float32))
    return out


@dataclass
class _Window:
    lo: list[int]
    hi: list[int]

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in zip(self.lo, self.hi))


class FisherKolmogorov:
    """Solver on a fixed grid for one patient: ``diffusivity`` (mm^2/day, 0 outside the domain),
    ``spacing`` (mm), ``rho`` (1/day), ``clearance_days`` (mean life of killed cells, days).

    The state (``u``, ``k``, ``day``) lives on the solver; :meth:`advance` integrates to a later day and
    :meth:`irradiate` applies one fraction's surviving fraction."""

    def __init__(self, diffusivity: np.ndarray, spacing: Sequence[float], rho: float, *, clearance_days: float = 30.0,
                 dt_max: float = 1.0, eps: float = DEFAULT_EPS, margin: int = 4):
        self.spacing = tuple(float(s) for s in spacing)
        self.rho = float(rho)
        self.clearance_days = float(clearance_days)
        self.dt_max = float(dt_max)
        self.eps = float(eps)
        self.margin = int(margin)
        self.u = np.zeros(np.shape(diffusivity), dtype=np.float32)
        self.k = np.zeros_like(self.u)
        self.day = 0.0
        self.set_diffusivity(diffusivity)
        self.steps = 0

    def set_diffusivity(self, diffusivity: np.ndarray) -> None:
        """(Re)set D (mm^2/day); voxels with D = 0 are outside the domain and lose their cells."""
        d = np.asarray(diffusivity, dtype=np.float32)
        if d.shape != self.u.shape or np.any(d < 0) or not np.all(np.isfinite(d)):
            raise ValueError("diffusivity must be finite, non-negative and of the state's shape")
        self.d = d
        self.domain = d > 0
        self.dt = min(self.dt_max, stable_time_step(float(d.max()), self.spacing))
        self._faces = face_conductances(d, self.spacing, self.dt)
        self.u[~self.domain] = 0
        self.k[~self.domain] = 0

    def seed(self, u0: np.ndarray) -> None:
        """Add an initial density (clipped so u + k stays <= 1, kept inside the domain)."""
        self.u = np.minimum(self.u + np.asarray(u0, dtype=np.float32) * self.domain, 1.0 - self.k)

    # --- active window -------------------------------------------------------------------------
    def _window(self) -> _Window:
        active = (self.u + self.k) > self.eps
        if not active.any():
            return _Window([0, 0, 0], [0, 0, 0])
        idx = [np.nonzero(active.any(axis=tuple(j for j in range(3) if j != i)))[0] for i in range(3)]
        m = 2 * self.margin
        lo = [max(int(i[0]) - m, 0) for i in idx]
        hi = [min(int(i[-1]) + 1 + m, n) for i, n in zip(idx, self.u.shape)]
        return _Window(lo, hi)

    def _near_edge(self, u: np.ndarray, k: np.ndarray, win: _Window) -> bool:
        m = self.margin
        for axis in range(3):
            n = u.shape[axis]
            if win.lo[axis] > 0:
                sl = [slice(None)] * 3
                sl[axis] = slice(0, min(m, n))
                if (u[tuple(sl)] + k[tuple(sl)]).max(initial=0) > self.eps:
                    return True
            if win.hi[axis] < self.u.shape[axis]:
                sl = [slice(None)] * 3
                sl[axis] = slice(max(n - m, 0), n)
                if (u[tuple(sl)] + k[tuple(sl)]).max(initial=0) > self.eps:
                    return True
        return False

    # --- time stepping -------------------------------------------------------------------------
    def advance(self, day: float) -> None:
        """Integrate from the current day to ``day`` (days) in equal steps no longer than dt."""
        span = float(day) - self.day
        if span < 0:
            raise ValueError(f"cannot go back in time (from day {self.day} to {day})")
        n_steps = int(np.ceil(span / self.dt - 1e-9))
        if n_steps == 0:
            self.day = float(day)
            return
        dt = span / n_steps
        scale = np.float32(dt / self.dt)
        done = 0
        while done < n_steps:
            win = self._window()
            if win.hi == [0, 0, 0]:
                break
            sl = win.slices
            u = np.ascontiguousarray(self.u[sl])
            k = np.ascontiguousarray(self.k[sl])
            faces = [np.ascontiguousarray(self._faces[a][_face_slices(sl, a)]) * scale for a in range(3)]
            has_dead = bool(k.max(initial=0) > 0)
            while done < n_steps:
                for _ in range(min(self.margin, n_steps - done)):
                    _diffuse(u, faces)
                    _react(u, k if has_dead else None, self.rho, dt, self.clearance_days)
                    done += 1
                if done < n_steps and self._near_edge(u, k, win):
                    break
            self.u[sl] = u
            self.k[sl] = k
        self.steps += n_steps
        self.day = float(day)

    def irradiate(self, surviving_fraction: np.ndarray) -> None:
        """One RT fraction: living cells become killed cells except the ``surviving_fraction`` (0..1)."""
        s = np.asarray(surviving_fraction, dtype=np.float32)
        killed = self.u * (1.0 - s)
        self.u -= killed
        self.k += killed

    def remove(self, mask: np.ndarray) -> None:
        """Remove every cell (living and killed) in ``mask`` (e.g. a resection)."""
        self.u[mask] = 0
        self.k[mask] = 0

    @property
    def density(self) -> np.ndarray:
        """Total cell density u + k (what imaging sees), float32 in [0, 1]."""
        return self.u + self.k


def _face_slices(sl: tuple[slice, ...], axis: int) -> tuple[slice, ...]:
    out = list(sl)
    out[axis] = slice(sl[axis].start, sl[axis].stop - 1)
    return tuple(out)


def _diffuse(u: np.ndarray, faces: list[np.ndarray]) -> None:
    """One explicit conservative diffusion step in place; ``faces`` are dt D_face / h^2 per axis."""
    du = np.zeros_like(u)
    for axis, c in enumerate(faces):
        if u.shape[axis] < 2:
            continue
        a = np.moveaxis(u, axis, 0)
        flux = np.subtract(a[1:], a[:-1])
        flux *= np.moveaxis(c, axis, 0)
        d = np.moveaxis(du, axis, 0)
        d[:-1] += flux
        d[1:] -= flux
    u += du


def _react(u: np.ndarray, k: np.ndarray | None, rho: float, dt: float, clearance_days: float) -> None:
    """Exact logistic growth over dt (capacity 1 - k), then clearance of killed cells, in place."""
    if k is None:
        e = np.float32(np.expm1(rho * dt))
        denom = u * e
        denom += 1.0
        u *= e + 1.0
        u /= denom
        return
    cap = 1.0 - k
    g = np.expm1(cap * np.float32(rho * dt))  # E - 1 with E = exp(rho cap dt)
    denom = cap + u * g
    np.divide(cap * u * (g + 1.0), denom, out=u, where=denom > 0)
    np.minimum(u, cap, out=u)  # diffusion may have carried living cells above the capacity left by k
    k *= np.float32(np.exp(-dt / clearance_days))


def reference_step(u: np.ndarray, d: np.ndarray, spacing: Sequence[float], rho: float, dt: float) -> np.ndarray:
    """One step of a plain explicit scheme (float64, whole grid, forward Euler reaction, arithmetic
    face means; no flux where either voxel has D = 0): the benchmark's reference."""
    out = u.copy()
    for axis, h in enumerate(spacing):
        a, da = np.moveaxis(u, axis, 0), np.moveaxis(d, axis, 0)
        face = 0.5 * (da[1:] + da[:-1]) * ((da[1:] > 0) & (da[:-1] > 0))
        flux = face * (a[1:] - a[:-1]) * (dt / h ** 2)
        o = np.moveaxis(out, axis, 0)
        o[:-1] += flux
        o[1:] -= flux
    return out + dt * rho * u * (1.0 - u)
