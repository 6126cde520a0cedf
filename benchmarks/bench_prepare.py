"""Issue 30's end-to-end figure: the sample patient as a clinic would send it (every later session moved by a known
rigid motion, up to 10 degrees and 20 mm, on its own grid with its own intensity scaling; no brain mask, no tissue
maps: ``gliomaforecast.preparation.motion.write_moved_case``, seed SEED) goes through ``gliomaforecast prepare`` and
then ``gliomaforecast forecast``; its CTVs are compared (Dice) with those of the original sample's forecast (same
forecaster, day, seed). Target: Dice >= 0.95 for both CTVs.

Also measured: each session's target registration error (mm, over the sample's brain mask) against the true motion;
the derived brain mask's and tissue maps' Dice against the sample's; the wall time and peak memory of prepare (target
< 60 s and < 2 GB on this CPU), with a reference measured in the same run: ``prepare --register none`` of the
original sample (reading, resampling and writing the same case, no registration and no derivation).

Run: .venv/bin/python benchmarks/bench_prepare.py [--forecaster NAME] -> benchmarks/results/prepare.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np
from _measure import measure, write_result

from gliomaforecast.cli import main as cli
from gliomaforecast.evaluation import dice
from gliomaforecast.io.case import load_case
from gliomaforecast.io.images import read_mask
from gliomaforecast.preparation.motion import write_moved_case
from gliomaforecast.preparation.prepare import prepare
from gliomaforecast.preparation.registration import target_registration_error

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "Resources" / "SampleData" / "sample_patient" / "case.json"
SEED = 3031
DAY = 320  # days: 89 days after the sample's last scan (day 231)
TARGET_DICE = 0.95


def _labels(tissue: dict, brain: np.ndarray) -> np.ndarray:
    """Hard tissue labels (1 wm, 2 gm, 3 csf; 0 outside ``brain``) from probability maps."""
    stack = np.stack([tissue["wm"], tissue["gm"], tissue["csf"]])
    return np.where(brain, np.argmax(stack, axis=0) + 1, 0)


def _forecast(case: Path, out: Path, forecaster: str) -> dict[str, np.ndarray]:
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli(["forecast", str(case), "--day", str(DAY), "--out", str(out), "--forecaster", forecaster])
    if code != 0:
        raise SystemExit(f"forecast of {case} failed ({code})")
    return {name: read_mask(out / f"{name}.nii.gz")[0].astype(bool) for name in ("ctv_standard", "ctv_forecast")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forecaster", default="multitask-diffusion")
    args = parser.parse_args()
    original = load_case(SAMPLE)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "moved").mkdir()
        motions = write_moved_case(original, tmp / "moved", np.random.default_rng(SEED))
        seconds, peak_mib, prepared = measure(lambda: prepare(tmp / "moved" / "case.json"), repeats=1)
        ref_seconds, ref_peak_mib, _ = measure(lambda: prepare(SAMPLE, register="none"), repeats=1)
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli(["prepare", str(tmp / "moved" / "case.json"), "--out", str(tmp / "prepared")]) == 0
        ours = _forecast(tmp / "prepared" / "case.json", tmp / "fc_prepared", args.forecaster)
        theirs = _forecast(SAMPLE, tmp / "fc_original", args.forecaster)
    brain = original.brain_mask()
    assert brain is not None
    truth_tissue = {k: original.tissue(k) for k in ("wm", "gm", "csf")}
    truth, derived = _labels(truth_tissue, brain), _labels(prepared.tissue, prepared.brain)
    tre = {
        str(r.timepoint): target_registration_error(motions[r.timepoint], r.transform, original.grid, brain)
        for r in prepared.registrations
    }
    ctv_dice = {name: dice(ours[name], theirs[name]) for name in ours}
    payload = {
        "what": "sample patient moved (seed %d) and maskless -> prepare -> forecast (%s, day %d)"
        % (SEED, args.forecaster, DAY),
        "ctv_dice_vs_original": ctv_dice,
        "target_dice": TARGET_DICE,
        "meets_target": all(v >= TARGET_DICE for v in ctv_dice.values()),
        "registration_quality": {str(r.timepoint): r.quality for r in prepared.registrations},
        "tre_mm": tre,
        "brain_mask_dice": dice(prepared.brain, brain),
        "wm_dice": dice(derived == 1, truth == 1),
        "gm_dice": dice(derived == 2, truth == 2),
        "csf_dice": dice(derived == 3, truth == 3),
        "gtv_dice_per_timepoint": [
            dice(s.gtv_mask(original.gtv_labels), original.gtv(tp))
            for s, tp in zip(prepared.sessions, original.timepoints)
        ],
        "prepare_seconds": seconds,
        "prepare_peak_mib": peak_mib,
        "reference": "prepare --register none of the original sample (read, resample, no registration, no derivation)",
        "reference_seconds": ref_seconds,
        "reference_peak_mib": ref_peak_mib,
        "time_ratio_vs_reference": seconds / ref_seconds,
        "targets": {"seconds": 60, "peak_mib": 2048},
    }
    print(write_result("prepare", payload))
    print({k: payload[k] for k in ("ctv_dice_vs_original", "brain_mask_dice", "wm_dice", "gm_dice", "prepare_seconds")})


if __name__ == "__main__":
    main()
