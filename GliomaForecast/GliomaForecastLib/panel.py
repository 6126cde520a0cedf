"""What the panel says and proposes, without Qt and without numerics in the widget: the default forecast day, the
dose selector's tooltip, the control of each forecaster setting, the choices of "Prepare" and the line that sums up
its result, and the one-line wording of errors.

Errors: the core names a bad setting by its parameter (``day``, ``samples``) and a file by its path; the panel has
neither flags nor files (its inputs are MRML nodes, held in memory as ``<memory>/...`` cases), so
:func:`panelMessage` names the panel's control instead and drops in-memory and temporary paths. Days in days.
"""

from __future__ import annotations

import re
import tempfile
from typing import Iterable, Optional

REGISTER_CHOICES = ("rigid", "affine", "none")
"""Prepare's registration kinds (``gliomaforecast.preparation.sessions.REGISTER_CHOICES``, spelled out here so the
module loads before the core's dependencies are installed; a test keeps the two equal)."""
REGISTER_DEFAULT = "rigid"
TEMPLATE_CHOICES = ("sri24", "mni152")
"""Prepare's templates of the derived brain mask and tissue maps (``gliomaforecast.preparation.templates.TEMPLATES``;
a test keeps the two equal)."""
TEMPLATE_DEFAULT = "sri24"

DEFAULT_HORIZON_DAYS = 90.0
"""The forecast day the panel proposes: this many days after the last selected scan."""

CONTROLS = {
    "day": "Forecast day", "samples": "Samples", "seed": "Seed", "forecaster": "Forecaster", "device": "Device",
    "margin_mm": "Margin", "n_bootstrap": "Bootstrap refits", "rt_start_day": "RT start", "beta": "beta",
    "mu": "mu", "brain_mask": "Brain mask", "barrier": "Barrier", "dose": "RT dose", "noise": "Bootstrap noise",
    "plan": "Standard plan",
    "register": "Registration", "template": "Template",
}
"""Core parameter or manifest field -> the panel control that sets it."""

_FIELD_IN_CASE = re.compile(r"^timepoints\[(\d+)\]\.(\w+)")
_MEMORY_PATH = re.compile(r"\s*(?:\bof\s+|\bin\s+)?<memory>.*?(?=: |; |, |\)|$)")
_FLAG = re.compile(r"--([a-z][a-z-]*)")


def defaultForecastDay(days: Iterable[Optional[float]]) -> Optional[float]:
    """The last scan day plus :data:`DEFAULT_HORIZON_DAYS`; None when no scan has a day."""
    known = [float(d) for d in days if d is not None]
    return max(known) + DEFAULT_HORIZON_DAYS if known else None


def doseTooltip() -> str:
    """The RT dose selector's tooltip: which registered forecasters read the dose (the registry's sentence)."""
    from gliomaforecast.forecasters import dose_note

    return "Optional planned dose (Gy), recorded with the forecast. " + dose_note()


def settingComboBox(name: str) -> str:
    """The .ui combo box of the forecaster setting ``name`` (``gliomaforecast.forecasters.registry.Setting``), bound to
    the parameter node field of the same name: ``<name>ComboBox``; the widget fills its tooltip from the setting and
    enables it for the forecasters that take it."""
    return f"{name}ComboBox"


def _control(field: str) -> str:
    found = _FIELD_IN_CASE.match(field)
    if found:
        return f"scan {int(found.group(1)) + 1} ({found.group(2).replace('_', ' ')})"
    return CONTROLS.get(field, field.replace("_", " "))


def _scrub(text: str) -> str:
    """``text`` without in-memory case paths, temporary paths and command-line flags (named as controls)."""
    text = _MEMORY_PATH.sub("", text)
    text = re.sub(re.escape(tempfile.gettempdir()) + r"/[^\s:;,)]*", "a temporary file", text)
    return _FLAG.sub(lambda m: f"the {_control(m.group(1).replace('-', '_'))} setting", text).strip()


def panelMessage(exc: BaseException) -> str:
    """One line for the panel: an InputError as ``<control>: <message>`` (its file dropped when it is an in-memory
    or temporary one, else kept by name), any other error as its text; never a flag or a temporary path."""
    field, message, source = getattr(exc, "field", None), getattr(exc, "message", None), getattr(exc, "source", None)
    if message is None:
        return _scrub(" ".join(str(exc).split()))
    parts = []
    if source and not source.startswith("<memory>") and not source.startswith(tempfile.gettempdir()):
        parts.append(_control(source[2:].replace("-", "_")) if source.startswith("--") else source.split("/")[-1])
    if field:
        parts.append(_control(field))
    parts.append(_scrub(message))
    return ": ".join(p for p in parts if p)


def preparationSummary(records: Iterable[dict], provenance: dict, warnings: Iterable[str]) -> str:
    """One line on a finished Prepare: the warnings first (poor registrations, their quality stated), then each
    later scan's registration (day, how, quality -1..1) and where the brain mask and tissue maps came from."""
    parts = list(warnings)
    for r in records:
        parts.append(f"day {float(r['day']):g}: {r['kind']} ({r['source']}) {r['moving']} onto {r['fixed']}, "
                     f"quality {float(r['quality']):.2f}")
    brain, tissue = provenance.get("brain_mask", {}), provenance.get("tissue", {})
    if brain.get("source") == "derived":
        parts.append(f"brain mask derived ({brain.get('template')} template, quality {float(brain['quality']):.2f})")
    if tissue.get("source") == "derived":
        parts.append(f"{', '.join(k.upper() for k in tissue.get('derived', []))} derived ({tissue.get('template')})")
    return "; ".join(parts)
