"""Long-horizon cohorts (issue 12): dense and scheduled follow-up, realism 2 and 3, the three disjoint cohort
seeds, the benchmark's pair counting, bad input on the command line, and the default schedule unchanged."""

import json
from pathlib import Path

import numpy as np
import pytest

from gliomaforecast.io.case import load_case
from gliomaforecast_training import cli
from gliomaforecast_training.cohort import cohort_seeds
from gliomaforecast_training.cohort.cohort import (DENSE_GAP_DAYS, check_scan_days, first_progression,
                                                   generate_cohort, generate_patient, horizon_pair_counts,
                                                   make_follow_up, measure_cohort_realism, patient_seeds)

SAMPLE = Path(__file__).resolve().parents[2] / "Resources" / "SampleData" / "sample_patient"


@pytest.fixture(scope="module")
def dense_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dense") / "c"
    generate_cohort(2, 5, out, spacing=4.0, follow_up="dense")
    return out


def test_the_three_cohort_seeds_differ_and_share_no_patient():
    seeds = [cohort_seeds.TRAINING_SEED, cohort_seeds.VALIDATION_SEED, cohort_seeds.BENCHMARK_SEED]
    assert len(set(seeds)) == 3
    per_cohort = [set(patient_seeds(n, s)) for s, n in cohort_seeds.COHORTS.values()]
    assert [len(p) for p in per_cohort] == [n for _, n in cohort_seeds.COHORTS.values()]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not per_cohort[i] & per_cohort[j]
    assert cohort_seeds.BENCHMARK_SIZE >= 24 and cohort_seeds.BENCHMARK_FOLLOW_UP == "dense"


def test_patients_from_different_cohort_seeds_are_different(tmp_path):
    rows = {}
    for name in ("training", "benchmark"):
        seed, n = cohort_seeds.COHORTS[name]
        rows[name] = generate_patient(patient_seeds(n, seed)[0], tmp_path / name, 4.0, patient_id="VP-0001",
                                      n_followups=2)
    assert rows["training"]["parameters"] != rows["benchmark"]["parameters"]
    assert (tmp_path / "training" / "d000_flair.nii.gz").read_bytes() != \
        (tmp_path / "benchmark" / "d000_flair.nii.gz").read_bytes()


def test_dense_follow_up_scans_every_30_to_60_days_up_to_its_end(dense_dir):
    index = json.loads((dense_dir / "cohort.json").read_text())
    assert index["follow_up"] == {"mode": "dense", "realism": 3}
    assert index["horizon_pairs"] == horizon_pair_counts(index["patients"])
    for entry in index["patients"]:
        case = load_case(dense_dir / entry["case"])
        info = json.loads((dense_dir / entry["case"]).with_name("simulation.json").read_text())["follow_up"]
        days = list(case.days)
        assert days[0] == 0 and len(days) >= 3
        gaps = np.diff([info["last_fraction_day"], *days[1:]])
        assert np.all((gaps >= DENSE_GAP_DAYS[0]) & (gaps <= DENSE_GAP_DAYS[1])), days
        end = info["end_day"]
        assert 365 <= end - info["last_fraction_day"] <= 548 and days[-1] <= end
        if info["stopped_after_day"] is None:
            assert end - days[-1] < DENSE_GAP_DAYS[1]  # no room for another scan
        else:
            assert info["stopped_after_day"] == days[-1] and entry["scans"][-1]["gtv_ml"] > 300
        for tp in case.timepoints:
            labels = case.labels(tp)
            assert set(np.unique(labels)) <= {0, 1, 2, 3, 4} and case.gtv(tp).any()


def test_scan_days_are_honoured(tmp_path):
    assert cli.main(["cohort", "--n", "1", "--seed", "3", "--out", str(tmp_path / "c"), "--spacing", "4",
                     "--scan-days", "0,30,75,200", "--no-progress"]) == 0
    case = load_case(tmp_path / "c" / "VP-0001" / "case.json")
    assert list(case.days) == [0, 30, 75, 200]
    info = json.loads((tmp_path / "c" / "VP-0001" / "simulation.json").read_text())["follow_up"]
    assert info["mode"] == "scheduled" and info["scan_days"] == [30, 75, 200] and info["realism"] == 3


