"""Train the latent diffusion forecaster's networks (CPU, or ``--device cuda``).

    gliomaforecast-train latent-diffusion prepare --cohort /work/data/train_dense --out train.npz
    gliomaforecast-train latent-diffusion vqvae --kind image --data train.npz --max-minutes 20 --out vq_image.pt
    gliomaforecast-train latent-diffusion vqvae --kind mask --data train.npz --max-minutes 20 --out vq_mask.pt
    gliomaforecast-train latent-diffusion diffusion --data train.npz --image-vq vq_image.pt --mask-vq vq_mask.pt \
        --max-minutes 20 --out denoiser.pt

``prepare`` builds the scan pairs of a cohort once (``data.cohort_pairs``, float16 ``.npz``). ``vqvae`` trains a
VQ-VAE on every pre- and post-treatment crop of the pairs (random flips / transposes): L1 reconstruction for the
images, binary cross-entropy of the logits for the GTV, plus MONAI's commitment loss (EMA codebook). ``diffusion``
encodes every pair under the 8 flips / transposes with the frozen VQ-VAEs (quantized latents), normalises them per
channel (training-set mean and SD, stored in the checkpoint), and trains the latent U-Net on the v-prediction MSE at
a uniform step of the core's linear schedule, the outcome class replaced by the null class with probability
``--class-dropout`` (classifier-free guidance). Adam with cosine decay to 5 % of ``--lr``; stops at ``--steps`` or
``--max-minutes``. Same arguments and seed -> same weights (CPU).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from gliomaforecast.errors import InputError
from gliomaforecast.forecasters.latent import inputs as li

from ..common.cases import cohort_cases
from ..common.loop import cosine_lr, cpu_state, log_step, run_config, save_checkpoint, set_lr
from ..common.schedule import alphas_cumprod, noised
from .data import PairData, cohort_pairs
from .net import LATENT_CHANNELS, Denoiser, make_denoiser, make_vqvae, quantize

KINDS = {"image": (len(li.MODALITIES), 128), "mask": (1, 32)}


def add_prepare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cohort", type=Path, required=True, help="folder of patient folders, each with a case.json")
    p.add_argument("--out", type=Path, required=True, help=".npz file to write")
    p.add_argument("--max-slices", type=int, default=6, help="slices per pair, drawn with the seed")
    p.add_argument("--seed", type=int, default=0)


def _common(p: argparse.ArgumentParser, minutes: float) -> None:
    p.add_argument("--data", type=Path, required=True, help=".npz written by prepare")
    p.add_argument("--out", type=Path, required=True, help="checkpoint (.pt) to write")
    p.add_argument("--steps", type=int, default=100000)
    p.add_argument("--max-minutes", type=float, default=minutes, help="also stop after this wall time")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)


def add_vqvae_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", choices=sorted(KINDS), required=True, help="image (T1CE + FLAIR) or mask (GTV)")
    p.add_argument("--channels", type=int, nargs=2, default=[16, 32])
    p.add_argument("--num-embeddings", type=int, default=0, help="codebook size (0: 128 image, 32 mask)")
    p.add_argument("--restart-every", type=int, default=50,
                   help="steps between restarts of unused codebook vectors at random encodings of the batch")
    _common(p, 20.0)


def add_diffusion_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image-vq", type=Path, required=True, help="image VQ-VAE checkpoint")
    p.add_argument("--mask-vq", type=Path, required=True, help="mask VQ-VAE checkpoint")
    p.add_argument("--channels", type=int, nargs=3, default=[64, 128, 128])
    p.add_argument("--class-dropout", type=float, default=0.15, help="probability of the null class (CFG)")
    p.add_argument("--dose", action="store_true",
                   help="condition on the planned RT dose (one more channel: dose / 60 Gy at latent resolution)")
    p.add_argument("--dose-dropout", type=float, default=0.15,
                   help="with --dose: probability that an example's dose channel is zero (the 'no dose map' case)")
    _common(p, 20.0)


def prepare(args: argparse.Namespace) -> PairData:
    """Build and save the pairs of ``args.cohort``."""
    cases = cohort_cases(args.cohort)
    data = cohort_pairs(cases, max_slices=args.max_slices, seed=args.seed, log=lambda m: print(m, flush=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data.save(args.out)
    print(f"{len(data)} slices from {len(data.pairs)} pairs of {len(cases)} patients -> {args.out}")
    return data


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Flip / transpose variant ``k`` (0..7; 0 identity) of (B, C, H, W): bit 0 flips y, bit 1 x, bit 2 swaps."""
    if k & 1:
        x = x.flip(2)
    if k & 2:
        x = x.flip(3)
    if k & 4:
        x = x.transpose(2, 3)
    return x.contiguous()


