"""Issue 31, item 1 and the --out / leaderboard cases: ``--overwrite`` never removes a folder that holds or lies
inside an input (the case's listed files, DICOM references, cohort folders), nor the current folder, the home folder
or a root; an empty or symlinked ``--out`` is one line; ``leaderboard --update`` keeps a symlink, refuses a Latin-1
file in one line and escapes names that would break the table or its markers. Every refusal: exit 2, one stderr
line naming the file and field, every file under the test folder byte-identical (nothing written, no temporary)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from conftest import ball
from dicom_sample_data import write_mr_series
from gliomaforecast.cli import main
from gliomaforecast.errors import InputError
from gliomaforecast.evaluation.leaderboard import leaderboard_markdown, replace_block
from gliomaforecast.geometry import Grid
from gliomaforecast.io.images import check_output_dir, write_image

GRID = Grid.identity((12, 20, 20), (2.0, 2.0, 2.0))


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file (bytes), link (target) and folder under ``root``, hidden ones included."""
    out: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = path.read_bytes()
    return out


def one_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    return lines[0]


def case_with_mri_folder(folder: Path, patient_id: str = "T-1") -> Path:
    """A three-scan case in ``folder`` whose FLAIRs and dose lie under ``folder/mri`` and GTVs under ``folder/gtv``
    (so ``growth``, which reads only the GTVs, never opens a file of ``mri``); returns case.json."""
    mri = folder / "mri"
    mri.mkdir(parents=True)
    (folder / "gtv").mkdir()
    rng = np.random.default_rng(0)
    tps = []
    for i in range(3):
        write_image(mri / f"d{i}_flair.nii.gz", rng.normal(100, 5, GRID.shape).astype(np.float32), GRID)
        gtv = ball(GRID.shape, (6, 10, 10), 4.0 + 2.0 * i, GRID.spacing).astype(np.uint8)
        write_image(folder / "gtv" / f"d{i}.nii.gz", gtv, GRID)
        tps.append({"day": 60 * i, "images": {"flair": f"mri/d{i}_flair.nii.gz"}, "gtv": f"gtv/d{i}.nii.gz"})
    write_image(mri / "dose.nii.gz", np.full(GRID.shape, 2.0, np.float32), GRID)
    manifest = {"schema": "gliomaforecast.case/1", "patient_id": patient_id, "rt_start_day": 21,
                "timepoints": tps, "dose": "mri/dose.nii.gz"}
    (folder / "case.json").write_text(json.dumps(manifest))
    return folder / "case.json"


def gtv_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "gtv.nii.gz"
    write_image(path, ball(GRID.shape, (6, 10, 10), 6.0, GRID.spacing).astype(np.uint8), GRID)
    return path


# --- folders that hold or lie inside an input ------------------------------------------------------------------


def test_growth_out_on_the_folder_of_the_mris_is_refused(tmp_path: Path, capsys) -> None:
    case = case_with_mri_folder(tmp_path)
    before = snapshot(tmp_path)
    assert main(["growth", str(case), "--out", str(tmp_path / "mri"), "--overwrite", "--n-bootstrap", "2"]) == 2
    line = one_line(capsys)
    assert f"{tmp_path / 'mri'}: output: holds an input" in line and "refusing to replace it" in line
    assert snapshot(tmp_path) == before


def test_growth_out_on_an_unrelated_folder_is_still_replaced(tmp_path: Path, capsys) -> None:
    case = case_with_mri_folder(tmp_path / "case")
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old run")
    assert main(["growth", str(case), "--out", str(out), "--overwrite", "--n-bootstrap", "2"]) == 0, capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["growth.json", "growth.png"]


def test_evaluate_out_inside_the_cohort_is_refused(tmp_path: Path, capsys) -> None:
    cohort = tmp_path / "cohort"
    case_with_mri_folder(cohort / "p1")
    before = snapshot(tmp_path)
    for out in (cohort / "p1" / "mri", cohort / "p1", cohort):
        argv = ["evaluate", str(cohort), "--out", str(out), "--overwrite", "--forecaster", "persistence", "--jobs", "1"]
        assert main(argv) == 2
        line = one_line(capsys)
        assert f"{out}: output: " in line and "refusing to replace it" in line
        assert snapshot(tmp_path) == before