@pytest.mark.parametrize("extra, flag", [
    (["--scan-days", ""], "--scan-days"),
    (["--scan-days", "0,90,60"], "--scan-days"),
    (["--scan-days=-30,60"], "--scan-days"),
    (["--scan-days", "0"], "--scan-days"),
    (["--scan-days", "30,x"], "--scan-days"),
    (["--scan-days", "30,45.5"], "--scan-days"),
    (["--follow-up", "weekly"], "--follow-up"),
    (["--follow-up", "dense", "--scan-days", "30,60"], "--scan-days"),
    (["--realism", "3"], "--realism"),  # the default schedule keeps version 1
    (["--realism", "2"], "--realism"),
    (["--follow-up", "dense", "--realism", "4"], "--realism"),
    (["--follow-up", "dense", "--realism", "three"], "--realism"),
])
def test_bad_follow_up_options_give_one_line_and_write_nothing(tmp_path, capsys, extra, flag):
    out = tmp_path / "c"
    assert cli.main(["cohort", "--n", "1", "--seed", "3", "--out", str(out), "--spacing", "4", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err and not out.exists()


def test_follow_up_validation_in_python():
    assert check_scan_days([0, 30, 60]) == (30, 60) and check_scan_days([10]) == (10,)
    for bad in ([], [30, 30], [60, 30], [-1, 5], [0], [1.5]):
        with pytest.raises(ValueError):
            check_scan_days(bad)
    assert make_follow_up().legacy and not make_follow_up("dense").legacy
    assert make_follow_up("dense", realism=1).realism == 1
    with pytest.raises(ValueError):
        make_follow_up("sparse")


def test_horizon_pairs_count_every_prefix_of_two_or_more_scans():
    patients = [{"scans": [{"day": d} for d in (0, 100, 150, 400)]}]
    # prefixes ending at day 100 (i = 2) and day 150 (i = 3): 100->150 (50), 100->400 (300), 150->400 (250)
    counts = horizon_pair_counts(patients)
    assert counts == {"0-60": 1, "61-120": 0, "121-180": 0, "181-280": 1, "281-365": 1, ">365": 0}


def test_first_progression_needs_growth_over_the_post_rt_nadir():
    days = [0, 100, 150, 200, 250]
    assert first_progression(days, [9.0, 0.0, 0.5, 3.0, 9.0], after_day=60) == 3
    assert first_progression(days, [9.0, 4.0, 4.5, 4.9, 4.0], after_day=60) is None  # < 25% growth
    assert first_progression(days, [9.0, 4.0, 3.0, 4.0, 9.0], after_day=60) == 3  # 4.0 >= 1.25 x 3.0


def test_realism_report_on_a_dense_cohort(dense_dir, tmp_path, capsys):
    report = measure_cohort_realism(dense_dir)
    assert report["summary"]["patients"] == 2 and len(report["patients"]) == 2
    assert cli.main(["cohort-realism", str(dense_dir), "--out", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["summary"] == json.loads(json.dumps(report["summary"]))
    assert cli.main(["cohort-realism", str(tmp_path / "nothing")]) == 2


def test_default_schedule_still_reproduces_the_shipped_sample_patient(tmp_path):
    generate_patient(3, tmp_path / "s", 2.0, patient_id="VP-SAMPLE", n_followups=3)
    for name in ("case.json", "simulation.json", "d231_seg.nii.gz", "d231_flair.nii.gz", "rtdose.nii.gz"):
        assert (tmp_path / "s" / name).read_bytes() == (SAMPLE / name).read_bytes(), name


def test_parallel_generation_gives_the_same_files(tmp_path, dense_dir):
    out = tmp_path / "parallel"
    generate_cohort(2, 5, out, spacing=4.0, follow_up="dense", jobs=2)
    files = sorted(p.relative_to(dense_dir) for p in dense_dir.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    for f in files:
        assert (dense_dir / f).read_bytes() == (out / f).read_bytes(), f


@pytest.mark.parametrize("extra, flag", [(["--n", "10"], "--n"), (["--jobs", "0"], "--jobs")])
def test_benchmark_cohort_bad_size_or_jobs_is_one_line(tmp_path, capsys, extra, flag):
    out = tmp_path / "b"
    assert cli.main(["benchmark-cohort", "--out", str(out), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err and not out.exists()


def test_recurrence_benchmark_extends_the_long_horizon_benchmark():
    assert cohort_seeds.RECURRENCE_BENCHMARK_SIZE > cohort_seeds.BENCHMARK_SIZE
    long = patient_seeds(cohort_seeds.BENCHMARK_SIZE, cohort_seeds.BENCHMARK_SEED)
    assert patient_seeds(cohort_seeds.RECURRENCE_BENCHMARK_SIZE, cohort_seeds.BENCHMARK_SEED)[:len(long)] == long
