"""Write the leaderboard of an evaluation (markdown tables per gap bin and recurrence definition) from its
summary.json: printed, or put between ``<!-- leaderboard:start NAME -->`` and ``<!-- leaderboard:end NAME -->``
of a markdown file (atomically)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..errors import InputError, parse_json
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
        return render(parse_json(path.read_text(encoding="utf-8"), path))
    except InputError as exc:  # a too-long integer (names the file) or a string where a number belongs (does not)
        raise InputError(exc.source or path, exc.field, exc.message) from None
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
    target = Path(os.path.realpath(args.update))  # a symbolic link: its target is updated, the link kept
    updated = updated_text(args.update, target, table, args.name)
    write_text_atomic(target, updated)
    shown = args.update if target == Path(os.path.abspath(args.update)) else f"{args.update} (link to {target})"
    print(f"updated the leaderboard{' ' + args.name if args.name else ''} in {shown}")
    return 0


def updated_text(path: Path, target: Path, table: str, name: str) -> str:
    """The markdown file ``path`` (read at ``target``, its real path) with its leaderboard block ``name`` replaced
    by ``table``; unreadable or non-UTF-8 files and missing markers are InputErrors naming ``path``."""
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(path, None, f"cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise InputError(
            path, None, f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); save it as UTF-8"
        ) from None
    try:
        return replace_block(text, table, name)
    except ValueError as exc:
        raise InputError(path, None, str(exc)) from None
