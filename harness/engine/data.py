"""Reproducible data order: sample order from (seed, epoch), augmentation randomness from (seed, epoch, index).

Neither depends on how far a process got before, on worker processes or on the global RNG, so a run
resumed at micro-batch k of an epoch sees exactly the batches an uninterrupted run sees from k on.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset


def _mix(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix-style), so nearby (seed, epoch, index) give unrelated streams."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (p & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


class EpochSampler(Sampler[int]):
    """Indices of one epoch for one rank, starting at position ``start`` of that rank's shard.

    Shuffled order is ``randperm(n)`` from a generator seeded by (seed, epoch). With ``equal_shards`` the
    order is cut to a multiple of ``world`` so every rank gets the same number of samples.
    """

    def __init__(self, n: int, seed: int, epoch: int, shuffle: bool, rank: int = 0, world: int = 1,
                 start: int = 0, equal_shards: bool = True) -> None:
        self.n, self.seed, self.epoch, self.shuffle = n, seed, epoch, shuffle
        self.rank, self.world, self.start, self.equal_shards = rank, world, start, equal_shards

    def _shard(self) -> torch.Tensor:
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(_mix(self.seed, self.epoch)))
        else:
            order = torch.arange(self.n)
        end = self.n - self.n % self.world if self.equal_shards else self.n
        return order[self.rank:end:self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self._shard()[self.start:].tolist())

    def __len__(self) -> int:
        return max(0, len(self._shard()) - self.start)


class SeededSamples(Dataset):
    """``dataset[i]`` with python, numpy and torch's CPU RNGs seeded from (seed, epoch, i), then restored.

    Random augmentations thus depend only on which sample of which epoch is loaded, in any process.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        seed = _mix(self.seed, self.epoch, index)
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                # the CPU generator only, the one fork_rng restores: torch.manual_seed also reseeds (unrestored)
                # every accelerator's, and before CUDA starts it queues that call with a formatted stack trace
                torch.default_generator.manual_seed(seed)
                random.seed(seed)
                np.random.seed(seed % 2**32)
                return self.dataset[index]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def seeded_subset(dataset: Dataset, size: int | None, seed: int) -> Dataset:
    """A random subset of ``size`` samples drawn from ``seed`` (the whole dataset when ``size`` is None)."""
    if size is None or size >= len(dataset):
        return dataset
    keep = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(_mix(seed, 0x5B5E7)))[:size]
    return Subset(dataset, sorted(keep.tolist()))


def epoch_loader(samples: SeededSamples, batch_size: int, epoch: int, seed: int, train: bool, rank: int,
                 world: int, start_batch: int = 0, num_workers: int = 0) -> DataLoader:
    """The DataLoader of one epoch (train: shuffled, full batches only; eval: in order, all samples)."""
    samples.epoch = epoch
    sampler = EpochSampler(len(samples), seed, epoch, shuffle=train, rank=rank, world=world,
                           start=start_batch * batch_size, equal_shards=train)
    return DataLoader(samples, batch_size=batch_size, sampler=sampler, drop_last=train, num_workers=num_workers,
                      generator=torch.Generator().manual_seed(_mix(seed, epoch)))
