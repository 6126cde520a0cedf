"""Seeded noise that does not depend on how samples are batched.

Sample ``i`` (its index in the whole request, e.g. the slice number) owns the generator
``numpy.random.default_rng(SeedSequence(seed, spawn_key=(i,)))`` (the ``i``-th child of
``SeedSequence(seed).spawn``). Every draw of a batch is the stack of each member's own draw, in the same
order for every sample, so the same seed gives identical arrays whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def sample_generator(seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` for ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index),)))


class SampleNoise:
    """Standard normal noise (float64) for a batch of samples, one generator per sample index."""

    def __init__(self, seed: int, indices: Sequence[int]) -> None:
        self.indices = [int(i) for i in indices]
        self._rngs = [sample_generator(seed, i) for i in self.indices]

    def __call__(self, shape: tuple[int, ...]) -> np.ndarray:
        """Noise of ``shape`` = (batch, ...); the batch must be this object's number of samples."""
        if shape[0] != len(self._rngs):
            raise ValueError(f"noise for a batch of {shape[0]} requested from {len(self._rngs)} sample generators")
        return np.stack([rng.standard_normal(shape[1:]) for rng in self._rngs]) if self._rngs else np.zeros(shape)
