"""Prepare a clinic's case for the models: register every later MRI session onto the planning scan (the first
timepoint), resample it onto the planning grid (images linearly, GTVs and labels by nearest neighbour), and derive a
brain mask and tissue maps (WM, GM, CSF) where the case has none. Writes a new case folder: case.json (with a
``preparation`` record: what was registered and derived, and each session's registration quality), the volumes, one
.tfm per registered session and prepare.png (each session's edges on the planning scan, the brain mask and tissue
maps). A session that will not register is refused with its measured quality; nothing is written on error. See
docs/preparation.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import add_overwrite_argument, add_template_argument, output_path

if TYPE_CHECKING:
    from ..preparation.prepare import Prepared

NAME = "prepare"
HELP = "register the sessions of a case onto the planning scan; derive a brain mask and tissue maps"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..preparation.sessions import REGISTER_CHOICES

    p.add_argument("case", type=Path, help="case manifest (case.json); sessions may lie on their own grids and frames")
    p.add_argument("--out", required=True, type=output_path, help="case folder to write")
    p.add_argument(
        "--register",
        choices=REGISTER_CHOICES,
        default="rigid",
        help="how later sessions are brought onto the planning scan: rigid (default), affine, or none (they "
        "already share its frame of reference; only resampled)",
    )
    add_template_argument(p)
    add_overwrite_argument(p)


def report_lines(prepared: Prepared) -> list[str]:
    """The command's summary: one line per timepoint (day, GTV volume in mL, registration and its quality), where
    the brain mask and tissue maps came from, and the warnings."""
    regs = {r.timepoint: r for r in prepared.registrations}
    lines = []
    for session, ml in zip(prepared.sessions, prepared.gtv_volumes_ml()):
        reg = regs.get(session.index)
        how = "planning scan" if reg is None else f"{reg.source} {reg.kind} ({reg.moving}), quality {reg.quality:.2f}"
        lines.append(f"  timepoint {session.index} day {session.day:g}: GTV {ml:.2f} mL; {how}")
    for key, label in (("brain_mask", "brain mask"), ("tissue", "tissue maps")):
        record = prepared.provenance[key]
        extra = f" ({record['template']} template, quality {record['quality']:.2f})" if "template" in record else ""
        lines.append(f"  {label}: {record['source']}{extra}")
    lines += [f"  warning: {w}" for w in prepared.warnings()]
    return lines


def run(args: argparse.Namespace) -> int:
    from ..io.case import load_case
    from ..io.images import atomic_output_dir, check_output_dir, existing_mode
    from ..output.preparation_figure import plot_case_preparation
    from ..preparation.prepare import prepare, write_prepared

    existing = existing_mode(args.overwrite)
    check_output_dir(args.out, existing)
    prepared = prepare(
        args.case,
        register=args.register,
        template=args.template,
        progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True),
    )
    assert prepared.source is not None  # prepared from a case manifest
    inputs = [args.case, *(path for _, path in prepared.source.files())]
    with atomic_output_dir(args.out, inputs=inputs, existing=existing) as tmp:
        write_prepared(prepared, tmp)
        plot_case_preparation(load_case(tmp / "case.json"), tmp / "prepare.png")
    print(f"{prepared.source.patient_id}: {len(prepared.sessions)} timepoint(s) -> {args.out / 'case.json'}")
    for line in report_lines(prepared):
        print(line)
    return 0
