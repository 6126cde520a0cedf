"""The patients of a cohort folder: one sub-folder per patient with a ``case.json``.

A sub-folder holding an entry named ``case.json`` is a patient. When that entry cannot be read as a file (a dangling
symbolic link, a link loop, a folder, a FIFO or device, no permission), or the sub-folder itself is a dangling or
looping link or cannot be searched, the patient is not dropped: it gets a skipped entry (the folder's name and the
reason), written to ``skipped.csv``. A sub-folder without ``case.json`` is not a patient (derived data, notes...),
and hidden entries (a run's temporaries) are ignored. Two readable manifests with one ``patient_id`` are refused:
the per-patient statistics count patients by their id, so the two would be pooled as one.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path

from ..checks import special_file_kind
from ..errors import InputError

MANIFEST = "case.json"


def _link_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "a dangling symbolic link"
    return f"cannot be read ({exc.strerror})"


def _kind(mode: int) -> str:
    kind = special_file_kind(mode)
    if kind == "folder":
        return "a folder, not a file"
    if kind in ("FIFO", "device", "socket"):
        return f"a {kind}, not a file (never opened)"
    return "not a regular file"


def _manifest_problem(folder: Path) -> tuple[bool, str | None]:
    """(whether ``folder`` is a patient, the reason its manifest cannot be read or None)."""
    manifest = folder / MANIFEST
    try:
        mode = os.stat(manifest).st_mode
    except OSError as exc:
        if exc.errno == errno.ENOENT and not os.path.islink(manifest):
            return False, None  # no case.json: not a patient folder
        return True, f"{MANIFEST}: {_link_reason(exc)}"
    if stat.S_ISREG(mode):
        return True, None
    return True, f"{MANIFEST}: {_kind(mode)}"


def scan_cohort(cohort_dir: str | Path) -> tuple[list[Path], list[dict]]:
    """The readable case manifests of ``cohort_dir`` (``NAME/case.json``, sorted by folder name) and a skipped entry
    (``patient_id``: the folder's name, ``forecaster``: None, ``reason``) for every patient that cannot be read."""
    cohort_dir = Path(cohort_dir)
    if not cohort_dir.is_dir():
        raise InputError(cohort_dir, None, "cohort folder not found")
    try:
        names = sorted(os.listdir(cohort_dir))
    except OSError as exc:
        raise InputError(cohort_dir, None, f"cannot list the cohort folder ({exc.strerror})") from None
    cases: list[Path] = []
    skipped: list[dict] = []
    for name in names:
        if name.startswith("."):
            continue
        folder = cohort_dir / name
        if os.path.islink(folder) and not os.path.exists(folder):
            try:
                os.stat(folder)
            except OSError as exc:
                skipped.append({"patient_id": name, "forecaster": None, "reason": f"{name}: {_link_reason(exc)}"})
            continue
        if not folder.is_dir():
            continue  # a file beside the patients (a README, an index)
        is_patient, problem = _manifest_problem(folder)
        if problem is not None:
            skipped.append({"patient_id": name, "forecaster": None, "reason": f"{name}/{problem}"})
        elif is_patient:
            cases.append(folder / MANIFEST)
    return cases, skipped


def check_distinct_patients(cases: list[Path]) -> None:
    """InputError naming both folders when two ``cases`` give one ``patient_id`` (read from the manifests; one that
    does not parse is left to :func:`load_case`, which reports it for that patient)."""
    seen: dict[str, Path] = {}
    for path in cases:
        try:
            pid = json.loads(path.read_text()).get("patient_id")
        except (OSError, ValueError, RecursionError, AttributeError):
            continue
        if not isinstance(pid, str):
            continue
        if pid in seen:
            raise InputError(
                path,
                "patient_id",
                f"{pid!r} is also the patient_id of {seen[pid]}: each patient folder of a cohort needs its own "
                f"patient_id (folders {seen[pid].parent.name} and {path.parent.name})",
            )
        seen[pid] = path


def shown_reason(reason: str, cohort_dir: str | Path) -> str:
    """``reason`` with the cohort folder's path left out (``p1/case.json: ...``, however the folder was given):
    outputs hold no absolute path."""
    cohort_dir = Path(cohort_dir)
    prefixes = {str(cohort_dir.resolve()), os.path.abspath(cohort_dir), str(cohort_dir)} - {"", "."}
    for prefix in sorted(prefixes, key=len, reverse=True):
        reason = re.sub(rf"(?<![\w./-]){re.escape(prefix.rstrip(os.sep) + os.sep)}", "", reason)
    return reason
