"""Shared benchmark helpers: median wall time and peak resident memory of a call (Linux /proc); a scan with its
anatomy destroyed (the registration benchmarks' refusal cases)."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _rss_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _peak_of(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Peak extra memory (MiB) of one call above the resident set before it, and its result."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    base = _rss_kib("VmRSS")
    out = fn()
    return (_rss_kib("VmHWM") - base) / 1024.0, out


def measure(fn: Callable[[], Any], repeats: int = 5) -> tuple[float, float, Any]:
    """(median seconds over ``repeats`` timed calls, peak extra memory in MiB, last result).

    The peak is the kernel's high-water mark (VmHWM) during the first call, above the resident set before
    it, so C/C++ allocations (SimpleITK, scipy) count too. That first call also absorbs first-call costs
    (thread pools, page faults) and is not timed."""
    peak, out = _peak_of(fn)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), peak, out


def console_script(name: str) -> str:
    """This environment's ``name`` command (beside its python), else ``name`` on the PATH."""
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else name


def timed_run(cmd: list[str]) -> float:
    """Wall seconds of the whole process ``cmd``; a failure stops the benchmark with its stderr's tail."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return seconds


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    payload = {"machine": f"{platform.machine()}, {platform.python_version()}", **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def block_shuffled(image: np.ndarray, block: int, rng: np.random.Generator) -> np.ndarray:
    """``image`` cut into cubes of ``block`` voxels put back in a random order: the same intensities, no anatomy."""
    z, y, x = (s // block for s in image.shape)
    cubes = image[: z * block, : y * block, : x * block].reshape(z, block, y, block, x, block)
    cubes = cubes.transpose(0, 2, 4, 1, 3, 5).reshape(-1, block, block, block)[rng.permutation(z * y * x)]
    out = image.copy()
    out[: z * block, : y * block, : x * block] = (
        cubes.reshape(z, y, x, block, block, block).transpose(0, 3, 1, 4, 2, 5).reshape(z * block, y * block, x * block)
    )
    return out
