"""Train the multi-task diffusion network (CPU, ``--device cuda``, or several processes with ``torchrun``: DDP).

    python -m gliomaforecast_training.multitask.train prepare --cohort /work/data/train_dense --out train.npz
    python -m gliomaforecast_training.multitask.train fit --data train.npz --steps 3000 --max-minutes 40 \
        --out multitask.pt
    torchrun --nproc_per_node 4 -m gliomaforecast_training.multitask.train fit --data train.npz --out x.pt

``prepare`` builds the triplet examples of a cohort once (``data.cohort_triplets``, float16 ``.npz``).
``fit`` draws batches at random (a ``DistributedSampler`` splits them across processes), adds uniform
+-``--gap-noise`` days to the two scan gaps (the paper's +-5 days), random flips / transposes (the displacement
components flip and swap with the image axes), a uniform diffusion step and Gaussian noise on the FLAIR change pooled to 4 mm; Adam with cosine
decay to 5 % of ``--lr``. Rank 0 writes the checkpoint (state_dict, config, loss history, summary). Same
arguments and seed -> same weights (single process, CPU).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from gliomaforecast.errors import InputError
from gliomaforecast.forecasters.crops import COND_NAMES

from ..common.cases import cohort_cases
from ..common.command import Action, add_actions, module_main, run_action
from ..common.loop import (
    cosine_lr,
    cpu_state,
    end_processes,
    log_step,
    run_config,
    save_checkpoint,
    set_lr,
    start_processes,
    training_progress,
)
from ..common.schedule import alphas_cumprod, noised
from .data import TripletData, cohort_triplets
from .loss import GAMMA, LAMBDA_RT, multitask_loss
from .net import POOL, SIZE_MULTIPLE, MultiTaskNet

DISP_Y, DISP_X = COND_NAMES.index("disp_y"), COND_NAMES.index("disp_x")


def add_prepare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cohort", type=Path, required=True, help="folder of patient folders, each with a case.json")
    p.add_argument("--out", type=Path, required=True, help=".npz file to write")
    p.add_argument("--patients", default="", help="patients FIRST-LAST (1-based, name order; default all)")
    p.add_argument("--max-slices", type=int, default=6, help="slices per triplet, drawn with the seed")
    p.add_argument("--seed", type=int, default=0)


def add_fit_arguments(p: argparse.ArgumentParser) -> None:
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", type=Path, nargs="+", help=".npz file(s) written by prepare (concatenated)")
    data.add_argument("--cohort", type=Path, help="build the examples from this cohort folder first")
    p.add_argument("--out", type=Path, required=True, help="checkpoint (.pt) to write")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="also stop after this wall time; the cosine schedule follows max(step, time) progress")
    p.add_argument("--batch", type=int, default=16, help="batch per process")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lambda-rt", type=float, default=LAMBDA_RT)
    p.add_argument("--gamma", type=float, default=GAMMA)
    p.add_argument("--gap-noise", type=float, default=5.0, help="uniform noise on the two scan gaps, +- days")
    p.add_argument("--channels", type=int, nargs=3, default=[16, 32, 32])
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N under torchrun: the local rank)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_actions(p, __package__, STAGES, dest="stage")


def prepare(args: argparse.Namespace) -> TripletData:
    """Build and save the examples of ``args.cohort``."""
    cases = cohort_cases(args.cohort, args.patients)
    data = cohort_triplets(cases, max_slices=args.max_slices, seed=args.seed, log=lambda m: print(m, flush=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data.save(args.out)
    print(f"{len(data)} slices from {len(data.triplets)} triplets of {len(cases)} patients -> {args.out}")
    return data


def augment(cond: torch.Tensor, target: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips of y and x and a y/x transpose of a batch; the displacement (d_y, d_x) follows the axes."""
    cond = cond.clone()
    if torch.rand((), generator=gen) < 0.5:
        cond, target = cond.flip(2), target.flip(2)
        cond[:, DISP_Y] = -cond[:, DISP_Y]
    if torch.rand((), generator=gen) < 0.5:
        cond, target = cond.flip(3), target.flip(3)
        cond[:, DISP_X] = -cond[:, DISP_X]
    if torch.rand((), generator=gen) < 0.5:
        cond, target = cond.transpose(2, 3), target.transpose(2, 3)
        cond = cond[:, [DISP_X if k == DISP_Y else DISP_Y if k == DISP_X else k for k in range(cond.shape[1])]]
    return cond.contiguous(), target.contiguous()


