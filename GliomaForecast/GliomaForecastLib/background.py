"""Run a compute callable off the GUI thread and poll it: progress, Cancel, result or exception. No Qt here.

The panel starts a :class:`BackgroundTask` on a pure compute part (:mod:`GliomaForecastLib.compute`, through a
:class:`GliomaForecastLib.logic.Job`) and polls it from a timer on the main thread; the MRML nodes are built
there once :meth:`BackgroundTask.poll` says it is done::

    task = BackgroundTask(job.compute).start()
    ...                                  # every 100 ms, on the main thread:
    state = task.poll()                  # (done, (fraction, message), result or exception)
    if state.done and not isinstance(state.outcome, BaseException):
        nodes = job.build(state.outcome)
"""

from __future__ import annotations

import threading
from typing import Any, Callable, NamedTuple, Optional, Tuple

from .progress import Cancelled, ProgressCallback

Compute = Callable[[Optional[ProgressCallback], Optional[threading.Event]], Any]


class TaskState(NamedTuple):
    """A snapshot of a task: ``done``; the latest ``progress`` (fraction in [0, 1], message); the ``outcome``:
    None while running, then the compute's result, or the exception it raised (:class:`Cancelled` when the
    task was cancelled)."""

    done: bool
    progress: Tuple[float, str]
    outcome: Any


class BackgroundTask:
    """Runs ``compute(progress, cancel)`` once in a daemon ``threading.Thread``.

    The progress callback given to ``compute`` only records the latest (fraction, message) under a lock, so it
    is safe from the worker thread; :attr:`cancel` is the ``threading.Event`` that ``compute`` checks between
    steps. A result that arrives after :meth:`request_cancel` is discarded: the outcome is then
    :class:`Cancelled`, so a cancelled task never hands back outputs to build."""

    def __init__(self, compute: Compute, name: str = "GliomaForecast compute") -> None:
        self._compute = compute
        self.cancel = threading.Event()
        self._lock = threading.Lock()
        self._progress: Tuple[float, str] = (0.0, "Starting")
        self._outcome: Any = None
        self._done = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "BackgroundTask":
        """Start the worker thread; returns the task."""
        self._thread.start()
        return self

    def request_cancel(self) -> None:
        """Ask the compute to stop at its next step (thread-safe; the task still ends through :meth:`poll`)."""
        self.cancel.set()

    def poll(self) -> TaskState:
        """The task's state now (never blocks on the compute)."""
        with self._lock:
            return TaskState(self._done, self._progress, self._outcome)

    def _report(self, fraction: float, message: str) -> None:
        with self._lock:
            self._progress = (float(fraction), str(message))

    def _run(self) -> None:
        try:
            outcome = self._compute(self._report, self.cancel)
            if self.cancel.is_set():
                raise Cancelled("cancelled: the result was discarded")
        except Exception as exc:  # delivered to poll(), with its traceback in exc.__traceback__
            outcome = exc
        with self._lock:
            self._outcome = outcome
            self._done = True
