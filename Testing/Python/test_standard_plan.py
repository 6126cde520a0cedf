"""Issue 27: the standard plan as PREDICT-GBM and ESTRO-EANO define it (tumour core + cavity + 15 mm), one rule in
every path, checked against an independent reference (scipy's EDT in mm of labels {1, 3, 4}, <= 15 mm, inside the
brain, holes filled) on 2 mm, 1 mm and 1 x 1 x 5 mm grids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from gliomaforecast.targets import standard_plan
from gliomaforecast.io.case import load_case
from gliomaforecast.cli import main
from gliomaforecast.forecast import run_forecast
from gliomaforecast.io.images import read_mask, write_image
from gliomaforecast.targets.standard_plan import PlanError, plan_seed
from gliomaforecast.targets.volumes import build_targets, standard_target

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "Resources" / "SampleData" / "sample_patient" / "case.json"


def reference_plan(labels: np.ndarray, brain: np.ndarray | None, spacing, margin_mm: float = 15.0) -> np.ndarray:
    """The ESTRO-EANO standard plan written independently: labels {1, 3, 4} grown by ``margin_mm`` (scipy EDT on the
    spacing, mm), inside the brain, seed kept whole, interior holes filled (not outside the brain)."""
    seed = np.isin(labels, (1, 3, 4))
    within = ndimage.distance_transform_edt(~seed, sampling=spacing) <= margin_mm + 1e-6
    inside = np.ones(seed.shape, bool) if brain is None else brain
    plan = (within & inside) | seed
    return ndimage.binary_fill_holes(plan) & (inside | plan)


# --- the convention rule ---------------------------------------------------------------------------------------

def _labels() -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros((6, 6, 6), np.int16)
    labels[1:5, 1:5, 1:5] = 2  # edema
    labels[2:4, 2:4, 2:3] = 1  # necrosis
    labels[2:4, 2:4, 3:4] = 3  # enhancing
    return labels, np.isin(labels, (1, 2, 3))


def test_auto_with_labels_grows_the_core_not_the_edema() -> None:
    labels, gtv = _labels()
    seed = plan_seed(gtv, labels)
    assert seed.convention == "estro-eano" and seed.seed_name == "core+cavity" and seed.warning is None
    assert np.array_equal(seed.tumour, np.isin(labels, (1, 3)))
    assert seed.tumour.sum() == 8 < gtv.sum() == 64 and seed.cavity is None


def test_auto_without_labels_falls_back_to_flair_with_a_warning() -> None:
    _, gtv = _labels()
    seed = plan_seed(gtv, None)
    assert seed.convention == "flair" and seed.seed_name == "gtv+cavity"
    assert np.array_equal(seed.tumour, gtv)
    assert "no BraTS labels" in seed.warning and "flair" in seed.warning and "\n" not in seed.warning


def test_estro_eano_without_labels_is_refused() -> None:
    _, gtv = _labels()
    with pytest.raises(PlanError, match="no BraTS labels"):
        plan_seed(gtv, None, "estro-eano")


def test_necrosis_alone_or_the_cavity_alone_seeds_the_plan() -> None:
    labels, gtv = _labels()
    labels[labels == 3] = 2  # no enhancing part
    seed = plan_seed(gtv, labels, "estro-eano")
    assert seed.convention == "estro-eano" and np.array_equal(seed.tumour, labels == 1)
    cavity_only = np.where(np.isin(labels, (1,)), 4, labels).astype(np.int16)
    seed = plan_seed(gtv, cavity_only, "estro-eano")
    assert not seed.tumour.any() and np.array_equal(seed.cavity, cavity_only == 4)
    plan = standard_target(seed.tumour, (2.0, 2.0, 2.0), 2.0, cavity=seed.cavity)
    assert plan[cavity_only == 4].all() and plan.sum() > (cavity_only == 4).sum()


def test_labels_with_edema_only_grow_the_flair_abnormality() -> None:
    labels, gtv = _labels()
    labels[labels > 0] = 2
    for convention in ("auto", "estro-eano"):
        seed = plan_seed(gtv, labels, convention)
        assert seed.convention == "flair" and np.array_equal(seed.tumour, gtv)
        assert "no tumour core (1, 3) and no cavity (4)" in seed.warning


def test_flair_keeps_the_whole_gtv_and_the_cavity() -> None:
    labels, gtv = _labels()
    labels[0, 0, 0] = 4
    seed = plan_seed(gtv, labels, "flair")
    assert np.array_equal(seed.tumour, gtv) and seed.cavity.sum() == 1 and seed.warning is None


def test_unknown_convention_lists_the_choices() -> None:
    labels, gtv = _labels()
    with pytest.raises(ValueError, match="auto, estro-eano, flair"):
        plan_seed(gtv, labels, "rtog")


# --- against the independent reference, on three grids ----------------------------------------------------------

@pytest.fixture(scope="module")
def cohort_root(tmp_path_factory) -> Path:
    """Virtual patients delivered on 2 mm (two, folder iso2), 1 x 1 x 5 mm and 1 mm grids (one each)."""
    from gliomaforecast_training.cohort.cohort import generate_cohort

    root = tmp_path_factory.mktemp("plan_cohort")
    for name, spacing, n in (("iso2", None, 2), ("aniso", (1.0, 1.0, 5.0), 1), ("iso1", (1.0, 1.0, 1.0), 1)):
        generate_cohort(n, 4242, root / name, clinical_spacing=spacing)
    return root


@pytest.fixture(scope="module")
def cohort(cohort_root: Path) -> list[Path]:
    return sorted(cohort_root.glob("*/*/case.json"))


def _plan_of(case_path: Path, convention: str = "auto") -> tuple:
    case = load_case(case_path)
    last = case.timepoints[-1]
    seed = plan_seed(case.gtv(last), case.labels(last), convention)
    return case, last, seed


def test_estro_eano_plan_equals_the_reference_on_every_grid(cohort) -> None:
    spacings = set()
    for path in [SAMPLE, *cohort]:
        case, last, seed = _plan_of(path)
        spacing, brain, labels = case.grid.spacing, case.brain_mask(), case.labels(last)
        spacings.add(tuple(round(s, 3) for s in spacing))
        assert seed.convention == "estro-eano"
        targets = build_targets(seed.tumour, spacing, 15.0, score=None, cavity=seed.cavity, brain_mask=brain)
        expected = reference_plan(labels, brain, spacing)
        assert np.array_equal(targets.standard, expected), f"{path}: {np.count_nonzero(targets.standard ^ expected)}"
        assert targets.forecast.sum() == targets.standard.sum() and targets.forecast_shortfall == 0
        flair = build_targets(case.gtv(last), spacing, 15.0, cavity=seed.cavity, brain_mask=brain).standard
        assert flair.sum() > targets.standard.sum()  # the edema no longer seeds the plan
    assert {(2.0, 2.0, 2.0), (1.0, 1.0, 1.0)} <= spacings and any(s[0] == 5.0 for s in spacings)


def test_forecast_builds_both_ctvs_by_the_convention() -> None:
    case = load_case(SAMPLE)
    last = case.timepoints[-1]
    labels, brain = case.labels(last), case.brain_mask()
    fc = run_forecast(case, last.day + 120, "persistence", samples=2, n_bootstrap=5)
    assert fc.plan == "estro-eano" and fc.plan_warning is None
    assert np.array_equal(fc.ctv_standard, reference_plan(labels, brain, case.grid.spacing))
    assert fc.ctv_forecast.sum() == fc.ctv_standard.sum()
    assert fc.ctv_forecast[np.isin(labels, (1, 3, 4))].all()
    flair = run_forecast(case, last.day + 120, "persistence", samples=2, n_bootstrap=5, plan="flair")
    assert flair.plan == "flair" and flair.ctv_standard.sum() > fc.ctv_standard.sum()
    assert flair.ctv_forecast.sum() == flair.ctv_standard.sum()


def test_evaluate_states_and_uses_the_convention(cohort_root: Path, tmp_path: Path) -> None:
    from gliomaforecast.evaluation.leaderboard import leaderboard_markdown

    out = tmp_path / "ev"
    assert main(["evaluate", str(cohort_root / "iso2"), "--forecaster", "persistence", "--n-bootstrap", "5",
                 "--samples", "2", "--jobs", "1", "--plan", "estro-eano", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    plan = summary["standard_plan"]
    assert (plan["convention"], plan["seed"], plan["requested"], plan["forecasts"]) == (
        "estro-eano", "core+cavity", "estro-eano", {"estro-eano": 2})
    assert summary["settings"]["plan"] == "estro-eano"
    rows = (out / "patients.csv").read_text().splitlines()
    header = rows[0].split(",")
    for line in rows[1:]:
        row = dict(zip(header, line.split(",")))
        case = load_case(cohort_root / "iso2" / row["patient_id"] / "case.json")
        planning = case.timepoints[int(row["n_priors"]) - 1]
        expected = reference_plan(case.labels(planning), case.brain_mask(), case.grid.spacing)
        assert row["plan"] == "estro-eano"
        assert float(row["ctv_volume_ml"]) == pytest.approx(expected.sum() * case.grid.voxel_volume_ml)
    assert "standard plan `estro-eano`: core+cavity + 15 mm" in leaderboard_markdown(summary)
    old = {**summary, "settings": {**summary["settings"]}}
    del old["standard_plan"]
    assert "flair convention; run before --plan existed" in leaderboard_markdown(old)


# --- CLI: forecast.json, ctv, bad input ----------------------------------------------------------------------------

def test_forecast_cli_records_the_standard_plan(tmp_path: Path, capsys) -> None:
    out = tmp_path / "fc"
    assert main(["forecast", str(SAMPLE), "--day", "351", "--forecaster", "persistence", "--samples", "2",
                 "--out", str(out)]) == 0
    record = json.loads((out / "forecast.json").read_text())
    plan = record["standard_plan"]
    assert plan["convention"] == "estro-eano" and plan["seed"] == "core+cavity" and plan["margin_mm"] == 15.0
    standard, grid = read_mask(out / "ctv_standard.nii.gz", "ctv")
    assert plan["volume_ml"] == pytest.approx(standard.sum() * grid.voxel_volume_ml)
    assert "estro-eano" in capsys.readouterr().out
    report = (out / "report.html").read_text()
    assert "estro-eano (core+cavity + 15 mm)" in report and "iso-volumetric to the estro-eano" in report


def test_forecast_cli_refuses_estro_eano_without_labels(make_case, tmp_path: Path, capsys) -> None:
    case, _ = make_case()
    assert "labels" not in json.loads(case.read_text())["timepoints"][-1]
    out = tmp_path / "out"
    code = main(["forecast", str(case), "--day", "400", "--forecaster", "persistence", "--plan", "estro-eano",
                 "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "timepoints[2].labels" in err and str(case) in err and "no BraTS labels" in err
    assert not out.exists()


def test_unknown_plan_is_one_line_listing_the_choices(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["forecast", str(SAMPLE), "--day", "351", "--plan", "rtog", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    assert "'auto', 'estro-eano', 'flair'" in err
    assert not (tmp_path / "o").exists()


def test_forecast_without_labels_warns_that_it_grows_the_gtv(make_case, tmp_path: Path, capsys) -> None:
    case, _ = make_case()
    out = tmp_path / "out"
    assert main(["forecast", str(case), "--day", "400", "--forecaster", "persistence", "--samples", "2",
                 "--out", str(out)]) == 0
    record = json.loads((out / "forecast.json").read_text())
    assert record["standard_plan"]["convention"] == "flair"
    assert any("no BraTS labels" in w for w in record["warnings"])
    assert "WARNING: the planning scan has no BraTS labels" in capsys.readouterr().out


def test_ctv_cli_plans_by_the_labels(tmp_path: Path, capsys) -> None:
    case = load_case(SAMPLE)
    last = case.timepoints[-1]
    labels_path = case.timepoints[-1].labels
    brain_path = case.brain_mask_path
    out = tmp_path / "ctv"
    assert main(["ctv", "--labels", str(labels_path), "--brain-mask", str(brain_path), "--out", str(out)]) == 0
    standard, _ = read_mask(out / "ctv_standard.nii.gz", "ctv")
    assert np.array_equal(standard, reference_plan(case.labels(last), case.brain_mask(), case.grid.spacing))
    record = json.loads((out / "targets.json").read_text())
    assert record["standard_plan"]["convention"] == "estro-eano" and record["warnings"] == []
    from gliomaforecast.dicom.export import roi_descriptions
    assert roi_descriptions(out)["CTV standard"] == "GliomaForecast CTV standard: estro-eano core+cavity + 15 mm"
    # the same labels given as --cavity of a GTV mask (the earlier way) choose the same plan
    gtv_path = tmp_path / "gtv.nii.gz"
    write_image(gtv_path, case.gtv(last).astype(np.uint8), case.grid)
    out2 = tmp_path / "ctv2"
    assert main(["ctv", "--gtv", str(gtv_path), "--cavity", str(labels_path), "--brain-mask", str(brain_path),
                 "--out", str(out2)]) == 0
    assert np.array_equal(read_mask(out2 / "ctv_standard.nii.gz", "ctv")[0], standard)
    out3 = tmp_path / "ctv3"
    assert main(["ctv", "--gtv", str(gtv_path), "--plan", "estro-eano", "--out", str(out3)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--labels" in err[0] and "no BraTS labels" in err[0] and not out3.exists()
    out4 = tmp_path / "ctv4"
    assert main(["ctv", "--gtv", str(gtv_path), "--brain-mask", str(brain_path), "--out", str(out4)]) == 0
    flair = json.loads((out4 / "targets.json").read_text())
    assert flair["standard_plan"]["convention"] == "flair" and "no BraTS labels" in flair["warnings"][0]
    assert flair["standard_plan"]["volume_ml"] > record["standard_plan"]["volume_ml"]


def test_choices_live_in_one_place() -> None:
    assert standard_plan.CHOICES == ("auto", "estro-eano", "flair")
    assert set(standard_plan.SEED_NAMES) == set(standard_plan.CONVENTIONS)


def test_messages_records_and_types_exactly() -> None:
    """Each refusal and warning in full, the record's keys, a 0/1 GTV taken as bool, no cavity as None (issue 34)."""
    labels, gtv = _labels()
    with pytest.raises(PlanError) as err:
        plan_seed(gtv, None, "estro-eano")
    assert str(err.value) == (
        "the estro-eano plan grows the tumour core (BraTS labels 1, 3) + cavity (4) and the planning scan has no "
        "BraTS labels: give its labels map or choose the flair plan"
    )
    with pytest.raises(ValueError) as err:
        plan_seed(gtv, labels[:-1], "auto")
    assert str(err.value) == f"labels {labels[:-1].shape} and GTV {gtv.shape} are not on one grid"
    tail = (": the standard plan grows the whole GTV + resection cavity (flair convention), not the tumour core of "
            "ESTRO-EANO / PREDICT-GBM")
    assert plan_seed(gtv, None, "auto").warning == "the planning scan has no BraTS labels" + tail
    edema = np.where(labels > 0, 2, 0)
    assert plan_seed(gtv, edema, "auto").warning == (
        "the planning scan's labels hold no tumour core (1, 3) and no cavity (4), only the FLAIR abnormality" + tail
    )
    flair = plan_seed(gtv.astype(np.uint8), None, "flair")
    assert flair.cavity is None and flair.warning is None and flair.tumour.dtype == bool
    np.testing.assert_array_equal(flair.tumour, gtv)
    assert standard_plan.plan_record("estro-eano", 15.0, 12.5) == {
        "convention": "estro-eano", "seed": "core+cavity", "margin_mm": 15.0,
        "label": "estro-eano (core+cavity + 15 mm)", "volume_ml": 12.5,
    }