def test_evaluate_protects_files_a_case_lists_outside_the_cohort(tmp_path: Path, capsys) -> None:
    shared = tmp_path / "shared"
    case = case_with_mri_folder(shared)
    cohort = tmp_path / "cohort"
    (cohort / "p1").mkdir(parents=True)
    manifest = json.loads(case.read_text())
    for tp in manifest["timepoints"]:  # absolute paths into shared/mri, outside the cohort
        tp["images"]["flair"] = str(shared / tp["images"]["flair"])
        tp["gtv"] = str(shared / tp["gtv"])
    manifest["dose"] = str(shared / manifest["dose"])
    (cohort / "p1" / "case.json").write_text(json.dumps(manifest))
    before = snapshot(tmp_path)
    argv = ["evaluate", str(cohort), "--out", str(shared), "--overwrite", "--forecaster", "persistence", "--jobs", "1"]
    assert main(argv) == 2
    assert "holds an input" in one_line(capsys)
    assert snapshot(tmp_path) == before


def test_forecast_out_holding_the_dicom_reference_is_refused(tmp_path: Path, capsys) -> None:
    case = case_with_mri_folder(tmp_path / "case")
    out = tmp_path / "OUT"
    write_mr_series(out / "planning", np.zeros(GRID.shape), GRID, modality="flair", day=0, study_uid=generate_uid(),
                    frame_uid=generate_uid(), patient_id="T-1")
    (out / "report.html").write_text("an earlier run")
    before = snapshot(tmp_path)
    argv = ["forecast", str(case), "--day", "150", "--forecaster", "persistence", "--samples", "2", "--out", str(out),
            "--overwrite", "--dicom-reference", str(out / "planning")]
    assert main(argv) == 2
    line = one_line(capsys)
    assert f"{out}: output: holds an input ({out / 'planning'}" in line
    assert snapshot(tmp_path) == before


def test_ctv_out_holding_its_gtv_is_refused(tmp_path: Path, capsys) -> None:
    gtv = gtv_file(tmp_path / "in")
    before = snapshot(tmp_path)
    assert main(["ctv", "--gtv", str(gtv), "--out", str(tmp_path / "in"), "--overwrite"]) == 2
    assert "holds an input" in one_line(capsys)
    assert snapshot(tmp_path) == before


# --- empty, current, home, root, symlink -----------------------------------------------------------------------


@pytest.mark.parametrize("overwrite", [["--overwrite"], []])
def test_empty_out_is_an_error_not_the_current_folder(tmp_path: Path, capsys, monkeypatch, overwrite) -> None:
    gtv = gtv_file(tmp_path / "in")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_:  # argparse refuses it: the same one line and exit 2 as any bad flag
        main(["ctv", "--gtv", str(gtv), "--out", "", *overwrite])
    assert exit_.value.code == 2
    assert "argument --out: is empty (an unset shell variable?); give a folder name" in one_line(capsys)
    assert snapshot(tmp_path) == before
    with pytest.raises(InputError, match="--out: is empty"):
        check_output_dir("", "replace")


@pytest.mark.parametrize("out", [".", "..", "sub/.."])
def test_out_that_is_or_holds_the_current_folder_is_refused(tmp_path: Path, capsys, monkeypatch, out) -> None:
    gtv = gtv_file(tmp_path / "in")
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    assert main(["ctv", "--gtv", str(gtv), "--out", out, "--overwrite"]) == 2
    assert "is or holds the current folder; refusing to replace it" in one_line(capsys)
    assert snapshot(tmp_path) == before


def test_an_empty_current_folder_is_not_renamed_over_without_overwrite(tmp_path: Path, capsys, monkeypatch) -> None:
    gtv = gtv_file(tmp_path / "in")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    inode = work.stat().st_ino
    assert main(["ctv", "--gtv", str(gtv), "--out", "."]) == 2
    assert "is or holds the current folder" in one_line(capsys)
    assert work.stat().st_ino == inode and not any(work.iterdir())


def test_out_on_the_home_folder_is_refused(tmp_path: Path, capsys, monkeypatch) -> None:
    gtv = gtv_file(tmp_path / "in")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("# mine")
    monkeypatch.setenv("HOME", str(home))
    before = snapshot(tmp_path)
    for out in (home, tmp_path):  # the home folder, and a folder holding it
        assert main(["ctv", "--gtv", str(gtv), "--out", str(out), "--overwrite"]) == 2
        assert "is or holds the home folder; refusing to replace it" in one_line(capsys)
        assert snapshot(tmp_path) == before


def test_out_on_a_filesystem_root_is_refused(tmp_path: Path, capsys) -> None:
    with pytest.raises(InputError, match="is a filesystem root; refusing to replace it"):
        check_output_dir("/", "replace")  # checked first: the command line below must stop at the same check
    gtv = gtv_file(tmp_path / "in")
    assert main(["ctv", "--gtv", str(gtv), "--out", "/", "--overwrite"]) == 2
    assert "/: output: is a filesystem root" in one_line(capsys)


