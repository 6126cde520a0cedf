"""The forecaster interface: the request, the output, the protocol, and helpers every forecaster shares.

A forecaster turns a :class:`ForecastRequest` (a case of prior scans, a target day in days, the growth
model fitted to the GTV volumes in mL) into a :class:`ForecasterOutput` on the case grid. The orchestration
(:mod:`gliomaforecast.forecast`) loads the case, fits the growth model, calls the forecaster and builds the
target volumes; forecasters never build CTVs nor write files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .. import defaults, sdf
from ..growth.fit import GrowthFit
from ..io.case import Case, Timepoint
from ..targets import ctv

ProgressFn = Callable[[float, str], None]
"""``progress(fraction, message)``: fraction of the forecaster's work done, in [0, 1]."""


def no_progress(_fraction: float, _message: str) -> None:
    """A progress callback that ignores every report."""


@dataclass(frozen=True)
class ForecastRequest:
    """What a forecaster is asked: the case, the target day (days), the fitted growth model of the GTV
    volume (mL), how many samples to draw, the seed and the device ('auto', 'cpu' or 'cuda')."""

    case: Case
    target_day: float
    growth: GrowthFit
    samples: int = defaults.SAMPLES
    seed: int = defaults.SEED
    device: str = defaults.DEVICE

    @property
    def last(self) -> Timepoint:
        """The case's last scan (the forecast starts from it)."""
        return self.case.timepoints[-1]

    @property
    def spacing(self) -> tuple[float, ...]:
        """The case grid's spacing (mm, z, y, x)."""
        return self.case.grid.spacing

    @property
    def horizon_days(self) -> float:
        """Days from the last scan to the target day."""
        return float(self.target_day - self.last.day)


@dataclass
class ForecasterOutput:
    """A forecaster's result on the case grid.

    ``probability``: tumor presence (float32 in [0, 1]); ``uncertainty``: per-voxel standard deviation of
    the probability over samples (float32). Optional fields are None when the forecaster does not produce
    them, and then nothing is written or shown for them: ``image`` (predicted FLAIR, float32, the input
    FLAIR's intensity scale) and ``displacement`` ((z, y, x, 3) in mm, index order, pull convention: see
    :mod:`gliomaforecast.deformation`). ``models`` holds the provenance of every network that ran
    (``OnnxModel.provenance()``), ``notes`` one line per choice a user should know about; ``image_kind`` says
    whether ``image`` is a warped last FLAIR or a synthesized forecast of the FLAIR."""

    probability: np.ndarray
    uncertainty: np.ndarray
    image: np.ndarray | None = None
    displacement: np.ndarray | None = None
    models: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    image_kind: str = "warped"
    """What ``image`` is: ``"warped"`` (the last FLAIR moved by a field or unchanged: a registration aid, written
    as flair_warped_dD) or ``"synthesized"`` (a forecast of the FLAIR by a generative model, written as flair_dD)."""
    extra_images: dict[str, np.ndarray] = field(default_factory=dict)
    """Further synthesized images on the case grid by modality (e.g. ``{"t1ce": ...}``, the input's intensity
    units), written as ``<modality>_dD.nii.gz``."""
    scenarios: dict[str, Scenario] = field(default_factory=dict)
    """Alternative forecasts shown beside the main one (e.g. ``latent-diffusion --outcome both``: the responder and
    the progressor forecast), written as ``probability_<name>_dD.nii.gz`` and ``flair_<name>_dD.nii.gz`` and drawn
    side by side in the report; the targets always come from ``probability``."""


@dataclass
class Scenario:
    """One alternative forecast on the case grid: ``probability`` (tumour presence 0-1, float32), ``image`` (the
    synthesized FLAIR, the input's units, or None) and a one-line ``label`` saying what was assumed."""

    probability: np.ndarray
    image: np.ndarray | None
    label: str


class Forecaster(Protocol):
    """Anything with a ``name`` and ``predict(request, progress) -> ForecasterOutput``."""

    name: str

    def predict(self, request: ForecastRequest, progress: ProgressFn) -> ForecasterOutput: ...


def probability_for_volume(
    phi: np.ndarray, volume_ml: float, spacing: Sequence[float], allowed: np.ndarray | None = None
) -> np.ndarray:
    """Re-level a (warped) signed distance ``phi`` (mm) so that its tumor region holds ``volume_ml`` mL:
    the voxels with the lowest ``phi`` inside ``allowed`` (iso-volumetric selection of ``ctv``), at least
    one voxel and never all of them; return the logistic probability of that region's exact signed
    distance (mm)."""
    phi = np.asarray(phi, dtype=np.float64)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    room = int(phi.size if allowed is None else np.count_nonzero(allowed))
    n = int(np.clip(round(volume_ml / voxel_ml), 1, min(room, phi.size - 1)))
    mask = ctv.isovolumetric_ctv(phi.max() + 1.0 - phi, n, spacing, brain_mask=allowed)
    return sdf.tumor_probability(mask, spacing)
