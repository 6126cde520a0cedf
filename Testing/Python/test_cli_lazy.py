"""`gliomaforecast --help` and `--version` import no sub-command (so not numpy, scipy, matplotlib...): each
sub-command module is imported only when it is the one run. Speed is measured in benchmarks/bench_cli_help.py,
not asserted here."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from gliomaforecast.cli import build_parser, command_summary, main
from conftest import SAMPLE_CASE
from gliomaforecast.commands import COMMANDS

HEAVY = ("numpy", "scipy", "matplotlib", "SimpleITK", "nibabel", "lmfit", "onnxruntime", "tqdm")
_PROBE = """
import sys
from gliomaforecast.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print("HEAVY:" + ",".join(m for m in {heavy!r} if m in sys.modules))
"""


def _heavy_after(argv: list[str]) -> tuple[list[str], str]:
    run = subprocess.run([sys.executable, "-c", _PROBE.format(argv=argv, heavy=HEAVY)], capture_output=True,
                         text=True, check=True)
    line = next(line for line in run.stdout.splitlines() if line.startswith("HEAVY:"))
    return [m for m in line[len("HEAVY:"):].split(",") if m], run.stdout


@pytest.mark.parametrize("argv", [["--help"], ["--version"], []])
def test_help_and_version_import_no_numerics(argv: list[str]) -> None:
    heavy, out = _heavy_after(argv)
    assert heavy == []
    if argv == ["--help"]:
        for name in ("sdf", "ctv", "growth", "forecast", "demo", "evaluate", "leaderboard", "models"):
            assert f"    {name}" in out


def test_a_sub_command_help_still_lists_its_flags(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["forecast", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--day" in out and "--forecaster" in out and "--samples" in out


def test_summaries_read_from_source_equal_the_modules() -> None:
    for name in COMMANDS:
        module = importlib.import_module(f"gliomaforecast.commands.{name}")
        assert command_summary("gliomaforecast", name) == (module.NAME, module.HELP)


def test_the_lazy_parser_loads_only_the_chosen_command() -> None:
    parser = build_parser("gliomaforecast", "", "gliomaforecast", COMMANDS, argv=["sdf", "--mask", "m", "--out", "o"])
    args = parser.parse_args(["sdf", "--mask", "m", "--out", "o"])
    assert args.command == "sdf" and callable(args._run) and "--beta" in args._flags
    with pytest.raises(SystemExit) as exit_:
        main(["no-such-command"])
    assert exit_.value.code == 2


def test_a_persistence_forecast_imports_neither_lmfit_nor_scipy_stats(tmp_path) -> None:
    """The whole forecast command (growth fit, report, volumes) runs without lmfit (its import costs more than the
    fit it would run: issue 38) or scipy.stats (only a cohort comparison needs it); torch never enters the core."""
    argv = ["forecast", str(SAMPLE_CASE), "--day", "400", "--forecaster", "persistence", "--out", str(tmp_path / "o")]
    probe = _PROBE.format(argv=argv, heavy=("lmfit", "scipy.stats", "torch", "matplotlib"))
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    line = next(line for line in run.stdout.splitlines() if line.startswith("HEAVY:"))
    assert line == "HEAVY:matplotlib"  # the report's figures: the probe sees the run's imports
    assert (tmp_path / "o" / "report.html").is_file()
