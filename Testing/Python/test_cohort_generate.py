"""Virtual patients on a tiny configuration (4 mm grid): manifests load, outputs are fixed by the seed,
labels/volumes are consistent, clinical spacing, and the gliomaforecast-train CLI."""

import json
from pathlib import Path

import numpy as np
import pytest

from gliomaforecast.io.case import load_case
from gliomaforecast_training import cli
from gliomaforecast_training.cohort.cohort import generate_cohort, generate_patient

SAMPLE = Path(__file__).resolve().parents[2] / "Resources" / "SampleData" / "sample_patient" / "case.json"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cohort") / "c"
    generate_cohort(2, 11, out, spacing=4.0)
    return out


def test_cohort_cases_load_and_match_the_index(cohort_dir):
    index = json.loads((cohort_dir / "cohort.json").read_text())
    assert index["schema"] == "gliomaforecast.cohort/1" and len(index["patients"]) == 2
    csv_lines = (cohort_dir / "cohort.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + sum(len(p["scans"]) for p in index["patients"])
    for entry in index["patients"]:
        case = load_case(cohort_dir / entry["case"])
        assert 3 <= len(case.timepoints) <= 6
        assert case.rt_start_day == entry["parameters"]["rt_start_day"]
        assert 14 <= case.rt_start_day <= 35 and case.days[0] == 0
        assert all(30 <= gap <= 400 for gap in np.diff(case.days[1:]))
        assert case.grid.spacing == (4.0, 4.0, 4.0)
        brain = case.brain_mask()
        dose = case.dose()
        for tp, row in zip(case.timepoints, entry["scans"]):
            gtv = case.gtv(tp)
            assert gtv.sum() * case.grid.voxel_volume_ml == pytest.approx(row["gtv_ml"])
            assert np.array_equal(gtv, np.isin(case.labels(tp), (1, 2, 3)))
            assert not gtv[~brain].any()
            flair = case.image(tp, "flair")
            assert flair[gtv].mean() > flair[brain & ~gtv].mean()  # the abnormality is hyperintense
            assert case.image(tp, "t1").max() > 0 and not case.image(tp, "t2")[~brain].any()
        gtv0 = case.gtv(case.timepoints[0])
        assert dose[gtv0].min() > 54.0 and dose.max() <= 60.0 + 1e-3  # 60 Gy to the target
        tissue = case.tissue("wm") + case.tissue("gm") + case.tissue("csf")
        assert np.allclose(tissue[brain], 1.0, atol=0.02) and not tissue[~brain].any()


def test_same_seed_gives_byte_identical_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    generate_patient(5, a, 4.0, n_followups=2)
    generate_patient(5, b, 4.0, n_followups=2)
    files_a, files_b = _files(a), _files(b)
    assert files_a == files_b and "case.json" in files_a
    generate_patient(6, tmp_path / "c", 4.0, n_followups=2)
    assert _files(tmp_path / "c")["case.json"] != files_a["case.json"]


def test_clinical_spacing_resamples_every_volume(tmp_path):
    generate_patient(5, tmp_path / "p", 4.0, n_followups=2, clinical_spacing=(4.0, 4.0, 8.0))
    case = load_case(tmp_path / "p" / "case.json")  # checks that every file shares one grid
    assert case.grid.spacing == (8.0, 4.0, 4.0)
    assert case.gtv(case.timepoints[0]).any()


def test_cli_writes_a_cohort_and_rejects_bad_arguments(tmp_path, capsys):
    assert cli.main(["cohort", "--n", "1", "--seed", "3", "--out", str(tmp_path / "c"), "--spacing", "4",
                     "--no-progress"]) == 0
    assert load_case(tmp_path / "c" / "VP-0001" / "case.json").patient_id == "VP-0001"
    assert cli.main(["cohort", "--n", "0", "--seed", "3", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "--n" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "d").exists()
    with pytest.raises(SystemExit) as exc:
        cli.main(["cohort", "--n", "1", "--seed", "3", "--out", str(tmp_path / "e"), "--clinical-spacing", "1,5"])
    assert exc.value.code == 2


def test_sample_patient_loads():
    case = load_case(SAMPLE)
    assert len(case.timepoints) == 4 and case.grid.spacing == (2.0, 2.0, 2.0)
    assert case.dose() is not None and case.brain_mask() is not None
    assert all(case.gtv(tp).any() for tp in case.timepoints)
    assert set(case.timepoints[0].images) == {"flair", "t1ce", "t1", "t2"}
