"""Fit the growth model (:mod:`.model`) to a burden series by lmfit's least squares, with bootstrap uncertainty.

Method (Mechanistic Learning, section "Mechanistic modeling"): lmfit's ``least_squares`` fit (trust-region
reflective with native bounds: it converges in fewer steps than ``leastsq``'s bound transformation when a parameter
sits at a bound) on plain residuals ``model - observed``, with the analytic Jacobian of the closed form, run as the
scipy ``least_squares`` call lmfit makes (same bounds, tolerances and evaluation budget; the result is lmfit's to the
last bit, tested against ``lmfit.minimize``), so a forecast neither imports lmfit nor pays its per-evaluation
bookkeeping; then ``n_bootstrap`` refits of the same kind, warm-started from the central fit, on
``burden * (1 + noise * N(0, 1))`` (unbiased, not clipped); the forecast
is the bootstrap median with the 2.5 / 97.5 percentile band (a 95% band).

Which model is fitted (``GrowthFit.model``, explained in ``GrowthFit.note``):
- ``"exponential"`` (A0, growth rate) when no RT start is given, when RT starts on or after the last
  scan (the RT response is then not observed; predictions ignore RT), or with only two scans and no
  population prior.
- ``"radiotherapy"`` with two scans around the RT start and a population prior (``growth_prior``, the
  default): initial_burden and surviving_fraction free, growth_rate, decay_rate, delay and slope held at the
  prior's medians; each bootstrap refit holds them at one training patient's values (drawn with replacement).
- ``"radiotherapy"`` with three or more scans, as many free parameters as scans, at most six, freed in the
  order initial_burden, growth_rate, surviving_fraction, decay_rate, delay, slope; the others are held at the
  population prior's medians when there is one (each bootstrap refit drawing one training patient's values, as
  for two scans), else at ``DEFAULTS`` (listed in ``GrowthFit.fixed``); with ``prior_frees="burden"`` and a prior,
  only initial_burden and surviving_fraction are free, as with two scans. Starting values come from a vectorised
  grid search.

Physical bounds (1/day, days): growth_rate [0, 0.1] (exponential model: [-0.1, 0.1], shrinkage allowed),
decay_rate [0, 0.2], delay [0, 180], slope [0.005, 1], surviving_fraction [0, 1], initial_burden
(1e-6 .. 100) x the largest observed burden. Every starting value lies strictly inside its bounds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import least_squares

from .. import defaults
from ..errors import InputError
from .model import PARAM_NAMES, GrowthParams, burden, burden_of_parts, jacobian_of_parts, model_parts
from .prior import HELD, GrowthPrior, population_prior

RT_ORDER = ("initial_burden", "growth_rate", "surviving_fraction", "decay_rate", "delay", "slope")
# Held values when there are fewer scans than parameters. The delay is short: before it the dying compartment
# still grows (tanh < 0), so a long held delay lets the fit invent an unobserved post-RT bump (30 days gave a
# 3.5 L peak between scans of 3-120 mL on the sample patient; 7 days gives none).
DEFAULTS = {"growth_rate": 0.01, "decay_rate": 0.02, "delay": 7.0, "slope": 0.1, "surviving_fraction": 0.5}
BOUNDS = {
    "growth_rate": (0.0, 0.1),
    "decay_rate": (0.0, 0.2),
    "delay": (0.0, 180.0),
    "slope": (0.005, 1.0),
    "surviving_fraction": (0.0, 1.0),
    "initial_burden": (1e-6, 100.0),
}
EXP_GROWTH_BOUNDS = (-0.1, 0.1)
START_GRID = {
    "growth_rate": (0.001, 0.003, 0.01, 0.03, 0.06),
    "surviving_fraction": (0.02, 0.1, 0.3, 0.6, 0.9),
    "decay_rate": (0.005, 0.015, 0.04, 0.1),
    "delay": (5.0, 20.0, 45.0, 90.0),
    "slope": (0.02, 0.1, 0.4),
}
_INSIDE = 1e-3  # starting values are kept this fraction of the bound range away from each bound
FTOL = 1e-6  # relative tolerances of least_squares (cost, step, gradient): well below the 10% data noise


@dataclass
class GrowthFit:
    """A fitted growth model. ``params`` is the fit to the observed data (burden unit of the input, time
    origin day 0); ``bootstrap`` holds the ``n_bootstrap`` refits as fields of shape (B, 1)."""

    days: np.ndarray
    burdens: np.ndarray
    rt_start_day: float | None
    model: str
    note: str
    params: GrowthParams
    free: tuple[str, ...]
    fixed: dict[str, float]
    bootstrap: GrowthParams | None
    n_bootstrap: int
    noise: float
    seed: int
    r_squared: float = field(default=float("nan"))
    cap: float | None = None
    """Largest burden a prediction may reach (the brain volume, mL, when a forecast knows it): every curve of
    :meth:`curve`, :meth:`bootstrap_curves` and :meth:`predict` is clipped to it. None: no cap."""

    @property
    def model_rt_start_day(self) -> float | None:
        """The RT start the fitted model uses (None for the exponential model)."""
        return self.rt_start_day if self.model == "radiotherapy" else None

    def curve(self, days: ArrayLike) -> np.ndarray:
        """The central fit at ``days`` (clipped to :attr:`cap`)."""
        return self._capped(burden(np.asarray(days, dtype=float), self.params, self.model_rt_start_day))

    def _capped(self, values: np.ndarray) -> np.ndarray:
        return values if self.cap is None else np.minimum(values, self.cap)

    def bootstrap_curves(self, days: ArrayLike) -> np.ndarray:
        """All bootstrap curves at ``days``, shape (n_bootstrap, len(days)); the central fit when
        n_bootstrap is 0. Clipped to :attr:`cap`."""
        d = np.atleast_1d(np.asarray(days, dtype=float))
        if self.bootstrap is None:
            return self.curve(d)[None, :]
        return self._capped(burden(d[None, :], self.bootstrap, self.model_rt_start_day))

    def predict(self, days: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(median, lower 2.5 %, upper 97.5 %) of the bootstrap curves at ``days`` (burden unit)."""
        d = np.asarray(days, dtype=float)
        curves = self.bootstrap_curves(d.ravel())
        lo, med, hi = np.percentile(curves, [2.5, 50.0, 97.5], axis=0)
        return med.reshape(d.shape), lo.reshape(d.shape), hi.reshape(d.shape)

    def parameter_summary(self) -> dict[str, dict[str, float | bool]]:
        """Per parameter: fitted value, bootstrap median and 2.5 / 97.5 percentiles, and whether it was
        held fixed."""
        out: dict[str, dict[str, float | bool]] = {}
        for name in PARAM_NAMES:
            value = float(getattr(self.params, name))
            boot = np.ravel(getattr(self.bootstrap, name)) if self.bootstrap is not None else np.array([value])
            lo, med, hi = np.percentile(boot, [2.5, 50.0, 97.5])
            out[name] = {
                "value": value,
                "median": float(med),
                "lower_2.5": float(lo),
                "upper_97.5": float(hi),
                "fixed": name not in self.free,
            }
        return out


