"""The multi-task diffusion forecaster's network: build triplet examples of a cohort (``prepare``), train (``fit``;
``--device cuda``, torchrun DDP), export to ONNX with parity and register it (``export``), validation figures per
gap bin with image metrics (``evaluate``), the measured effect of the RT weight's gamma (``loss-study``)."""

from __future__ import annotations

import argparse

NAME = "multitask"
HELP = "multi-task diffusion network: prepare | fit | export | evaluate | loss-study"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..multitask import evaluate, export, loss_study, train

    sub = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    train.add_prepare_arguments(sub.add_parser("prepare", help="triplet examples of a cohort (.npz)"))
    train.add_fit_arguments(sub.add_parser("fit", help="train (DDP under torchrun, --device cuda)",
                                           description=train.__doc__))
    export.add_arguments(sub.add_parser("export", help="ONNX export, parity, registry family",
                                        description=export.__doc__))
    evaluate.add_arguments(sub.add_parser("evaluate", help="validation figures per gap bin, PSNR/SSIM",
                                          description=evaluate.__doc__))
    loss_study.add_arguments(sub.add_parser("loss-study", help="effect of gamma: errors by dose region",
                                            description=loss_study.__doc__))


def run(args: argparse.Namespace) -> int:
    from ..multitask import evaluate, export, loss_study, train

    if args.action == "prepare":
        train.prepare(args)
    elif args.action == "fit":
        train.fit(args)
    elif args.action == "export":
        export.export(args)
    elif args.action == "loss-study":
        loss_study.main_with(args)
    else:
        args.forecaster = args.forecaster or list(evaluate.FORECASTERS)
        evaluate.main_with(args)
    return 0
