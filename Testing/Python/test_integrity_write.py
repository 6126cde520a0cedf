"""Fault injection on writing (issue 19 items 2, 7, 8, 9): a full disk (a child process whose file size limit is
RLIMIT_FSIZE with SIGXFSZ ignored, so writes fail with EFBIG), SIGTERM and SIGKILL mid-write (a child whose image
writer pauses after writing), two writers to one --out, an unwritable folder and an output path that is a folder.
Nothing half-written ever replaces a destination, and a dead run's temporaries are removed by the next write."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE_CASE
from gliomaforecast.cli import main
from gliomaforecast.errors import InputError
from gliomaforecast.geometry import Grid
from gliomaforecast.io.images import atomic_output_dir, read_image, read_mask, write_image
from gliomaforecast.io.write_guard import remove_stale_temporaries

SAMPLE = SAMPLE_CASE.parent
GTV = SAMPLE / "d231_gtv.nii.gz"
_CHILD = textwrap.dedent("""
    import os, resource, signal, sys, time
    mode, value = sys.argv[1].split("=", 1)
    if mode == "fsize":  # the disk 'fills' at this many bytes per file: writes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(value), int(value)))
    elif mode == "pause":  # every image write completes, then says so in the marker file and waits
        import SimpleITK as sitk
        write = sitk.WriteImage
        def paused(*args, **kwargs):
            write(*args, **kwargs)
            open(value, "w").close()
            time.sleep(300)
        sitk.WriteImage = paused
    from gliomaforecast.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _run_child(mode: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _CHILD, mode, *argv], capture_output=True, text=True, env=_env(),
                          timeout=300)


def _start_paused(marker: Path, *argv: str) -> subprocess.Popen:
    """A child running the command whose first image write completes and then pauses (until signalled)."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD, f"pause={marker}", *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_env())
    while not marker.exists():
        if child.poll() is not None:
            raise AssertionError(f"child ended before writing: {child.stderr.read()}")
        time.sleep(0.05)
    return child


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A folder with the sample patient's last GTV and FLAIR (as a score map), cropped to the tumour and 8 voxels
    around it (with the matching origin) so that each command takes a moment."""
    gtv, grid = read_mask(GTV)
    flair, _ = read_image(SAMPLE / "d231_flair.nii.gz")
    lo = np.maximum(np.argwhere(gtv).min(axis=0) - 8, 0)
    hi = np.minimum(np.argwhere(gtv).max(axis=0) + 9, gtv.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    crop = Grid(tuple(hi - lo), grid.spacing, tuple(grid.index_to_physical(lo)), grid.direction)
    write_image(tmp_path / "gtv.nii.gz", gtv[box].astype(np.uint8), crop)
    write_image(tmp_path / "score.nii.gz", flair[box], crop)
    return tmp_path


@pytest.mark.parametrize("limit", [0, 4096, 40_000])
def test_full_disk_never_replaces_a_good_file(work: Path, limit: int) -> None:
    """sdf on a full disk used to print 'wrote', exit 0 and replace a good file with a truncated one."""
    assert main(["sdf", "--mask", str(work / "gtv.nii.gz"), "--out", str(work / "p.nii.gz")]) == 0
    good = (work / "p.nii.gz").read_bytes()
    before = _listing(work)
    done = _run_child(f"fsize={limit}", "sdf", "--mask", str(work / "gtv.nii.gz"), "--out", str(work / "p.nii.gz"))
    assert done.returncode == 2
    line = _one_line(done.stderr)
    assert "p.nii.gz: output:" in line and ("File too large" in line or "incomplete" in line)
    assert (work / "p.nii.gz").read_bytes() == good
    assert _listing(work) == before  # no temporary left behind


@pytest.mark.parametrize("command,limit", [("forecast", 200_000), ("growth", 1000), ("growth", 20_000),
                                           ("ctv", 1000)])
def test_full_disk_folder_commands_are_one_line(work: Path, command: str, limit: int) -> None:
    """forecast/growth/ctv on a full disk: one line, exit 2, no output folder and no temporary left."""
    out = work / "out"
    argv = {"forecast": [str(SAMPLE_CASE), "--day", "300", "--forecaster", "persistence", "--samples", "4"],
            "growth": [str(SAMPLE_CASE), "--day", "300", "--n-bootstrap", "2"],
            "ctv": ["--gtv", str(work / "gtv.nii.gz"), "--score", str(work / "score.nii.gz")]}[command]
    before = _listing(work)
    done = _run_child(f"fsize={limit}", command, *argv, "--out", str(out))
    assert done.returncode == 2, done.stderr
    line = _one_line(done.stderr)
    assert f"gliomaforecast {command}: error: {out}" in line and "disk full" in line
    assert _listing(work) == before


def test_sigterm_mid_write_leaves_nothing(work: Path) -> None:
    """SIGTERM used to leave hidden partial folders and files; now it is handled like Ctrl-C."""
    before = _listing(work)
    child = _start_paused(work / "marker", "ctv", "--gtv", str(work / "gtv.nii.gz"), "--out", str(work / "out"))
    assert any(name.startswith(".out.tmp-") for name in _listing(work))  # mid-write: the temporary folder exists
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130 and "interrupted" in err
    assert _listing(work) == before | {"marker"}


@pytest.mark.parametrize("command", ["ctv", "sdf"])
def test_killed_writer_debris_is_removed_by_the_next_write(work: Path, command: str) -> None:
    """SIGKILL cannot be handled: its temporaries stay until the next write to the same place removes them."""
    out = work / ("out" if command == "ctv" else "p.nii.gz")
    argv = (["ctv", "--gtv", str(work / "gtv.nii.gz"), "--out", str(out)] if command == "ctv"
            else ["sdf", "--mask", str(work / "gtv.nii.gz"), "--out", str(out)])
    before = _listing(work)
    child = _start_paused(work / "marker", *argv)
    child.kill()
    child.communicate(timeout=60)
    debris = _listing(work) - before - {"marker"}
    assert any(f".{out.name}.tmp-{child.pid}-" in name for name in debris), debris
    assert main(argv) == 0
    assert _listing(work) == before | {"marker", out.name}


def test_concurrent_writer_is_refused(work: Path, capsys) -> None:
    """Two runs to one --out used to both exit 0 and leave one mixed folder: the second is refused with one line."""
    out = work / "out"
    argv = ["ctv", "--gtv", str(work / "gtv.nii.gz"), "--out", str(out)]
    child = _start_paused(work / "marker", *argv)
    try:
        assert main(argv) == 2
        line = _one_line(capsys.readouterr().err)
        assert f"{out}: output: another gliomaforecast run is writing this folder" in line
        assert not out.exists()
    finally:
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=60)
    assert child.returncode == 130 and not out.exists()
    assert main(argv) == 0 and sorted(_listing(out)) == ["ctv_standard.nii.gz", "targets.json", "targets.seg.nrrd"]


