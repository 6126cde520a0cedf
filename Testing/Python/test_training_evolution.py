"""Training package for the tumor-evolution module: network, MONAI loss vs the numpy runtime warp, pair
sampling, a tiny training run (single process and two-process DDP under torchrun), ONNX export parity."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gliomaforecast import deformation, models
from gliomaforecast_training.evolution import data as evolution_data
from gliomaforecast_training.evolution import export as export_evolution
from gliomaforecast_training.evolution import train as train_evolution
from gliomaforecast_training.evolution.loss import EvolutionLoss
from gliomaforecast_training.evolution.net import EvolutionNet

REPO = Path(__file__).resolve().parents[2]


def _args(out: Path, **kw) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    train_evolution.add_arguments(p)
    argv = ["--synthetic", "24", "--steps", "4", "--batch", "4", "--size", "32", "--channels", "4", "4", "8", "8",
            "--log-every", "1", "--out", str(out)]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return p.parse_args(argv)


def test_net_shapes_identity_start_and_time_conditioning():
    torch.manual_seed(0)
    net = EvolutionNet((4, 8, 8, 16)).eval()
    phi = torch.randn(3, 2, 48, 32) * 20
    gap = torch.tensor([10.0, 100.0, 300.0])
    out = net(phi, gap)
    assert out.shape == (3, 2, 48, 32) and torch.all(out == 0)  # zero head: identity map at start
    for p in net.parameters():
        p.data.add_(torch.randn_like(p) * 0.1)
    with torch.no_grad():
        a = net(phi[:1].repeat(2, 1, 1, 1), torch.tensor([30.0, 300.0]))
    assert not torch.allclose(a[0], a[1])  # the gap changes the field (FiLM)


def test_monai_warp_matches_runtime_warp():
    rng = np.random.default_rng(1)
    phis, _ = evolution_data.synthetic_pairs(1, size=32, seed=3)
    field = rng.normal(0, 3, (2, 32, 32)).astype(np.float32)  # mm
    loss = EvolutionLoss(pixel_spacing_mm=2.0)
    torch_out = loss.warped(torch.from_numpy(phis[:, :1]), torch.from_numpy(field[None]))[0, 0].numpy()
    np_out = deformation.warp(phis[0, 0], np.moveaxis(field, 0, -1), (2.0, 2.0))
    np.testing.assert_allclose(torch_out, np_out, atol=1e-3)


def test_loss_terms():
    phis, _ = evolution_data.synthetic_pairs(2, size=32, seed=4)
    phi = torch.from_numpy(phis)
    same = torch.cat([phi[:, :1], phi[:, :1]], 1)
    loss, terms = EvolutionLoss()(same, torch.zeros(2, 2, 32, 32))
    assert float(loss) == 0 and terms["l1_mm"] == 0
    _, moved = EvolutionLoss()(phi, torch.zeros(2, 2, 32, 32))
    assert moved["l1_mm"] == pytest.approx(float((phi[:, 1] - phi[:, 0]).abs().mean()), rel=1e-5)
    bumpy = torch.zeros(2, 2, 32, 32)
    bumpy[:, :, 16:] = 2.0  # a step: central differences see it
    _, rough = EvolutionLoss(lambda_smooth=1.0)(same, bumpy)
    assert rough["smooth"] > 0


def test_synthetic_pairs_are_reproducible_signed_distances():
    a, ga = evolution_data.synthetic_pairs(4, size=32, seed=5)
    b, gb = evolution_data.synthetic_pairs(4, size=32, seed=5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ga, gb)
    assert a.shape == (4, 2, 32, 32) and np.all((ga >= 20) & (ga <= 365))
    assert np.all((a <= 0).sum(axis=(2, 3)) * 4.0 >= 75)  # >= 75 mm^2 of tumor


def test_pairs_from_phis_keep_tumor_slices_and_all_pairs():
    from conftest import ball

    from gliomaforecast import sdf
    spacing = (3.0, 1.0, 1.0)
    phis = [sdf.signed_distance(ball((10, 60, 60), (5, 30, 30), r, spacing), spacing) for r in (6.0, 9.0, 13.0)]
    pairs, gaps = evolution_data.pairs_from_phis(phis, [0, 40, 100], spacing, size=32)
    # slices with >= 75 mm^2 (radius >= 4.9 mm) in either GTV: 5 slices for radius 9 mm, 9 for 13 mm
    per_pair = {g: int((gaps == g).sum()) for g in np.unique(gaps)}
    assert set(per_pair) == {40.0, 60.0, 100.0}
    assert per_pair[40.0] < per_pair[60.0] == per_pair[100.0]
    assert pairs.shape[1:] == (2, 32, 32)
    assert pairs[:, 0].min() < 0 and pairs[:, 1].min() < pairs[:, 0].min()


def test_tiny_training_lowers_the_loss(tmp_path):
    summary = train_evolution.train(_args(tmp_path / "evo.pt", steps=30, lr=0.01, batch=8))
    ckpt = torch.load(tmp_path / "evo.pt", weights_only=False)
    first, last = ckpt["history"][0], ckpt["history"][-1]
    assert summary["steps"] == 30 and summary["processes"] == 1
    assert last["l1_mm"] < first["l1_mm"]


def test_same_seed_gives_identical_weights(tmp_path):
    def weights(name: str, seed: int) -> dict:
        train_evolution.train(_args(tmp_path / name, steps=3, seed=seed))
        return torch.load(tmp_path / name, weights_only=False)["state_dict"]

    a, b, c = weights("a.pt", 7), weights("b.pt", 7), weights("c.pt", 8)
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_installed_torch_is_the_pinned_one():
    import re

    train_extra = re.search(r"^train = \[(.*)\]$", (REPO / "pyproject.toml").read_text(), re.M).group(1)
    pins = re.findall(r'"torch([^"]*)"', train_extra)
    assert pins == ["==2.13.0"]
    assert torch.__version__.split("+")[0] == "2.13.0"


def test_training_data_and_anatomy_load_without_network(tmp_path):
    """The MNI152 templates ship inside nilearn and the tiny training needs nothing else: run both in a fresh
    interpreter whose sockets refuse to connect or resolve."""
    code = ("import socket\n"
            "def refuse(*a, **k):\n    raise OSError('network access during training')\n"
            "socket.socket.connect = socket.socket.connect_ex = refuse\n"
            "socket.getaddrinfo = socket.create_connection = refuse\n"
            "from gliomaforecast_training.cohort.anatomy import load_template\n"
            "from gliomaforecast_training.evolution.train import main\n"
            "assert load_template(4.0).brain.any()\n"
            f"raise SystemExit(main(['--synthetic', '8', '--steps', '1', '--batch', '4', '--size', '32', "
            f"'--channels', '4', '4', '8', '8', '--out', {str(tmp_path / 'x.pt')!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "x.pt").is_file()


def test_ddp_two_processes(tmp_path):
    out = tmp_path / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "gliomaforecast_training.evolution.train", "--synthetic", "16", "--steps", "3", "--batch", "2",
           "--size", "32", "--channels", "4", "4", "8", "8", "--log-every", "1", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = torch.load(out, weights_only=False)
    assert ckpt["summary"]["processes"] == 2 and ckpt["summary"]["steps"] == 3
    assert len([ln for ln in proc.stdout.splitlines() if ln.startswith("{")]) == 3  # only rank 0 logs


def test_export_parity_and_registration(tmp_path):
    train_evolution.train(_args(tmp_path / "evo.pt", steps=2))
    net, ckpt = export_evolution.load_checkpoint(tmp_path / "evo.pt")
    with torch.no_grad():
        net.head.weight.normal_(0, 0.5)  # a non-trivial output for the comparison
    onnx_path = export_evolution.export_onnx(net, tmp_path / "evolution.onnx", 32)
    assert export_evolution.parity(net, onnx_path) < 1e-4
    entry = export_evolution.registry_entry(onnx_path, ckpt, 0.0, {"dice": 1.0})
    export_evolution.write_registry(tmp_path, entry)
    model = models.load_model("evolution", tmp_path)
    phi = np.random.default_rng(0).normal(0, 20, (2, 2, 48, 64)).astype(np.float32)
    out = model.run({"phi": phi, "gap_days": np.array([30, 90], np.float32)})["displacement"]
    with torch.no_grad():
        ref = net(torch.from_numpy(phi), torch.tensor([30.0, 90.0])).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4)
    saved = json.loads((tmp_path / "models.json").read_text())["models"][0]
    assert saved["training"]["command"].startswith("python -m gliomaforecast_training.evolution.train --synthetic 24")


def test_cli_reports_bad_training_input(tmp_path, capsys):
    from gliomaforecast_training.cli import main

    (tmp_path / "empty").mkdir()
    argv = ["evolution", "train", "--cohort", str(tmp_path / "empty"), "--out", str(tmp_path / "x.pt")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "0 patient folders" in err and "--holdout" in err
    assert main(["evolution", "train", "--synthetic", "4", "--size", "40", "--out", str(tmp_path / "x.pt")]) == 2
    assert "--size: must be a positive multiple of 16" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
