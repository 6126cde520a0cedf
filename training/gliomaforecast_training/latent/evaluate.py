"""Validation / held-out figures of the latent diffusion forecaster on scan pairs (the paper's table), the guidance
weight w and the effect of the outcome class.

    gliomaforecast-train latent-diffusion evaluate --data val.npz --models-dir models --gap-days 90-150 \
        --weights 0 1 3 5 10 --max-pairs 40 --samples 4 --steps 50 --out val_eval.json

Pairs are ``prepare``'s (scan i, later scan j: crops of the slices within 6 mm of GTV i), those whose gap lies in
``--gap-days``, at most ``--max-pairs`` drawn with the seed. Each slice is forecast through the core's runtime with
the ONNX family in ``--models-dir`` (encoders, numpy codebook lookup, DDIM, decoders:
``gliomaforecast.forecasters.latent.diffusion``), ``--samples`` samples averaged. Per modality (T1CE, FLAIR, in the
pre-treatment scan's scaled units) and slice: MSE, PSNR (data range: the true crop's max - min) and SSIM
(scikit-image, 7-pixel window) over the whole 64 x 64 crop ("global") and inside the GTV (the union of the pre- and
post-treatment GTVs: MSE and PSNR over its pixels, SSIM the mean of the SSIM map there); the identity baseline is
the pre-treatment crop. Slices are averaged per pair; forecast vs identity by a paired Wilcoxon test over pairs.
The GTV: Dice of the decoded probability > 0.5 against the true post-treatment GTV (identity: the pre-treatment
GTV) and the forecast area (mm^2, probability summed over pixels) per pair. The autoencoder ceiling: the same
figures for the true post-treatment crops passed through the VQ-VAEs (encode, codebook, decode), the best any
forecast in this latent space can reach.

For every w in ``--weights`` the forecasts use the pair's true class (w = 0: the unconditional model), each scored
twice: the direct decoding, and the residual one (``residual_images``: pre-treatment crop + decoded post - decoded
pre). The chosen (w, image mode) has the highest global SSIM + SSIM inside the GTV (means over both modalities;
ties: the smaller w). With ``--weight W``
only that w is run (the held-out run, choices frozen). Class effect at the chosen w: responder and progressor
forecasts of every pair with the same noise; their forecast GTV areas compared by a paired Wilcoxon test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon
from skimage.metrics import structural_similarity

from gliomaforecast.diffusion import SamplerSettings
from gliomaforecast.evaluation import dice
from gliomaforecast.forecasters.latent import inputs as li
from gliomaforecast.forecasters.latent.diffusion import MEMBERS, MODEL_ID, LatentCodec, sample_latents
from gliomaforecast.models import load_family

from .data import PairData

PIXEL_MM2 = li.PIXEL_MM ** 2


def image_scores(pred: np.ndarray, truth: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """MSE, PSNR (dB), SSIM of one 2D image against the truth, globally and inside ``region`` (bool; NaN when empty)."""
    pred, truth = pred.astype(np.float64), truth.astype(np.float64)
    rng = float(truth.max() - truth.min()) or 1.0
    err = (pred - truth) ** 2
    ssim_map = structural_similarity(truth, pred, data_range=rng, full=True)[1]
    out = {"mse": float(err.mean()), "psnr": float(10 * np.log10(rng ** 2 / max(err.mean(), 1e-12))),
           "ssim": float(ssim_map.mean())}
    if region.any():
        mse_in = float(err[region].mean())
        out.update({"mse_gtv": mse_in, "psnr_gtv": float(10 * np.log10(rng ** 2 / max(mse_in, 1e-12))),
                    "ssim_gtv": float(ssim_map[region].mean())})
    else:
        out.update({"mse_gtv": np.nan, "psnr_gtv": np.nan, "ssim_gtv": np.nan})
    return out


def select_pairs(data: PairData, gap_days: tuple[float, float], max_pairs: int, seed: int) -> np.ndarray:
    """Pair indices whose gap lies in ``gap_days``, at most ``max_pairs`` drawn with the seed (sorted)."""
    gaps = np.array([data.gap[data.pair == p][0] for p in range(len(data.pairs))])
    ok = np.nonzero((gaps >= gap_days[0]) & (gaps <= gap_days[1]))[0]
    if max_pairs and ok.size > max_pairs:
        ok = np.sort(np.random.default_rng(seed).choice(ok, max_pairs, replace=False))
    return ok


def forecast_slices(family, codec: LatentCodec, data: PairData, rows: np.ndarray, outcome: np.ndarray | int,
                    w: float, samples: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean decoded images (n, 2, H, W), mean GTV probability (n, H, W)) of the slices ``rows``; ``outcome`` per
    slice or one class for all; w = 0 samples the unconditional model (null class). The images are the direct
    decodings; ``residual_images`` turns them into the residual ones."""
    pre = data.pre[rows].astype(np.float32)
    lat = codec.encode(pre, data.pre_mask[rows].astype(np.float32))
    n, _, h, w_ = lat.shape
    extra = family["denoiser"].spec.extra
    parts = [lat, np.broadcast_to(li.gap_feature(data.gap[rows])[:, None, None, None], (n, 1, h, w_))]
    if extra.get("dose_conditioning", False):
        parts.append(li.pooled(data.dose[rows].astype(np.float32), h))
    cond = np.concatenate(parts, 1)
    settings = SamplerSettings(sampler="ddim", steps=steps, prediction=extra["prediction"], schedule=extra["schedule"],
                               num_train_timesteps=extra["num_train_timesteps"], cfg_scale=float(w))
    classes = np.broadcast_to(np.asarray(outcome), (n,))
    images = np.zeros((n, len(li.MODALITIES)) + pre.shape[2:], np.float64)
    prob = np.zeros((n,) + pre.shape[2:], np.float64)
    for c in np.unique(classes):
        sel = np.nonzero(classes == c)[0]
        label = li.NULL if w == 0 else int(c)
        for k in range(samples):
            keys = [k * 1_000_000 + int(r) for r in rows[sel]]
            x = sample_latents(family, np.ascontiguousarray(cond[sel]), label, settings, seed, keys)
            im, p = codec.decode(x)
            images[sel] += im / samples
            prob[sel] += p[:, 0] / samples
    return images, prob


