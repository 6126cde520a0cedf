"""Forecasters behind one protocol (:mod:`.base`) and one registry (:mod:`.registry`).

Importing this package loads only the registry (no numpy, no model), so the Slicer module can list the
forecasters before the core's dependencies are installed; the interface lives in :mod:`.base`.
"""

from .registry import (
    DEFAULT_FORECASTER,
    FORECASTER_NAMES,
    REGISTRY,
    ForecasterEntry,
    dose_note,
    dose_readers,
    entry,
    get_forecaster,
    tooltip,
)

__all__ = [
    "DEFAULT_FORECASTER",
    "FORECASTER_NAMES",
    "REGISTRY",
    "ForecasterEntry",
    "dose_note",
    "dose_readers",
    "entry",
    "get_forecaster",
    "tooltip",
]
