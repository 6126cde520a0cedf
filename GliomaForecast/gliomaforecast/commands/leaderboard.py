"""Write the leaderboard of an evaluation (markdown tables per gap bin and recurrence definition) from its
summary.json: printed, or put between ``<!-- leaderboard:start NAME -->`` and ``<!-- leaderboard:end NAME -->``
of a markdown file (atomically)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InputError
from ..evaluation.leaderboard import leaderboard_markdown, replace_block, timing_markdown
from ..io.images import write_text_atomic

NAME = "leaderboard"
HELP = "markdown leaderboard from an evaluation's summary.json (optionally into a docs page)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("summary", type=Path, help="summary.json written by `gliomaforecast evaluate`")
    p.add_argument("--update", type=Path, default=None, help="markdown file whose leaderboard block is replaced")
    p.add_argument("--name", default="", help="which leaderboard block of the file (marker suffix)")
    p.add_argument(
        "--timings",
        type=Path,
        default=None,
        help="the run's timings.json: adds the time per forecast, per patient and of the whole run",
    )


def _render(path: Path, render, what: str) -> str:
    """``render(json of path)``; unreadable, invalid or malformed files are InputErrors naming the file (and field)."""
    try:
        return render(json.loads(path.read_text()))
    except OSError as exc:
        raise InputError(path, None, f"cannot read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, None, f"not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError(path, None, f"not an evaluation {what} (JSON nested too deeply)") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(path, str(exc).strip("'"), f"missing or malformed in the evaluation {what}") from None


def run(args: argparse.Namespace) -> int:
    table = _render(args.summary, leaderboard_markdown, "summary")
    if args.timings is not None:
        table += "\nTime (" + args.timings.name + "):\n\n" + _render(args.timings, timing_markdown, "timings")
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