@pytest.mark.parametrize("filled", [True, False])
def test_symlinked_out_is_one_line_and_leaves_no_temporary(tmp_path: Path, capsys, filled: bool) -> None:
    gtv = gtv_file(tmp_path / "in")
    real = tmp_path / "real"
    real.mkdir()
    if filled:
        (real / "keep.txt").write_text("mine")
    link = tmp_path / "out"
    link.symlink_to(real)
    before = snapshot(tmp_path)
    assert main(["ctv", "--gtv", str(gtv), "--out", str(link), "--overwrite"]) == 2
    assert f"{link}: output: is a symbolic link (to {real}); give the folder itself as --out" in one_line(capsys)
    assert snapshot(tmp_path) == before  # the link kept, the folder as it was, no .out.tmp-* beside it


# --- leaderboard ------------------------------------------------------------------------------------------------


def summary_with(name: str) -> dict:
    row = {"n": 1, "rmse": 0.1, "bce": 0.2, "ece": 0.3, "dice_tumor": 0.5, "hd95_mm": 4.0}
    return {"n_cases": 1, "gap_bins": ["0-90"],
            "settings": {"margin_mm": 15.0, "seed": 0, "samples": 2, "n_bootstrap": 2},
            "forecasters": {name: {"gap_bins": {"0-90": row}, "coverage": {}}}}


def page(folder: Path) -> Path:
    path = folder / "board.md"
    path.write_text("intro\n<!-- leaderboard:start -->\nold\n<!-- leaderboard:end -->\nafter\n")
    return path


def test_leaderboard_update_through_a_symlink_updates_its_target(tmp_path: Path, capsys) -> None:
    (tmp_path / "summary.json").write_text(json.dumps(summary_with("persistence")))
    target = page(tmp_path)
    link = tmp_path / "link.md"
    link.symlink_to(target.name)
    assert main(["leaderboard", str(tmp_path / "summary.json"), "--update", str(link)]) == 0
    assert f"(link to {target})" in capsys.readouterr().out
    assert link.is_symlink() and os.readlink(link) == "board.md"
    text = target.read_text()
    assert "| persistence | 0-90 | 1 |" in text and "old" not in text and text.endswith("end -->\nafter\n")


def test_leaderboard_update_of_a_latin1_file_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "summary.json").write_text(json.dumps(summary_with("persistence")))
    board = tmp_path / "board.md"
    board.write_bytes("Résumé\n<!-- leaderboard:start -->\n<!-- leaderboard:end -->\n".encode("latin-1"))
    before = snapshot(tmp_path)
    assert main(["leaderboard", str(tmp_path / "summary.json"), "--update", str(board)]) == 2
    assert f"{board}: not UTF-8 text (byte 0xe9 at offset 1); save it as UTF-8" in one_line(capsys)
    assert snapshot(tmp_path) == before


def test_forecaster_names_cannot_break_the_table_or_its_markers(tmp_path: Path, capsys) -> None:
    evil = "a | b <!-- leaderboard:end -->\n| x"
    table = leaderboard_markdown(summary_with(evil))
    row = next(line for line in table.splitlines() if "0-90" in line)
    assert row.startswith("| a \\| b &lt;!-- leaderboard:end --&gt; \\| x | 0-90 | 1 |")
    assert row.replace("\\|", "").count("|") == 9  # the table's own 8 columns, nothing more
    (tmp_path / "summary.json").write_text(json.dumps(summary_with(evil)))
    board = page(tmp_path)
    for _ in range(2):  # the second update still finds its markers
        assert main(["leaderboard", str(tmp_path / "summary.json"), "--update", str(board)]) == 0
    text = board.read_text()
    assert text.count("<!-- leaderboard:") == 2 and text.endswith("<!-- leaderboard:end -->\nafter\n")


def test_leaderboard_marker_names_and_blocks_are_checked(tmp_path: Path, capsys) -> None:
    with pytest.raises(ValueError, match="must be letters, digits"):
        replace_block("<!-- leaderboard:start x -->", "t\n", "x --> <!--")
    with pytest.raises(ValueError, match="would hold a leaderboard marker"):
        replace_block("<!-- leaderboard:start -->\n<!-- leaderboard:end -->", "<!-- leaderboard:end -->\n")
    (tmp_path / "summary.json").write_text(json.dumps(summary_with("persistence")))
    board = page(tmp_path)
    before = snapshot(tmp_path)
    assert main(["leaderboard", str(tmp_path / "summary.json"), "--update", str(board), "--name", "a b"]) == 2
    assert f"{board}: leaderboard name 'a b' must be letters, digits" in one_line(capsys)
    assert snapshot(tmp_path) == before