def test_folder_filled_meanwhile_is_not_merged(tmp_path: Path) -> None:
    """Without --overwrite, a folder another writer filled while this run worked is refused, never merged into."""
    out = tmp_path / "out"
    with pytest.raises(InputError, match="filled by another run meanwhile"):
        with atomic_output_dir(out, existing="refuse") as tmp:
            (tmp / "mine.txt").write_text("mine")
            out.mkdir()
            (out / "theirs.txt").write_text("theirs")
    assert _listing(out) == {"theirs.txt"}
    assert _listing(tmp_path) == {"out"}


@pytest.mark.parametrize("one_step", [True, False])
def test_replace_swaps_the_whole_folder(tmp_path: Path, monkeypatch, one_step: bool) -> None:
    """--overwrite: the old folder is replaced whole (one renameat2 exchange on Linux; else two renames)."""
    if not one_step:
        import gliomaforecast.io.images
        monkeypatch.setattr(gliomaforecast.io.images, "exchange", lambda a, b: False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old run")
    with atomic_output_dir(out, existing="replace") as tmp:
        (tmp / "new.txt").write_text("new run")
    assert _listing(out) == {"new.txt"} and _listing(tmp_path) == {"out"}


def test_old_folder_of_a_killed_replace_is_put_back(tmp_path: Path) -> None:
    """A replace killed between setting the old folder aside and renaming the new one in: the next write puts the
    old folder back (and removes the dead run's half-built one)."""
    pid = _dead_pid()
    aside = tmp_path / f".out.old-{pid}-abc" / "out"
    aside.mkdir(parents=True)
    (aside / "forecast.json").write_text("{}")
    (tmp_path / f".out.tmp-{pid}-def").mkdir()
    removed = remove_stale_temporaries(tmp_path)
    assert len(removed) == 2
    assert _listing(tmp_path) == {"out"} and _listing(tmp_path / "out") == {"forecast.json"}


def test_live_writers_temporaries_are_kept(tmp_path: Path) -> None:
    mine = tmp_path / f".out.tmp-{os.getpid()}-abc"
    mine.mkdir()
    assert remove_stale_temporaries(tmp_path) == [] and mine.is_dir()


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_unwritable_folder_is_one_line(work: Path, capsys, monkeypatch, code: int) -> None:
    """A read-only folder (simulated: tests may run as root) used to be a PermissionError traceback."""
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(work))
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    assert main(["sdf", "--mask", str(work / "gtv.nii.gz"), "--out", str(work / "p.nii.gz")]) == 2
    assert os.strerror(code) in _one_line(capsys.readouterr().err)
    assert main(["ctv", "--gtv", str(work / "gtv.nii.gz"), "--out", str(work / "out")]) == 2
    assert os.strerror(code) in _one_line(capsys.readouterr().err)
    assert not (work / "p.nii.gz").exists() and not (work / "out").exists()


def test_output_path_that_is_a_folder(work: Path, capsys) -> None:
    (work / "p.nii.gz").mkdir()
    assert main(["sdf", "--mask", str(work / "gtv.nii.gz"), "--out", str(work / "p.nii.gz")]) == 2
    assert "p.nii.gz: output: is a folder" in _one_line(capsys.readouterr().err)
    assert not any((work / "p.nii.gz").iterdir())


def test_written_images_are_verified_before_the_rename(work: Path, monkeypatch) -> None:
    """A writer that reports success but leaves a short file (ITK's NIfTI writer on a full disk only prints a
    warning) never gets its file renamed into place."""
    import SimpleITK as sitk
    write = sitk.WriteImage

    def short(image, path, *args, **kwargs):
        write(image, path, *args, **kwargs)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(sitk, "WriteImage", short)
    before = _listing(work)
    assert main(["sdf", "--mask", str(work / "gtv.nii.gz"), "--out", str(work / "p.nii.gz")]) == 2
    assert _listing(work) == before


def test_outputs_stay_byte_for_byte_repeatable(work: Path) -> None:
    gtv_bytes = (work / "gtv.nii.gz").read_bytes()
    for name in ("a", "b"):
        assert main(["ctv", "--gtv", str(work / "gtv.nii.gz"), "--score", str(work / "score.nii.gz"),
                     "--out", str(work / name)]) == 0
    for name in _listing(work / "a"):
        assert (work / "a" / name).read_bytes() == (work / "b" / name).read_bytes()
    assert (work / "gtv.nii.gz").read_bytes() == gtv_bytes  # the input is untouched
