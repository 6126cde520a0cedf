"""Training progress shared by every trainer (evolution, multi-task diffusion, recurrence U-Net)."""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist


def training_progress(step: int, args: argparse.Namespace, seconds: float, distributed: bool) -> float:
    """Progress in [0, 1]: the larger of the step fraction (``args.steps``) and the wall-time fraction
    (``args.max_minutes``, 0 = no time limit), agreed by all ranks (their maximum) when ``distributed``."""
    frac = step / max(args.steps, 1)
    if args.max_minutes > 0:
        frac = max(frac, seconds / (60.0 * args.max_minutes))
    if distributed:
        t = torch.tensor([frac])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        frac = float(t)
    return min(frac, 1.0)
