"""Patients as tasks on a dask.distributed cluster: the ``--scheduler`` option of ``evaluate`` and of the cohort
generators (docs/scaling.md). Optional: ``pip install "gliomaforecast[distributed]"``; dask is imported only here,
and only when a scheduler is asked for.

``--scheduler local`` (one worker process per CPU) or ``local:N`` starts a LocalCluster of N single-threaded worker
processes on this machine; any other value is the address of a running scheduler (``tcp://host:8786``). Workers
read the case files themselves: the cohort folder must be on a filesystem every worker sees (checked before any
task). Results travel back to the client, which alone writes the outputs.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import InputError

FLAG = "--scheduler"
CONNECT_TIMEOUT_S = 10.0
_INSTALL = 'needs dask.distributed: pip install "gliomaforecast[distributed]"'


def parse_scheduler(spec: str) -> tuple[str, int | None]:
    """``("local", n)`` for ``local`` (n = the CPU count) or ``local:N`` (N >= 1 workers), else ``(address, None)``.
    An empty value or a bad worker count is an InputError naming the flag."""
    spec = spec.strip()
    if not spec:
        raise InputError(FLAG, None, "is empty: give local, local:N or a scheduler address (tcp://host:8786)")
    if spec == "local":
        return "local", os.cpu_count() or 1
    if spec.startswith("local:"):
        count = spec.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise InputError(FLAG, None, f"local:N needs a whole number of workers >= 1, got {count!r}")
        return "local", int(count)
    return spec, None


def _thread_env(threads: int = 1) -> dict[str, str]:
    """The environment that holds a worker to ``threads`` cores (numpy/BLAS, ITK and onnxruntime read these)."""
    from .models import THREADS_VAR  # onnxruntime is imported with it: only when a scheduler is asked for

    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")
    return {**dict.fromkeys(names, str(threads)), THREADS_VAR: str(threads)}


def _worker_config() -> dict[str, Any]:
    """dask settings for the workers a LocalCluster starts: no ``MALLOC_TRIM_THRESHOLD_`` (dask's default sets it,
    which turns off glibc's adaptive mmap threshold, so every large array is mapped and zeroed anew: +37 % wall time
    on the benchmark evaluation, mostly system time) and no statistical profiler (a stack sample every 10 ms)."""
    return {
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
        "distributed.worker.profile.enabled": False,
    }


def _limit_threads(threads: int = 1) -> None:
    """Each worker computes on ``threads`` cores (run on the workers of a scheduler given by address; a LocalCluster's
    workers start with :func:`_thread_env`, also those its nannies restart)."""
    os.environ.update(_thread_env(threads))


@contextmanager
def open_client(spec: str) -> Iterator[Any]:
    """A dask.distributed Client for ``spec`` (:func:`parse_scheduler`), closed (with its LocalCluster) on exit.
    A missing dask or an unreachable scheduler is an InputError naming the flag (within :data:`CONNECT_TIMEOUT_S`)."""
    where, workers = parse_scheduler(spec)
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError(FLAG, None, _INSTALL) from None
    cluster = None
    try:
        if workers is not None:
            with dask.config.set(_worker_config()):
                cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    # no dashboard; its HTTP server on a free port
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                    silence_logs=logging.CRITICAL,  # a failing task or worker is its patient's skip row, not a log
                    env=_thread_env(1),
                )
            client = Client(cluster)
        else:
            client = Client(where, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, RuntimeError) as exc:
        if cluster is not None:
            cluster.close()
        what = (
            f"cannot start {workers} local workers" if workers is not None else f"cannot reach the scheduler at {where}"
        )
        raise InputError(FLAG, None, f"{what} ({type(exc).__name__}: {exc})") from None
    try:
        if cluster is None:
            client.run(_limit_threads, on_error="ignore")  # a worker that cannot run it is named by check_workers_see
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _sees(folder: str) -> bool:
    """Run on a worker: whether it sees ``folder``. A module-level function of this package, so a worker that cannot
    import the package fails here already (:func:`check_workers_see`)."""
    return os.path.isdir(folder)


def check_workers_see(client: Any, folder: Path) -> None:
    """At least one worker (waiting up to :data:`CONNECT_TIMEOUT_S` for one to join) and every worker imports the
    package and sees ``folder`` (a shared filesystem), else an InputError naming the first worker that does not."""
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    except TimeoutError:
        raise InputError(FLAG, None, f"no worker joined the scheduler within {CONNECT_TIMEOUT_S:g} s") from None
    path = str(Path(folder).resolve())
    seen = client.run(_sees, path, on_error="return")
    for worker, ok in sorted(seen.items()):
        if isinstance(ok, BaseException):
            raise InputError(
                FLAG,
                None,
                f"worker {worker} cannot run gliomaforecast ({type(ok).__name__}: {ok}): install the same version "
                "on every worker",
            )
        if not ok:
            raise InputError(folder, None, f"worker {worker} cannot read this folder: workers need a shared filesystem")


def worker_count(client: Any) -> tuple[int, int]:
    """The workers of ``client``'s scheduler and their threads (tasks run at once), now."""
    threads = client.nthreads()
    return len(threads), int(sum(threads.values()))


def as_completed_tasks(
    client: Any, function: Callable[..., Any], items: Sequence[Any], *args: Any
) -> Iterator[tuple[Any, Any, BaseException | None]]:
    """``function(item, *args)`` for every item as a task (one key per item and run, rerun elsewhere by the
    scheduler when its worker dies); yields ``(item, result, None)`` or ``(item, None, exception)`` as each finishes.
    A task's result is released once it is yielded, so a worker dying later never reruns a finished task."""
    from distributed import as_completed

    run = uuid.uuid4().hex[:12]  # two runs on one shared scheduler never share a key
    name = getattr(function, "__name__", "task")
    futures = {
        client.submit(function, item, *args, key=f"{name}-{run}-{i}", pure=False): item for i, item in enumerate(items)
    }
    for future in as_completed(futures):
        item = futures.pop(future)
        try:
            result, error = future.result(), None
        except Exception as exc:  # noqa: BLE001 - one task's failure is that item's, the caller records it
            result, error = None, exc
        future.release()
        yield item, result, error
