"""Train one member of the recurrence U-Net ensemble (single process, or several with ``torchrun``: DDP).

    python -m gliomaforecast_training.recurrence_unet.train --cohort /work/data/train_dense --seed 0 \
        --max-minutes 15 --out /tmp/recurrence_m0.pt
    gliomaforecast-train recurrence-unet train --cohort /work/data/train_dense --seed 0 --max-minutes 15 --out m0.pt
    torchrun --nproc_per_node 4 -m gliomaforecast_training.recurrence_unet.train --cohort ... --device cuda --out ...

Every patient of ``--cohort`` that the ``recurrence`` protocol scores is one sample (``data.case_sample``); the
members of the deep ensemble differ by ``--seed`` (initialisation, data order and augmentation). Each step draws
``--batch`` samples per process from a seeded permutation (split across processes under DDP), augments them
(``data.draw_batch``) and minimises ``loss.recurrence_loss`` with Adam and a cosine decay to 5 % of ``--lr``.
Training stops after ``--steps`` or ``--max-minutes``, whichever comes first. Rank 0 writes the checkpoint
(state_dict, config, loss history, data summary). Same arguments and seed -> same weights (one process, CPU).
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from gliomaforecast.errors import InputError

from ..common.command import module_main
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
from .data import TARGETS, Sample, cohort_samples, draw_batch, synthetic_samples
from .loss import recurrence_loss
from .net import build_unet


def add_arguments(p: argparse.ArgumentParser) -> None:
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--cohort", type=Path, help="folder of patient folders, each with a case.json")
    data.add_argument("--synthetic", type=int, help="train on this many synthetic patients (tests)")
    p.add_argument("--cache", type=Path, help="pickle of the cohort's samples: read when it exists, else written")
    p.add_argument("--out", type=Path, required=True, help="checkpoint (.pt) to write")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--max-minutes", type=float, default=0.0, help="also stop after this wall time (minutes)")
    p.add_argument("--batch", type=int, default=2, help="samples per step and process")
    p.add_argument("--width", type=int, default=8, help="features of the first U-Net level (x1, 2, 4, 8)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--target", choices=tuple(TARGETS), default="whole",
                   help="labels to learn: whole recurrence (1|2|3) or its core (1|3; edema a negative)")
    p.add_argument("--edema-weight", type=float, default=0.5, help="loss weight of recurrent edema voxels (whole target)")
    p.add_argument("--bce-weight", type=float, default=0.5, help="BCE share of the loss (the rest: PCC)")
    p.add_argument("--channel-dropout", type=float, default=0.2, help="probability of zeroing each image channel")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    p.add_argument("--seed", type=int, default=0, help="member seed: initialisation, data order, augmentation")
    p.add_argument("--log-every", type=int, default=25)


def load_samples(args: argparse.Namespace) -> tuple[list[Sample], dict]:
    """The training samples and a description of the data (patients, skipped, source)."""
    if args.synthetic is not None:
        return synthetic_samples(args.synthetic, seed=1), {"synthetic_patients": args.synthetic}
    if args.cache is not None and args.cache.is_file():
        with open(args.cache, "rb") as fh:
            samples, skipped = pickle.load(fh)
    else:
        folders = sorted(p.parent for p in Path(args.cohort).glob("*/case.json"))
        if not folders:
            raise InputError(args.cohort, "cohort", "no patient folder with a case.json")
        samples, skipped = cohort_samples(folders)
        if args.cache is not None:
            args.cache.parent.mkdir(parents=True, exist_ok=True)
            with open(args.cache, "wb") as fh:
                pickle.dump((samples, skipped), fh)
    return samples, {"cohort": str(args.cohort), "patients": [s.patient for s in samples],
                     "skipped_no_progression": skipped}


def train(args: argparse.Namespace) -> dict:
    """Run the training described by ``args`` (see :func:`add_arguments`); returns the summary."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError(None, "--device", "cuda was requested but torch sees no CUDA device")
    procs = start_processes("nccl" if args.device == "cuda" else "gloo")
    distributed, rank, world = procs.distributed, procs.rank, procs.world
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if args.device == "cuda" else "cpu")
    torch.set_num_threads(max(args.threads, 1))
    torch.manual_seed(args.seed)
    torch.set_flush_denormal(True)
    samples, data_desc = load_samples(args)
    if len(samples) < args.batch * world:
        raise InputError(args.cohort or "--synthetic", "data",
                         f"{len(samples)} samples, fewer than one batch per process ({args.batch} x {world})")
    model = build_unet(args.width).to(device)
    net = DistributedDataParallel(model) if distributed else model
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    order_rng = np.random.default_rng(args.seed)  # same permutation on every rank
    aug_rng = np.random.default_rng([args.seed, rank])
    history: list[dict] = []
    step, epoch, start, progress = 0, 0, time.time(), 0.0
    per_step = args.batch * world
    net.train()
    while progress < 1.0:
        perm = order_rng.permutation(len(samples))
        for b in range(len(samples) // per_step):
            mine = perm[b * per_step:(b + 1) * per_step][rank::world]
            x, y, w, ml = (torch.from_numpy(a).to(device) for a in
                           draw_batch(samples, mine, aug_rng, args.edema_weight, channel_dropout=args.channel_dropout,
                                      target=args.target))
            set_lr(opt, cosine_lr(args.lr, progress))
            loss, terms = recurrence_loss(net(x), y, w, ml, args.bce_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            progress = training_progress(step, args, time.time() - start, distributed)
            if rank == 0 and (step % args.log_every == 0 or progress >= 1.0):
                log_step(history, step, terms, time.time() - start, epoch=epoch)
            if progress >= 1.0:
                break
        epoch += 1
    summary = {"steps": step, "epochs": epoch, "processes": world, "device": args.device,
               "seconds": round(time.time() - start, 1), "data": data_desc, "final": history[-1] if history else {}}
    if rank == 0:
        save_checkpoint(args.out, cpu_state(model), run_config(args), history, summary)
    end_processes(procs)
    return summary


def main(argv: list[str] | None = None) -> int:
    return module_main("recurrence_unet.train", __doc__, add_arguments, train, argv)


if __name__ == "__main__":
    sys.exit(main())
