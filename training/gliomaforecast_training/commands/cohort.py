"""Generate a virtual patient cohort: Fisher-Kolmogorov glioma growth with resection and radiotherapy on
deformed MNI152 anatomy, written as case manifests plus cohort.json / cohort.csv."""

from __future__ import annotations

import argparse
from pathlib import Path

from gliomaforecast.errors import InputError

NAME = "cohort"
HELP = "generate a virtual glioma patient cohort (case manifests + NIfTI)"


def _spacing_triplet(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers x,y,z in mm, got {text!r}") from None
    if len(values) != 3 or not all(0 < v < 50 for v in values):
        raise argparse.ArgumentTypeError(f"expected three positive spacings x,y,z in mm, got {text!r}")
    return values  # type: ignore[return-value]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, required=True, help="number of patients")
    p.add_argument("--seed", type=int, required=True, help="random seed (same seed -> identical files)")
    p.add_argument("--out", type=Path, required=True, help="output folder (one sub-folder per patient)")
    p.add_argument("--spacing", type=float, default=2.0, help="isotropic working grid, mm (default 2; 1 is slow)")
    p.add_argument("--clinical-spacing", type=_spacing_triplet, default=None, metavar="X,Y,Z",
                   help="resample the delivered volumes to this spacing in mm, e.g. 1,1,5 (x, y in-plane, z slices)")
    p.add_argument("--follow-up", default="default", metavar="MODE",
                   help="default (clinical schedule, 2-5 follow-ups) or dense (a scan every 30-60 days up to "
                        "12-18 months after RT, no clinical rules; realism 3); see docs/cohort.md")
    p.add_argument("--scan-days", default=None, metavar="D1,D2,...",
                   help="scan on these days after the planning scan (day 0), strictly increasing, >= 0 "
                        "(e.g. 0,90,180,270,365; realism 3); excludes --follow-up dense")
    p.add_argument("--realism", default=None, metavar="N",
                   help="physics version: 1 (as shipped; the only one for the default follow-up), 2 (+ subclinical "
                        "distant foci) or 3 (+ ESTRO-EANO dose, radioresistant infiltration, FLAIR visible from the "
                        "GTV border, two template brains; the default for dense and scheduled follow-up)")
    add_parallel_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parallel_arguments(p: argparse.ArgumentParser) -> None:
    """``--jobs`` and ``--scheduler`` (the files depend on neither)."""
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="worker processes on this machine (default 1; the files do not depend on it)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS|local[:N]",
                   help="patients as tasks on a dask.distributed cluster: a scheduler address (tcp://host:8786) or "
                        "local[:N] worker processes; workers must see --out's parent folder (docs/scaling.md)")


def parallel_from_args(args: argparse.Namespace) -> int:
    """The validated worker count of ``--jobs`` (1 when not given); an explicit ``--jobs`` with ``--scheduler``
    is an InputError."""
    if args.jobs is not None and args.scheduler is not None:
        raise InputError("--jobs", None, "cannot be combined with --scheduler (the scheduler's workers do the work)")
    jobs = 1 if args.jobs is None else args.jobs
    if jobs < 1:
        raise InputError("--jobs", None, f"must be at least 1, got {jobs}")
    return jobs


def run_generation(args: argparse.Namespace, jobs: int, **kwargs) -> Path:
    """``generate_cohort(**kwargs)`` with ``jobs`` local processes, or on the dask client of ``--scheduler``."""
    from ..cohort.cohort import generate_cohort

    if args.scheduler is None:
        return generate_cohort(**kwargs, jobs=jobs)
    from gliomaforecast.scheduling import open_client, parse_scheduler

    parse_scheduler(args.scheduler)  # a bad value before anything starts
    with open_client(args.scheduler) as client:
        return generate_cohort(**kwargs, client=client)


def parse_scan_days(text: str) -> tuple[int, ...]:
    """``--scan-days`` text -> days (InputError naming the flag on bad input)."""
    from ..cohort.cohort import check_scan_days

    parts = [t.strip() for t in str(text).split(",")]
    if not any(parts):
        raise InputError("--scan-days", None, "no scan days given")
    try:
        values = [float(t) for t in parts]
    except ValueError:
        raise InputError("--scan-days", None, f"expected comma-separated whole days, got {text!r}") from None
    try:
        return check_scan_days(values)
    except ValueError as exc:
        raise InputError("--scan-days", None, str(exc)) from None


def follow_up_from_args(args: argparse.Namespace):
    """The validated FollowUp of ``--follow-up``, ``--scan-days`` and ``--realism`` (InputError otherwise)."""
    from ..cohort.cohort import FOLLOW_UP_MODES, REALISM_VERSIONS, make_follow_up

    if args.follow_up not in FOLLOW_UP_MODES:
        raise InputError("--follow-up", None,
                         f"unknown mode {args.follow_up!r} (expected {' or '.join(FOLLOW_UP_MODES)})")
    days = None if args.scan_days is None else parse_scan_days(args.scan_days)
    if days is not None and args.follow_up != "default":
        raise InputError("--scan-days", None, f"cannot be combined with --follow-up {args.follow_up}")
    realism = None
    if args.realism is not None:
        try:
            realism = int(args.realism)
        except ValueError:
            realism = None
        if realism not in REALISM_VERSIONS:
            raise InputError("--realism", None, f"unknown version {args.realism!r} (expected 1, 2 or 3)")
    try:
        return make_follow_up(args.follow_up, days, realism)
    except ValueError as exc:
        raise InputError("--realism", None, str(exc)) from None


def run(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise InputError("--n", None, f"must be at least 1, got {args.n}")
    if args.seed < 0:
        raise InputError("--seed", None, f"must be non-negative, got {args.seed}")
    if not (1.0 <= args.spacing <= 4.0):
        raise InputError("--spacing", None, f"must be between 1 and 4 mm, got {args.spacing}")
    fu = follow_up_from_args(args)
    jobs = parallel_from_args(args)
    index = run_generation(args, jobs, n=args.n, seed=args.seed, out_dir=args.out, spacing=args.spacing,
                           clinical_spacing=args.clinical_spacing, progress=not args.no_progress,
                           follow_up=fu.mode if fu.mode != "scheduled" else "default",
                           scan_days=fu.scan_days or None, realism=fu.realism)
    print(f"wrote {args.n} patients and {index}")
    return 0
