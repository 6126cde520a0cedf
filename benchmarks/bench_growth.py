"""Growth fit + 100 bootstrap refits for one lesion: gliomaforecast vs the published approach.

Reference (what the Mechanistic Learning code does): the ODE solved numerically with scipy ``odeint``
(pre-RT and post-RT phases) inside lmfit ``leastsq`` with a finite-difference Jacobian, refitted from the
initial values for every bootstrap replicate. Same data, bounds, starting values and bootstrap draws.
Ours: ``growth.fit_growth`` (closed form, analytic Jacobian, warm-started bootstrap refits).

Run: ``.venv/bin/python benchmarks/bench_growth.py`` -> benchmarks/results/growth.json
"""

from __future__ import annotations

import json
import platform
import time

import lmfit
import numpy as np
from scipy.integrate import odeint

from gliomaforecast.growth import fit as gf
from gliomaforecast.growth import GrowthParams, burden, fit_growth
from _measure import measure, write_result

RT = 21.0
TRUE = GrowthParams(growth_rate=0.015, decay_rate=0.04, delay=25.0, slope=0.08, surviving_fraction=0.2,
                    initial_burden=10.0)
DAYS = np.array([0.0, 20.0, 60.0, 120.0, 180.0, 240.0, 300.0])
N_BOOT, NOISE, SEED = 100, 0.10, 0


def ode_model(t: np.ndarray, v: dict, t_rt: float) -> np.ndarray:
    """Burden at t by odeint: exponential phase, then the two-compartment post-RT phase."""
    pre_t = np.concatenate([[0.0], t[t < t_rt], [t_rt]])
    pre = odeint(lambda a, s: v["growth_rate"] * a, v["initial_burden"], pre_t)[:, 0]
    a_rt = pre[-1]

    def rhs(y, s):
        return [v["growth_rate"] * y[0], -np.tanh(v["slope"] * (s - t_rt - v["delay"])) * v["decay_rate"] * y[1]]

    post_t = np.concatenate([[t_rt], t[t >= t_rt]])
    post = odeint(rhs, [v["surviving_fraction"] * a_rt, (1 - v["surviving_fraction"]) * a_rt], post_t)
    return np.concatenate([pre[1:-1], post[1:].sum(axis=1)])


def lmfit_parameters(problem: "gf._Problem", start: dict) -> lmfit.Parameters:
    """The problem's free parameters from ``start`` (kept inside their bounds) and its held ones, as lmfit's."""
    pars = lmfit.Parameters()
    x0, lo, hi, held = problem.free_start(start)
    for name, value, low, high in zip(problem.free, x0, lo, hi):
        pars.add(name, value=value, min=low, max=high)
    for name, value in held.items():
        pars.add(name, value=value, vary=False)
    return pars


def reference_fit(problem: "gf._Problem", start: dict) -> tuple[dict, list[dict]]:
    def residual(pars, y):
        return ode_model(problem.t, pars.valuesdict(), problem.rt) - y

    def solve(y):
        with np.errstate(invalid="ignore"):
            r = lmfit.minimize(residual, lmfit_parameters(problem, start), args=(y,), method="leastsq")
        return {n: float(r.params[n].value) for n in gf.RT_ORDER}

    central = solve(problem.y)
    rng = np.random.default_rng(SEED)
    noisy = problem.y * (1.0 + NOISE * rng.standard_normal((N_BOOT, len(problem.t))))
    return central, [solve(yb) for yb in noisy]


def main() -> dict:
    rng = np.random.default_rng(42)
    y = burden(DAYS, TRUE, RT) * (1 + 0.1 * rng.standard_normal(DAYS.size))
    dense = np.linspace(0.0, 360.0, 181)

    t_ours, _, ours = measure(lambda: fit_growth(DAYS, y, RT, n_bootstrap=N_BOOT, noise=NOISE, seed=SEED))

    model, free, _ = gf.choose_model(DAYS, RT)
    problem = gf._Problem(DAYS, y, RT, free, {})
    start = problem.start()
    t0 = time.perf_counter()
    ref_central, ref_boot = reference_fit(problem, start)
    t_ref = time.perf_counter() - t0

    ref_params = problem.to_data_units(ref_central)
    ref_curve = burden(dense, ref_params, RT)
    ref_boot_params = GrowthParams.stack(problem.to_data_units(b) for b in ref_boot)
    ref_median = np.median(burden(dense[None, :], ref_boot_params, RT), axis=0)
    ours_curve = ours.curve(dense)
    ours_median = ours.predict(dense)[0]
    result = {
        "benchmark": "growth fit + 100 bootstrap refits, one lesion (7 scans, RT on day 21, 6 free parameters)",
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
        "reference": "lmfit leastsq + scipy odeint, finite-difference Jacobian, each bootstrap refit from the start values",
        "ours": "gliomaforecast.growth.fit_growth: closed form + analytic Jacobian, lmfit's least_squares (trf) "
                "run as the scipy call, median of 5 calls after one untimed",
        "seconds_reference": round(t_ref, 3),
        "seconds_ours": round(t_ours, 3),
        "speedup": round(t_ref / t_ours, 1),
        "max_relative_difference_fitted_curve": float(np.max(np.abs(ours_curve - ref_curve) / ref_curve)),
        "max_relative_difference_median_curve": float(np.max(np.abs(ours_median - ref_median) / ref_median)),
        "curve_days": [float(dense[0]), float(dense[-1])],
    }
    write_result("growth", result)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
