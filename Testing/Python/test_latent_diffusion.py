"""The single-scan latent diffusion forecaster: numpy codebook lookup vs MONAI's quantizer, ONNX parity of the
exported family, the single-scan path through run_forecast, CFG with w = 0 equals the unconditional model, warnings
and bad input, and a tiny training run (prepare, both VQ-VAEs, the denoiser, export)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from monai.networks.layers.vector_quantizer import EMAQuantizer

from gliomaforecast.io.case import load_case
from gliomaforecast.diffusion import SamplerSettings
from gliomaforecast.errors import InputError
from gliomaforecast.cli import main
from gliomaforecast.forecast import forecast_tumor_ml, run_forecast
from gliomaforecast.io.images import read_image
from gliomaforecast.forecasters.latent import inputs as li
from gliomaforecast.forecasters.latent.codebook import lookup, nearest_codes, quantize
from gliomaforecast.forecasters.latent.diffusion import MEMBERS, MODEL_ID, LatentCodec, sample_latents
from gliomaforecast.models import load_family
from gliomaforecast.plausibility import forecast_warnings
from gliomaforecast_training.latent import export as lexport
from gliomaforecast_training.latent import train as ltrain
from gliomaforecast_training.latent.data import PairData
from gliomaforecast_training.latent.net import Encoder, quantize as torch_quantize

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "Resources" / "SampleData" / "sample_patient"


def _parse(adder, argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    adder(p)
    return p.parse_args(argv)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """A tiny training run on the sample patient (prepare, image and mask VQ-VAEs, denoiser) exported to a models
    folder holding only this family."""
    root = tmp_path_factory.mktemp("latent")
    cohort = root / "cohort"
    cohort.mkdir()
    (cohort / "VP-SAMPLE").symlink_to(SAMPLE, target_is_directory=True)
    data = root / "pairs.npz"
    ltrain.prepare(_parse(ltrain.add_prepare_arguments, ["--cohort", str(cohort), "--out", str(data),
                                                         "--max-slices", "2"]))
    ckpt = {}
    for kind in ("image", "mask"):
        ckpt[kind] = root / f"vq_{kind}.pt"
        ltrain.fit_vqvae(_parse(ltrain.add_vqvae_arguments, [
            "--kind", kind, "--data", str(data), "--channels", "8", "16", "--num-embeddings", "16", "--steps", "3",
            "--batch", "4", "--restart-every", "2", "--out", str(ckpt[kind])]))
    ckpt["denoiser"] = root / "denoiser.pt"
    summary = ltrain.fit_diffusion(_parse(ltrain.add_diffusion_arguments, [
        "--data", str(data), "--image-vq", str(ckpt["image"]), "--mask-vq", str(ckpt["mask"]), "--channels", "16",
        "32", "32", "--steps", "3", "--batch", "4", "--out", str(ckpt["denoiser"])]))
    models = root / "models"
    entry = lexport.export(_parse(lexport.add_arguments, [
        "--image-vq", str(ckpt["image"]), "--mask-vq", str(ckpt["mask"]), "--denoiser", str(ckpt["denoiser"]),
        "--models-dir", str(models), "--guidance-weight", "3", "--steps", "4", "--image-mode", "gated",
        "--gate-margin-mm", "4", "--gate-feather-mm", "4"]))
    return {"data": data, "ckpt": ckpt, "models": models, "entry": entry, "summary": summary}


def test_numpy_codebook_lookup_matches_monai_quantizer() -> None:
    torch.manual_seed(0)
    q = EMAQuantizer(spatial_dims=2, num_embeddings=32, embedding_dim=4).eval()
    z = torch.randn(3, 4, 5, 6)
    _, _, idx = q.quantize(z)
    expected = q.embed(idx).numpy()
    codebook = q.embedding.weight.detach().numpy()
    assert np.array_equal(nearest_codes(z.numpy(), codebook), idx.numpy())
    np.testing.assert_array_equal(quantize(z.numpy(), codebook), expected)
    assert lookup(idx.numpy(), codebook).shape == (3, 4, 5, 6)
    with pytest.raises(InputError, match="codebook"):
        nearest_codes(z.numpy(), codebook[:, :3])


def test_change_gate_is_one_near_the_tumour_and_zero_beyond_margin_plus_feather() -> None:
    region = np.zeros((2, 40, 40), bool)
    region[0, 20, 20] = True  # slice 1: no region -> no change anywhere
    gate = li.change_gate(region, 2.0, 4.0, 4.0)
    yy, xx = np.mgrid[:40, :40]
    d_mm = 2.0 * np.hypot(yy - 20, xx - 20)  # brute-force in-plane distance (mm) to the single region pixel
    np.testing.assert_allclose(gate[0], np.clip((8.0 - d_mm) / 4.0, 0, 1), atol=1e-6)
    assert gate[0][d_mm <= 4].min() == 1 and gate[0][d_mm >= 8].max() == 0 and not gate[1].any()
    # distances are in mm: half the pixel size reaches twice as many pixels
    assert (li.change_gate(region, 1.0, 4.0, 4.0)[0] > 0).sum() > 3 * (gate[0] > 0).sum()


def test_tiny_training_run_writes_checkpoints_and_a_registered_family(tiny) -> None:
    data = PairData.load(tiny["data"])
    # the sample patient (days 0, 92, 171, 231) has 5 pairs 60-200 days apart, 2 slices each
    assert sorted({int(g) for g in data.gap}) == [60, 79, 92, 139, 171]
    assert len(data) == 10 and data.pre.shape[1:] == (2, li.CROP, li.CROP)
    assert set(np.unique(data.outcome)) <= {li.RESPONDER, li.PROGRESSOR}
    for kind in ("image", "mask"):
        ck = torch.load(tiny["ckpt"][kind], weights_only=False)
        assert ck["summary"]["steps"] == 3 and np.isfinite(ck["history"][-1]["loss"])
    ck = torch.load(tiny["ckpt"]["denoiser"], weights_only=False)
    assert len(ck["latent_mean"]) == len(ck["latent_std"]) == 8 and min(ck["latent_std"]) > 0
    entry = tiny["entry"]
    assert set(entry["files"]) == set(MEMBERS) and entry["guidance_weight"] == 3.0
    assert entry["sampler"] == {"name": "ddim", "steps": 4, "eta": 0.0}
    assert "latent-diffusion vqvae --kind image" in entry["training"]["command"]
    assert max(v for m in entry["export"]["parity_max_abs"].values() for v in m.values()) < 1e-4


def test_core_codec_matches_torch_quantized_latents(tiny) -> None:
    data = PairData.load(tiny["data"])
    family = load_family(MODEL_ID, tiny["models"], prefer_gpu=False, require=MEMBERS)
    codec = LatentCodec(family)
    x, m = data.pre[:4].astype(np.float32), data.pre_mask[:4].astype(np.float32)
    vq_image, _ = ltrain.load_vqvae(tiny["ckpt"]["image"])
    vq_mask, _ = ltrain.load_vqvae(tiny["ckpt"]["mask"])
    with torch.no_grad():
        ref = torch.cat([torch_quantize(vq_image, torch.from_numpy(x)), torch_quantize(vq_mask, torch.from_numpy(m))], 1)
        z_torch, cb_torch = Encoder(vq_image)(torch.from_numpy(x))
    z_onnx = family["image_encoder"].run({"images": x})["z"]
    np.testing.assert_allclose(z_onnx, z_torch.numpy(), atol=1e-5)
    np.testing.assert_array_equal(codec.codebooks["image"], cb_torch.numpy())
    np.testing.assert_allclose(codec.encode(x, m) * codec.std + codec.mean, ref.numpy(), atol=1e-5)
    images, prob = codec.decode(codec.encode(x, m))
    with torch.no_grad():
        dec = vq_image.decode(ref[:, :4]).numpy()
        p = torch.sigmoid(vq_mask.decode(ref[:, 4:])).numpy()
    np.testing.assert_allclose(images, dec, atol=1e-4)
    np.testing.assert_allclose(prob, p, atol=1e-5)


def test_cfg_with_zero_weight_is_the_unconditional_model(tiny) -> None:
    family = load_family(MODEL_ID, tiny["models"], prefer_gpu=False, require=MEMBERS)
    rng = np.random.default_rng(0)
    cond = rng.normal(size=(3, 9, li.CROP // 4, li.CROP // 4)).astype(np.float32)
    settings = SamplerSettings(sampler="ddim", steps=4, prediction="v_prediction", schedule="linear", cfg_scale=0.0)
    keys = [5, 6, 7]
    uncond = sample_latents(family, cond, li.NULL, settings, 0, keys)
    for cls in (li.RESPONDER, li.PROGRESSOR):
        np.testing.assert_allclose(sample_latents(family, cond, cls, settings, 0, keys), uncond, atol=1e-5)
    guided = sample_latents(family, cond, li.PROGRESSOR, SamplerSettings(**{**settings.__dict__, "cfg_scale": 3.0}),
                            0, keys)
    assert np.abs(guided - uncond).max() > 1e-4  # the class changes the samples once w > 0


def _single_scan_case(tmp: Path, drop: str | None = None, empty_gtv: bool = False) -> Path:
    """The sample patient's first scan alone (absolute file paths), optionally without a modality or with an empty
    GTV."""
    case = json.loads((SAMPLE / "case.json").read_text())
    tp = case["timepoints"][0]
    tp["images"] = {k: str(SAMPLE / v) for k, v in tp["images"].items() if k != drop}
    tp["gtv"] = str(SAMPLE / tp["gtv"])
    tp.pop("labels")
    if empty_gtv:
        import nibabel as nib
        img = nib.load(tp["gtv"])
        nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine, img.header), tmp / "empty_gtv.nii.gz")
        tp["gtv"] = str(tmp / "empty_gtv.nii.gz")
    case["timepoints"] = [tp]
    case["dose"] = str(SAMPLE / case["dose"])
    case["brain_mask"] = str(SAMPLE / case["brain_mask"])
    case.pop("tissue")
    (tmp / "case.json").write_text(json.dumps(case))
    return tmp / "case.json"


def test_single_scan_forecast_through_run_forecast(tiny, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GLIOMAFORECAST_MODELS_DIR", str(tiny["models"]))
    path = _single_scan_case(tmp_path)
    case = load_case(path)
    fc = run_forecast(case, 120.0, "latent-diffusion", samples=2, n_bootstrap=2, settings={"outcome": "responder"})
    out = fc.output
    assert out.probability.shape == out.uncertainty.shape == out.image.shape == tuple(case.grid.shape)
    assert out.image_kind == "synthesized" and set(out.extra_images) == {"t1ce"}
    assert 0 <= out.probability.min() and out.probability.max() <= 1 and out.uncertainty.min() >= 0
    # outside the crops the images are the scan's own
    flair = case.image(case.timepoints[0], "flair")
    assert np.array_equal(out.image[0], flair[0]) and not np.allclose(out.image, flair)
    assert "class responder, CFG w = 3" in out.notes[0] and "within 4 mm of the scan's or the forecast GTV" in out.notes[0]
    # gated images: the scan's own FLAIR farther than margin + feather (8 mm in-plane) from its GTV and the forecast
    # GTV (here: wherever the probability map reaches 0.1; 2 mm more for the crop's 2 mm pixels)
    region = case.gtv(case.timepoints[0]) | (out.probability >= 0.1)
    far = np.stack([ndimage.distance_transform_edt(~r, sampling=case.grid.spacing[1:]) > 10.0 if r.any()
                    else np.ones(r.shape, bool) for r in region])
    assert np.allclose(out.image[far], flair[far], rtol=1e-6, atol=1e-4) and not np.allclose(out.image[~far], flair[~far])
    again = run_forecast(case, 120.0, "latent-diffusion", samples=2, n_bootstrap=2, settings={"outcome": "responder"})
    assert np.array_equal(again.output.probability, out.probability)  # same seed, same forecast
    assert not forecast_warnings(fc) or all("trained range" not in w for w in forecast_warnings(fc))
    late = run_forecast(case, 400.0, "latent-diffusion", samples=1, n_bootstrap=2)
    assert any("outside the trained range 60-200 days" in w for w in forecast_warnings(late))


def test_outcome_both_writes_responder_and_progressor_side_by_side(tiny, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GLIOMAFORECAST_MODELS_DIR", str(tiny["models"]))
    path = _single_scan_case(tmp_path)
    out = tmp_path / "out"
    assert main(["forecast", str(path), "--day", "120", "--out", str(out), "--forecaster", "latent-diffusion",
                 "--outcome", "both", "--samples", "2"]) == 0
    record = json.loads((out / "forecast.json").read_text())
    assert set(record["scenarios"]) == {"responder", "progressor"}
    # the main forecast is the unconditional one, the scenarios equal the single-class forecasts (same seed)
    case = load_case(path)
    single = {o: run_forecast(case, 120.0, "latent-diffusion", samples=2, n_bootstrap=2, settings={"outcome": o})
              for o in ("unknown", "responder", "progressor")}
    main_p = read_image(out / "probability_d120.nii.gz")[0]
    np.testing.assert_array_equal(main_p, single["unknown"].output.probability)
    for o in ("responder", "progressor"):
        np.testing.assert_array_equal(read_image(out / f"probability_{o}_d120.nii.gz")[0],
                                      single[o].output.probability)
        np.testing.assert_allclose(read_image(out / f"flair_{o}_d120.nii.gz")[0], single[o].output.image, atol=1e-4)
        assert record["scenarios"][o]["tumor_ml"] == pytest.approx(forecast_tumor_ml(single[o]), abs=1e-9)
        assert (out / f"scenario_{o}.png").stat().st_size > 0
    page = (out / "report.html").read_text()
    assert "Outcome scenarios side by side" in page and page.count('alt="responder forecast"') == 1 \
        and page.count('alt="progressor forecast"') == 1
    # the targets come from the main (unconditional) forecast
    assert np.array_equal(read_image(out / "ctv_forecast.nii.gz")[0].astype(bool), single["unknown"].ctv_forecast)


def test_dose_conditioned_family_reads_the_planned_dose(tiny, tmp_path, monkeypatch) -> None:
    data = PairData.load(tiny["data"])
    assert data.dose.shape == (len(data), 1, li.CROP, li.CROP) and 0 < data.dose.max() <= 80 / li.DOSE_SCALE_GY
    ck = tmp_path / "denoiser_dose.pt"
    ltrain.fit_diffusion(_parse(ltrain.add_diffusion_arguments, [
        "--data", str(tiny["data"]), "--image-vq", str(tiny["ckpt"]["image"]), "--mask-vq", str(tiny["ckpt"]["mask"]),
        "--channels", "16", "32", "32", "--steps", "3", "--batch", "4", "--dose", "--out", str(ck)]))
    models = tmp_path / "models"
    entry = lexport.export(_parse(lexport.add_arguments, [
        "--image-vq", str(tiny["ckpt"]["image"]), "--mask-vq", str(tiny["ckpt"]["mask"]), "--denoiser", str(ck),
        "--models-dir", str(models), "--steps", "4"]))
    assert entry["dose_conditioning"] is True and "--dose --dose-dropout 0.15" in entry["training"]["command"]
    cond = [t for t in entry["files"]["denoiser"]["inputs"] if t["name"] == "cond"][0]
    assert cond["shape"][1] == 10
    monkeypatch.setenv("GLIOMAFORECAST_MODELS_DIR", str(models))
    (tmp_path / "a").mkdir()
    with_dose = run_forecast(_single_scan_case(tmp_path / "a"), 120.0, "latent-diffusion", samples=1, n_bootstrap=2)
    (tmp_path / "b").mkdir()
    path = _single_scan_case(tmp_path / "b")
    manifest = json.loads(path.read_text())
    manifest.pop("dose")
    path.write_text(json.dumps(manifest))
    without = run_forecast(path, 120.0, "latent-diffusion", samples=1, n_bootstrap=2)
    assert any("conditioned on the planned RT dose" in n for n in with_dose.output.notes)
    assert any("no RT dose map" in n for n in without.output.notes)
    assert not np.allclose(with_dose.output.image, without.output.image)


def test_bad_input_is_one_clear_error(tiny, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GLIOMAFORECAST_MODELS_DIR", str(tiny["models"]))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(InputError, match=r"timepoints\[0\]\.gtv.*GTV is empty"):
        run_forecast(_single_scan_case(tmp_path / "a", empty_gtv=True), 120.0, "latent-diffusion", samples=1,
                     n_bootstrap=2)
    with pytest.raises(InputError, match=r"timepoints\[0\]\.images\.t1ce.*latent-diffusion needs T1CE"):
        run_forecast(_single_scan_case(tmp_path / "b", drop="t1ce"), 120.0, "latent-diffusion", samples=1,
                     n_bootstrap=2)
    single = tmp_path / "a" / "case.json"
    with pytest.raises(InputError, match="outcome: must be one of unknown, responder, progressor"):
        run_forecast(single, 120.0, "latent-diffusion", settings={"outcome": "cured"})
    with pytest.raises(InputError, match="outcome: the persistence forecaster has no 'outcome' setting; it applies "
                                         "to latent-diffusion"):
        run_forecast(single, 120.0, "persistence", settings={"outcome": "responder"})


def test_two_scan_forecasters_name_latent_diffusion_for_a_single_scan(tmp_path) -> None:
    path = _single_scan_case(tmp_path)
    with pytest.raises(InputError, match="needs at least two scans.*use .*latent-diffusion"):
        run_forecast(path, 120.0, "evolution-field")


def test_cli_outcome_flag_for_another_forecaster_is_one_line(tmp_path, capsys) -> None:
    from gliomaforecast.cli import main

    path = _single_scan_case(tmp_path)
    code = main(["forecast", str(path), "--day", "120", "--out", str(tmp_path / "out"), "--forecaster", "persistence",
                 "--outcome", "responder"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "error: --outcome: the persistence forecaster has no 'outcome' setting; it applies to latent-diffusion" in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_slicer_logic_single_scan_forecast_matches_run_forecast(tiny, monkeypatch) -> None:
    pytest.importorskip("slicer")
    from GliomaForecastLib import adapters
    from GliomaForecastLib.logic import ForecastLogic
    from GliomaForecastLib.scene import headless_scene
    from gliomaforecast.evaluation.protocols import prefix_case

    monkeypatch.setenv("GLIOMAFORECAST_MODELS_DIR", str(tiny["models"]))
    scene = headless_scene()
    loaded = ForecastLogic(scene).loadCase(SAMPLE / "case.json")
    day0 = loaded.days[0]
    nodes = ForecastLogic(scene).forecast([(day0, loaded.flair[day0], loaded.gtv[day0], "GTV")], 120.0,
                                          brainMask=loaded.brainMask, forecaster="latent-diffusion", samples=2,
                                          nBootstrap=2, settings={"outcome": "progressor"})
    expected = run_forecast(prefix_case(load_case(SAMPLE / "case.json"), 1), 120.0, "latent-diffusion", samples=2,
                            n_bootstrap=2, settings={"outcome": "progressor"})
    np.testing.assert_allclose(adapters.array_from_volume(nodes.probability), expected.output.probability, atol=1e-6)
    np.testing.assert_allclose(adapters.array_from_volume(nodes.images["t1ce"]), expected.output.extra_images["t1ce"],
                               atol=1e-4)
    assert nodes.images["t1ce"].GetName().startswith("Predicted T1CE") and not nodes.scenarios
    both = ForecastLogic(scene).forecast([(day0, loaded.flair[day0], loaded.gtv[day0], "GTV")], 120.0,
                                         brainMask=loaded.brainMask, forecaster="latent-diffusion", samples=2,
                                         nBootstrap=2, settings={"outcome": "both"})
    assert set(both.scenarios) == {"responder", "progressor"}
    np.testing.assert_allclose(adapters.array_from_volume(both.scenarios["progressor"]["probability"]),
                               expected.output.probability, atol=1e-6)  # the progressor scenario = the progressor run
    assert both.scenarios["responder"]["flair"].GetName().startswith("Predicted FLAIR (responder)")
    assert both.scenarios["progressor"]["probability"].GetAttribute("GliomaForecast.Forecaster") == "latent-diffusion"
