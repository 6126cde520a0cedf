"""Virtual cohort generation on dask.distributed (``gliomaforecast-train cohort|benchmark-cohort --scheduler``,
issue 33): a LocalCluster of 2 worker processes writes the same files byte for byte as ``--jobs 2``, also when a
worker is killed mid-run; an unreachable scheduler is one line, exit 2, nothing written."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

from gliomaforecast_training import cli  # noqa: E402
from gliomaforecast_training.cohort.cohort import generate_cohort  # noqa: E402

N, SEED, SPACING = 3, 5, 4.0  # the coarsest working grid the generator allows


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("jobs") / "cohort"
    generate_cohort(N, SEED, out, spacing=SPACING, follow_up="dense", jobs=2)
    return _hashes(out)


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        yield c


def _assert_same(out: Path, reference: dict[str, str]) -> None:
    got = _hashes(out)
    assert sorted(got) == sorted(reference)  # no leftover staging folder, no missing file
    assert got == reference
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp-")]


def test_scheduler_cohort_is_byte_identical_to_jobs_2(tmp_path, reference, cluster, capsys):
    out = tmp_path / "cohort"
    assert cli.main(["cohort", "--n", str(N), "--seed", str(SEED), "--out", str(out), "--spacing", str(SPACING),
                     "--follow-up", "dense", "--scheduler", cluster.scheduler_address, "--no-progress"]) == 0
    _assert_same(out, reference)


def test_a_worker_killed_mid_run_still_gives_the_same_cohort(tmp_path, reference, monkeypatch):
    from distributed import Client, LocalCluster

    out = tmp_path / "cohort"
    killed: list[tuple[str, bool]] = []
    real = distributed.as_completed

    def kill_after_first(futures, *a, **k):
        client = futures[0].client
        for i, future in enumerate(real(futures, *a, **k)):
            yield future
            if i == 0:  # one patient is done and in: kill a worker that is busy with another one
                busy = sorted(w for w, keys in client.processing().items() if keys)
                victim = busy[0] if busy else sorted(client.scheduler_info()["workers"])[0]
                killed.append((victim, bool(busy)))
                pid = client.run(os.getpid, workers=[victim])[victim]
                os.kill(pid, signal.SIGKILL)  # a LocalCluster: the worker is a process on this machine

    monkeypatch.setattr(distributed, "as_completed", kill_after_first)
    # a fresh cluster: the nanny restarts the killed worker, the scheduler reruns its task
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c, \
            Client(c) as client:
        generate_cohort(N, SEED, out, spacing=SPACING, follow_up="dense", client=client)
    assert killed and killed[0][1], killed  # a worker was killed while running a patient
    _assert_same(out, reference)


def test_explicit_jobs_with_scheduler_is_one_line(tmp_path, capsys):
    out = tmp_path / "c"
    assert cli.main(["benchmark-cohort", "--out", str(out), "--jobs", "2", "--scheduler", "local:2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--jobs" in err and "--scheduler" in err
    assert not out.exists()


def test_unreachable_scheduler_is_one_line_naming_it(tmp_path, capsys):
    out = tmp_path / "c"
    address = "tcp://127.0.0.1:9"  # discard port: nothing listens
    t = time.monotonic()
    assert cli.main(["cohort", "--n", "1", "--seed", "3", "--out", str(out), "--spacing", "4",
                     "--scheduler", address]) == 2
    assert time.monotonic() - t < 30
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--scheduler" in err and "127.0.0.1:9" in err
    assert list(tmp_path.iterdir()) == []


def test_a_worker_that_cannot_see_the_output_folder_is_named(tmp_path, cluster):
    from distributed import Client

    from gliomaforecast.errors import InputError

    with Client(cluster) as client:
        client.run(_hide_folder, str(tmp_path.resolve()))
        try:
            with pytest.raises(InputError, match="worker tcp://"):
                generate_cohort(1, 3, tmp_path / "c", spacing=SPACING, client=client)
        finally:
            client.run(_unhide_folder)
    assert not (tmp_path / "c").exists()


def test_a_worker_that_cannot_import_the_generator_is_named(tmp_path, cluster):
    from distributed import Client

    from gliomaforecast.errors import InputError

    with Client(cluster) as client:
        worker = sorted(client.scheduler_info()["workers"])[0]
        # hide the module on one worker: a None entry in sys.modules makes its import fail
        client.run(exec, "import sys; sys.modules['gliomaforecast_training.cohort.cohort'] = None", workers=[worker])
        try:
            with pytest.raises(InputError, match=f"worker {worker} cannot import"):
                generate_cohort(1, 3, tmp_path / "c", spacing=SPACING, client=client)
        finally:
            client.run(exec, "import sys; sys.modules.pop('gliomaforecast_training.cohort.cohort', None)",
                       workers=[worker])
    assert not (tmp_path / "c").exists()


_REAL_ISDIR = os.path.isdir


def _hide_folder(folder: str) -> None:
    """On a worker: ``os.path.isdir`` says False for ``folder`` (a worker without the shared filesystem)."""
    os.path.isdir = lambda p: False if os.path.realpath(p) == folder else _REAL_ISDIR(p)


def _unhide_folder() -> None:
    os.path.isdir = _REAL_ISDIR


def test_a_rerun_task_replaces_what_its_first_run_left(tmp_path):
    from gliomaforecast_training.cohort.cohort import _distributed_patient, make_follow_up, patient_seeds

    fu = make_follow_up("default", None, None)
    seed = patient_seeds(1, 3)[0]
    row = _distributed_patient(seed, tmp_path / "VP-0001", SPACING, "VP-0001", None, fu)
    first = _hashes(tmp_path / "VP-0001")
    (tmp_path / "VP-0001" / "half-written.nii.gz").write_bytes(b"\0")  # what a killed worker's run could leave
    assert _distributed_patient(seed, tmp_path / "VP-0001", SPACING, "VP-0001", None, fu) == row
    assert _hashes(tmp_path / "VP-0001") == first
    assert sorted(p.name for p in tmp_path.iterdir()) == [".staging", "VP-0001"]  # the client removes .staging
    assert list((tmp_path / ".staging").iterdir()) == []
