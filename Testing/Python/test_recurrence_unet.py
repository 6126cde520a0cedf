"""The recurrence U-Net: planning-scan inputs (core), loss, tiny training (learns, deterministic), ONNX family
export with parity and registry entry, the core forecaster (member mean and spread, CTV, bad input)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gliomaforecast.targets import ctv
from gliomaforecast.forecasters.recurrence import inputs as ri
from gliomaforecast.io.case import load_case
from gliomaforecast.errors import InputError
from gliomaforecast.evaluation.protocols import prefix_case
from gliomaforecast.forecast import run_forecast
from gliomaforecast.forecasters.recurrence.unet import score_map
from gliomaforecast.models import load_family
from gliomaforecast.targets.volumes import build_targets, cavity_from_labels
from gliomaforecast_training.recurrence_unet import data, export, train
from gliomaforecast_training.recurrence_unet.loss import coverage_alpha, recurrence_loss

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "Resources" / "SampleData" / "sample_patient"


def _train_args(out: Path, seed: int = 0, steps: int = 3) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    train.add_arguments(p)
    return p.parse_args(["--synthetic", "4", "--steps", str(steps), "--width", "4", "--log-every", "1",
                         "--seed", str(seed), "--out", str(out)])


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory) -> Path:
    """Two tiny members trained on synthetic patients and exported (with post-processing) to a models folder."""
    root = tmp_path_factory.mktemp("ru")
    models = root / "models"
    models.mkdir()
    ckpts = []
    for seed in (0, 1):
        train.train(_train_args(root / f"m{seed}.pt", seed))
        ckpts.append(root / f"m{seed}.pt")
    post = root / "post.json"
    post.write_text(json.dumps({"chosen": {"smooth_mm": 2.0, "prior_weight": 0.25, "prior_mm": 30.0, "floor": 0.0}}))
    p = argparse.ArgumentParser()
    export.add_arguments(p)
    export.export(p.parse_args(["--checkpoints", *map(str, ckpts), "--models-dir", str(models), "--postprocess", str(post)]))
    return models


def test_planning_inputs_channels_match_the_case() -> None:
    case = load_case(SAMPLE / "case.json")
    inputs = ri.planning_inputs(case)
    last = case.timepoints[-1]
    assert inputs.x.shape == (len(ri.CHANNELS),) + case.grid.shape and inputs.x.dtype == np.float32
    assert np.array_equal(inputs.x[ri.CHANNELS.index("tumor")] > 0.5, case.gtv(last))
    labels = case.labels(last)
    assert np.array_equal(inputs.x[ri.CHANNELS.index("core")] > 0.5, np.isin(labels, (1, 3)))
    flair = inputs.x[ri.CHANNELS.index("flair")][inputs.brain]
    assert abs(flair.mean()) < 0.05 and abs(flair.std() - 1) < 0.1  # z-score over the brain (clipping aside)
    assert not inputs.x[ri.CHANNELS.index("adc")].any()  # no ADC in the sample: zero channel
    assert inputs.has_enhancing


def test_missing_tissue_map_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "case"
    shutil.copytree(SAMPLE, folder)
    manifest = json.loads((folder / "case.json").read_text())
    del manifest["tissue"]["gm"]
    (folder / "case.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"case.json: tissue.gm: the recurrence-unet forecaster needs"):
        ri.planning_inputs(load_case(folder / "case.json"))
    del manifest["tissue"]["csf"]
    manifest["tissue"]["gm"] = "gm.nii.gz"
    (folder / "case.json").write_text(json.dumps(manifest))
    inputs = ri.planning_inputs(load_case(folder / "case.json"))  # csf derived: brain - wm - gm
    assert any("csf derived" in n for n in inputs.notes)


def test_crop_and_paste_round_trip_with_padding() -> None:
    a = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    box = ri.crop_box((0, 3, 6), a.shape, (4, 4, 4))
    crop = ri.take_crop(a, box)
    assert crop.shape == (4, 4, 4) and crop[0, 0, 0] == 0 and crop[2, 2, 2] == a[0, 3, 6]
    back = ri.paste_crop(crop, box, a.shape)
    inside = ri.paste_crop(np.ones((4, 4, 4), np.float32), box, a.shape) > 0
    assert np.array_equal(back[inside], a[inside]) and not back[~inside].any()


def test_loss_rewards_coverage_and_small_recurrences_weigh_misses_more() -> None:
    target = torch.zeros(2, 1, 8, 8, 8)
    target[:, :, 2:6, 2:6, 2:6] = 1
    w = torch.ones_like(target)
    ml = torch.tensor([5.0, 5.0])
    good = torch.where(target > 0, 4.0, -4.0)
    miss = torch.full_like(target, -4.0)
    assert recurrence_loss(good, target, w, ml)[0] < recurrence_loss(miss, target, w, ml)[0]
    a_small, a_large = coverage_alpha(torch.tensor([1.0, 200.0]))
    assert 0.9 < a_small <= 0.95 and 0.7 <= a_large < 0.71
    # outside the brain (weight 0) nothing counts
    w0 = torch.zeros_like(target)
    assert recurrence_loss(good, target, w0, ml)[1]["bce"] == 0.0


def test_edge_softening_and_weights() -> None:
    lab = np.zeros((9, 9, 9), np.uint8)
    lab[3:6, 3:6, 3:6] = 2
    lab[4, 4, 4] = 3
    assert np.array_equal(data.soft_target(lab, 0), np.isin(lab, (1, 2, 3)).astype(np.float32))
    soft = data.soft_target(lab, 1.0)
    assert 0 < soft[2, 4, 4] < 0.5 < soft[4, 4, 4] and soft.max() <= 1
    w = data.voxel_weights(lab, np.ones_like(lab, bool), 0.5)
    assert w[3, 3, 3] == 0.5 and w[4, 4, 4] == 1 and w[0, 0, 0] == 1


def test_training_is_deterministic_and_learns(tmp_path: Path) -> None:
    a = train.train(_train_args(tmp_path / "a.pt", 3, steps=2))
    b = train.train(_train_args(tmp_path / "b.pt", 3, steps=2))
    sa, sb = (torch.load(tmp_path / f, weights_only=False)["state_dict"] for f in ("a.pt", "b.pt"))
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and a["final"]["loss"] == b["final"]["loss"]
    long = train.train(_train_args(tmp_path / "c.pt", 3, steps=12))
    hist = torch.load(tmp_path / "c.pt", weights_only=False)["history"]
    assert np.mean([h["loss"] for h in hist[-3:]]) < np.mean([h["loss"] for h in hist[:3]])
    assert long["steps"] == 12


def test_export_registers_a_verified_family(family_dir: Path) -> None:
    entry = json.loads((family_dir / "models.json").read_text())["models"][-1]
    assert entry["id"] == "recurrence-unet" and set(entry["files"]) == {"m0", "m1"}
    assert entry["export"]["parity_max_abs"] < 1e-4 and entry["postprocess"]["prior_weight"] == 0.25
    family = load_family("recurrence-unet", family_dir, prefer_gpu=False)
    out = family["m0"].run({"channels": np.zeros((1, 9, 16, 16, 16), np.float32)})["probability"]
    assert out.shape == (1, 1, 16, 16, 16) and np.all((out >= 0) & (out <= 1))


def test_forecaster_mean_spread_ctv_and_determinism(family_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("GLIOMAFORECAST_MODELS_DIR", str(family_dir))
    case = load_case(SAMPLE / "case.json")
    planning = prefix_case(case, 1)  # one scan: the planning scan; growth is held constant
    fc = run_forecast(planning, 300, "recurrence-unet", n_bootstrap=0)
    again = run_forecast(planning, 500, "recurrence-unet", n_bootstrap=0)
    p, u = fc.output.probability, fc.output.uncertainty
    assert p.shape == case.grid.shape and p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1
    assert np.array_equal(p, again.output.probability)  # same inputs -> same map; the day does not enter
    assert u.max() > 0 and not p[~case.brain_mask()].any()
    assert len(fc.output.models) == 2 and fc.growth.model == "exponential"
    # the forecast CTV is the orchestration's iso-volumetric CTV of this very map (the estro-eano seed, tumour core +
    # cavity, always in; at most the standard plan's volume)
    labels = planning.labels(planning.timepoints[-1])
    core = np.isin(labels, (1, 3))
    assert fc.plan == "estro-eano"
    assert 0 < fc.ctv_forecast.sum() <= fc.ctv_standard.sum() and np.all(fc.ctv_forecast[core | (labels == 4)])
    expected = build_targets(core, case.grid.spacing, 15.0, score=p, cavity=cavity_from_labels(labels),
                             brain_mask=case.brain_mask())
    assert np.array_equal(fc.ctv_forecast, expected.forecast)
    # the member spread is the uncertainty: recompute it from the members
    family = load_family("recurrence-unet", family_dir, prefer_gpu=False)
    inputs = ri.planning_inputs(planning)
    box = ri.crop_box(ri.gtv_center(inputs.gtv), inputs.brain.shape)
    x = ri.take_crop(inputs.x, box)[None]
    maps = np.stack([family[m].run({"channels": x})["probability"][0, 0] for m in ("m0", "m1")])
    spread = np.where(inputs.brain, ri.paste_crop(maps.std(0), box, inputs.brain.shape), 0)
    np.testing.assert_allclose(u, spread, atol=1e-6)


def test_score_map_prior_and_floor() -> None:
    gtv = np.zeros((20, 20, 20), bool)
    gtv[8:12, 8:12, 8:12] = True
    brain = np.ones_like(gtv)
    flat = np.full(gtv.shape, 0.2, np.float32)
    s = score_map(flat, gtv, brain, (2.0, 2.0, 2.0), 0.0, 1.0, 30.0, 0.0)
    assert s[10, 10, 10] == 1.0 and s[10, 10, 14] > s[10, 10, 18]  # pure prior: falls with the distance (mm)
    assert not score_map(flat, gtv, brain, (2.0,) * 3, 0.0, 0.0, 30.0, 0.5).any()  # all below the floor
    windowed = score_map(flat, gtv, brain, (2.0,) * 3, 0.0, 0.0, 30.0, 0.0, window_mm=8.0)
    assert windowed[10, 10, 15] == np.float32(0.2) and windowed[10, 10, 16] == 0  # 8 mm from the GTV, then 10 mm
    # too few voxels score: the iso-volumetric CTV expands by distance (PREDICT-GBM's rule), exact volume
    few = np.zeros(gtv.shape, np.float32)
    few[10, 10, 13] = 0.9
    plan = ctv.isovolumetric_ctv(few, 500, (2.0,) * 3, gtv=gtv, brain_mask=brain)
    assert plan.sum() == 500 and plan[10, 10, 13] and plan[gtv].all()


def test_planning_labels_without_enhancing_are_reported(tmp_path: Path) -> None:
    import SimpleITK as sitk
    folder = tmp_path / "case"
    shutil.copytree(SAMPLE, folder)
    img = sitk.ReadImage(str(folder / "d231_seg.nii.gz"))
    arr = sitk.GetArrayFromImage(img)
    arr[arr == 3] = 2
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    sitk.WriteImage(out, str(folder / "d231_seg.nii.gz"))
    inputs = ri.planning_inputs(load_case(folder / "case.json"))
    assert not inputs.has_enhancing
    assert any("no enhancing class (3): can score the gtv" in n and "cannot score enhancing or enhancing+necrosis" in n
               for n in inputs.notes)


def test_core_target_makes_recurrent_edema_a_negative() -> None:
    sample = data.synthetic_samples(1, seed=2)[0]
    labels = sample.labels
    rng = np.random.default_rng(0)
    _, y_whole, w_whole, ml_whole = data.draw_batch([sample], [0], rng, 0.5, augment=False, max_soften=0.0)
    _, y_core, w_core, ml_core = data.draw_batch([sample], [0], rng, 0.5, augment=False, max_soften=0.0, target="core")
    centre = tuple(slice(data.JITTER, data.JITTER + n) for n in data.CROP_VOXELS)
    lab, brain = labels[centre], sample.brain[centre]
    edema = lab == data.EDEMA_LABEL
    assert edema.any() and (lab == 3).any()
    assert np.all(y_whole[0, 0][edema] == 1) and np.all(w_whole[0, 0][edema & brain] == 0.5)
    assert np.all(y_core[0, 0][edema] == 0) and np.all(y_core[0, 0][lab == 3] == 1)  # edema: a negative of weight 1
    assert np.array_equal(w_core[0, 0], brain.astype(np.float32))
    voxel_ml = ri.PIXEL_MM ** 3 / 1000
    assert ml_whole[0] == pytest.approx(sample.recurrence_ml)
    assert ml_core[0] == pytest.approx(np.count_nonzero(np.isin(labels, (1, 3))) * voxel_ml)  # the core's own mL
    assert ml_core[0] < ml_whole[0]


def test_tune_keeps_only_admissible_settings_and_may_choose_none() -> None:
    from gliomaforecast_training.recurrence_unet import tune

    def row(forecast, forecast_gtv, worst, weight=0.0):
        return {"forecast": forecast, "standard": 0.9, "forecast_gtv": forecast_gtv, "standard_gtv": 0.95,
                "worst_patient_change": worst, "hd95_mm_gtv": 20.0, "median_improvement": 0.0, "prior_weight": weight}

    rows = [row(0.99, 0.80, 0.0), row(0.95, 0.93, -0.01), row(0.94, 0.95, -0.2, 0.5)]
    for r in rows:
        r["admissible"] = tune.admissible(r, 0.05, 0.05)
    # the best enhancing coverage loses 0.15 of the whole recurrence; the third loses 0.2 on one patient
    assert [r["admissible"] for r in rows] == [False, True, False]
    assert tune.choose(rows) is rows[1]
    for r in rows:
        r["admissible"] = tune.admissible(r, float("inf"), float("inf"))
    assert tune.choose(rows) is rows[0]
    for r in rows:
        r["admissible"] = tune.admissible(r, 0.0, 0.0)
    assert tune.choose(rows) is None


def test_forecast_notes_carry_the_held_out_coverage_of_the_registry() -> None:
    from gliomaforecast.forecasters.recurrence.unet import heldout_notes

    cov = {"enhancing": {"n": 43, "forecast_ctv": 0.956, "standard_ctv": 0.9446, "wilcoxon_p": 0.18},
           "gtv": {"n": 96, "forecast_ctv": 0.972, "standard_ctv": 0.982, "wilcoxon_p": None}}
    metrics = {"validation": {"coverage": cov}, "benchmark": {"cohort": "seed 1212", "coverage": cov},
               "sample_patient_forecast_seconds": 5.2}
    (line,) = heldout_notes(metrics)  # validation and plain numbers are not held-out coverage
    assert "held-out virtual benchmark (seed 1212)" in line
    assert "enhancing 0.956 vs 0.945 (n 43, p 0.18)" in line and "gtv 0.972 vs 0.982 (n 96, p undefined)" in line
    shipped = json.loads((REPO / "Resources" / "Models" / "models.json").read_text())["models"]
    entry = next(m for m in shipped if m["id"] == "recurrence-unet")
    notes = heldout_notes(entry["metrics"])
    assert len(notes) == 1 and "enhancing 0.937 vs 0.766 (n 67, p 1.7e-09)" in notes[0]  # 2.0.0, realism 3


def test_gliomaforecast_train_recurrence_unet_command(tmp_path: Path, capsys) -> None:
    """``gliomaforecast-train recurrence-unet``: its actions are listed, ``train`` trains what the module entry
    (``python -m ...recurrence_unet.train``) trains with the same arguments, bad input is one line (exit 2)."""
    from gliomaforecast_training.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and "recurrence-unet" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["recurrence-unet", "--help"])
    assert done.value.code == 0
    listed = capsys.readouterr().out
    assert all(action in listed for action in ("train", "export", "tune", "plan-metrics"))
    with pytest.raises(SystemExit) as done:
        main(["recurrence-unet", "train", "--help"])
    assert done.value.code == 0 and "--synthetic" in capsys.readouterr().out
    tiny = ["--synthetic", "4", "--steps", "2", "--width", "4", "--log-every", "1", "--seed", "3"]
    assert main(["recurrence-unet", "train", *tiny, "--out", str(tmp_path / "cli.pt")]) == 0
    assert train.main([*tiny, "--out", str(tmp_path / "module.pt")]) == 0
    cli_ckpt = torch.load(tmp_path / "cli.pt", weights_only=False)
    module_ckpt = torch.load(tmp_path / "module.pt", weights_only=False)
    assert cli_ckpt["summary"]["steps"] == 2 and cli_ckpt["config"]["width"] == 4
    assert all(torch.equal(v, module_ckpt["state_dict"][k]) for k, v in cli_ckpt["state_dict"].items())
    capsys.readouterr()
    (tmp_path / "empty").mkdir()
    argv = ["recurrence-unet", "train", "--cohort", str(tmp_path / "empty"), "--out", str(tmp_path / "x.pt")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no patient folder with a case.json" in err
    assert not (tmp_path / "x.pt").exists()
    with pytest.raises(SystemExit) as done:
        main(["recurrence-unet", "train", "--synthetic", "4", "--device", "gpu", "--out", str(tmp_path / "y.pt")])
    assert done.value.code == 2 and "invalid choice: 'gpu'" in capsys.readouterr().err
