"""Argument checks shared by the numerical modules: spacing (mm) and binary masks. Each raises ValueError with
a one-line message; the CLI and case loaders turn bad files into InputErrors before these are reached. Also what a
non-regular file is (:func:`special_file_kind`), shared by the DICOM scan and the cohort folder scan."""

from __future__ import annotations

import math
import stat
from collections.abc import Sequence

import numpy as np


def check_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    """``spacing`` as ``ndim`` positive, finite floats (mm, array order); else ValueError."""
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        values = ()
    if len(values) != ndim or not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing must give {ndim} positive values in mm (array order), got {tuple(spacing)}")
    return values


def check_mask(array: np.ndarray, name: str = "mask", shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A 2D or 3D 0/1 (or bool) array as bool, checked against ``shape`` when given; else ValueError naming it."""
    mask = np.asarray(array)
    if mask.ndim not in (2, 3):
        raise ValueError(f"{name} must be a 2D or 3D mask, got {mask.ndim}D")
    if shape is not None and mask.shape != tuple(shape):
        raise ValueError(f"{name} has shape {mask.shape}, expected {tuple(shape)} (all inputs must share one grid)")
    if mask.dtype != bool:
        if not np.all(np.isin(np.unique(mask), (0, 1))):
            raise ValueError(f"{name} must be binary (0/1 or bool)")
        mask = mask.astype(bool)
    return mask


def special_file_kind(mode: int) -> str | None:
    """What an ``os.stat`` mode describes when it is not a regular file: "folder", "FIFO", "device", "socket" or
    "other"; None for a regular file. Decided without opening anything (a FIFO would block a read)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "socket" if stat.S_ISSOCK(mode) else "other"
