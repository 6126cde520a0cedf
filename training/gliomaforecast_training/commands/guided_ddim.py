"""The growth-model-guided DDIM forecaster's networks: FLAIR crops of a cohort (``prepare``), train the DDPM or the
burden regressor (``fit``; ``--device cuda``), export both to ONNX with parity checks and register the family
(``export``), validation / benchmark figures on a fixed subsample of horizon pairs (``evaluate``)."""

from __future__ import annotations

import argparse

NAME = "guided-ddim"
HELP = "growth-model-guided DDIM: prepare | fit | export | evaluate"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..guided import evaluate, export, train

    sub = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    train.add_prepare_arguments(sub.add_parser("prepare", help="FLAIR crops of a cohort (.npz)"))
    train.add_fit_arguments(sub.add_parser("fit", help="train the DDPM or the burden regressor",
                                           description=train.__doc__))
    export.add_arguments(sub.add_parser("export", help="ONNX export, parity, registry family",
                                        description=export.__doc__))
    evaluate.add_arguments(sub.add_parser("evaluate", help="figures on a subsample of horizon pairs",
                                          description=evaluate.__doc__))


def run(args: argparse.Namespace) -> int:
    from ..guided import evaluate, export, train

    if args.action == "prepare":
        train.prepare(args)
    elif args.action == "fit":
        train.fit(args)
    elif args.action == "export":
        export.export(args)
    else:
        evaluate.run(args)
    return 0
