"""The one registry of forecasters. Every list of forecaster names (CLI choices, ``evaluate`` defaults, the
Slicer parameter node's choices, the panel's tooltip, the docs) is derived from :data:`REGISTRY`.

Adding a forecaster: write its module in this package (a class with ``name`` and ``predict``) and add one
:class:`ForecasterEntry` line below. Modules are imported only when their forecaster is asked for.

A forecaster's per-forecast options are declared once here, as :class:`Setting` values in its entry's ``settings``;
the ``gliomaforecast forecast`` flags, the Slicer parameter node's fields and panel controls, and the forecaster's own
check of a value all read them from there (:func:`distinct_settings`, :func:`setting_help`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:
    from .base import Forecaster


@dataclass(frozen=True)
class Setting:
    """A per-forecast option of a forecaster, declared once: its ``name`` (the keyword its factory takes, the
    ``gliomaforecast forecast --<name>`` flag and the Slicer parameter node's field), the ``choices`` a user may
    pick, the forecaster's ``default`` (one of them) and a one-line ``help`` (what a choice does)."""

    name: str
    choices: tuple[str, ...]
    default: str
    help: str


OUTCOME = Setting(
    "outcome",
    ("unknown", "responder", "progressor", "both"),
    "unknown",
    "the outcome class the forecast is guided to (classifier-free guidance); unknown samples the unconditional "
    "model; both: the unconditional forecast (which drives the targets) plus the responder and progressor "
    "forecasts side by side",
)
"""The latent-diffusion forecaster's outcome class (:mod:`.latent.diffusion`)."""


@dataclass(frozen=True)
class ForecasterEntry:
    """A registered forecaster: its ``name``; ``factory`` as ``"module:attribute"`` of this package, called
    with ``options``; a one-line ``summary`` for menus and docs; ``min_scans``, the fewest prior scans it
    accepts; ``uses_dose``, whether its prediction reads the case's RT dose (Gy) (False: the dose is
    recorded but changes nothing); ``validated_days``, the longest horizon (days after the last scan) at which
    it was evaluated (docs/evaluation.md), beyond which a forecast carries a warning (None: no horizon is
    claimed, e.g. the persistence baseline, or the target day does not enter); ``settings``, the options a user may
    set per forecast (:class:`Setting`, e.g. :data:`OUTCOME`: ``gliomaforecast forecast --outcome``);
    ``input_reference``, the models folder's file describing its training scans, against which a case's inputs are
    scored (:mod:`gliomaforecast.input_shift`; None: no learned model reads images, no guard)."""

    name: str
    factory: str
    summary: str
    options: dict[str, Any] = field(default_factory=dict)
    min_scans: int = 2
    uses_dose: bool = False
    validated_days: float | None = None
    settings: tuple[Setting, ...] = ()
    input_reference: str | None = None

    @property
    def setting_names(self) -> tuple[str, ...]:
        """The names of the entry's ``settings``."""
        return tuple(s.name for s in self.settings)

    def create(self, **settings: Any) -> Forecaster:
        """A new forecaster instance (imports its module); ``settings`` override ``options`` and must be among the
        entry's ``settings`` (an InputError naming the setting otherwise)."""
        for key in settings:
            if key not in self.setting_names:
                users = takers(key)
                raise InputError(
                    None,
                    key,
                    f"the {self.name} forecaster has no '{key}' setting"
                    + (f"; it applies to {', '.join(users)}" if users else ""),
                )
        module_name, attribute = self.factory.split(":")
        module = importlib.import_module(f"{__package__}.{module_name}")
        return getattr(module, attribute)(**{**self.options, **settings})


REGISTRY: tuple[ForecasterEntry, ...] = (
    ForecasterEntry(
        "evolution-field",
        "evolution:EvolutionForecaster",
        "last GTV carried forward by the learned tumor-evolution field",
        {"volume": "field"},
        validated_days=60.0,
    ),
    ForecasterEntry(
        "evolution",
        "evolution:EvolutionForecaster",
        "the same, volume set by the growth model",
        {"volume": "growth"},
        validated_days=60.0,
    ),
    ForecasterEntry("persistence", "persistence:PersistenceForecaster", "last scan unchanged (baseline)", min_scans=1),
    ForecasterEntry(
        "fisher-kpp",
        "fisher_kpp.forecaster:FisherKppForecaster",
        "last GTV grown by reaction-diffusion fitted to prior scans",
    ),
    ForecasterEntry(
        "fisher-kpp-tail",
        "fisher_kpp.tail:FisherKppTailForecaster",
        "Fisher-KPP cell density beyond the visible tumour along white and grey matter, from the last (planning) scan",
        min_scans=1,
    ),
    ForecasterEntry(
        "recurrence-unet",
        "recurrence.unet:RecurrenceUNetForecaster",
        "post-RT recurrence map of a 3D U-Net ensemble from the planning scan (last scan)",
        min_scans=1,
        input_reference="input_reference_r3.json",
    ),
    ForecasterEntry(
        "multitask-diffusion",
        "multitask.diffusion:MultiTaskDiffusionForecaster",
        "probability map and future FLAIR of a multi-task diffusion network from the last two scans "
        "(default; needs T1CE)",
        uses_dose=True,
        validated_days=365.0,
        input_reference="input_reference_r2.json",
    ),
    ForecasterEntry(
        "guided-ddim",
        "guided.ddim:GuidedDDIMForecaster",
        "FLAIR slices denoised from the last scan towards the growth model's burden (growth-guided DDIM), "
        "growth probability map",
        validated_days=365.0,
        input_reference="input_reference_r2.json",
    ),
    ForecasterEntry(
        "latent-diffusion",
        "latent.diffusion:LatentDiffusionForecaster",
        "post-treatment T1CE, FLAIR and GTV probability from ONE scan by latent diffusion, outcome class by "
        "classifier-free guidance",
        min_scans=1,
        settings=(OUTCOME,),
        input_reference="input_reference_r2.json",
    ),
)
DEFAULT_FORECASTER = "multitask-diffusion"  # best on the long-horizon benchmark (docs/evaluation.md)
FORECASTER_NAMES: tuple[str, ...] = tuple(e.name for e in REGISTRY)


def entry(name: str) -> ForecasterEntry:
    """The registry entry ``name``; an unknown name is an InputError (field ``forecaster``) listing the known ones."""
    for item in REGISTRY:
        if item.name == name:
            return item
    raise InputError(None, "forecaster", f"unknown forecaster '{name}'; choose from {', '.join(FORECASTER_NAMES)}")


def get_forecaster(name: str) -> Forecaster:
    """A new instance of the registered forecaster ``name``."""
    return entry(name).create()


def dose_readers() -> tuple[str, ...]:
    """The registered forecasters whose prediction reads the RT dose (``uses_dose``)."""
    return tuple(e.name for e in REGISTRY if e.uses_dose)


def dose_note() -> str:
    """One sentence saying which forecasters read the RT dose, for the CLI help, the panel and forecast.json."""
    readers = dose_readers()
    if not readers:
        return "No registered forecaster reads the RT dose yet: it is recorded, and changes no output."
    return (
        f"The RT dose is read by {', '.join(readers)} only; every other forecaster records it and its "
        "outputs do not change with it."
    )


def distinct_settings() -> tuple[Setting, ...]:
    """Every setting of the registered forecasters once, in registry order: one ``gliomaforecast forecast`` flag and
    one Slicer parameter node field each."""
    return tuple(dict.fromkeys(s for e in REGISTRY for s in e.settings))


def takers(name: str) -> tuple[str, ...]:
    """The registered forecasters that take the setting ``name``."""
    return tuple(e.name for e in REGISTRY if name in e.setting_names)


def setting_help(setting: Setting) -> str:
    """One line for the CLI flag's help and the panel control's tooltip: who takes ``setting``, what it does and
    its default."""
    return f"{', '.join(takers(setting.name))} only: {setting.help} (default {setting.default})"


def tooltip() -> str:
    """One line describing every forecaster, as the panel's Forecaster tooltip shows it."""
    return "; ".join(f"{e.name}: {e.summary}" for e in REGISTRY) + "."
