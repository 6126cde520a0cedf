"""`gliomaforecast --help` and `--version` (sub-commands imported only when run) against, in the same run, the
interpreter's own start-up (`python -c pass`, the floor) and the eager parser that imports every sub-command
(what `--help` cost before). Each is a fresh process, timed from outside (median of REPEATS).

Run: .venv/bin/python benchmarks/bench_cli_help.py  -> prints a table, writes benchmarks/results/cli_help.json
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from _measure import write_result

REPEATS = 7
EAGER = ("from gliomaforecast.cli import build_parser; from gliomaforecast.commands import COMMANDS; "
         "build_parser('gliomaforecast', '', 'gliomaforecast', COMMANDS).parse_args(['--help'])")
CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "gliomaforecast --help": [sys.executable, "-m", "gliomaforecast", "--help"],
    "gliomaforecast --version": [sys.executable, "-m", "gliomaforecast", "--version"],
    "eager parser --help (reference)": [sys.executable, "-c", EAGER],
}


def wall(cmd: list[str]) -> float:
    """Median wall time (s) of ``cmd`` in a fresh process, after one untimed warm-up run."""
    subprocess.run(cmd, capture_output=True, check=False)
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    seconds = {name: wall(cmd) for name, cmd in CASES.items()}
    eager = seconds["eager parser --help (reference)"]
    payload = {"repeats": REPEATS, "seconds": seconds,
               "ratio_help_vs_eager": seconds["gliomaforecast --help"] / eager,
               "ratio_help_vs_python_start": seconds["gliomaforecast --help"] / seconds["python -c pass"]}
    for name, s in seconds.items():
        print(f"{name:34s} {s * 1000:8.1f} ms")
    print(f"--help / eager: {payload['ratio_help_vs_eager']:.3f}; --help / python start: "
          f"{payload['ratio_help_vs_python_start']:.2f}")
    print(write_result("cli_help", payload))


if __name__ == "__main__":
    main()
