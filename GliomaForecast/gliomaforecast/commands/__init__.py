"""CLI sub-commands: each module defines NAME, HELP, add_arguments(parser) and run(args) -> exit code."""

import argparse
from pathlib import Path

COMMANDS = [
    "sdf",
    "ctv",
    "growth",
    "forecast",
    "demo",
    "evaluate",
    "leaderboard",
    "models",
]


def add_case_arguments(p: argparse.ArgumentParser) -> None:
    """The case manifest (positional ``case``) and ``--resample``, shared by the commands that load a case."""
    p.add_argument("case", type=Path, help="case manifest (case.json)")
    p.add_argument("--resample", action="store_true",
                   help="resample volumes whose grid differs onto the first FLAIR's grid instead of refusing them")
