"""Train the tumor-evolution network (``train``; also under ``torchrun`` for DDP) or export a checkpoint to
ONNX, check parity, evaluate on held-out patients and register it in models.json (``export``)."""

from __future__ import annotations

import argparse

NAME = "evolution"
HELP = "tumor-evolution (deformation) network: train | export"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .. import export_evolution, train_evolution

    sub = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    train_evolution.add_arguments(sub.add_parser("train", help="train (DDP under torchrun)",
                                                 description=train_evolution.__doc__))
    export_evolution.add_arguments(sub.add_parser("export", help="ONNX export, parity, evaluation, registry",
                                                  description=export_evolution.__doc__))


def run(args: argparse.Namespace) -> int:
    from .. import export_evolution, train_evolution

    if args.action == "train":
        train_evolution.train(args)
    else:
        export_evolution.export(args)
    return 0
