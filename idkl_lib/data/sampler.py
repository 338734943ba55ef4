"""The P x K cross-modality identity sampler (docs/method.md#42-sampler), with distributed sharding."""

from __future__ import annotations

import operator
import warnings
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
from torch.utils.data import Sampler

from .records import INFRARED, VISIBLE, Sample

IdentityChoice = Literal["uniform", "proportional"]
IDENTITY_CHOICES: tuple[str, ...] = ("uniform", "proportional")


def _positive_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"CrossModalityIdentitySampler: {name} must be an int, got {value!r}")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"CrossModalityIdentitySampler: {name} must be an int, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"CrossModalityIdentitySampler: {name} must be >= {minimum}, got {number}")
    return number


def _draw(rng: np.random.Generator, pool: np.ndarray, m: int) -> np.ndarray:
    """``m`` items of ``pool``: a random subset when ``len(pool) >= m``, else whole shuffled copies of the pool
    followed by a random part of one more (sampling with replacement that uses every image)."""
    copies = -(-m // len(pool))
    return np.concatenate([rng.permutation(pool) for _ in range(copies)])[:m]


class CrossModalityIdentitySampler(Sampler[int]):
    """P identities x K images per batch, K/2 infrared and K/2 visible per identity, interleaved infrared first.

    Use it as ``DataLoader(dataset, batch_size=sampler.batch_size, sampler=sampler, drop_last=True)``: it yields
    the dataset indices of all of this rank's batches one after the other, and ``len(sampler)`` is a multiple of
    ``P * K``. Within a batch, rows ``b*K .. b*K + K - 1`` are one identity laid out ``[I, V, I, V, ...]``
    (docs/method.md#42-sampler); the losses rely on this layout.

    Epoch rule (per identity with both modalities, ``h = K/2``, ``n_I``/``n_V`` its image counts):

    * ``c = max(min(n_I, n_V), h) // h`` chunks of ``h`` (infrared, visible) pairs are formed. The larger
      modality is subsampled without replacement; a modality with fewer than ``h`` images is drawn with
      replacement (whole shuffled copies, then a random part), so a poor identity still gives one chunk and
      never crashes the sampler (docs/method.md#42-sampler).
    * Batches are built by repeatedly picking ``P`` distinct identities among those with chunks left and taking the
      next chunk of each. ``identity_choice="uniform"`` (default, the reference's
      ``np.random.choice(avai_pids, P, replace=False)``) picks them uniformly; ``"proportional"`` picks them with
      probability proportional to their remaining chunks (rich identities are spread more evenly over the epoch).
      The epoch stops when fewer than ``P`` identities have chunks left. So an epoch has at most
      ``floor(sum_id c_id / P)`` batches; ``len(self)`` gives the exact count for the current epoch (about
      ``sum_id 2 * h * c_id`` images, as the reference's epoch length).

    Identities with images of only one modality cannot form pairs: they are left out with a warning.
    The shuffle is a deterministic function of ``(seed, epoch)``; call :meth:`set_epoch` every epoch.

    Distributed: every rank builds the same global batch sequence ``G_0, G_1, ...`` (``N`` batches of P x K).

    * ``shard="identity_blocks"`` (default): rank ``r`` of ``R`` takes identity blocks ``r P/R .. (r+1) P/R - 1`` of
      every global batch (``P/R x K`` images, ``batch_size`` is ``P/R * K``), so the concatenation of the ranks'
      batches in rank order is exactly the one-process batch; P must be divisible by R.
    * ``shard="batches"``: rank ``r`` takes whole batches ``G_r, G_{r+R}, ...`` (``floor(N / R)`` each), disjoint
      across ranks; each process then has its own P x K batch (a global batch of R P K, which is not the recipe's).

    Args:
        samples: Training records (``pid`` and ``modality`` are used; 0 = visible, 1 = infrared).
        p: Identities per batch; at most the number of identities with both modalities.
        k: Images per identity per batch; even and >= 2.
        seed: Base seed of the shuffle.
        epoch: Initial epoch.
        num_replicas: Number of distributed ranks R.
        rank: This process's rank, ``0 <= rank < R``.
        shard: How the ranks share a global batch: ``"identity_blocks"`` or ``"batches"`` (see above).
        identity_choice: ``"uniform"`` (reference) or ``"proportional"`` to the remaining chunks.
    """

    SHARDS = ("identity_blocks", "batches")

    def __init__(
        self,
        samples: Sequence[Sample],
        p: int,
        k: int,
        seed: int = 0,
        epoch: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        shard: str = "identity_blocks",
        identity_choice: IdentityChoice = "uniform",
    ) -> None:
        self.p = _positive_int("p", p, 1)
        self.k = _positive_int("k", k, 2)
        if self.k % 2:
            raise ValueError(f"CrossModalityIdentitySampler: k must be even (K/2 infrared + K/2 visible), got {k}")
        self.seed = _positive_int("seed", seed, 0)
        self.epoch = _positive_int("epoch", epoch, 0)
        self.num_replicas = _positive_int("num_replicas", num_replicas, 1)
        self.rank = _positive_int("rank", rank, 0)
        if identity_choice not in IDENTITY_CHOICES:
            raise ValueError(
                f"CrossModalityIdentitySampler: identity_choice={identity_choice!r} is not one of "
                f"{', '.join(IDENTITY_CHOICES)}"
            )
        self.identity_choice: IdentityChoice = identity_choice
        if self.rank >= self.num_replicas:
            raise ValueError(f"CrossModalityIdentitySampler: rank must be < num_replicas={num_replicas}, got {rank}")
        if shard not in self.SHARDS:
            raise ValueError(f"CrossModalityIdentitySampler: shard must be one of {self.SHARDS}, got {shard!r}")
        self.shard = shard
        if shard == "identity_blocks" and self.p % self.num_replicas:
            works = [n for n in range(1, self.p + 1) if self.p % n == 0]
            raise ValueError(
                f"CrossModalityIdentitySampler: p={p} identities per batch cannot be split over {num_replicas} "
                f"processes; use a process count that divides p ({', '.join(map(str, works))}) or a p divisible by "
                f"{num_replicas}"
            )

        pids = np.fromiter((s.pid for s in samples), dtype=np.int64, count=len(samples))
        modality = np.fromiter((s.modality for s in samples), dtype=np.int64, count=len(samples))
        bad = sorted(set(np.unique(modality).tolist()) - {VISIBLE, INFRARED})
        if bad:
            raise ValueError(
                f"CrossModalityIdentitySampler: modality values must be 0 (visible) or 1 (infrared), got {bad}"
            )
        self._pools: list[tuple[np.ndarray, np.ndarray]] = []  # per usable identity: (infrared idx, visible idx)
        one_modality: list[int] = []
        order = np.argsort(pids, kind="stable")
        uniq, starts = np.unique(pids[order], return_index=True)
        for pid, members in zip(uniq.tolist(), np.split(order, starts[1:]), strict=True):
            infrared = members[modality[members] == INFRARED]
            visible = members[modality[members] == VISIBLE]
            if infrared.size and visible.size:
                self._pools.append((infrared, visible))
            else:
                one_modality.append(pid)
        if one_modality:
            warnings.warn(
                f"CrossModalityIdentitySampler: identities {one_modality} have images of only one modality and are "
                "never sampled",
                RuntimeWarning,
                stacklevel=2,
            )
        if self.p > len(self._pools):
            raise ValueError(
                f"CrossModalityIdentitySampler: p={p} exceeds the {len(self._pools)} identities that have both "
                "modalities; lower p"
            )
        self._cache: tuple[int, np.ndarray] | None = None

    @property
    def batch_size(self) -> int:
        """This rank's DataLoader batch size: ``P/R * K`` (``shard="identity_blocks"``) or ``P * K``."""
        if self.shard == "identity_blocks":
            return self.p // self.num_replicas * self.k
        return self.p * self.k

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle of ``epoch`` (deterministic in ``(seed, epoch)``)."""
        self.epoch = _positive_int("epoch", epoch, 0)

    def global_batches(self) -> np.ndarray:
        """The batches of the current epoch across all ranks, ``(N, P*K)`` int64 dataset indices."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch]))
        h = self.k // 2
        chunks: list[np.ndarray] = []  # per identity: (c, K) rows laid out [I, V, I, V, ...]
        for infrared, visible in self._pools:
            c = max(min(infrared.size, visible.size), h) // h
            block = np.empty((c, self.k), dtype=np.int64)
            block[:, 0::2] = _draw(rng, infrared, c * h).reshape(c, h)
            block[:, 1::2] = _draw(rng, visible, c * h).reshape(c, h)
            chunks.append(block)
        total = np.array([len(b) for b in chunks], dtype=np.int64)
        remaining = total.copy()
        batches: list[np.ndarray] = []
        while np.count_nonzero(remaining) >= self.p:
            available = np.flatnonzero(remaining)  # identity order, exhausted ones removed (the reference's list)
            weights = None
            if self.identity_choice == "proportional":
                weights = remaining[available] / remaining[available].sum()
            chosen = rng.choice(available, size=self.p, replace=False, p=weights)
            batches.append(np.concatenate([chunks[j][total[j] - remaining[j]] for j in chosen]))  # next chunk
            remaining[chosen] -= 1
        result = np.stack(batches) if batches else np.empty((0, self.p * self.k), dtype=np.int64)
        self._cache = (self.epoch, result)
        return result

    def batches(self) -> np.ndarray:
        """This rank's batches of the current epoch, ``(n, batch_size)`` int64 dataset indices."""
        glob = self.global_batches()
        if self.shard == "identity_blocks":
            width = self.batch_size
            return glob[:, self.rank * width : (self.rank + 1) * width]
        per_rank = len(glob) // self.num_replicas
        return glob[self.rank : per_rank * self.num_replicas : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        mine = self.batches()
        if len(mine) == 0:
            warnings.warn(
                f"CrossModalityIdentitySampler: rank {self.rank} gets no batch in epoch {self.epoch} "
                f"({len(self.global_batches())} batches for {self.num_replicas} ranks); lower p or num_replicas",
                RuntimeWarning,
                stacklevel=2,
            )
        return iter(mine.reshape(-1).tolist())

    def __len__(self) -> int:
        return int(self.batches().size)