def residual_images(pre: np.ndarray, pre_decoded: np.ndarray, decoded: np.ndarray,
                    gate: np.ndarray | None = None) -> np.ndarray:
    """The residual forecast: the pre-treatment crop plus the decoded change, pre + (decoded post - decoded pre),
    so that the autoencoder's reconstruction error cancels where nothing changes; with ``gate`` (n, H, W, 0-1:
    ``latent_inputs.change_gate``) the change is weighted by it (the "gated" mode)."""
    change = decoded - pre_decoded
    if gate is not None:
        change = change * gate[:, None]
    return pre.astype(np.float64) + change


def image_modes(pre: np.ndarray, pre_mask: np.ndarray, pre_decoded: np.ndarray, decoded: np.ndarray,
                prob: np.ndarray, gates_mm: list[float], feather_mm: float) -> dict[str, np.ndarray]:
    """Every image forecast scored: ``direct``, ``residual`` and ``gated:M`` for each margin M (mm) in ``gates_mm``
    (region: the pre-treatment GTV or the forecast GTV, mean probability >= 0.5; as the forecaster does)."""
    modes = {"direct": decoded, "residual": residual_images(pre, pre_decoded, decoded)}
    region = (pre_mask[:, 0] > 0.5) | (prob >= 0.5)
    for m in gates_mm:
        gate = li.change_gate(region, li.PIXEL_MM, m, feather_mm)
        modes[f"gated:{m:g}"] = residual_images(pre, pre_decoded, decoded, gate)
    return modes


