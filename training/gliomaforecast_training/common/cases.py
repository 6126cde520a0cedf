"""The patient folders of a cohort, as the diffusion families' ``prepare`` steps read them."""

from __future__ import annotations

from pathlib import Path

from gliomaforecast.errors import InputError


def cohort_cases(folder: Path, patients: str = "") -> list[Path]:
    """Patient folders with a case.json, in name order (``patients`` "FIRST-LAST", 1-based, when given)."""
    cases = sorted(p.parent for p in Path(folder).glob("*/case.json"))
    if not cases:
        raise InputError(folder, "--cohort", "no patient folder with a case.json")
    if patients:
        try:
            first, last = (int(v) for v in patients.split("-"))
        except ValueError:
            raise InputError(None, "--patients", f"expected FIRST-LAST, got {patients!r}") from None
        cases = cases[first - 1:last]
    return cases
