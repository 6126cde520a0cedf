"""Build a learned forecaster's input reference (``Resources/Models/input_reference_*.json``): every training scan's
features (:mod:`gliomaforecast.input_shift`), their medians and robust spreads, and the out-of-distribution
threshold chosen on the validation cohort (the ``--quantile`` of its scans' scores; docs/input-shift.md)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

NAME = "input-reference"
HELP = "the training scans' feature statistics and the validation-chosen threshold of the out-of-distribution guard"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", type=Path, required=True, help="the training cohort folder (seed 2024)")
    p.add_argument("--validation", type=Path, required=True, help="the validation cohort folder (seed 777)")
    p.add_argument(
        "--quantile",
        type=float,
        default=0.95,
        help="the threshold is this quantile of the validation scans' scores (default 0.95)",
    )
    p.add_argument(
        "--min-threshold", type=float, default=3.0, help="the threshold is at least this many robust SDs (default 3)"
    )
    p.add_argument("--patients", type=int, default=0, help="the first N training patients only (0: all)")
    p.add_argument("--note", default="", help="which models were trained on this cohort (recorded)")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")


def _seed(folder: Path) -> int | None:
    index = folder / "cohort.json"
    return json.loads(index.read_text()).get("seed") if index.is_file() else None


def cohort_features(folder: Path, limit: int = 0) -> list[tuple[str, int, dict[str, float]]]:
    """(patient, scan index, :func:`scan_features`) of every scan of every case in the cohort ``folder`` (the first
    ``limit`` cases; 0: all)."""
    from gliomaforecast.evaluation.cohort import find_cases
    from gliomaforecast.input_shift import scan_features
    from gliomaforecast.io.case import load_case

    cases = find_cases(folder)
    rows = []
    for path in cases[:limit] if limit else cases:
        case = load_case(path)
        rows += [(case.patient_id, tp.index, scan_features(case, tp)) for tp in case.timepoints]
    return rows


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from gliomaforecast.errors import InputError
    from gliomaforecast.input_shift import InputReference, reference_record, reference_stats, shift_score
    from gliomaforecast.io.images import write_text_atomic

    if not 0.5 <= args.quantile < 1.0:
        raise InputError(None, "quantile", f"must lie in [0.5, 1), got {args.quantile}")
    start = time.perf_counter()
    train = cohort_features(args.train, args.patients)
    stats = reference_stats([f for _, _, f in train])
    provisional = InputReference.from_stats(args.out.name, stats, 1.0)
    scores = np.array([shift_score(f, provisional)[0] for _, _, f in cohort_features(args.validation)])
    threshold = max(float(np.quantile(scores, args.quantile)), args.min_threshold)
    record = reference_record(
        stats,
        threshold,
        train=str(args.train),
        train_seed=_seed(args.train),
        train_patients=len({p for p, _, _ in train}),
        train_scans=len(train),
        validation=str(args.validation),
        validation_seed=_seed(args.validation),
        validation_scans=int(scores.size),
        rule=f"the {args.quantile:g} quantile of the validation scans' scores, at least {args.min_threshold:g}",
        models=args.note,
        command=f"gliomaforecast-train input-reference --train {args.train} --validation {args.validation} "
        f"--quantile {args.quantile:g} --min-threshold {args.min_threshold:g}"
        + (f" --patients {args.patients}" if args.patients else ""),
    )
    write_text_atomic(args.out, json.dumps(record, indent=1) + "\n")
    print(
        f"wrote {args.out}: {len(train)} training scans, threshold {threshold:.2f} "
        f"({scores.size} validation scans) in {time.perf_counter() - start:.0f} s"
    )
    return 0
