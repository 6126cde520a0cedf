"""Train the guided DDIM's networks (CPU, or ``--device cuda``).

    gliomaforecast-train guided-ddim prepare --cohort /work/data/train_dense --out train.npz
    gliomaforecast-train guided-ddim fit --network ddpm --data train.npz --steps 4000 --max-minutes 45 --out ddpm.pt
    gliomaforecast-train guided-ddim fit --network regressor --data train.npz --steps 3000 --max-minutes 15 \
        --out regressor.pt

``prepare`` builds the FLAIR crops of a cohort once (``data.cohort_slices``, float16 ``.npz``). ``fit`` draws
shuffled batches, applies random flips of y and x and a y/x transpose, draws a step t uniform in 0..``--max-step``-1
and Gaussian noise, and minimises ``loss.ddpm_loss`` or
``loss.burden_loss`` with Adam and cosine decay to 5 % of ``--lr``. The checkpoint holds the state_dict, the
config, the loss history and a summary. Same arguments and seed -> same weights (CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gliomaforecast.errors import InputError

from ..common.cases import cohort_cases
from ..common.command import Action, add_actions, module_main, run_action
from ..common.loop import cosine_lr, cpu_state, log_step, run_config, save_checkpoint, set_lr, training_progress
from .data import SliceData, cohort_slices
from .loss import alphas_cumprod, burden_loss, ddpm_loss, noised
from .net import BurdenRegressor, make_ddpm

NETWORKS = ("ddpm", "regressor")
DEFAULT_CHANNELS = {"ddpm": [16, 32, 64], "regressor": [16, 32, 32, 64]}
DEFAULT_MAX_STEP = {"ddpm": 1000, "regressor": 600}


def add_prepare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cohort", type=Path, required=True, help="folder of patient folders, each with a case.json")
    p.add_argument("--out", type=Path, required=True, help=".npz file to write")
    p.add_argument("--max-slices", type=int, default=12, help="slices per scan, drawn with the seed")
    p.add_argument("--seed", type=int, default=0)


def add_fit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", choices=NETWORKS, required=True)
    p.add_argument("--data", type=Path, required=True, help=".npz file written by prepare")
    p.add_argument("--out", type=Path, required=True, help="checkpoint (.pt) to write")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="also stop after this wall time; the cosine schedule follows max(step, time) progress")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--max-step", type=int, default=None,
                   help="noise steps drawn from 0..max-step-1 (default: ddpm 1000 = all, regressor 600); the "
                        "forecaster starts at NL <= 400, so smaller values spend the training on the steps it uses")
    p.add_argument("--channels", type=int, nargs="+", default=None,
                   help="widths per level (default ddpm 16 32 64, regressor 16 32 32 64)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)


def prepare(args: argparse.Namespace) -> SliceData:
    """Build and save the crops of ``args.cohort``."""
    cases = cohort_cases(args.cohort)
    data = cohort_slices(cases, max_slices=args.max_slices, seed=args.seed, log=lambda m: print(m, flush=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data.save(args.out)
    print(f"{len(data)} slices of {len(cases)} patients -> {args.out}")
    return data


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random flips of y and x and a y/x transpose of a batch (B, 1, H, W)."""
    if torch.rand((), generator=gen) < 0.5:
        x = x.flip(2)
    if torch.rand((), generator=gen) < 0.5:
        x = x.flip(3)
    if torch.rand((), generator=gen) < 0.5:
        x = x.transpose(2, 3)
    return x.contiguous()


def build(network: str, channels) -> torch.nn.Module:
    """The untrained network ``network`` with ``channels`` (None: the defaults)."""
    ch = channels or DEFAULT_CHANNELS[network]
    return make_ddpm(ch) if network == "ddpm" else BurdenRegressor(ch)


def fit(args: argparse.Namespace) -> dict:
    """Run the training described by ``args`` (see :func:`add_fit_arguments`); returns the summary."""
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(None, "--device", "cuda was requested but torch sees no CUDA device")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.set_flush_denormal(True)
    data = SliceData.load(args.data)
    if len(data) < args.batch:
        raise InputError(args.data, "image", f"{len(data)} slices, fewer than one batch ({args.batch})")
    images = torch.from_numpy(data.image.astype(np.float32))[:, None]
    burdens = torch.from_numpy(data.burden.astype(np.float32))
    channels = args.channels or DEFAULT_CHANNELS[args.network]
    model = build(args.network, channels).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    ab = alphas_cumprod().to(device)
    gen = torch.Generator().manual_seed(args.seed)
    max_t = min(args.max_step or DEFAULT_MAX_STEP[args.network], ab.numel())
    history: list[dict] = []
    step, start, progress, n = 0, time.time(), 0.0, len(data)
    model.train()
    while progress < 1.0:
        order = torch.randperm(n, generator=gen)
        for b in range(0, n - args.batch + 1, args.batch):
            idx = order[b:b + args.batch]
            set_lr(opt, cosine_lr(args.lr, progress))
            x0 = augment(images[idx], gen)
            t = torch.randint(0, max_t, (len(idx),), generator=gen)
            eps = torch.randn(x0.shape, generator=gen)
            x0, t, eps, target = (v.to(device) for v in (x0, t, eps, burdens[idx]))
            x_t = noised(x0, t, eps, ab)
            if args.network == "ddpm":
                loss = ddpm_loss(model(x_t, t), eps)
            else:
                loss = burden_loss(model(x_t, t)[0], target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            progress = training_progress(step, args, time.time() - start, False)
            if step % args.log_every == 0 or progress >= 1.0:
                log_step(history, step, {"loss": float(loss.detach())}, time.time() - start)
            if progress >= 1.0:
                break
    summary = {"network": args.network, "steps": step, "device": str(device),
               "seconds": round(time.time() - start, 1), "slices": n,
               "patients": sorted(set(str(p) for p in data.patient)), "final": history[-1] if history else {}}
    config = run_config(args)
    config["channels"] = list(channels)
    save_checkpoint(args.out, cpu_state(model), config, history, summary)
    return summary


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """(network in eval mode, checkpoint dict) of a checkpoint written by :func:`fit`."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = build(ckpt["config"]["network"], ckpt["config"]["channels"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


STAGES = (Action("prepare", None, add_prepare_arguments, prepare), Action("fit", None, add_fit_arguments, fit))


def _add_stages(parser: argparse.ArgumentParser) -> None:
    add_actions(parser, __package__, STAGES, dest="stage")


def main(argv: list[str] | None = None) -> int:
    return module_main("guided.train", __doc__, _add_stages,
                       lambda args: run_action(args, __package__, STAGES, dest="stage"), argv)


if __name__ == "__main__":
    sys.exit(main())
