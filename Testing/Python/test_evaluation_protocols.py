"""Evaluation protocols: the pairing rules (which scans are inputs, which is the target, what is skipped) on a
small hand-made cohort; no later scan is ever visible to a forecaster; the evaluate command's protocol options
and their bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import ball
from gliomaforecast.io.case import load_case
from gliomaforecast.cli import main
from gliomaforecast.evaluation.cohort import EvaluationSettings, evaluate_cohort, summarize
from gliomaforecast.errors import InputError
from gliomaforecast.evaluation.protocols import (Protocol, Task, gap_bin, parse_horizon, plan_tasks, prefix_case,
                                                 scan_volumes)
from gliomaforecast.forecast import run_forecast
from gliomaforecast.forecasters import registry
from gliomaforecast.geometry import Grid
from gliomaforecast.io.images import write_image

GRID = Grid.identity((12, 24, 24), (3.0, 2.0, 2.0))
CENTER = (6, 12, 12)


def _labels(radius_mm: float, enhancing_mm: float) -> np.ndarray:
    labels = np.zeros(GRID.shape, np.int16)
    labels[ball(GRID.shape, CENTER, radius_mm, GRID.spacing)] = 2
    if enhancing_mm > 0:
        labels[ball(GRID.shape, CENTER, enhancing_mm, GRID.spacing)] = 3
    return labels


def _patient(root: Path, pid: str, days: list[float], radii: list[float], enhancing: list[float],
             rt_start_day: float | None = 30) -> Path:
    folder = root / pid
    folder.mkdir(parents=True)
    tps = []
    for i, (day, r, e) in enumerate(zip(days, radii, enhancing)):
        labels = _labels(r, e)
        write_image(folder / f"d{i}_flair.nii.gz", (100 + 40 * (labels > 0)).astype(np.float32), GRID)
        write_image(folder / f"d{i}_seg.nii.gz", labels, GRID)
        tps.append({"day": day, "images": {"flair": f"d{i}_flair.nii.gz"}, "labels": f"d{i}_seg.nii.gz"})
    manifest = {"schema": "gliomaforecast.case/1", "patient_id": pid, "timepoints": tps}
    if rt_start_day is not None:
        manifest["rt_start_day"] = rt_start_day
    (folder / "case.json").write_text(json.dumps(manifest))
    return folder / "case.json"


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    root = tmp_path / "cohort"
    # A: planning scan day 20 (RT 30); post-RT nadir at day 100, progression (x1.4 and +0.5 mL) at day 300.
    _patient(root, "A", [0, 20, 60, 100, 200, 300, 420], [8, 10, 9, 7, 7.5, 10, 12], [0, 6, 4, 3, 3.2, 6, 8])
    # B: shrinks after RT and never progresses.
    _patient(root, "B", [0, 25, 90, 200], [9, 10, 8, 7], [5, 6, 4, 3])
    # C: no RT at all.
    _patient(root, "C", [0, 50, 150], [6, 8, 10], [3, 4, 6], rt_start_day=None)
    return root


def test_horizon_pairs_every_prefix_with_every_later_scan_in_the_range(cohort: Path) -> None:
    case = load_case(cohort / "A" / "case.json")  # days 0 20 60 100 200 300 420
    tasks, why = plan_tasks(case, Protocol("horizon", 90, 200), min_scans=2)
    # the first i scans end at day t_(i-1); the targets are the later scans j with 90 <= t_j - t_(i-1) <= 200:
    # i=2 (day 20): 200; i=3 (60): 200; i=4 (100): 200, 300; i=5 (200): 300; i=6 (300): 420
    assert why is None and [(t.n_inputs, t.target) for t in tasks] == [(2, 4), (3, 4), (4, 4), (4, 5), (5, 5), (6, 6)]
    one_scan, _ = plan_tasks(case, Protocol("horizon", 90, 200), min_scans=1)
    assert [(t.n_inputs, t.target) for t in one_scan][:2] == [(1, 3), (1, 4)]  # 1-scan forecasters start earlier
    none, why = plan_tasks(case, Protocol("horizon", 1000, 2000), min_scans=2)
    assert none == [] and "no (inputs, later scan) pair with a gap of 1000-2000 days" in why


def test_first_per_bin_keeps_the_earliest_forecast_of_each_gap_bin(cohort: Path) -> None:
    case = load_case(cohort / "A" / "case.json")  # days 0 20 60 100 200 300 420
    every, _ = plan_tasks(case, Protocol("horizon", 61, 365), min_scans=2)
    first, why = plan_tasks(case, Protocol("horizon", 61, 365, "first-per-bin"), min_scans=2)
    # from day 20 (i=2): day 100 (gap 80, bin 61-120), 200 (180, 121-180), 300 (280, 181-280); 281-365 is first
    # reached from day 60 (i=3): day 420 (gap 360); the later prefixes' pairs in the same bins are dropped
    assert why is None and len(every) == 12
    assert [(t.n_inputs, t.target) for t in first] == [(2, 3), (2, 4), (2, 5), (3, 6)]
    assert [gap_bin(case.days[t.target] - case.days[t.n_inputs - 1]) for t in first] == [
        "61-120", "121-180", "181-280", "281-365"]
    assert set(first) <= set(every)
    with pytest.raises(InputError, match="unknown pair rule 'last'"):
        Protocol("horizon", 61, 365, "last")


def test_first_per_bin_gives_every_forecaster_the_same_pairs(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "h"
    assert main(["evaluate", str(cohort), "--protocol", "horizon", "--horizon-days", "61-365", "--pairs",
                 "first-per-bin", "--forecaster", "persistence", "--forecaster", "evolution", "--n-bootstrap", "3",
                 "--jobs", "1", "--out", str(out)]) == 0
    rows = [line.split(",") for line in (out / "patients.csv").read_text().splitlines()[1:]]
    pairs = {name: [r[2] for r in rows if r[1] == name] for name in ("persistence", "evolution")}
    # persistence accepts one scan, but under first-per-bin it is scored on the two-scan forecaster's pairs
    assert pairs["persistence"] == pairs["evolution"] == ["A:2->3", "A:2->4", "A:2->5", "A:3->6", "B:2->2",
                                                           "B:2->3", "C:2->2"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["pairs"] == "first-per-bin"
    # evolution's HD95 against persistence's: one value per patient (the mean of its forecasts), paired
    header = (out / "patients.csv").read_text().splitlines()[0].split(",")
    col = header.index("hd95_mm")
    per = {name: {pid: np.mean([float(r[col]) for r in rows if r[1] == name and r[0] == pid]) for pid in "ABC"}
           for name in ("persistence", "evolution")}
    w = summary["versus_persistence"]["evolution"]["hd95_mm"]
    assert w["n_forecasts"] == 7 and w["n"] + w["n_excluded"] == 3
    diffs = [per["evolution"][p] - per["persistence"][p] for p in "ABC"]
    assert w["median_difference"] == pytest.approx(float(np.median(diffs)), rel=1e-4)  # the CSV keeps 6 digits
    assert "persistence" not in summary["versus_persistence"]
    assert main(["leaderboard", str(out / "summary.json")]) == 0


def test_last_scan_protocol_is_one_task(cohort: Path) -> None:
    case = load_case(cohort / "C" / "case.json")
    assert plan_tasks(case, Protocol(), 2) == ([Task(2, 2)], None)
    tasks, why = plan_tasks(case, Protocol(), 3)
    assert tasks == [] and "at least 4" in why


def test_recurrence_inputs_end_at_the_planning_scan_and_target_the_first_progression(cohort: Path) -> None:
    case = load_case(cohort / "A" / "case.json")
    tasks, why = plan_tasks(case, Protocol("recurrence"), 2, scan_volumes(case))
    assert why is None and tasks == [Task(2, 5)]  # inputs days 0, 20 (RT at 30); target day 300, not 200 or 420
    b = load_case(cohort / "B" / "case.json")
    assert plan_tasks(b, Protocol("recurrence"), 2, scan_volumes(b))[1].startswith("no post-RT progression")
    c = load_case(cohort / "C" / "case.json")
    assert "no rt_start_day" in plan_tasks(c, Protocol("recurrence"), 2, scan_volumes(c))[1]
    assert "needs 3" in plan_tasks(case, Protocol("recurrence"), 3, scan_volumes(case))[1]


def test_prefix_case_holds_nothing_of_the_later_scans(cohort: Path) -> None:
    case = load_case(cohort / "A" / "case.json")
    for tp in case.timepoints:
        case.gtv(tp)  # every volume cached
    prefix = prefix_case(case, 3)
    assert [tp.day for tp in prefix.timepoints] == [0, 20, 60]
    later = {str(p) for tp in case.timepoints[3:] for p in [*tp.images.values(), tp.labels] if p}
    assert not later & {str(p) for _, p in prefix.files()}
    assert all(not (isinstance(k[1], int) and k[1] >= 3) for k in prefix._cache if len(k) > 1)
    assert len(case.timepoints) == 7  # the original is untouched


def test_a_forecast_from_the_prefix_equals_one_from_a_copy_with_the_later_files_removed(cohort: Path,
                                                                                        tmp_path: Path) -> None:
    copy = tmp_path / "A_cut"
    shutil.copytree(cohort / "A", copy)
    manifest = json.loads((copy / "case.json").read_text())
    for tp in manifest["timepoints"][3:]:
        for name in (*tp["images"].values(), tp["labels"]):
            (copy / name).unlink()
    manifest["timepoints"] = manifest["timepoints"][:3]
    (copy / "case.json").write_text(json.dumps(manifest))
    full = load_case(cohort / "A" / "case.json")
    for tp in full.timepoints:
        full.labels(tp)
    a = run_forecast(prefix_case(full, 3), 300.0, "evolution-field", samples=2, n_bootstrap=5)
    b = run_forecast(copy / "case.json", 300.0, "evolution-field", samples=2, n_bootstrap=5)
    np.testing.assert_array_equal(a.output.probability, b.output.probability)
    np.testing.assert_array_equal(a.output.uncertainty, b.output.uncertainty)


class _Spy:
    """A forecaster that records what it was handed (persistence underneath)."""

    name = "spy"
    seen: list = []

    def predict(self, request, progress):
        from gliomaforecast.forecasters.persistence import PersistenceForecaster
        _Spy.seen.append((request.case.patient_id, [tp.day for tp in request.case.timepoints],
                          [str(p) for _, p in request.case.files()], request.target_day))
        return PersistenceForecaster().predict(request, progress)


def test_evaluation_never_shows_a_forecaster_a_later_scan(cohort: Path, monkeypatch) -> None:
    import sys
    import types
    module = types.ModuleType("gliomaforecast.forecasters.spy")
    module.Spy = _Spy
    monkeypatch.setitem(sys.modules, "gliomaforecast.forecasters.spy", module)
    monkeypatch.setattr(registry, "REGISTRY", registry.REGISTRY + (registry.ForecasterEntry("spy", "spy:Spy", "spy"),))
    _Spy.seen = []
    result = evaluate_cohort(cohort, EvaluationSettings(("spy",), n_bootstrap=3, samples=1, protocol="horizon",
                                                        horizon_days=(90, 200)))
    assert len(_Spy.seen) == len(result.rows) >= 6
    for pid, days, files, target_day in _Spy.seen:
        assert max(days) < target_day
        assert all(f"d{i}_" not in Path(f).name for f in files for i in range(len(days), 10)), files
    rows_a = [r for r in result.rows if r["patient_id"] == "A"]
    assert [(r["n_priors"], r["target_index"]) for r in rows_a] == [(2, 4), (3, 4), (4, 4), (4, 5), (5, 5), (6, 6)]
    assert all(90 <= r["gap_days"] <= 200 for r in result.rows)
    assert [r["pair_id"] for r in rows_a][:2] == ["A:2->4", "A:3->4"]


def test_summary_tests_one_value_per_patient_and_reports_recurrences_outside_the_margin(cohort: Path) -> None:
    result = evaluate_cohort(cohort, EvaluationSettings(("persistence",), n_bootstrap=3, samples=1,
                                                        protocol="horizon", horizon_days=(90, 200), margin_mm=2.0))
    summary = summarize(result)
    gtv = summary["forecasters"]["persistence"]["coverage"]["gtv"]
    n_patients = len({r["patient_id"] for r in result.rows})
    assert gtv["forecast"]["n"] == len(result.rows) > n_patients
    assert gtv["wilcoxon"]["n"] + gtv["wilcoxon"]["n_excluded"] == n_patients
    outside = [r for r in result.rows if r["coverage_standard_gtv"] < 1]
    assert gtv["outside_margin"]["n"] == len(outside) > 0  # a 2 mm margin misses the growth
    assert summary["protocol"] == "horizon"


def test_parse_horizon() -> None:
    assert parse_horizon("90-365") == (90.0, 365.0)
    for bad in ("365-90", "90", "a-b", "-5-10"):
        with pytest.raises(InputError, match="^horizon_days: "):
            parse_horizon(bad)
    with pytest.raises(InputError, match="^protocol: unknown protocol 'future'"):
        Protocol("future")


def test_cli_horizon_and_recurrence(cohort: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "h"
    assert main(["evaluate", str(cohort), "--protocol", "horizon", "--horizon-days", "90-200", "--forecaster",
                 "persistence", "--n-bootstrap", "3", "--jobs", "1", "--out", str(out)]) == 0
    lines = (out / "patients.csv").read_text().splitlines()
    # persistence accepts one scan, so its prefixes start at i = 1: A: 2 + 6 pairs, B: 2 + 2, C: 1 + 1
    assert len(lines) - 1 == 8 + 4 + 2
    assert sum(",persistence,A:1->" in line for line in lines) == 2
    rec = tmp_path / "r"
    assert main(["evaluate", str(cohort), "--protocol", "recurrence", "--forecaster", "persistence",
                 "--n-bootstrap", "3", "--jobs", "1", "--out", str(rec)]) == 0
    rows = (rec / "patients.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("A,persistence,A:2->5,5,2,")
    skipped = (rec / "skipped.csv").read_text()
    assert "no post-RT progression" in skipped and "no rt_start_day" in skipped


@pytest.mark.parametrize("args,message", [
    (["--protocol", "horizon", "--horizon-days", "365-90"], "--horizon-days: empty range '365-90'"),
    (["--protocol", "horizon"], "--horizon-days: is required with --protocol horizon"),
    (["--protocol", "future"], "--protocol: unknown protocol 'future'; choose from last-scan, horizon, recurrence"),
    (["--protocol", "horizon", "--horizon-days", "5000-6000"], "scored no patient under the horizon protocol"),
    (["--horizon-days", "90-365"], "--horizon-days: only applies to --protocol horizon"),
    (["--protocol", "recurrence", "--pairs", "first-per-bin"], "--pairs: only applies to --protocol horizon"),
    (["--protocol", "horizon", "--horizon-days", "90-365", "--pairs", "last"], "--pairs: unknown pair rule 'last'"),
])
def test_cli_bad_protocol_input_is_one_line_exit_2_nothing_written(cohort: Path, tmp_path: Path, capsys,
                                                                   args: list[str], message: str) -> None:
    out = tmp_path / "out"
    code = main(["evaluate", str(cohort), "--forecaster", "persistence", "--n-bootstrap", "3", "--jobs", "1",
                 *args, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err
    assert not out.exists()


def test_leaderboard_is_generated_from_the_summary(cohort: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "h"
    assert main(["evaluate", str(cohort), "--protocol", "horizon", "--horizon-days", "90-200", "--forecaster",
                 "persistence", "--n-bootstrap", "3", "--jobs", "1", "--out", str(out)]) == 0
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- leaderboard:start lh -->\nold table\n<!-- leaderboard:end lh -->\nafter\n")
    assert main(["leaderboard", str(out / "summary.json"), "--update", str(page), "--name", "lh"]) == 0
    text = page.read_text()
    assert text.startswith("intro\n<!-- leaderboard:start lh -->\n") and text.endswith("<!-- leaderboard:end lh -->\nafter\n")
    assert "old table" not in text and "protocol `horizon`, gaps 90-200 days" in text
    rows = (out / "patients.csv").read_text().splitlines()[1:]
    summary = json.loads((out / "summary.json").read_text())
    for label, stats in summary["forecasters"]["persistence"]["gap_bins"].items():
        if stats["n"]:
            line = next(l for l in text.splitlines() if l.startswith(f"| persistence | {label} |"))
            assert line.split(" | ")[2] == str(sum(f",{label}," in r for r in rows))
            assert line.split(" | ")[3] == f"{stats['rmse']:.3f}"
    flair = [l for l in text.splitlines() if l.startswith("| persistence |") and l.count(" | ") == 6]
    assert flair, "the FLAIR table of the forecasters that give an image"
    for line in flair:  # persistence's image is the last FLAIR: its scores are the baseline's
        cells = line.split(" | ")
        assert cells[3] == cells[4] and cells[5] == cells[6].rstrip(" |")
    assert main(["leaderboard", str(out / "summary.json"), "--timings", str(out / "timings.json"), "--update",
                 str(page), "--name", "lh"]) == 0
    timings = json.loads((out / "timings.json").read_text())
    text = page.read_text()
    row = next(l for l in text.splitlines() if l.startswith("| persistence | ") and l.count(" | ") == 4)
    t = timings["per_forecaster"]["persistence"]
    assert row.split(" | ")[1:3] == [str(t["n_forecasts"]), f"{t['mean_cpu_s_per_forecast']:.2f}"]
    assert t["n_forecasts"] == len(rows) and timings["run"]["jobs"] == 1
    assert f"Whole run: **{timings['run']['wall_seconds'] / 60:.1f} min** wall with 1 jobs" in text
    assert main(["leaderboard", str(out / "summary.json"), "--timings", str(out / "summary.json")]) == 2
    assert "summary.json: per_forecaster: missing or malformed in the evaluation timings" in capsys.readouterr().err
    before = page.read_text()
    page.write_text("no markers here\n")
    assert main(["leaderboard", str(out / "summary.json"), "--update", str(page)]) == 2
    assert "markers <!-- leaderboard:start --> ... <!-- leaderboard:end --> not found" in capsys.readouterr().err
    assert page.read_text() == "no markers here\n" and before != page.read_text()


def test_gap_bins_horizons_and_protocol_settings_on_their_edges() -> None:
    assert [gap_bin(g) for g in (0, 0.5, 60, 60.5, 120, 365, 365.5)] == [
        "0-60", "0-60", "0-60", "61-120", "61-120", "281-365", ">365"]
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError) as err:
            gap_bin(bad)
        assert str(err.value) == f"time gap must be a non-negative number of days, got {bad}"
    assert [parse_horizon(t) for t in ("0-0", "0-365", "90-90")] == [(0.0, 0.0), (0.0, 365.0), (90.0, 90.0)]
    for text, message in (("a-b", "expected MIN-MAX in days (e.g. 90-365), got 'a-b'"),
                          ("200-100", "empty range '200-100' (need 0 <= MIN <= MAX days)")):
        with pytest.raises(InputError) as err:
            parse_horizon(text)
        assert str(err.value) == f"horizon_days: {message}"
    assert Protocol("horizon", 90, 90).max_days == 90  # a one-day range is a range
    for args, message in (
        (("horizon", -1, 10), "horizon_days: empty range -1-10 days (need 0 <= MIN <= MAX)"),
        (("horizon", 100, 50), "horizon_days: empty range 100-50 days (need 0 <= MIN <= MAX)"),
        (("horizon", 0, 10, "last"), "pairs: unknown pair rule 'last'; choose from all, first-per-bin"),
        (("future",), "protocol: unknown protocol 'future'; choose from last-scan, horizon, recurrence"),
    ):
        with pytest.raises(InputError) as err:
            Protocol(*args)
        assert str(err.value) == message


def test_horizon_targets_are_never_inputs_and_the_reasons_are_given_in_full(cohort: Path) -> None:
    case = load_case(cohort / "A" / "case.json")  # days 0 20 60 100 200 300 420
    tasks, why = plan_tasks(case, Protocol("horizon", 0, 365), 2)
    assert why is None and [(t.n_inputs, t.target) for t in tasks] == [
        (2, 2), (2, 3), (2, 4), (2, 5), (3, 3), (3, 4), (3, 5), (3, 6), (4, 4), (4, 5), (4, 6), (5, 5), (5, 6),
        (6, 6)]
    assert plan_tasks(case, Protocol("horizon", 1000, 2000), 2)[1] == (
        "no (inputs, later scan) pair with a gap of 1000-2000 days and at least 2 input scans "
        "(scan days 0, 20, 60, 100, 200, 300, 420)")
    assert plan_tasks(case, Protocol("recurrence"), 3, scan_volumes(case)) == (
        [], "2 scans up to the RT planning scan; the forecaster needs 3")
    with pytest.raises(TypeError, match="^the recurrence protocol needs volumes_ml$"):
        plan_tasks(case, Protocol("recurrence"), 2)


MEMORY_GRID = Grid.identity((12, 24, 24), (3.0, 2.0, 2.0))


def _memory_case(radii: list[float], days: list[float], rt_start_day: float | None = 21.0):
    """An in-memory case (no files): balls of ``radii`` mm, BraTS labels on every scan but the second (enhancing
    rim 2 mm thick), a dose, a brain mask and a white-matter map."""
    from gliomaforecast.io.case import Case

    gtvs, labels = [], []
    for i, r in enumerate(radii):
        gtv = ball(MEMORY_GRID.shape, CENTER, r, MEMORY_GRID.spacing)
        label = np.where(gtv, 3, 0).astype(np.int16)
        label[ball(MEMORY_GRID.shape, CENTER, r - 2.0, MEMORY_GRID.spacing)] = 2
        gtvs.append(gtv)
        labels.append(None if i == 1 else label)
    ones = np.ones(MEMORY_GRID.shape, np.float32)
    return Case.from_arrays(MEMORY_GRID, days, gtvs, images=[{"flair": 100 + 40 * g.astype(np.float32)} for g in gtvs],
                            labels=labels, rt_start_day=rt_start_day, dose=60 * ones, brain_mask=ones > 0,
                            tissue={"wm": 0.5 * ones})


def test_scan_volumes_are_the_gtv_and_enhancing_voxels_in_ml() -> None:
    case = _memory_case([8.0, 6.0, 9.0], [0.0, 40.0, 90.0])
    volumes = scan_volumes(case)
    ml = 3 * 2 * 2 / 1000.0
    for i in range(3):
        tp = case.timepoints[i]
        gtv_ml, enhancing_ml = volumes(i)
        assert gtv_ml == np.count_nonzero(case.gtv(tp)) * ml > 0
        if i == 1:
            assert enhancing_ml is None  # a scan without labels has no enhancing volume
        else:
            assert enhancing_ml == np.count_nonzero(case.labels(tp) == 3) * ml
            assert 0 < enhancing_ml < gtv_ml


def test_prefix_of_an_in_memory_case_keeps_its_grid_and_earlier_volumes_only() -> None:
    case = _memory_case([8.0, 6.0, 6.0, 9.0], [0.0, 40.0, 90.0, 200.0])
    full = case.derived(("probe",), lambda: np.zeros(3))
    prefix = prefix_case(case, 2)
    assert prefix.grid == MEMORY_GRID and prefix.reference == case.reference  # no file header to read them from
    assert prefix.days.tolist() == [0.0, 40.0] and len(case.timepoints) == 4
    for tp, kept in zip(prefix.timepoints, case.timepoints):
        assert prefix.gtv(tp) is case.gtv(kept) and prefix.image(tp, "flair") is case.image(kept, "flair")
    assert prefix.labels(prefix.timepoints[0]) is case.labels(case.timepoints[0])
    assert prefix.dose() is case.dose() and prefix.brain_mask() is case.brain_mask()
    assert prefix.tissue("wm") is case.tissue("wm")
    later = [k for k in prefix._cache if len(k) > 1 and isinstance(k[1], int) and k[1] >= 2]
    assert later == [] and any(k[0] == "image" for k in prefix._cache)
    assert prefix.derived(("probe",), lambda: np.ones(3)).tolist() == [1.0, 1.0, 1.0]  # computed anew
    assert full.tolist() == [0.0, 0.0, 0.0]


def test_recurrence_task_cuts_the_case_at_the_planning_scan() -> None:
    from gliomaforecast.evaluation.protocols import recurrence_task

    # RT on day 21: the planning scan is the first; post-RT nadir on day 40, progression on day 200
    case = _memory_case([8.0, 6.0, 6.0, 9.0], [0.0, 40.0, 90.0, 200.0])
    prefix, target = recurrence_task(case)
    assert target == 3 and prefix.days.tolist() == [0.0] and prefix.grid == MEMORY_GRID
    assert prefix.gtv(prefix.timepoints[0]) is case.gtv(case.timepoints[0])
    assert recurrence_task(case, min_scans=2) is None  # one scan up to the planning scan
    assert recurrence_task(_memory_case([8.0, 6.0, 6.0, 6.5], [0.0, 40.0, 90.0, 200.0])) is None  # no progression
    assert recurrence_task(_memory_case([8.0, 6.0, 6.0, 9.0], [0.0, 40.0, 90.0, 200.0], None)) is None  # no RT
