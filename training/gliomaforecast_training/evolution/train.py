"""Train the tumor-evolution network (single process, or several with ``torchrun``: DDP, gloo backend).

    python -m gliomaforecast_training.evolution.train --cohort /tmp/cohort_train --holdout 6 \
        --steps 1500 --out /tmp/evolution.pt
    torchrun --nproc_per_node 2 -m gliomaforecast_training.evolution.train --synthetic 256 --steps 20 --out x.pt

Data: slice pairs from the virtual cohort (``--cohort``, every patient folder with a case.json, the last
``--holdout`` patients in name order left out) or synthetic blobs (``--synthetic N``); see
``data``. Each step draws a batch of random pairs (a ``DistributedSampler`` splits them across
processes), adds uniform +-``gap_noise`` days to the gaps (the paper's +-5 days) and random flips /
transposes of the slices. Adam, cosine learning-rate decay. Rank 0 writes the checkpoint
(state_dict, config, loss history). Same arguments and seed -> same weights (single process).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from gliomaforecast.errors import InputError

from ..common.command import module_main
from ..common.loop import (
    cosine_lr,
    end_processes,
    log_step,
    run_config,
    save_checkpoint,
    set_lr,
    start_processes,
    training_progress,
)
from .data import PIXEL_MM, cohort_pairs, synthetic_pairs
from .loss import EvolutionLoss
from .net import EvolutionNet


def add_arguments(p: argparse.ArgumentParser) -> None:
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--cohort", type=Path, help="folder of patient folders, each with a case.json")
    data.add_argument("--synthetic", type=int, help="train on this many synthetic blob pairs")
    p.add_argument("--holdout", type=int, default=0, help="leave out the last N patients (name order)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint (.pt) to write")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="also stop after this wall time; the cosine schedule follows max(step, time) progress")
    p.add_argument("--batch", type=int, default=16, help="batch per process")
    p.add_argument("--size", type=int, default=96, help="crop size in 2 mm pixels (multiple of 16)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--lambda-smooth", type=float, default=0.05)
    p.add_argument("--gap-noise", type=float, default=5.0, help="uniform noise on the gaps, +- days")
    p.add_argument("--channels", type=int, nargs=4, default=[8, 16, 32, 64])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)


def split_cohort(folder: Path, holdout: int) -> tuple[list[Path], list[Path]]:
    """(training, held-out) patient folders of a cohort folder, in name order."""
    cases = sorted(p.parent for p in Path(folder).glob("*/case.json"))
    if holdout < 0 or len(cases) <= holdout:
        raise InputError(folder, "--holdout", f"{len(cases)} patient folders with a case.json; cannot train "
                                              f"while holding out {holdout}")
    return (cases[:-holdout], cases[-holdout:]) if holdout else (cases, [])


def _augment(phi: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    if torch.rand((), generator=gen) < 0.5:
        phi = phi.flip(2)
    if torch.rand((), generator=gen) < 0.5:
        phi = phi.flip(3)
    if torch.rand((), generator=gen) < 0.5:
        phi = phi.transpose(2, 3)
    return phi


def train(args: argparse.Namespace) -> dict:
    """Run the training described by ``args`` (see :func:`add_arguments`); returns the summary."""
    procs = start_processes("gloo")
    distributed, rank, world = procs.distributed, procs.rank, procs.world
    torch.manual_seed(args.seed)
    torch.set_flush_denormal(True)  # denormal activations slow CPU convolutions many-fold
    if args.size % 16 or args.size < 16:
        raise InputError("--size", None, f"must be a positive multiple of 16 pixels, got {args.size}")
    if args.cohort is not None:
        train_cases, held = split_cohort(args.cohort, args.holdout)
        phis, gaps = cohort_pairs(train_cases, args.size)
        data_desc = {"cohort": str(args.cohort), "patients": [p.name for p in train_cases],
                     "held_out": [p.name for p in held]}
    else:
        phis, gaps = synthetic_pairs(args.synthetic, args.size, seed=args.seed)
        data_desc = {"synthetic_pairs": args.synthetic}
    if len(gaps) < args.batch * world:
        raise InputError(args.cohort or "--synthetic", "data",
                         f"{len(gaps)} slice pairs, fewer than one batch per process ({args.batch} x {world})")
    data_desc["slice_pairs"] = int(len(gaps))
    dataset = TensorDataset(torch.from_numpy(phis), torch.from_numpy(gaps))
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=args.seed,
                                 drop_last=True)
    loader = DataLoader(dataset, batch_size=args.batch, sampler=sampler, drop_last=True)
    model = EvolutionNet(args.channels)
    net = DistributedDataParallel(model) if distributed else model
    loss_fn = EvolutionLoss(PIXEL_MM, args.lambda_smooth)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed + 1000 * rank)
    history: list[dict] = []
    step, epoch, start = 0, 0, time.time()
    net.train()
    progress = 0.0
    while progress < 1.0:
        sampler.set_epoch(epoch)
        for phi, gap in loader:
            set_lr(opt, cosine_lr(args.lr, progress))  # cosine decay to 5% of --lr
            phi = _augment(phi, gen)
            gap = gap + (torch.rand(gap.shape, generator=gen) * 2 - 1) * args.gap_noise
            loss, terms = loss_fn(phi, net(phi, gap.clamp(min=1.0)))
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
    summary = {"steps": step, "processes": world, "seconds": round(time.time() - start, 1), "data": data_desc,
               "final": history[-1] if history else {}}
    if rank == 0:
        save_checkpoint(args.out, model.state_dict(), run_config(args), history, summary)
    end_processes(procs)
    return summary


def main(argv: list[str] | None = None) -> int:
    return module_main("evolution.train", __doc__, add_arguments, train, argv)


if __name__ == "__main__":
    sys.exit(main())