def _validate(days, burdens, rt_start_day, n_bootstrap, noise, source) -> tuple[np.ndarray, np.ndarray]:
    try:
        t = np.asarray(days, dtype=float)
        y = np.asarray(burdens, dtype=float)
    except (TypeError, ValueError):
        raise InputError(source, "days", "days and burdens must be numbers") from None
    if t.ndim != 1 or y.ndim != 1 or t.shape != y.shape:
        raise InputError(source, "burdens", f"need one burden per day, got {y.shape} burdens for {t.shape} days")
    if t.size < 2:
        raise InputError(source, "days", f"need at least two scans to fit growth, got {t.size}")
    if not np.all(np.isfinite(t)):
        raise InputError(source, "days", "days must be finite numbers")
    steps = np.diff(t)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0))
        what = "duplicate" if steps[i] == 0 else "unsorted"
        raise InputError(
            source, "days", f"{what} days: day {t[i + 1]:g} follows day {t[i]:g}; days must be strictly increasing"
        )
    if not np.all(np.isfinite(y)):
        raise InputError(source, "burdens", "burdens must be finite (NaN or infinite value given)")
    if np.any(y < 0):
        raise InputError(source, "burdens", f"negative burden {y.min():g}")
    if not np.any(y > 0):
        raise InputError(source, "burdens", "all burdens are zero: nothing to fit")
    if rt_start_day is not None and not np.isfinite(rt_start_day):
        raise InputError(source, "rt_start_day", f"must be a finite day, got {rt_start_day}")
    if isinstance(n_bootstrap, bool) or int(n_bootstrap) != n_bootstrap or n_bootstrap < 0:
        raise InputError(source, "n_bootstrap", f"must be a non-negative integer, got {n_bootstrap}")
    defaults.check_limit(int(n_bootstrap), "bootstrap", source, "n_bootstrap", "bootstrap refits")
    if not (np.isfinite(noise) and noise >= 0):
        raise InputError(source, "noise", f"must be a non-negative fraction, got {noise}")
    if noise > defaults.MAX_NOISE:
        raise InputError(source, "noise", f"{noise:g} is over the limit of {defaults.MAX_NOISE:g} (a fraction)")
    return t, y


