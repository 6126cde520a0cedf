"""The single-scan latent diffusion forecaster's networks: scan pairs of a cohort (``prepare``), the image and
GTV VQ-VAEs (``vqvae``), the latent denoiser (``diffusion``), ONNX export with parity and the registry family
(``export``), validation / benchmark figures and the guidance-weight choice (``evaluate``)."""

from __future__ import annotations

import argparse

NAME = "latent-diffusion"
HELP = "single-scan latent diffusion: prepare | vqvae | diffusion | export | evaluate"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..latent import evaluate, export, train

    sub = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    train.add_prepare_arguments(sub.add_parser("prepare", help="scan pairs of a cohort (.npz)"))
    train.add_vqvae_arguments(sub.add_parser("vqvae", help="train the image or the GTV VQ-VAE",
                                             description=train.__doc__))
    train.add_diffusion_arguments(sub.add_parser("diffusion", help="train the latent denoiser (CFG class dropout)",
                                                 description=train.__doc__))
    export.add_arguments(sub.add_parser("export", help="ONNX export, parity, registry family",
                                        description=export.__doc__))
    evaluate.add_arguments(sub.add_parser("evaluate", help="PSNR/SSIM/MSE vs the identity baseline, w and class",
                                          description=evaluate.__doc__))


def run(args: argparse.Namespace) -> int:
    from ..latent import evaluate, export, train

    if args.action == "prepare":
        train.prepare(args)
    elif args.action == "vqvae":
        train.fit_vqvae(args)
    elif args.action == "diffusion":
        train.fit_diffusion(args)
    elif args.action == "export":
        export.export(args)
    else:
        evaluate.evaluate(args)
    return 0
