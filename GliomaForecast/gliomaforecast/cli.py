"""The ``gliomaforecast`` command. Sub-commands live in ``gliomaforecast.commands`` (one file each).

Bad input is reported as one line on stderr with exit code 2 and no traceback; a setting that the core
names by parameter (``samples``) is reported with the command's flag (``--samples``). ``build_parser`` and
``run_commands`` also serve the training package's ``gliomaforecast-train`` command.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from . import __version__
from .errors import InputError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def command_summary(package: str, module_name: str) -> tuple[str, str]:
    """(NAME, HELP) of the sub-command module ``package.commands.<module_name>``, read from its source without
    importing it (its imports, numpy and the rest, cost seconds); a module whose NAME or HELP is not a plain
    string is imported instead."""
    spec = importlib.util.find_spec(f"{package}.commands.{module_name}")
    found: dict[str, str] = {}
    if spec is not None and spec.origin and spec.origin.endswith(".py"):
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in ("NAME", "HELP")
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                found[node.targets[0].id] = node.value.value
    if len(found) < 2:
        module = importlib.import_module(f"{package}.commands.{module_name}")
        return module.NAME, module.HELP
    return found["NAME"], found["HELP"]


def chosen_command(argv: Sequence[str]) -> str | None:
    """The sub-command named on a command line: its first word that is not an option (the top-level parser
    has only --help and --version); None when there is none."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(
    prog: str, description: str, package: str, commands: Sequence[str], argv: Sequence[str] | None = None
) -> argparse.ArgumentParser:
    """An argument parser with one sub-command per module ``package.commands.<name>`` (each defines NAME,
    HELP, add_arguments(parser) and run(args) -> exit code).

    With ``argv`` (the command line to be parsed) only the sub-command it names is imported and given its
    flags; the others are listed by NAME and HELP read from their source, so ``--help`` and ``--version`` do
    not import numpy and the rest. Without it every sub-command is imported."""
    parser = _Parser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    chosen = None if argv is None else chosen_command(argv)
    for name in commands:
        if argv is not None:
            command, summary = command_summary(package, name)
            if command != chosen:
                sub.add_parser(command, help=summary)
                continue
        module = importlib.import_module(f"{package}.commands.{name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _flags=frozenset(p._option_string_actions))
    return parser


def as_flag(exc: InputError, flags: frozenset[str]) -> InputError:
    """The core names bad settings by parameter (``samples``, ``day``); on the command line the user typed a
    flag: an InputError with no file whose field is a flag of the command (``--samples``) is reworded with it."""
    flag = f"--{(exc.field or '').replace('_', '-')}"
    if exc.source is None and exc.field and flag in flags:
        return InputError(flag, None, exc.message)
    return exc


def _terminated(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt  # SIGTERM like Ctrl-C: the atomic writers remove their temporaries on the way out


def run_commands(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run the chosen sub-command; an InputError becomes one stderr line and exit 2; SIGTERM, like
    SIGINT, stops it with exit 130 after every temporary file and folder has been removed."""
    args = parser.parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()  # only there can a handler be set
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        return int(args._run(args) or 0)
    except InputError as exc:
        print(f"{parser.prog} {args.command}: error: {as_flag(exc, args._flags)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog} {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    from .commands import COMMANDS

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(
        "gliomaforecast", "Glioma growth forecasting and radiotherapy targets.", __package__, COMMANDS, argv=argv
    )
    return run_commands(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
