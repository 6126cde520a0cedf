"""The training-loop helpers shared by every trainer (evolution, multi-task diffusion, guided DDIM, latent
diffusion, recurrence U-Net): progress over steps and wall time, the cosine learning rate, the loss log, the
checkpoint file, and the DDP start and teardown (``torchrun``)."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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


def cosine_lr(lr: float, progress: float) -> float:
    """Cosine decay of the learning rate ``lr`` to 5 % of it over progress 0..1."""
    return lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * progress)))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group of ``opt``."""
    for group in opt.param_groups:
        group["lr"] = lr


def log_step(history: list[dict], step: int, terms: dict[str, float], seconds: float, **extra: Any) -> dict:
    """Append one loss record to ``history`` (``step``, ``extra``, the terms to 5 decimals, ``seconds`` to 0.1) and
    print it as one JSON line; returns it."""
    history.append({"step": step, **extra, **{k: round(v, 5) for k, v in terms.items()}, "seconds": round(seconds, 1)})
    print(json.dumps(history[-1]), flush=True)
    return history[-1]


def run_config(args: argparse.Namespace) -> dict:
    """The arguments of a run as a checkpoint stores them (paths as text, callables left out)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if not callable(v)}


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state_dict with every tensor on the CPU."""
    return {k: v.cpu() for k, v in module.state_dict().items()}


def save_checkpoint(path: Path, state_dict: dict, config: dict, history: list[dict], summary: dict,
                    **more: Any) -> None:
    """Write the checkpoint ``{"state_dict", "config", **more, "history", "summary"}`` to ``path`` (folders made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state_dict, "config": config, **more, "history": history, "summary": summary}, path)


@dataclass(frozen=True)
class Processes:
    """This process's place in a run: ``distributed`` (under ``torchrun`` with WORLD_SIZE > 1), ``rank``, ``world``."""

    distributed: bool
    rank: int
    world: int


def is_distributed() -> bool:
    """Whether this process is one of several (``torchrun``: WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start_processes(backend: str) -> Processes:
    """Join the process group (``backend``: gloo or nccl) when distributed; rank 0 of 1 otherwise."""
    distributed = is_distributed()
    if distributed:
        dist.init_process_group(backend)
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    return Processes(distributed, rank, world)


def end_processes(procs: Processes) -> None:
    """Wait for every rank, then leave the process group (a no-op for one process)."""
    if procs.distributed:
        dist.barrier()
        dist.destroy_process_group()
