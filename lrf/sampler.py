"""Endless, reproducible batch sampling for the LR range test (SPEC §3), for every engine.

The sweep may need more iterations than one epoch holds, so the batch stream
must never stop. :class:`ContinuousBatchSampler` walks a wrapped sampler pass
after pass and carries an unfinished batch over into the next pass: no sample
is dropped, no batch is short, StopIteration is never raised.
:class:`SeededRandomSampler` gives each pass a fresh random order drawn from
its own random state, so the batch sequence depends on the seed alone (not on
the global NumPy state that Gluon's ``RandomSampler`` uses).

Framework-free (plain iterables of ints), so every engine draws the same batch order
from the same seed: Gluon's and PyTorch's ``DataLoader`` both take them as their
``batch_sampler``.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterator

import numpy as np

__all__ = ["ContinuousBatchSampler", "SeededRandomSampler", "seeded_batches"]


def _is_int(value: object) -> bool:
    # bool is an int subclass, but batch_size=True is a mistake, not 1.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class SeededRandomSampler:
    """Samples ``[0, length)`` in a fresh random order on every pass.

    Unlike Gluon's ``RandomSampler`` (which shuffles with the global
    ``np.random`` state), this sampler owns a ``np.random.RandomState(seed)``:
    two samplers built with the same seed give the same sequence of passes,
    whatever else touches the global random state. Each ``iter()`` advances
    the sampler's own state, so successive passes differ.

    Args:
        length: number of indices, ``>= 0``.
        seed: seed of the sampler's random state, ``0 <= seed < 2**32``.

    Raises:
        TypeError: if ``length`` or ``seed`` is not an integer.
        ValueError: if ``length`` is negative or ``seed`` out of range.

    Example:
        >>> s = SeededRandomSampler(5, seed=0)
        >>> sorted(s) == [0, 1, 2, 3, 4]
        True
    """

    def __init__(self, length: int, seed: int) -> None:
        if not _is_int(length):
            raise TypeError(f"length must be an integer, got length={length!r}")
        if length < 0:
            raise ValueError(f"length must be >= 0, got length={length!r}")
        if not _is_int(seed):
            raise TypeError(f"seed must be an integer, got seed={seed!r}")
        if not 0 <= seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32), got seed={seed!r}")
        self._length = int(length)
        self._seed = int(seed)
        self._rng = np.random.RandomState(self._seed)

    def __iter__(self) -> Iterator[int]:
        # Plain ints: cheap to pickle to loader workers, valid for any dataset.
        return iter(self._rng.permutation(self._length).tolist())

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return f"SeededRandomSampler(length={self._length}, seed={self._seed})"


class ContinuousBatchSampler:
    """Endless batch sampler: batches of exactly ``batch_size`` indices, forever.

    Walks ``sampler`` pass after pass (a fresh ``iter(sampler)`` per pass, so a
    random sampler gives a new order each pass), collects indices into lists
    of ``batch_size`` and carries an unfinished batch over into the next pass.
    Every index therefore appears exactly once per pass, no batch is short,
    and iteration never ends. A ``batch_size`` larger than ``len(sampler)`` is
    allowed; such a batch then spans passes and may repeat an index.

    Use it as the ``batch_sampler`` of a Gluon or PyTorch ``DataLoader``. It has no
    length: ``len()`` raises TypeError. MXNet 1.9.1's ``DataLoader`` never
    calls ``len()`` on its batch sampler while iterating (only its own
    ``__len__`` does), with ``num_workers=0`` or ``> 0``; nor does PyTorch's.

    Args:
        sampler: an iterable of indices, best with a length (any Gluon or PyTorch
            sampler), e.g. ``SeededRandomSampler(n, seed)`` or ``range(n)``.
        batch_size: number of indices per batch, a positive integer.

    Raises:
        TypeError: if ``batch_size`` is not an integer or ``sampler`` is not
            iterable.
        ValueError: if ``batch_size < 1`` or ``sampler`` is empty (also raised
            during iteration if a pass of ``sampler`` yields nothing).

    Example:
        >>> it = iter(ContinuousBatchSampler(range(5), 3))
        >>> [next(it) for _ in range(3)]
        [[0, 1, 2], [3, 4, 0], [1, 2, 3]]
    """

    def __init__(self, sampler, batch_size: int) -> None:
        if not _is_int(batch_size):
            raise TypeError(f"batch_size must be a positive integer, got batch_size={batch_size!r}")
        if batch_size < 1:
            raise ValueError(
                f"batch_size must be a positive integer, got batch_size={batch_size!r}"
            )
        if not hasattr(sampler, "__iter__"):
            raise TypeError(f"sampler must be an iterable of indices, got sampler={sampler!r}")
        try:
            size = len(sampler)
        except TypeError:
            size = None  # unsized: an empty pass is caught while iterating
        if size == 0:
            raise ValueError(f"sampler must not be empty, got len(sampler)=0 ({sampler!r})")
        self._sampler = sampler
        self._batch_size = int(batch_size)

    @property
    def batch_size(self) -> int:
        """Number of indices in every batch."""
        return self._batch_size

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        while True:
            seen = 0
            for index in self._sampler:
                seen += 1
                batch.append(int(index))
                if len(batch) == self._batch_size:
                    yield batch
                    batch = []
            if seen == 0:
                # Without this guard an empty pass would spin for ever.
                raise ValueError(f"sampler yielded no indices in a pass ({self._sampler!r})")

    def __len__(self) -> int:
        raise TypeError(
            "ContinuousBatchSampler is endless: it has no length "
            "(iterate it, or count passes of the wrapped sampler instead)"
        )

    def __bool__(self) -> bool:
        # Without __bool__, truth testing would fall back to __len__ and raise.
        return True

    def __repr__(self) -> str:
        return f"ContinuousBatchSampler({self._sampler!r}, batch_size={self._batch_size})"


def seeded_batches(length: int, batch_size: int, seed: int, start: int = 0):
    """The endless batch order of the finder (SPEC §3): batches of ``batch_size`` indices of
    ``[0, length)``, each pass shuffled from ``seed``, beginning with batch number ``start``
    (a training that goes on from a saved state sees the batches it would have seen had it
    never stopped; skipped batches are drawn as indices only). Every engine's loader takes
    it as its ``batch_sampler``: the same seed gives every engine the same batches.

    >>> it = iter(seeded_batches(5, 2, seed=0, start=1))
    >>> next(it) == next(iter(seeded_batches(5, 2, seed=0)))
    False
    """
    batches = ContinuousBatchSampler(SeededRandomSampler(length, seed), batch_size)
    return _Skipping(batches, start) if start else batches


class _Skipping:
    """An endless batch sampler that starts ``start`` batches into ``inner``'s sequence."""

    def __init__(self, inner: ContinuousBatchSampler, start: int):
        self._inner, self._start = inner, int(start)

    def __iter__(self):
        batches = iter(self._inner)
        for _ in range(self._start):
            next(batches)
        return batches

    def __bool__(self) -> bool:
        return True


