"""Write the leaderboard of an evaluation (markdown tables per gap bin and recurrence definition) from its
summary.json: printed, or put between ``<!-- leaderboard:start NAME -->`` and ``<!-- leaderboard:end NAME -->``
of a markdown file (atomically)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InputError
from ..io import write_text_atomic
from ..leaderboard import leaderboard_markdown, replace_block

NAME = "leaderboard"
HELP = "markdown leaderboard from an evaluation's summary.json (optionally into a docs page)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("summary", type=Path, help="summary.json written by `gliomaforecast evaluate`")
    p.add_argument("--update", type=Path, default=None, help="markdown file whose leaderboard block is replaced")
    p.add_argument("--name", default="", help="which leaderboard block of the file (marker suffix)")


def run(args: argparse.Namespace) -> int:
    try:
        summary = json.loads(args.summary.read_text())
        table = leaderboard_markdown(summary)
    except OSError as exc:
        raise InputError(args.summary, None, f"cannot read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(args.summary, None, f"not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError(args.summary, None, "not an evaluation summary (JSON nested too deeply)") from None
    except (KeyError, TypeError) as exc:
        raise InputError(args.summary, str(exc).strip("'"), "missing or malformed in the evaluation summary") from None
    if args.update is None:
        print(table, end="")
        return 0
    try:
        text = args.update.read_text()
    except OSError as exc:
        raise InputError(args.update, None, f"cannot read ({exc.strerror})") from None
    try:
        updated = replace_block(text, table, args.name)
    except ValueError as exc:
        raise InputError(args.update, None, str(exc)) from None
    write_text_atomic(args.update, updated)
    print(f"updated the leaderboard{' ' + args.name if args.name else ''} in {args.update}")
    return 0