def _device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(None, "--device", "cuda was requested but torch sees no CUDA device")
    return device


def _loop(args: argparse.Namespace, params, step_fn) -> tuple[list[dict], dict]:
    """Adam + cosine schedule over max(step, wall-time) progress; ``step_fn(step) -> dict`` of loss terms."""
    opt = torch.optim.Adam(params, lr=args.lr)
    history: list[dict] = []
    start, step, progress = time.time(), 0, 0.0
    limit = args.max_minutes * 60.0
    while progress < 1.0:
        set_lr(opt, cosine_lr(args.lr, min(progress, 1.0)))
        loss, terms = step_fn(step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        elapsed = time.time() - start
        progress = max(step / args.steps, elapsed / limit if limit > 0 else 0.0)
        if step % args.log_every == 0 or progress >= 1.0:
            log_step(history, step, terms, elapsed)
    return history, {"steps": step, "seconds": round(time.time() - start, 1), "final": history[-1] if history else {}}


def fit_vqvae(args: argparse.Namespace) -> dict:
    """Train one VQ-VAE (``args.kind``) on the pre- and post-treatment crops; returns the summary."""
    device = _device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = PairData.load(args.data)
    if args.kind == "image":
        x_all = np.concatenate([data.pre, data.post])
    else:
        x_all = np.concatenate([data.pre_mask, data.post_mask])
    x_all = torch.from_numpy(x_all.astype(np.float32))
    if len(x_all) < args.batch:
        raise InputError(args.data, "data", f"{len(x_all)} crops, fewer than one batch ({args.batch})")
    in_ch, default_codes = KINDS[args.kind]
    args.num_embeddings = args.num_embeddings or default_codes
    vq = make_vqvae(in_ch, args.num_embeddings, args.channels).to(device).train()
    gen = torch.Generator().manual_seed(args.seed)

    def step_fn(step: int):
        idx = torch.randint(0, len(x_all), (args.batch,), generator=gen)
        x = dihedral(x_all[idx], int(torch.randint(0, 8, (), generator=gen))).to(device)
        if step % args.restart_every == 0:
            restart_codes(vq, x, gen, initial=step == 0)
        recon, q_loss = vq(x)
        rec = F.l1_loss(recon, x) if args.kind == "image" else F.binary_cross_entropy_with_logits(recon, x)
        loss = rec + q_loss.mean()
        return loss, {"loss": float(loss.detach()), "recon": float(rec.detach()), "commit": float(q_loss.detach().mean()),
                      "perplexity": float(vq.quantizer.perplexity)}

    history, summary = _loop(args, vq.parameters(), step_fn)
    summary.update({"device": str(device), "data": {"examples": str(args.data), "crops": len(x_all),
                                                    "patients": sorted({p for p, _, _ in data.pairs})}})
    save_checkpoint(args.out, cpu_state(vq), run_config(args), history, summary)
    return summary


@torch.no_grad()
def restart_codes(vq, x: torch.Tensor, gen: torch.Generator, initial: bool = False, min_usage: float = 0.05) -> int:
    """Move every codebook vector whose EMA usage is below ``min_usage`` (all of them when ``initial``) onto a
    random encoding of the batch ``x`` (data-dependent initialisation and dead-code restart of the EMA codebook);
    returns how many moved."""
    q = vq.quantizer.quantizer
    z = vq.encode(x).permute(0, 2, 3, 1).reshape(-1, q.embedding_dim)
    dead = torch.ones_like(q.ema_cluster_size, dtype=torch.bool) if initial else q.ema_cluster_size < min_usage
    n = int(dead.sum())
    if n:
        pick = torch.randint(0, z.shape[0], (n,), generator=gen).to(z.device)
        q.embedding.weight.data[dead] = z[pick]
        q.ema_w.data[dead] = z[pick]
        q.ema_cluster_size.data[dead] = 1.0
    return n


def load_vqvae(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """A trained VQ-VAE (eval mode) and its checkpoint."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    cfg = ckpt["config"]
    vq = make_vqvae(KINDS[cfg["kind"]][0], cfg["num_embeddings"], cfg["channels"])
    vq.load_state_dict(ckpt["state_dict"])
    return vq.eval(), ckpt


@torch.no_grad()
def encode_pairs(data: PairData, vq_image, vq_mask, variants: int = 8, batch: int = 256) -> dict[str, torch.Tensor]:
    """Quantized latents of every pair under ``variants`` flips / transposes: ``pre`` and ``post`` (N * variants,
    2 LATENT_CHANNELS, h, w) image then mask latents; ``dose`` (N * variants, 1, h, w) the dose crops under the
    same variants, mean-pooled to the latent grid; ``gap`` and ``outcome`` repeated."""
    out = {"pre": [], "post": []}
    for k in range(variants):
        for lo in range(0, len(data), batch):
            sl = slice(lo, lo + batch)
            f = lambda a: dihedral(torch.from_numpy(a[sl].astype(np.float32)), k)  # noqa: E731
            out["pre"].append(torch.cat([quantize(vq_image, f(data.pre)), quantize(vq_mask, f(data.pre_mask))], 1))
            out["post"].append(torch.cat([quantize(vq_image, f(data.post)), quantize(vq_mask, f(data.post_mask))], 1))
    out["dose"] = [dihedral(torch.from_numpy(data.dose.astype(np.float32)), k) for k in range(variants)]
    res = {k: torch.cat(v) for k, v in out.items()}
    res["dose"] = torch.from_numpy(li.pooled(res["dose"].numpy(), res["pre"].shape[-1]))
    res["gap"] = torch.from_numpy(np.tile(data.gap, variants).astype(np.float32))
    res["outcome"] = torch.from_numpy(np.tile(data.outcome, variants).astype(np.int64))
    return res


def fit_diffusion(args: argparse.Namespace) -> dict:
    """Train the latent denoiser (see the module docstring); returns the summary."""
    device = _device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = PairData.load(args.data)
    if len(data) < args.batch:
        raise InputError(args.data, "data", f"{len(data)} slices, fewer than one batch ({args.batch})")
    vq_image, _ = load_vqvae(args.image_vq)
    vq_mask, _ = load_vqvae(args.mask_vq)
    lat = encode_pairs(data, vq_image, vq_mask)
    both = torch.cat([lat["pre"], lat["post"]])
    mean = both.mean(dim=(0, 2, 3)).reshape(1, -1, 1, 1)
    std = both.std(dim=(0, 2, 3)).reshape(1, -1, 1, 1).clamp(min=1e-3)
    pre, post = (lat["pre"] - mean) / std, (lat["post"] - mean) / std
    gap = torch.from_numpy(li.gap_feature(lat["gap"].numpy()))
    print(f"latents: {tuple(post.shape)} per variant-slice; mean {mean.flatten().tolist()} sd {std.flatten().tolist()}",
          flush=True)
    net = Denoiser(make_denoiser(args.channels, args.dose)).to(device).train()
    ab = alphas_cumprod().to(device)
    gen = torch.Generator().manual_seed(args.seed)

    def step_fn(_step: int):
        idx = torch.randint(0, len(post), (args.batch,), generator=gen)
        x0 = post[idx]
        g = gap[idx].reshape(-1, 1, 1, 1).expand(-1, 1, x0.shape[2], x0.shape[3])
        cond = torch.cat([pre[idx], g], dim=1)
        if args.dose:
            dose = lat["dose"][idx] * (torch.rand(args.batch, 1, 1, 1, generator=gen) >= args.dose_dropout)
            cond = torch.cat([cond, dose], dim=1)
        cls = lat["outcome"][idx].clone()
        cls[torch.rand(args.batch, generator=gen) < args.class_dropout] = li.NULL
        t = torch.randint(0, ab.numel(), (args.batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        x0, cond, cls, t, eps = (v.to(device) for v in (x0, cond, cls, t, eps))
        x_t, v = noised(x0, t, eps, ab)
        loss = F.mse_loss(net(x_t, t, cond, cls), v)
        return loss, {"loss": float(loss.detach())}

    history, summary = _loop(args, net.parameters(), step_fn)
    summary.update({"device": str(device), "data": {"examples": str(args.data), "slices": len(data),
                                                    "pairs": len(data.pairs),
                                                    "responder_fraction": round(float((data.outcome == li.RESPONDER).mean()), 4),
                                                    "patients": sorted({p for p, _, _ in data.pairs})}})
    save_checkpoint(args.out, cpu_state(net.unet), run_config(args), history, summary,
                    latent_mean=mean.flatten().tolist(), latent_std=std.flatten().tolist())
    return summary


def load_denoiser(path: str | Path) -> tuple[Denoiser, dict]:
    """The trained denoiser wrapper (eval mode) and its checkpoint."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    unet = make_denoiser(ckpt["config"]["channels"], ckpt["config"].get("dose", False))
    unet.load_state_dict(ckpt["state_dict"])
    return Denoiser(unet).eval(), ckpt


__all__ = ["LATENT_CHANNELS", "prepare", "fit_vqvae", "fit_diffusion", "load_vqvae", "load_denoiser", "encode_pairs",
           "dihedral"]