def checked_loader_workers(batch_size: int, size: int, loader_workers: int | None) -> int:
    """The entry check of a batch loader over ``size`` samples, for every engine: ``batch_size``
    in ``[1, size]``, ``loader_workers`` >= 0 (None: one per CPU core); the workers' count.

    Raises:
        TypeError / ValueError naming the parameter and the value.
    """
    if not _is_int(batch_size):
        raise TypeError(f"batch_size must be a positive integer, got batch_size={batch_size!r}")
    if not 1 <= batch_size <= size:
        raise ValueError(
            f"batch_size must be between 1 and the data size ({size} samples), "
            f"got batch_size={batch_size!r}"
        )
    if loader_workers is None:
        loader_workers = os.cpu_count() or 1
    if not _is_int(loader_workers):
        raise TypeError(f"loader_workers must be an integer >= 0, got loader_workers={loader_workers!r}")
    if loader_workers < 0:
        raise ValueError(f"loader_workers must be >= 0, got loader_workers={loader_workers!r}")
    return int(loader_workers)


def check_batch_size(batch_size: int) -> int:
    """``batch_size`` if it is a positive integer (an evaluation loader's), else TypeError / ValueError."""
    if not _is_int(batch_size):
        raise TypeError(f"batch_size must be a positive integer, got batch_size={batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got batch_size={batch_size!r}")
    return int(batch_size)
