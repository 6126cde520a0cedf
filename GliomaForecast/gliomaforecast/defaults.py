"""Default settings shared by the core, the CLI, the evaluation, the Slicer logic and its parameter node.

One place for every default that a user can change; nothing else spells these numbers.
"""

from __future__ import annotations

import os

from .errors import InputError

MARGIN_MM = 15.0  # standard CTV margin (mm), ESTRO-EANO / PREDICT-GBM
BETA_PER_MM = 0.1  # logistic slope of the tumor-probability map (1/mm)
MU_MM = 15.0  # distance (mm) from the GTV at which the tumor probability is 0.5
SAMPLES = 8  # growth-model draws per forecast (uncertainty)
N_BOOTSTRAP = 100  # bootstrap refits of the growth model
BOOTSTRAP_NOISE = 0.10  # relative sd of the multiplicative bootstrap noise
SEED = 0
DEVICE = "auto"  # onnxruntime device: auto (CUDA when it really loads, else CPU), cpu or cuda
DEVICES = ("auto", "cpu", "cuda")

# Resource limits (docs/guarantees.md), checked before anything is allocated; each may be raised by the environment
# variable GLIOMAFORECAST_MAX_<NAME> (``limit``).
LIMITS = {
    "timepoints": 200,  # scans per case
    "bootstrap": 10_000,  # growth-model bootstrap refits (--n-bootstrap)
    "samples": 256,  # growth-model samples per forecast (--samples)
}
MAX_NOISE = 1.0  # the largest relative bootstrap noise (growth --noise): a sd of 100 % of each volume


def limit_variable(name: str) -> str:
    """The environment variable that overrides the limit ``name`` (a key of ``LIMITS``)."""
    return f"GLIOMAFORECAST_MAX_{name.upper()}"


def limit(name: str) -> int:
    """The resource limit ``name`` (a key of ``LIMITS``): ``$GLIOMAFORECAST_MAX_<NAME>`` when set, else the default.
    A value that is not a positive integer is an InputError naming the variable."""
    variable = limit_variable(name)
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return LIMITS[name]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18 and int(raw) > 0):
        raise InputError(variable, None, f"must be a positive integer, got {raw[:40]!r}")
    return int(raw)


def check_limit(value: int, name: str, source: object, field: str | None, what: str) -> None:
    """Refuse ``value`` ``what`` (e.g. "bootstrap refits") over the limit ``name``: an InputError naming ``source``,
    ``field``, the limit and the variable that raises it."""
    cap = limit(name)
    if value > cap:
        raise InputError(
            None if source is None else str(source),
            field,
            f"{value} {what} is over the limit of {cap} (set {limit_variable(name)} to raise it)",
        )