def _inside(value: float, lo: float, hi: float) -> float:
    pad = _INSIDE * (hi - lo)
    return float(np.clip(value, lo + pad, hi - pad))


class _Curve:
    """The model's burden and Jacobian at the free parameters ``x`` (the others held at ``values``) on days ``t``:
    trf asks for the Jacobian at the point whose burden it evaluated last, so the terms of that evaluation
    (:func:`.model.model_parts`) are kept and reused (the same numbers as :func:`burden_jacobian` computes)."""

    def __init__(self, t: np.ndarray, rt: float | None, values: dict[str, float], free: tuple[str, ...]) -> None:
        self.t, self.rt, self.values, self.free = t, rt, values, free
        self._last: tuple[bytes, GrowthParams, tuple] | None = None

    def _terms(self, x: np.ndarray) -> tuple[GrowthParams, tuple]:
        key = np.asarray(x, dtype=float).tobytes()
        if self._last is None or self._last[0] != key:
            params = GrowthParams(**self.values, **dict(zip(self.free, x)))
            self._last = (key, params, model_parts(self.t, params, self.rt))
        return self._last[1], self._last[2]

    def burden(self, x: np.ndarray) -> np.ndarray:
        params, parts = self._terms(x)
        return burden_of_parts(parts, params)

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        params, parts = self._terms(x)
        return jacobian_of_parts(parts, params, self.rt, self.free)


class _Problem:
    """The least-squares problem on scaled data: time measured from the first scan, burden divided by
    the largest observation (so every parameter is of order one for the solver)."""

    def __init__(
        self, t: np.ndarray, y: np.ndarray, rt: float | None, free: tuple[str, ...], fixed: dict[str, float]
    ) -> None:
        self.t0, self.scale = float(t[0]), float(y.max())
        self.t = t - self.t0
        self.y = y / self.scale
        self.rt = None if rt is None else float(rt) - self.t0
        self.free, self.fixed = free, fixed
        self.bounds = dict(BOUNDS)
        if rt is None:
            self.bounds["growth_rate"] = EXP_GROWTH_BOUNDS

    def free_start(self, start: dict[str, float]) -> tuple[list[float], list[float], list[float], dict[str, float]]:
        """The free parameters' starting values from ``start`` (kept strictly inside their bounds), their lower and
        upper bounds, in the order of ``free``; and the held parameters' values (by name)."""
        x0 = [_inside(start[n], *self.bounds[n]) for n in self.free]
        lo = [self.bounds[n][0] for n in self.free]
        hi = [self.bounds[n][1] for n in self.free]
        return x0, lo, hi, {n: self.fixed[n] for n in RT_ORDER if n not in self.free}

    def solve(self, y: np.ndarray, start: dict[str, float]) -> dict[str, float]:
        """Fit the free parameters to ``y`` (scaled burdens) from ``start``: scipy ``least_squares`` (trf, native
        bounds, analytic Jacobian, tolerances :data:`FTOL`, lmfit's evaluation budget), exactly what lmfit's
        ``minimize(method="least_squares")`` runs (its result to the last bit, tested), without importing lmfit
        (0.7-0.9 s, more than the fit) or its per-evaluation Parameters bookkeeping. Returns every parameter."""
        x0, lo, hi, values = self.free_start(start)
        curve = _Curve(self.t, self.rt, values, self.free)
        result = least_squares(
            lambda x: curve.burden(x) - y,
            x0,
            jac=curve.jacobian,
            bounds=(lo, hi),
            method="trf",
            ftol=FTOL,
            xtol=FTOL,
            gtol=FTOL,
            max_nfev=4000 * (len(self.free) + 1),
        )  # lmfit's default for least_squares
        return {**values, **{n: float(v) for n, v in zip(self.free, result.x)}}

    def start(self) -> dict[str, float]:
        """Starting values: log-linear regression for the exponential model; for the RT model the best of
        a grid over the free parameters (all candidates evaluated at once, initial_burden solved in
        closed form per candidate since the model is linear in it)."""
        pos = self.y > 0
        if pos.sum() >= 2:
            rate, intercept = np.polyfit(self.t[pos], np.log(self.y[pos]), 1)
        else:
            rate, intercept = 0.0, float(np.log(self.y.max()))
        start = dict(self.fixed)
        start["growth_rate"] = float(rate)
        start["initial_burden"] = float(np.exp(intercept))
        if self.rt is None:
            return start
        grid_names = [n for n in RT_ORDER[1:] if n in self.free]
        combos = np.array(list(itertools.product(*(START_GRID[n] for n in grid_names))))
        values = {n: np.full((len(combos), 1), self.fixed.get(n, 1.0)) for n in PARAM_NAMES}
        for i, n in enumerate(grid_names):
            values[n] = combos[:, i : i + 1]
        values["initial_burden"] = np.ones((len(combos), 1))
        f = burden(self.t[None, :], GrowthParams(**values), self.rt)
        lo, hi = self.bounds["initial_burden"]
        a = np.clip((f @ self.y) / np.maximum((f * f).sum(axis=1), 1e-300), lo, hi)
        best = int(np.argmin(((a[:, None] * f - self.y) ** 2).sum(axis=1)))
        start.update({n: float(combos[best, i]) for i, n in enumerate(grid_names)})
        start["initial_burden"] = float(a[best])
        return start

    def to_data_units(self, values: dict[str, float]) -> GrowthParams:
        """Parameters on the caller's time axis (A0 at day 0) and burden unit."""
        v = dict(values)
        v["initial_burden"] = v["initial_burden"] * self.scale * np.exp(-v["growth_rate"] * self.t0)
        return GrowthParams(**{n: float(v[n]) for n in PARAM_NAMES})


