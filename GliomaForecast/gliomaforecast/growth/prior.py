"""Population values of the growth-model parameters that two scans cannot identify (mechanistic learning).

Two scans, one before and one after RT starts, identify only two numbers of the radiotherapy model. Fitting
an exponential through them (the model without a prior) extrapolates the RT response for ever: a tumour that
shrank under RT is forecast to vanish, while gliomas regrow. With a prior, the two scans fit the initial burden
and the surviving fraction S, and the growth rate, decay rate, delay and slope (``HELD``; 1/day, 1/day, days,
1/day: rates, so the prior serves mL volumes and mm^2 slice areas alike) are held at the median of the
training patients' own fits; every bootstrap refit draws one training patient's values, so the band carries
the population's spread as well as the data noise.

The shipped prior is ``growth_prior.json`` in the models folder (``Resources/Models``, or
``$GLIOMAFORECAST_MODELS_DIR`` when set, as for the ONNX models), written by
``gliomaforecast-train growth-prior COHORT --out FILE`` from the training cohort (docs/growth.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..resources import default_models_dir

HELD = ("growth_rate", "decay_rate", "delay", "slope")
SCHEMA = "gliomaforecast.growth_prior/1"
FILE_NAME = "growth_prior.json"


@dataclass(frozen=True)
class GrowthPrior:
    """``values``: the population median of each ``HELD`` parameter; ``patients`` (P, len(HELD)) the training
    patients' fitted values (the bootstrap draws rows)."""

    values: dict[str, float]
    patients: np.ndarray

    def draw(self, rng: np.random.Generator, n: int) -> list[dict[str, float]]:
        """``n`` training patients' held values, drawn with replacement."""
        rows = self.patients[rng.integers(0, len(self.patients), size=n)]
        return [dict(zip(HELD, map(float, row))) for row in rows]


def prior_from_values(patients: np.ndarray) -> GrowthPrior:
    """The prior of per-patient ``HELD`` values (P, 4): medians and rows."""
    rows = np.asarray(patients, dtype=float)
    return GrowthPrior(dict(zip(HELD, map(float, np.median(rows, axis=0)))), rows)


def prior_record(prior: GrowthPrior, **provenance) -> dict:
    """The JSON record of ``prior`` (what :func:`load_prior` reads), with free-form ``provenance``."""
    return {
        "schema": SCHEMA,
        **provenance,
        "held": list(HELD),
        "units": ["1/day", "1/day", "day", "1/day"],
        "median": prior.values,
        "patients": prior.patients.tolist(),
    }


def load_prior(path: str | Path) -> GrowthPrior:
    """Read a prior file; InputError naming the file and field when it is not one."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(path, None, f"cannot read the growth prior: {exc}") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise InputError(path, "schema", f"not a growth prior (expected schema {SCHEMA})")
    if record.get("held") != list(HELD):
        raise InputError(path, "held", f"must list {', '.join(HELD)}")
    try:
        rows = np.asarray(record["patients"], dtype=float)
    except (KeyError, TypeError, ValueError):
        raise InputError(path, "patients", "must be a list of per-patient values") from None
    if rows.ndim != 2 or rows.shape[1] != len(HELD) or len(rows) == 0 or not np.all(np.isfinite(rows)):
        raise InputError(path, "patients", f"must be finite rows of {len(HELD)} values, got shape {rows.shape}")
    if np.any(rows < 0):
        raise InputError(path, "patients", "rates, delays and slopes must be >= 0")
    return prior_from_values(rows)


def prior_path() -> Path:
    """Where the shipped prior is: ``growth_prior.json`` in the models folder (:func:`resources.default_models_dir`)."""
    return default_models_dir() / FILE_NAME


def population_prior() -> GrowthPrior | None:
    """The shipped prior (:func:`prior_path`); None when the file is absent."""
    path = prior_path()
    return _cached(str(path), path.stat().st_mtime_ns) if path.is_file() else None


@lru_cache(maxsize=4)
def _cached(path: str, _mtime_ns: int) -> GrowthPrior:
    return load_prior(path)
