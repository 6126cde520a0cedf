"""Progress reporting and cancellation for long console/panel work (growth bootstrap, forecasts).

The logic reports ``progress(fraction, message)`` with fraction in [0, 1] and checks ``cancel`` between steps.
The panel runs the compute part in a worker thread (:mod:`GliomaForecastLib.background`), whose callback only
records the latest report, and its Cancel button sets the ``threading.Event``; from the console both may be
omitted.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

ProgressCallback = Callable[[float, str], None]


class Cancelled(RuntimeError):
    """Raised when the user cancelled; no output node is left in the scene."""


class Steps:
    """Reports ``progress`` and raises :class:`Cancelled` when ``cancel`` is set, at every :meth:`step`."""

    def __init__(self, progress: Optional[ProgressCallback] = None,
                 cancel: Optional[threading.Event] = None) -> None:
        self._progress = progress
        self._cancel = cancel

    def step(self, fraction: float, message: str) -> None:
        """Check for cancellation, then report ``fraction`` (0..1) done with ``message``."""
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled(f"cancelled before: {message}")
        self._report(fraction, message)

    def done(self, message: str = "Done") -> None:
        """Report completion (no cancellation check: the outputs exist by then)."""
        self._report(1.0, message)

    def _report(self, fraction: float, message: str) -> None:
        if self._progress is not None:
            self._progress(min(max(float(fraction), 0.0), 1.0), message)