def score(data: PairData, pairs: np.ndarray, rows: np.ndarray, images: np.ndarray | None,
          prob: np.ndarray | None) -> list[dict]:
    """Per-pair means of the slice metrics (``images`` None: the identity baseline, the pre-treatment crops)."""
    out = []
    for p in pairs:
        sl = np.nonzero(data.pair[rows] == p)[0]
        per: dict[str, list[float]] = {}
        for s in sl:
            r = rows[s]
            region = (data.pre_mask[r, 0] > 0.5) | (data.post_mask[r, 0] > 0.5)
            for c, m in enumerate(li.MODALITIES):
                pred = data.pre[r, c] if images is None else images[s, c]
                for key, v in image_scores(pred, data.post[r, c].astype(np.float64), region).items():
                    per.setdefault(f"{m}_{key}", []).append(v)
        truth = data.post_mask[rows[sl], 0] > 0.5
        mask = data.pre_mask[rows[sl], 0] > 0.5 if prob is None else prob[sl] > 0.5
        area = float((data.pre_mask[rows[sl], 0].astype(np.float64) if prob is None else prob[sl]).sum() * PIXEL_MM2)
        row = {"pair": ":".join(map(str, data.pairs[p])), "gap_days": float(data.gap[rows[sl][0]]),
               "outcome": int(data.outcome[rows[sl][0]]), "dice": dice(mask, truth), "area_mm2": area,
               "true_area_mm2": float(truth.sum() * PIXEL_MM2)}
        for key, vals in per.items():
            row[key] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
        for key in ("mse", "psnr", "ssim", "mse_gtv", "psnr_gtv", "ssim_gtv"):
            row[key] = float(np.nanmean([row[f"{m}_{key}"] for m in li.MODALITIES]))
        out.append(row)
    return out


def summarize(rows: list[dict], baseline: list[dict]) -> dict:
    """Means over pairs and paired Wilcoxon p-values of forecast vs identity."""
    out: dict = {"pairs": len(rows)}
    for key in [k for k in rows[0] if k not in ("pair", "gap_days", "outcome", "true_area_mm2")]:
        a = np.array([r[key] for r in rows], float)
        b = np.array([r[key] for r in baseline], float)
        ok = np.isfinite(a) & np.isfinite(b)
        entry = {"forecast": float(a[ok].mean()), "identity": float(b[ok].mean()), "n": int(ok.sum())}
        if ok.sum() >= 5 and np.any(a[ok] != b[ok]):
            entry["wilcoxon_p"] = float(wilcoxon(a[ok], b[ok]).pvalue)
        out[key] = entry
    return out


def class_effects(areas: dict[str, np.ndarray], baseline: list[dict], chosen: float) -> dict:
    """Forecast GTV areas (mm^2 per pair) as responders vs as progressors: means and a paired Wilcoxon test."""
    diff = areas["progressor"] - areas["responder"]
    return {"w": chosen if chosen > 0 else 1.0, "responder_area_mm2": float(areas["responder"].mean()),
            "progressor_area_mm2": float(areas["progressor"].mean()),
            "progressor_larger_fraction": float((diff > 0).mean()),
            "wilcoxon_p": float(wilcoxon(areas["progressor"], areas["responder"]).pvalue)
            if np.any(diff != 0) else 1.0,
            "true_area_mm2_responders": float(np.mean([b["true_area_mm2"] - b["area_mm2"] for b in baseline
                                                       if b["outcome"] == li.RESPONDER] or [np.nan])),
            "note": "true_area_mm2_responders: mean (post - pre) GTV area of the true responders"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help=".npz written by prepare (validation or held-out cohort)")
    p.add_argument("--models-dir", type=Path, required=True, help="folder of models.json with the exported family")
    p.add_argument("--gap-days", default="90-150", help="pairs whose gap (days) lies in FIRST-LAST")
    p.add_argument("--weights", type=float, nargs="+", default=[0.0, 1.0, 3.0, 5.0, 10.0],
                   help="guidance weights to compare (the chosen one: highest SSIM inside the GTV)")
    p.add_argument("--weight", type=float, default=None, help="run only this w (a frozen choice: held-out run)")
    p.add_argument("--gates-mm", type=float, nargs="*", default=[],
                   help="margins (mm) of the gated image modes to compare: the decoded change only within M mm of "
                        "the pre-treatment or forecast GTV (latent_inputs.change_gate)")
    p.add_argument("--feather-mm", type=float, default=4.0, help="the gate's linear fall-off beyond the margin (mm)")
    p.add_argument("--image-mode", default=None,
                   help="score only this image mode (direct, residual, gated:M; a frozen choice: held-out run)")
    p.add_argument("--class-effect", action=argparse.BooleanOptionalAction, default=True,
                   help="forecast every pair as a responder and as a progressor at the chosen w")
    p.add_argument("--max-pairs", type=int, default=40)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="JSON to write")


