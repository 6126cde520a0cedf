"""One later MRI session brought onto the planning scan: which sequence pair registers it, and its transform.

The pair: the first modality of :data:`PAIR_ORDER` that both sessions have (a T1 first: it shows the anatomy and is
the sequence a tumour changes least); sessions without a common sequence register their first sequences of that
order to each other (mutual information needs no common contrast). The transform comes, in this order of
precedence, from the caller (a DICOM Spatial Registration object: ``source`` ``dicom``), from the identity
(``--register none``: the sessions already share one frame of reference; ``source`` ``none``), or from
:func:`gliomaforecast.preparation.registration.register` (``source`` ``estimated``). Every transform's quality is
measured the same way (edge correlation, -1..1, see :mod:`.registration`); an estimated registration below
:data:`~.registration.MIN_QUALITY` is refused there, and any quality below :data:`WARN_QUALITY` is a warning.

Transforms follow ITK's convention (planning-scan point, mm, LPS -> the session's point).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..geometry import Grid
from .registration import quality_region, register, registration_quality

PAIR_ORDER = ("t1", "t1ce", "t2", "flair", "adc")
REGISTER_CHOICES = ("rigid", "affine", "none")
# Below this quality a registration is accepted with a warning that states it: the 150 recovered motions of
# benchmarks/results/registration.json score 0.79 and more, refused ones (another patient) at most 0.41.
WARN_QUALITY = 0.75


@dataclass(frozen=True, eq=False)
class SessionRegistration:
    """How timepoint ``timepoint`` (``day``, days) was brought onto the planning scan: ``source`` (estimated, dicom,
    none), ``kind`` (rigid, affine, or the given transform's class), the sequences used (``fixed``, ``moving``), the
    measured ``quality`` (-1..1) and the ``transform`` (ITK convention, mm)."""

    timepoint: int
    day: float
    source: str
    kind: str
    fixed: str
    moving: str
    quality: float
    transform: sitk.Transform

    @property
    def poor(self) -> bool:
        """Whether the quality is below :data:`WARN_QUALITY`."""
        return self.quality < WARN_QUALITY

    def warning(self) -> str | None:
        """A one-line warning stating the measured quality when it is poor, else None."""
        if not self.poor:
            return None
        return (
            f"timepoint {self.timepoint} (day {self.day:g}): registration quality {self.quality:.2f} "
            f"({self.moving} onto {self.fixed}, {self.source}) is below {WARN_QUALITY:g}: check its edges on the "
            "planning scan"
        )

    def record(self, transform_file: str | None) -> dict:
        """The JSON-ready record of this registration (case.json ``preparation.registration``)."""
        return {
            "timepoint": self.timepoint,
            "day": self.day,
            "source": self.source,
            "kind": self.kind,
            "fixed": self.fixed,
            "moving": self.moving,
            "quality": round(self.quality, 4),
            "transform": transform_file,
        }


def registration_pair(fixed: Iterable[str], moving: Iterable[str]) -> tuple[str, str]:
    """The (fixed, moving) modalities that register two sessions (see the module docstring)."""
    fixed, moving = set(fixed), set(moving)
    shared = [m for m in PAIR_ORDER if m in fixed and m in moving]
    if shared:
        return shared[0], shared[0]
    first = [next((m for m in PAIR_ORDER if m in have), None) for have in (fixed, moving)]
    if first[0] is None or first[1] is None:
        raise InputError(None, "images", "a session without an MR image cannot be registered")
    return first[0], first[1]


def register_session(
    timepoint: int,
    day: float,
    fixed: tuple[str, np.ndarray],
    grid: Grid,
    moving: tuple[str, np.ndarray, Grid],
    kind: str,
    brain: np.ndarray | None = None,
    given: tuple[sitk.Transform, str] | None = None,
    moving_name: str = "moving image",
) -> SessionRegistration:
    """Timepoint ``timepoint``'s transform onto the planning scan. ``fixed``: (modality, image on ``grid``);
    ``moving``: (modality, image, its own grid); ``kind``: one of :data:`REGISTER_CHOICES`; ``brain``: the planning
    brain mask (the metric's and the quality's region; else the planning image's foreground); ``given``: a transform
    to use instead of estimating one and its source (``dicom``: a Spatial Registration object; ``none``: the
    session shares the planning scan's frame of reference). Raises InputError for an unknown ``kind`` or a
    registration that will not hold (quality below :data:`~.registration.MIN_QUALITY`, stated)."""
    if kind not in REGISTER_CHOICES:
        raise InputError("--register", None, f"must be one of {', '.join(REGISTER_CHOICES)}, got {kind!r}")
    (f_mod, f_img), (m_mod, m_img, m_grid) = fixed, moving
    if given is not None or kind == "none":
        transform, source = given if given is not None else (sitk.Euler3DTransform(), "none")
        region = quality_region(f_img, grid, brain, "planning scan")
        quality = registration_quality(f_img, grid, m_img, m_grid, transform, region)
        used = "identity" if source == "none" else transform.GetName()
        return SessionRegistration(timepoint, day, source, used, f_mod, m_mod, quality, transform)
    reg = register(
        f_img, grid, m_img, m_grid, kind, brain, fixed_name=f"planning scan ({f_mod})", moving_name=moving_name
    )
    return SessionRegistration(timepoint, day, "estimated", kind, f_mod, m_mod, reg.quality, reg.transform)
