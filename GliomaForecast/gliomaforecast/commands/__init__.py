"""CLI sub-commands: each module defines NAME, HELP, add_arguments(parser) and run(args) -> exit code."""

COMMANDS = [
    "sdf",
    "ctv",
    "growth",
    "forecast",
    "demo",
    "evaluate",
    "models",
]
