"""Loss of the recurrence U-Net (PREDICT-GBM supplementary 9.2): binary cross-entropy + a Tversky-style
"progression coverage coefficient" (PCC) whose weights depend on each patient's recurrence size, both weighted
per voxel (zero outside the brain, lower on recurrent edema).

PCC of patient p with soft target y, probability q and voxel weights w:
    TP = sum w q y,  FN = sum w (1 - q) y,  FP = sum w q (1 - y)
    PCC = (TP + eps) / (TP + a_p FN + (1 - a_p) FP + eps),  loss 1 - PCC
    a_p = A_MIN + (A_MAX - A_MIN) exp(-V_p / V_REF_ML)
A missed recurrence voxel (FN) costs more than a false alarm (a_p > 0.5), the more so the smaller the recurrence
V_p (mL): a small recurrence is a small fraction of the voxels and would otherwise be ignored (class imbalance).
The paper gives no formula; these constants are this project's choice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

A_MIN = 0.7
A_MAX = 0.95
V_REF_ML = 20.0
EPS = 1.0


def coverage_alpha(recurrence_ml: torch.Tensor) -> torch.Tensor:
    """Per-patient false-negative weight a_p (0.7-0.95) from the recurrence volume (mL)."""
    return A_MIN + (A_MAX - A_MIN) * torch.exp(-recurrence_ml / V_REF_ML)


def recurrence_loss(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, recurrence_ml: torch.Tensor,
                    bce_weight: float = 0.5) -> tuple[torch.Tensor, dict[str, float]]:
    """``bce_weight`` x weighted mean BCE + (1 - ``bce_weight``) x mean (1 - PCC) over the batch.
    Shapes: logits, target (0-1), weights (B, 1, Z, Y, X); recurrence_ml (B,). Returns (loss, terms)."""
    bce_map = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    bce = (bce_map * weights).sum() / weights.sum().clamp(min=1.0)
    q = torch.sigmoid(logits)
    dims = tuple(range(1, logits.ndim))
    tp = (weights * q * target).sum(dims)
    fn = (weights * (1 - q) * target).sum(dims)
    fp = (weights * q * (1 - target)).sum(dims)
    a = coverage_alpha(recurrence_ml.to(logits.dtype))
    pcc = (tp + EPS) / (tp + a * fn + (1 - a) * fp + EPS)
    pcc_loss = (1 - pcc).mean()
    loss = bce_weight * bce + (1 - bce_weight) * pcc_loss
    return loss, {"loss": loss.item(), "bce": bce.item(), "pcc": pcc.mean().item()}
