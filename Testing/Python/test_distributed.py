"""``evaluate --scheduler``: patients as tasks on a dask.distributed LocalCluster of 2 worker processes give the same
files as ``--jobs 2``, also when a worker is killed mid-run; a bad or unreachable scheduler, or a worker that cannot
see the cohort, is one line and exit 2 with nothing written (issue 33, docs/scaling.md)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

from gliomaforecast import scheduling  # noqa: E402
from gliomaforecast.cli import main  # noqa: E402
from gliomaforecast.evaluation.cohort import EvaluationSettings, evaluate_cohort, write_results  # noqa: E402
from gliomaforecast.evaluation.leaderboard import timing_markdown  # noqa: E402
from test_evaluate import _patient  # noqa: E402

FILES = ["patients.csv", "skipped.csv", "summary.json", "boxplots.png", "calibration_persistence.png"]
ARGS = ["--forecaster", "persistence", "--seed", "1", "--n-bootstrap", "5"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six patients: four scored, one with a single scan (skipped by the protocol), one whose scan is missing (its
    skip row comes from the worker)."""
    root = tmp_path_factory.mktemp("distributed") / "cohort"
    _patient(root, "VP-B", [0, 50, 130], [5.0, 6.0, 10.0], [(5, 10, 10), (5, 10, 10), (5, 17, 17)], True)
    _patient(root, "VP-A", [0, 40, 90, 500], [5.0, 6.0, 7.0, 9.0], [(5, 14, 14)] * 3 + [(5, 16, 16)], False)
    _patient(root, "VP-C", [0], [5.0], [(5, 11, 11)], False)
    _patient(root, "VP-D", [0, 60], [4.0, 6.0], [(5, 12, 12), (5, 13, 13)], True)
    _patient(root, "VP-E", [0, 30, 200], [6.0, 6.0, 8.0], [(5, 15, 15)] * 3, False)
    _patient(root, "VP-F", [0, 70], [5.0, 7.0], [(5, 14, 14)] * 2, False)
    (root / "VP-F" / "d0_flair.nii.gz").unlink()
    return root


@pytest.fixture(scope="module")
def baseline(cohort: Path) -> Path:
    """The outputs of ``--jobs 2``."""
    out = cohort.parent / "jobs2"
    assert main(["evaluate", str(cohort), *ARGS, "--jobs", "2", "--out", str(out)]) == 0
    return out


def _same_files(out: Path, baseline: Path) -> None:
    for name in FILES:
        assert (out / name).read_bytes() == (baseline / name).read_bytes(), name
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, "timings.json"])


