"""The recurrence protocol's progression rule on its edges (issue 34): planning scan = the last on or before the RT
start; nadir = the smallest volume since the first post-RT scan; progression = the first later scan whose GTV or
enhancing volume is >= 1.4x its nadir and >= 0.5 mL above it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from gliomaforecast.evaluation.protocols import PROGRESSION_MIN_ML, PROGRESSION_RATIO, progression_scan


def _run(days, rt, gtv, enh=None):
    case = SimpleNamespace(rt_start_day=rt, days=np.asarray(days, dtype=float))
    enh = enh or [None] * len(gtv)
    return progression_scan(case, lambda i: (gtv[i], enh[i]))


def test_the_rule_constants() -> None:
    assert (PROGRESSION_RATIO, PROGRESSION_MIN_ML) == (1.4, 0.5)


DAYS = [0, 40, 90, 150, 210]  # the planning scan (RT on day 21), then four post-RT scans: indices 1-4


@pytest.mark.parametrize("gtv, enh, expected", [
    ([10, 8, 11.2, 20, 20], None, 2),          # 11.2 = 1.4 x the nadir 8 exactly: progression on the ratio's edge
    ([10, 8, 11.19, 20, 20], None, 3),         # just below it: the next scan
    ([10, 1, 1.4, 1.5, 9], None, 3),           # 1.4 = 1.4 x 1 but only 0.4 mL more; 1.5: 0.5 mL more, on the edge
    ([10, 8, 5, 7.0, 9], None, 3),             # the nadir moves down to 5; 7.0 = 1.4 x 5
    ([10, 8, 9, 10, 11], None, None),          # never 1.4x
    ([10, 8, 8, 8, 8], [0, 1, 1.2, 2.0, 2], 3),     # the enhancing part grows (1 -> 2 mL) while the GTV does not
    ([10, 8, 8, 8, 8], [0, 1, 1.2, 1.45, 1.4], None),  # 1.45 is 1.4x the nadir 1 but only 0.45 mL more
    ([10, 8, 8, 8, 8], [0, None, 1.0, 1.4, 1.5], 4),   # no enhancing volume first: its nadir starts at 1.0
    ([10, 8, 8, 8, 8], [0, 2, 0.5, 0.7, 1.0], 4),      # the enhancing nadir moves down to 0.5; 1.0 is 2x it, +0.5 mL
    ([10, 8, 8, 8, 8], [0, 2, None, 2.7, 2.8], 4),     # a scan without labels keeps the nadir; 2.8 = 1.4 x 2
])
def test_progression_edges(gtv, enh, expected) -> None:
    result = _run(DAYS, 21.0, [float(v) for v in gtv], enh)
    if expected is None:
        assert result == "no post-RT progression (RANO-like growth over the nadir) among the scans"
    else:
        assert result == (0, expected)


def test_planning_scan_and_refusals() -> None:
    gtv = [10.0, 8.0, 5.0, 20.0, 20.0]
    assert _run(DAYS, 40.0, gtv) == (1, 3)  # a scan on the RT start day is the planning scan
    assert _run(DAYS, 39.9, gtv) == (0, 3)
    assert _run(DAYS, 160.0, gtv) == "fewer than two post-RT scans: no nadir to progress from"
    assert _run(DAYS, None, gtv) == "no rt_start_day: the recurrence protocol needs RT"
    assert _run([5, 40, 90, 150, 210], 2.0, gtv) == "no scan on or before the RT start (day 2)"