def choose_model(
    days: np.ndarray,
    rt_start_day: float | None,
    prior: GrowthPrior | None = None,
    prior_frees: Literal["scans", "burden"] = "scans",
) -> tuple[str, tuple[str, ...], str]:
    """(model, free parameters, note) for scans on ``days`` and RT starting on ``rt_start_day``, with a
    population ``prior`` or without one. ``prior_frees``: with a prior and three or more scans, free as many
    parameters as scans (``"scans"``) or only the initial burden and surviving fraction (``"burden"``, as two
    scans do)."""
    n = len(days)
    if rt_start_day is None:
        return "exponential", RT_ORDER[:2], "exponential growth: no RT start given"
    if rt_start_day >= days[-1]:
        return (
            "exponential",
            RT_ORDER[:2],
            f"exponential growth: RT starts on day {rt_start_day:g}, not before the last scan (day "
            f"{days[-1]:g}), so its effect is not observed; predictions ignore RT",
        )
    if prior is not None and (n == 2 or prior_frees == "burden"):
        return (
            "radiotherapy",
            ("initial_burden", "surviving_fraction"),
            f"radiotherapy model: {'two' if n == 2 else n} scans fit the initial burden and the surviving "
            f"fraction; growth rate, decay rate, delay and slope held at the population prior "
            f"({len(prior.patients)} training patients' median; each bootstrap refit draws one patient's values)",
        )
    if n == 2:
        return (
            "exponential",
            RT_ORDER[:2],
            "exponential growth: two scans identify only the initial burden and one rate; the RT "
            "response is not modelled",
        )
    free = RT_ORDER[: min(n, len(RT_ORDER))]
    held = [n_ for n_ in RT_ORDER if n_ not in free]
    note = f"radiotherapy model: {len(free)} free parameters for {n} scans"
    if held and prior is not None:
        note += (
            f"; held at the population prior ({len(prior.patients)} training patients' median; each bootstrap "
            "refit draws one patient's values): " + ", ".join(f"{h} = {prior.values[h]:.3g}" for h in held)
        )
    elif held:
        note += "; held at defaults: " + ", ".join(f"{h} = {DEFAULTS[h]:g}" for h in held)
    return "radiotherapy", free, note


