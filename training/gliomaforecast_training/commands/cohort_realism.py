"""Measure a generated cohort's patterns of failure and growth kinetics against the literature
(docs/cohort.md): per patient the first post-RT progression (enhancing volume >= 1 mL and >= 1.25 x its
post-RT nadir, the first post-RT scan being the baseline), the part of its enhancing volume (label 3)
outside the 15 mm standard CTV of the planning target (GTV + cavity, in the brain mask), its class
(in-field > 80% inside, marginal 20-80%, distant < 20%), whether enhancement outside the CTV appears at
any later scan, and D/rho and the front velocity 2 sqrt(D rho) from simulation.json. Writes JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gliomaforecast.errors import InputError

NAME = "cohort-realism"
HELP = "patterns of failure (recurrence outside the 15 mm CTV) and growth kinetics of a generated cohort"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("cohort", type=Path, help="cohort folder (with cohort.json)")
    p.add_argument("--out", type=Path, default=None, help="write the report here (JSON; default: print)")


def run(args: argparse.Namespace) -> int:
    from ..cohort.cohort import measure_cohort_realism

    index = args.cohort / "cohort.json"
    if not index.is_file():
        raise InputError(index, None, "no cohort index (cohort.json) in this folder")
    report = measure_cohort_realism(args.cohort)
    text = json.dumps(report, indent=1) + "\n"
    if args.out is None:
        print(text, end="")
    else:
        from gliomaforecast.io.images import atomic_file
        with atomic_file(args.out) as tmp:
            tmp.write_text(text)
        print(f"wrote {args.out}")
    s = report["summary"]
    print(f"{s['patients']} patients, {s['progressions']} first progressions: enhancing voxels outside the CTV "
          f"in {s['any_outside']} ({s['any_outside_fraction']:.0%}), marginal or distant (< 80% inside) in "
          f"{s['marginal_or_distant']} ({s['marginal_or_distant_fraction']:.0%}), with a marginal or distant lesion "
          f"in {s['with_marginal_or_distant_component']}; outside volume "
          f"{s['outside_volume_fraction']:.1%} of all recurrence volume")
    return 0