def evaluate(args: argparse.Namespace) -> dict:
    """See the module docstring; writes and returns the result."""
    t0 = time.time()
    data = PairData.load(args.data)
    lo, hi = (float(v) for v in args.gap_days.split("-"))
    pairs = select_pairs(data, (lo, hi), args.max_pairs, args.seed)
    rows = np.nonzero(np.isin(data.pair, pairs))[0]
    family = load_family(MODEL_ID, args.models_dir, prefer_gpu=False, require=MEMBERS)
    codec = LatentCodec(family)
    baseline = score(data, pairs, rows, None, None)
    pre_decoded = codec.decode(codec.encode(data.pre[rows].astype(np.float32),
                                            data.pre_mask[rows].astype(np.float32)))[0]
    recon, recon_p = codec.decode(codec.encode(data.post[rows].astype(np.float32), data.post_mask[rows].astype(np.float32)))
    ceiling = summarize(score(data, pairs, rows, recon, recon_p[:, 0]), baseline)
    weights = [args.weight] if args.weight is not None else list(args.weights)
    by_w = {}
    for w in weights:
        images, prob = forecast_slices(family, codec, data, rows, data.outcome[rows], w, args.samples, args.steps,
                                       args.seed)
        gates = list(args.gates_mm)
        if args.image_mode and args.image_mode.startswith("gated:"):
            gates.append(float(args.image_mode.split(":", 1)[1]))
        modes = image_modes(data.pre[rows], data.pre_mask[rows], pre_decoded, images, prob, gates, args.feather_mm)
        if args.image_mode is not None:
            modes = {args.image_mode: modes[args.image_mode]}
        for mode, im in modes.items():
            res = score(data, pairs, rows, im, prob)
            by_w[f"{w:g}/{mode}"] = {"w": w, "mode": mode, "summary": summarize(res, baseline), "rows": res}
            s = by_w[f"{w:g}/{mode}"]["summary"]
            print(f"w={w:g} {mode}: ssim {s['ssim']['forecast']:.4f} (identity {s['ssim']['identity']:.4f}), ssim_gtv "
                  f"{s['ssim_gtv']['forecast']:.4f} ({s['ssim_gtv']['identity']:.4f}), psnr {s['psnr']['forecast']:.2f} "
                  f"({s['psnr']['identity']:.2f}), dice {s['dice']['forecast']:.3f} ({s['dice']['identity']:.3f}) "
                  f"[{time.time() - t0:.0f} s]", flush=True)

    def merit(key: str) -> tuple:
        s = by_w[key]["summary"]
        return (s["ssim"]["forecast"] + s["ssim_gtv"]["forecast"], -by_w[key]["w"])

    best = max(by_w, key=merit)
    chosen, mode = by_w[best]["w"], by_w[best]["mode"]
    areas = {}
    for name, cls in (("responder", li.RESPONDER), ("progressor", li.PROGRESSOR)) if args.class_effect else ():
        _, prob = forecast_slices(family, codec, data, rows, cls, chosen if chosen > 0 else 1.0, args.samples,
                                  args.steps, args.seed)
        areas[name] = np.array([r["area_mm2"] for r in score(data, pairs, rows, None, prob)])
    class_effect = class_effects(areas, baseline, chosen) if args.class_effect else None
    result = {"data": str(args.data), "gap_days": [lo, hi], "pairs": len(pairs), "slices": int(len(rows)),
              "samples": args.samples, "steps": args.steps, "seed": args.seed, "chosen_w": chosen,
              "gates_mm": list(args.gates_mm), "feather_mm": args.feather_mm,
              "chosen_image_mode": mode,
              "rule": "highest global SSIM + SSIM inside the GTV (mean of T1CE and FLAIR), true class; ties: smaller w",
              "autoencoder_ceiling": ceiling, "weights": by_w, "identity_rows": baseline, "class_effect": class_effect,
              "seconds": round(time.time() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(f"chosen w = {chosen:g}, images {mode}; class effect {json.dumps(class_effect)}")
    return result
