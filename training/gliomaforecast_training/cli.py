"""The ``gliomaforecast-train`` command. Sub-commands live in ``gliomaforecast_training.commands`` (one file each).

Bad input is reported as one line on stderr with exit code 2 and no traceback (the core's CLI machinery).
"""

from __future__ import annotations

import sys
from typing import Sequence

from gliomaforecast.cli import build_parser, run_commands

from .commands import COMMANDS


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser("gliomaforecast-train", "GliomaForecast training: virtual cohort, networks, export.",
                          __package__, COMMANDS, argv=argv)
    return run_commands(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