def fit(args: argparse.Namespace) -> dict:
    """Run the training described by ``args`` (see :func:`add_fit_arguments`); returns the summary."""
    procs = start_processes("nccl" if args.device.startswith("cuda") else "gloo")
    distributed, rank, world = procs.distributed, procs.rank, procs.world
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(None, "--device", "cuda was requested but torch sees no CUDA device")
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", device.index or 0)))
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.set_flush_denormal(True)
    if args.data is not None:
        data = TripletData.concatenate([TripletData.load(p) for p in args.data])
        desc = {"examples": [str(p) for p in args.data]}
    else:
        data = cohort_triplets(cohort_cases(args.cohort), seed=args.seed)
        desc = {"cohort": str(args.cohort)}
    if data.cond.shape[-1] % SIZE_MULTIPLE:
        raise InputError(args.data or args.cohort, "crop", f"crop size must be a multiple of {SIZE_MULTIPLE}")
    if len(data) < args.batch * world:
        raise InputError(args.data or args.cohort, "data",
                         f"{len(data)} slices, fewer than one batch per process ({args.batch} x {world})")
    desc.update({"slices": len(data), "triplets": len(data.triplets),
                 "patients": sorted({p for p, _, _ in data.triplets})})
    dataset = TensorDataset(torch.from_numpy(data.cond), torch.from_numpy(data.target), torch.from_numpy(data.gaps))
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=args.seed, drop_last=True)
    loader = DataLoader(dataset, batch_size=args.batch, sampler=sampler, drop_last=True)
    model = MultiTaskNet(args.channels).to(device)
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if distributed else model
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    ab = alphas_cumprod().to(device)
    gen = torch.Generator().manual_seed(args.seed + 1000 * rank)
    history: list[dict] = []
    step, epoch, start, progress = 0, 0, time.time(), 0.0
    net.train()
    while progress < 1.0:
        sampler.set_epoch(epoch)
        for cond, target, gaps in loader:
            set_lr(opt, cosine_lr(args.lr, progress))
            cond, target = augment(cond.float(), target.float(), gen)
            gaps = gaps.clone()
            gaps[:, :2] += (torch.rand((gaps.shape[0], 2), generator=gen) * 2 - 1) * args.gap_noise
            gaps[:, :2] = gaps[:, :2].clamp(min=1.0)
            t = torch.randint(0, ab.numel(), (cond.shape[0],), generator=gen)
            x0 = F.avg_pool2d(target[:, 1:2], POOL)  # the FLAIR change at the network's 4 mm pixels
            eps = torch.randn(x0.shape, generator=gen)
            cond, target, x0, gaps, t, eps = (x.to(device) for x in (cond, target, x0, gaps, t, eps))
            x_t, v = noised(x0, t, eps, ab)
            v_hat, p_hat = net(x_t, t, cond, gaps)
            loss, terms = multitask_loss(v_hat, v, p_hat, target[:, 0:1], target[:, 2:3], args.lambda_rt, args.gamma)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            progress = training_progress(step, args, time.time() - start, distributed)
            if rank == 0 and (step % args.log_every == 0 or progress >= 1.0):
                log_step(history, step, terms, time.time() - start)
            if progress >= 1.0:
                break
        epoch += 1
    summary = {"steps": step, "processes": world, "device": str(device), "seconds": round(time.time() - start, 1),
               "data": desc, "final": history[-1] if history else {}}
    if rank == 0:
        save_checkpoint(args.out, cpu_state(model), run_config(args), history, summary)
    end_processes(procs)
    return summary


STAGES = (Action("prepare", "build the triplet examples of a cohort (.npz)", add_prepare_arguments, prepare),
          Action("fit", "train (DDP under torchrun, --device cuda)", add_fit_arguments, fit))


def run(args: argparse.Namespace) -> object:
    """Dispatch ``prepare`` or ``fit``."""
    return run_action(args, __package__, STAGES, dest="stage")


def main(argv: list[str] | None = None) -> int:
    return module_main("multitask.train", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
