"""The ``python -m`` entry of a training module: parse the arguments, run, and report bad input as one line.

Every module run as ``python -m gliomaforecast_training.<module>`` uses :func:`module_main`, so a user's mistake
(an ``InputError`` naming the file and field) is one line on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Sequence

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
