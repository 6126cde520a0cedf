"""The command factory of the training package.

* :func:`module_main`: the ``python -m`` entry of a training module: parse the arguments, run, and report bad
  input as one line. Every module run as ``python -m gliomaforecast_training.<family>.<module>`` uses it, so a
  user's mistake (an ``InputError`` naming the file and field) is one line on stderr with exit code 2, never a
  traceback.
* :class:`Action` and :func:`family_command`: a family's ``gliomaforecast-train`` sub-command (``prepare``,
  ``fit``, ``export``, ...): one sub-parser per action, each action's flags and run function imported from the
  family's modules only when that action is chosen or described.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gliomaforecast.errors import InputError


def module_main(prog: str, description: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                run: Callable[[argparse.Namespace], Any], argv: Sequence[str] | None = None) -> int:
    """Build the parser (``add_arguments``), parse ``argv`` and ``run`` it; 0 on success, 2 with ``prog: error:
    ...`` on stderr for an ``InputError``. ``description``: the module docstring (its first line is shown)."""
    parser = argparse.ArgumentParser(prog=prog, description=description.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run(args)
    except InputError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


@dataclass(frozen=True)
class Action:
    """One action of a family command: its ``name`` on the command line, its ``help`` (None: none listed), and
    its flags and its run function: ``"module:function"`` in the family package (imported when used) or the
    function itself. ``describe``: show the docstring of the flags' module as the action's description."""

    name: str
    help: str | None
    arguments: str | Callable[[argparse.ArgumentParser], None]
    run: str | Callable[[argparse.Namespace], Any]
    describe: bool = False


def _resolve(package: str, target: str | Callable) -> tuple[Any, Callable]:
    """(module, function) of an action's ``target``."""
    if callable(target):
        return sys.modules[target.__module__], target
    module_name, function = target.split(":")
    module = importlib.import_module(f"{package}.{module_name}")
    return module, getattr(module, function)


def add_actions(p: argparse.ArgumentParser, package: str, actions: Sequence[Action], dest: str = "action") -> None:
    """One required sub-parser per action (the parser class of ``p``), given that action's flags."""
    sub = p.add_subparsers(dest=dest, required=True, parser_class=type(p))
    for action in actions:
        module, add_arguments = _resolve(package, action.arguments)
        kwargs = {} if action.help is None else {"help": action.help}
        if action.describe:
            kwargs["description"] = module.__doc__
        add_arguments(sub.add_parser(action.name, **kwargs))


def run_action(args: argparse.Namespace, package: str, actions: Sequence[Action], dest: str = "action") -> Any:
    """Run the action named by ``args.<dest>``; returns what it returns."""
    chosen = getattr(args, dest)
    action = next(a for a in actions if a.name == chosen)
    return _resolve(package, action.run)[1](args)


def family_command(package: str, actions: Sequence[Action], dest: str = "action") -> tuple[
        Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]:
    """``(add_arguments, run)`` of a ``gliomaforecast-train`` sub-command whose actions are ``actions`` (modules of
    ``package``); ``run`` returns exit code 0 (bad input is an ``InputError``, reported by the CLI)."""

    def add_arguments(p: argparse.ArgumentParser) -> None:
        add_actions(p, package, actions, dest)

    def run(args: argparse.Namespace) -> int:
        run_action(args, package, actions, dest)
        return 0

    return add_arguments, run
