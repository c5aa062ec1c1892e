"""Batches that mix new data with replayed old data in a fixed share, for extending a trained detector.

Fine-tuning on the new classes alone makes a detector forget the old ones (catastrophic forgetting);
replaying the original training images in every batch keeps their gradients in the mix. The labelled set
is the new images (indices ``0 .. n_new - 1``) followed by the replayed ones; step ``s`` of a global batch
of ``G`` images takes ``floor((s + 1) f G) - floor(s f G)`` replayed images (``f`` the replay fraction), so
every batch holds ``floor(f G)`` or ``ceil(f G)`` of them and the share over the run is exactly ``f`` even
when ``f G`` is not whole (a batch of one alternates). Each part is read from its own endless stream of
seeded permutations, as train.data.StepBatchSampler does: the order is a pure function of (seed, step),
so 1 or N processes see the same global batches and a resumed run continues on the next one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from train.data import DataError


def replayed_count(step: int, fraction: float, global_batch: int) -> int:
    """How many replayed images step ``step`` holds (cumulative rounding: the share is exact over steps)."""
    return math.floor((step + 1) * fraction * global_batch + 1e-9) - math.floor(
        step * fraction * global_batch + 1e-9
    )


class MixedBatchSampler(Sampler[list[int]]):
    """This process's share of each step's global batch, new images then replayed ones (see the module
    docstring); ``StepBatchSampler``'s signature plus ``n_new`` and ``fraction``."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        steps: int,
        *,
        n_new: int,
        fraction: float,
        world_size: int = 1,
        rank: int = 0,
        seed: int = 0,
        start_step: int = 0,
    ):
        n_old = n - n_new
        if not 0.0 <= fraction < 1.0:
            raise DataError("replay_fraction", f"must be in [0, 1), got {fraction}")
        if n_new < 1 or n_old < 0 or (fraction > 0 and n_old < 1):
            raise DataError(None, f"cannot mix {n_new} new and {n_old} replayed images")
        self.n_new, self.n_old, self.fraction = n_new, n_old, fraction
        self.batch_size, self.steps = batch_size, steps
        self.world_size, self.rank, self.seed, self.start_step = world_size, rank, seed, start_step

    def _stream(self, part: int, n: int, start: int, count: int) -> list[int]:
        """Positions ``start .. start + count - 1`` of part ``part``'s endless permutation stream."""
        out, cached_epoch, perm = [], -1, None
        for k in range(start, start + count):
            epoch, pos = divmod(k, n)
            if epoch != cached_epoch:
                cached_epoch, perm = epoch, np.random.default_rng([self.seed, part, epoch]).permutation(n)
            out.append(int(perm[pos]))
        return out

    def global_batch(self, step: int) -> list[int]:
        """Every process's images of step ``step``: indices into the new + replayed set."""
        g = self.batch_size * self.world_size
        done_old = math.floor(step * self.fraction * g + 1e-9)
        k_old = replayed_count(step, self.fraction, g)
        new = self._stream(0, self.n_new, step * g - done_old, g - k_old)
        old = self._stream(1, self.n_old, done_old, k_old) if k_old else []
        return new + [self.n_new + i for i in old]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.steps):
            yield self.global_batch(step)[self.rank :: self.world_size]

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step)