def test_local_cluster_matches_jobs(cohort: Path, baseline: Path, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    out = tmp_path / "local2"
    assert main(["evaluate", str(cohort), *ARGS, "--scheduler", "local:2", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    _same_files(out, baseline)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["forecasters"]["persistence"]["n_scored"] == 4
    assert [s["patient_id"] for s in summary["skipped"]] == ["VP-C", "VP-F"]
    expected = {"A": "1 scored, 0 skipped", "C": "0 scored, 1 skipped", "F": "0 scored, 1 skipped"}
    assert sorted(lines[:-1]) == [f"VP-{p}: {expected.get(p, expected['A'])}" for p in "ABCDEF"]  # as each finishes
    assert len(lines) == 7 and "on 2 workers of local:2" in lines[-1]
    timings = json.loads((out / "timings.json").read_text())
    run = timings["run"]
    assert run["scheduler"] == "local:2" and run["workers"] == 2 and run["jobs"] == 2
    assert "wall with 2 jobs (2 workers of local:2) on" in timing_markdown(timings)
    assert all(t["cpu_seconds"] > 0 for t in timings["timings"])  # the workers' own CPU time


def _kill_a_busy_worker(killed: list[str], message: str) -> None:
    """Progress callback: at the first finished patient, kill (os._exit) a worker that holds a patient still to do."""
    if killed:
        return
    client = distributed.default_client()
    busy = {worker: keys for worker, keys in client.processing().items() if keys}
    assert busy, "no patient left running when the first one finished"
    victim = sorted(busy, key=lambda w: -len(busy[w]))[0]
    killed.append(victim)
    client.run(os._exit, 1, workers=[victim], on_error="ignore")


def test_killed_worker_has_its_patients_rerun(cohort: Path, baseline: Path, tmp_path: Path) -> None:
    killed: list[str] = []
    settings = EvaluationSettings(("persistence",), seed=1, n_bootstrap=5)
    result = evaluate_cohort(
        cohort, settings, progress=lambda msg: _kill_a_busy_worker(killed, msg), scheduler="local:2"
    )
    assert len(killed) == 1
    out = tmp_path / "killed"
    out.mkdir()
    write_results(result, out)
    _same_files(out, baseline)


def test_unreachable_scheduler_is_one_line(cohort: Path, tmp_path: Path, capsys) -> None:
    before = sorted(tmp_path.iterdir())
    start = time.perf_counter()
    code = main(["evaluate", str(cohort), *ARGS, "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "o")])
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "tcp://127.0.0.1:9" in err[0] and "--scheduler" in err[0], err
    assert seconds < 30
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--scheduler", "local:0"], "local:N needs a whole number of workers >= 1"),
        (["--scheduler", "local:x"], "local:N needs a whole number of workers >= 1"),
        (["--scheduler", " "], "is empty"),
        (["--scheduler", "local:2", "--jobs", "2"], "cannot be combined with --jobs"),
    ],
)
def test_bad_scheduler_is_one_line(extra: list[str], says: str, cohort: Path, tmp_path: Path, capsys) -> None:
    before = sorted(tmp_path.iterdir())
    code = main(["evaluate", str(cohort), *ARGS, *extra, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("gliomaforecast evaluate: error: --scheduler: "), err
    assert says in err[0]
    assert sorted(tmp_path.iterdir()) == before


def test_api_refuses_jobs_with_a_scheduler(cohort: Path) -> None:
    with pytest.raises(ValueError, match="^jobs: cannot be combined with a scheduler"):
        evaluate_cohort(cohort, EvaluationSettings(("persistence",)), jobs=2, scheduler="local:2")


def test_worker_that_cannot_see_the_cohort_is_named(
    cohort: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run = distributed.Client.run
    blind: list[str] = []

    def run_one_blind(self, function, *args, **kwargs):  # the last worker answers that it sees no such folder
        seen = real_run(self, function, *args, **kwargs)
        if function is scheduling._sees:
            blind.append(max(seen))
            seen[blind[0]] = False
        return seen

    monkeypatch.setattr(distributed.Client, "run", run_one_blind)
    before = sorted(tmp_path.iterdir())
    code = main(["evaluate", str(cohort), *ARGS, "--scheduler", "local:2", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"worker {blind[0]} cannot read this folder" in err[0] and str(cohort) in err[0]
    assert sorted(tmp_path.iterdir()) == before


def test_worker_that_cannot_import_is_named(
    cohort: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers' check runs a function of a module that only this process has loaded (from a folder on no
    worker's path): like a worker without the package, each fails to load it."""
    source = tmp_path / "gf_only_here.py"
    source.write_text("def sees(folder):\n    return True\n")
    spec = importlib.util.spec_from_file_location("gf_only_here", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "gf_only_here", module)  # pickled by reference, as the package's functions
    monkeypatch.setattr(scheduling, "_sees", module.sees)
    code = main(["evaluate", str(cohort), *ARGS, "--scheduler", "local:2", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "cannot run gliomaforecast" in err[0] and "gf_only_here" in err[0] and "worker tcp://" in err[0]
    assert not (tmp_path / "o").exists()


def _worker_settings() -> tuple[str | None, str | None, bool]:
    import dask

    return (
        os.environ.get("MALLOC_TRIM_THRESHOLD_"),
        os.environ.get("OMP_NUM_THREADS"),
        bool(dask.config.get("distributed.worker.profile.enabled")),
    )


def test_local_workers_keep_glibc_adaptive_and_run_unprofiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """dask's nanny sets MALLOC_TRIM_THRESHOLD_ by default, which turns glibc's adaptive mmap threshold off (+37 %
    wall time on the benchmark evaluation); a LocalCluster of ours starts its workers without it and without the
    10 ms stack sampler, single-threaded, and leaves this process's dask settings as they were."""
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    import dask

    before = dask.config.get("distributed.nanny.pre-spawn-environ")
    with scheduling.open_client("local:1") as client:
        (settings,) = client.run(_worker_settings).values()
    assert settings == (None, "1", False)
    assert dask.config.get("distributed.nanny.pre-spawn-environ") == before