def fit_growth(
    days: ArrayLike,
    burdens: ArrayLike,
    rt_start_day: float | None = None,
    n_bootstrap: int = defaults.N_BOOTSTRAP,
    noise: float = defaults.BOOTSTRAP_NOISE,
    seed: int = defaults.SEED,
    *,
    source: str | None = None,
    prior: GrowthPrior | Literal["population"] | None = "population",
    prior_frees: Literal["scans", "burden"] = "scans",
) -> GrowthFit:
    """Fit the growth model to ``burdens`` (mL or mm^2, >= 0) observed on strictly increasing ``days``.

    ``rt_start_day`` (days, same axis) or None; ``n_bootstrap`` refits with multiplicative Gaussian noise
    of relative size ``noise``; ``seed`` makes the bootstrap reproducible. ``prior``: the population prior for
    scans around the RT start (``"population"``: the shipped one, :func:`growth_prior.population_prior`; None: none,
    the exponential model for two scans and ``DEFAULTS`` for more); ``prior_frees``: see :func:`choose_model`. Bad
    input raises InputError (naming ``source`` when given). See the module docstring for the model choice and bounds.
    """
    t, y = _validate(days, burdens, rt_start_day, n_bootstrap, noise, source)
    rt = None if rt_start_day is None else float(rt_start_day)
    prior = population_prior() if prior == "population" else prior
    if prior_frees not in ("scans", "burden"):
        raise InputError(source, "prior_frees", f"must be 'scans' or 'burden', got {prior_frees!r}")
    model, free, note = choose_model(t, rt, prior, prior_frees)
    held_prior = prior if model == "radiotherapy" else None
    fixed = _held_values(model, free, held_prior)
    problem = _Problem(t, y, rt if model == "radiotherapy" else None, free, fixed)
    central = problem.solve(problem.y, problem.start())
    params = problem.to_data_units(central)
    boot = _bootstrap(problem, central, (t, y, rt), free, fixed, held_prior, n_bootstrap, noise, seed)
    fit = GrowthFit(
        days=t,
        burdens=y,
        rt_start_day=rt,
        model=model,
        note=note,
        params=params,
        free=free,
        fixed={k: v for k, v in fixed.items() if model == "radiotherapy"},
        bootstrap=boot,
        n_bootstrap=int(n_bootstrap),
        noise=float(noise),
        seed=int(seed),
    )
    fit.r_squared = _r_squared(y, fit.predict(t)[0])
    return fit


def _held_values(model: str, free: tuple[str, ...], prior: GrowthPrior | None) -> dict[str, float]:
    """The values (1/day, days, fraction) at which the parameters that are not ``free`` are held: the population
    ``prior``'s medians when given (the radiotherapy model), else ``DEFAULTS``; the exponential model has no RT
    response (no decay, no delay, slope 1, every cell surviving)."""
    fixed = {
        n: (prior.values[n] if prior is not None and n in HELD else DEFAULTS[n])
        for n in RT_ORDER
        if n not in free and n != "initial_burden"
    }
    if model == "exponential":
        fixed.update({"decay_rate": 0.0, "delay": 0.0, "slope": 1.0, "surviving_fraction": 1.0})
    return fixed


def _bootstrap(
    problem: _Problem,
    central: dict[str, float],
    data: tuple[np.ndarray, np.ndarray, float | None],
    free: tuple[str, ...],
    fixed: dict[str, float],
    prior: GrowthPrior | None,
    n_bootstrap: int,
    noise: float,
    seed: int,
) -> GrowthParams | None:
    """``n_bootstrap`` refits (None for none) of ``problem`` from its ``central`` fit on its burdens times
    (1 + ``noise`` N(0, 1)) drawn from ``seed``; with a ``prior`` each refit holds the ``fixed`` parameters at one
    training patient's values (drawn after the noise, from the same generator) on ``data`` (days, burdens, RT
    start day)."""
    if not n_bootstrap:
        return None
    t, y, rt = data
    rng = np.random.default_rng(seed)
    noisy = problem.y * (1.0 + noise * rng.standard_normal((int(n_bootstrap), len(t))))
    problems = (
        [
            _Problem(t, y, rt, free, {**fixed, **{k: v for k, v in held.items() if k in fixed}})
            for held in prior.draw(rng, int(n_bootstrap))
        ]
        if prior is not None
        else [problem] * int(n_bootstrap)
    )
    return GrowthParams.stack(p.to_data_units(p.solve(yb, central)) for p, yb in zip(problems, noisy))


def _r_squared(y: np.ndarray, median: np.ndarray) -> float:
    """The coefficient of determination of the ``median`` curve at the observed burdens ``y`` (NaN when they are
    all equal)."""
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - median) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")


def constant_fit(
    day: float,
    burden_value: float,
    rt_start_day: float | None = None,
    seed: int = defaults.SEED,
    *,
    source: str | None = None,
) -> GrowthFit:
    """The growth record of a single scan (``burden_value`` mL or mm^2 on ``day`` days): nothing can be fitted
    from one point, so the burden is held constant (exponential model, growth rate 0, no bootstrap). Forecasters
    that accept one scan (e.g. ``recurrence-unet``, which needs only the RT planning scan) get this record."""
    t, y = _validate([day, day + 1.0], [burden_value, burden_value], rt_start_day, 0, 0.0, source)
    params = GrowthParams(growth_rate=0.0, initial_burden=float(burden_value))
    return GrowthFit(
        days=t[:1],
        burdens=y[:1],
        rt_start_day=None if rt_start_day is None else float(rt_start_day),
        model="exponential",
        note="one scan: burden held constant (no growth model can be fitted)",
        params=params,
        free=(),
        fixed={},
        bootstrap=None,
        n_bootstrap=0,
        noise=0.0,
        seed=int(seed),
    )
