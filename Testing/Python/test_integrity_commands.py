"""Each command on damaged copies of the sample patient (issue 19 items 1, 5, 6, 9): one line, exit 2, nothing
written; evaluate scores the good patients and lists the unreadable one in skipped.csv with the reason."""

from __future__ import annotations

import csv
import json
import shutil
import threading
from pathlib import Path

import pytest

from conftest import SAMPLE_CASE
from gliomaforecast.cli import main
from gliomaforecast.io.write_guard import output_lock

SAMPLE = SAMPLE_CASE.parent


def _copy(root: Path, name: str) -> Path:
    folder = Path(shutil.copytree(SAMPLE, root / name))
    manifest = json.loads((folder / "case.json").read_text())
    manifest["patient_id"] = name
    (folder / "case.json").write_text(json.dumps(manifest))
    return folder


def _truncate(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _one_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_evaluate_skips_an_unreadable_patient_and_scores_the_others(tmp_path: Path, capsys) -> None:
    """An unreadable patient used to abort the whole run with a traceback (the good patients' scores lost)."""
    cohort = tmp_path / "cohort"
    _copy(cohort, "VP-GOOD")
    bad = _copy(cohort, "VP-BAD")
    _truncate(bad / "d231_flair.nii.gz")
    out = tmp_path / "eval"
    code = main(["evaluate", str(cohort), "--out", str(out), "--forecaster", "persistence", "--jobs", "1",
                 "--samples", "2", "--n-bootstrap", "0"])
    assert code == 0, capsys.readouterr().err
    with open(out / "patients.csv") as fh:
        scored = {row["patient_id"] for row in csv.DictReader(fh)}
    with open(out / "skipped.csv") as fh:
        skipped = list(csv.DictReader(fh))
    assert scored == {"VP-GOOD"}
    assert [row["patient_id"] for row in skipped] == ["VP-BAD"]
    assert "d231_flair.nii.gz" in skipped[0]["reason"] and "damaged gzip stream" in skipped[0]["reason"]


def test_evaluate_keeps_the_others_when_a_patient_raises_unexpectedly(tmp_path: Path, monkeypatch) -> None:
    """An error type the scoring does not expect (here an EOFError) skips that patient, not the run."""
    from gliomaforecast.evaluation import cohort as cohort_evaluation
    cohort = tmp_path / "cohort"
    _copy(cohort, "VP-GOOD")
    _copy(cohort, "VP-ODD")
    evaluate_patient = cohort_evaluation.evaluate_patient

    def flaky(path, settings):
        if Path(path).parent.name == "VP-ODD":
            raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        return evaluate_patient(path, settings)
    monkeypatch.setattr(cohort_evaluation, "evaluate_patient", flaky)
    settings = cohort_evaluation.EvaluationSettings(("persistence",), seed=1, samples=2, n_bootstrap=0)
    result = cohort_evaluation.evaluate_cohort(cohort, settings, jobs=1)
    assert {r["patient_id"] for r in result.rows} == {"VP-GOOD"}
    assert [s["patient_id"] for s in result.skipped] == ["VP-ODD"]
    assert "EOFError: Compressed file ended" in result.skipped[0]["reason"]


@pytest.mark.parametrize("command", ["forecast", "growth"])
def test_a_truncated_gtv_in_a_case_is_one_line(tmp_path: Path, capsys, command: str) -> None:
    """The same truncated mask in a case used to give a forecast with CTVs built on the wrong GTV, exit 0."""
    case = _copy(tmp_path, "VP-T")
    _truncate(case / "d231_gtv.nii.gz", 0.3)
    out = tmp_path / "out"
    extra = ["--forecaster", "persistence", "--samples", "2"] if command == "forecast" else ["--n-bootstrap", "0"]
    assert main([command, str(case / "case.json"), "--day", "300", "--out", str(out), *extra]) == 2
    line = _one_line(capsys)
    assert "d231_gtv.nii.gz: timepoints[3].gtv: cannot read image" in line
    assert not out.exists()


@pytest.mark.parametrize("command,day", [("growth", "1e5"), ("forecast", "5e4"), ("forecast", "4000"),
                                         ("growth", "-4000")])
def test_horizon_beyond_ten_years_is_refused_before_writing(tmp_path: Path, capsys, command: str, day: str) -> None:
    """growth --day 1e5 used to write its folder, then crash with exit 1; forecast --day 5e4 was a traceback.
    The sample's last scan is day 231: days beyond 231 + 3650 (or before 0 - 3650) are refused."""
    out = tmp_path / "out"
    extra = ["--forecaster", "persistence", "--samples", "2"] if command == "forecast" else ["--n-bootstrap", "0"]
    assert main([command, str(SAMPLE_CASE), "--day", day, "--out", str(out), *extra]) == 2
    line = _one_line(capsys)
    assert "--day: day" in line and "out of range" in line and "3881" in line
    assert not out.exists()


@pytest.mark.parametrize("command", ["forecast", "growth", "evaluate"])
def test_negative_seed_is_one_line(tmp_path: Path, capsys, command: str) -> None:
    target = str(SAMPLE.parent) if command == "evaluate" else str(SAMPLE_CASE)
    extra = ["--day", "300"] if command != "evaluate" else []
    assert main([command, target, *extra, "--seed", "-1", "--out", str(tmp_path / "out")]) == 2
    assert "--seed: must be a non-negative integer, got -1" in _one_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["forecast", "evaluate"])
def test_second_writer_to_a_locked_folder_is_refused_before_any_work(tmp_path: Path, capsys, command: str) -> None:
    """While another writer holds --out (here a thread of this program; test_integrity_write covers a second
    process), forecast and evaluate are refused with one line and leave the folder to it."""
    out = tmp_path / "out"
    held, release = threading.Event(), threading.Event()

    def writer() -> None:
        with output_lock(out):
            held.set()
            release.wait()
    thread = threading.Thread(target=writer)
    thread.start()
    held.wait()
    try:
        argv = ([command, str(SAMPLE_CASE), "--day", "300", "--forecaster", "persistence"] if command == "forecast"
                else [command, str(SAMPLE.parent), "--forecaster", "persistence", "--jobs", "1"])
        assert main([*argv, "--out", str(out)]) == 2
        assert f"{out}: output: another task of this program is writing this folder" in _one_line(capsys)
        assert not out.exists()
    finally:
        release.set()
        thread.join()
    assert not (tmp_path / ".out.lock").exists()
