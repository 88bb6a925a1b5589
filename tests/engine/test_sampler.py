"""ContinuousBatchSampler and SeededRandomSampler, with real MXNet loaders."""

import itertools

import numpy as np
import pytest
from mxnet.gluon.data import ArrayDataset, DataLoader, RandomSampler, SequentialSampler

from lrf.gluon.data import close_loader
from lrf.sampler import ContinuousBatchSampler, SeededRandomSampler


def take(sampler, count):
    return list(itertools.islice(iter(sampler), count))


def test_every_index_once_per_pass_with_carry_over():
    n, batch_size, passes = 10, 3, 12
    batches = take(ContinuousBatchSampler(SeededRandomSampler(n, seed=0), batch_size), 40)
    assert all(len(batch) == batch_size for batch in batches)
    flat = [i for batch in batches for i in batch]
    assert len(flat) == n * passes
    chunks = [flat[k * n : (k + 1) * n] for k in range(passes)]
    for chunk in chunks:
        assert sorted(chunk) == list(range(n))
    # A fresh order each pass, not one permutation repeated.
    assert len({tuple(chunk) for chunk in chunks}) > 1


def test_sequential_sampler_shows_the_carry_over():
    batches = take(ContinuousBatchSampler(SequentialSampler(5), 3), 4)
    assert batches == [[0, 1, 2], [3, 4, 0], [1, 2, 3], [4, 0, 1]]


def test_wraps_gluon_random_sampler_with_fresh_order_per_pass():
    np.random.seed(1)
    flat = [i for b in take(ContinuousBatchSampler(RandomSampler(10), 5), 20) for i in b]
    chunks = [tuple(flat[k : k + 10]) for k in range(0, 100, 10)]
    assert all(sorted(chunk) == list(range(10)) for chunk in chunks)
    assert len(set(chunks)) > 1
    assert all(type(i) is int for i in flat)


def test_never_stops():
    batches = take(ContinuousBatchSampler(SeededRandomSampler(5, seed=3), 2), 1000)
    assert len(batches) == 1000


def test_batch_larger_than_sampler_spans_passes():
    batches = take(ContinuousBatchSampler(SequentialSampler(2), 5), 2)
    assert batches == [[0, 1, 0, 1, 0], [1, 0, 1, 0, 1]]


def test_same_seed_same_sequence_whatever_the_global_state():
    np.random.seed(0)
    first = take(ContinuousBatchSampler(SeededRandomSampler(17, seed=42), 4), 30)
    np.random.seed(123)
    np.random.rand(10)
    second = take(ContinuousBatchSampler(SeededRandomSampler(17, seed=42), 4), 30)
    other = take(ContinuousBatchSampler(SeededRandomSampler(17, seed=43), 4), 30)
    assert first == second
    assert first != other


def test_seeded_random_sampler_passes():
    sampler = SeededRandomSampler(6, seed=0)
    passes = [list(sampler) for _ in range(5)]
    assert len(sampler) == 6
    assert all(sorted(p) == list(range(6)) for p in passes)
    assert len({tuple(p) for p in passes}) > 1


def test_has_no_length_but_is_truthy():
    sampler = ContinuousBatchSampler(SequentialSampler(4), 2)
    with pytest.raises(TypeError, match="endless"):
        len(sampler)
    assert sampler
    assert sampler.batch_size == 2


@pytest.mark.parametrize("bad", [1.5, "3", True, None])
def test_batch_size_type_errors(bad):
    with pytest.raises(TypeError, match=f"batch_size={bad!r}"):
        ContinuousBatchSampler(SequentialSampler(4), bad)


@pytest.mark.parametrize("bad", [0, -1])
def test_batch_size_value_errors(bad):
    with pytest.raises(ValueError, match=f"batch_size={bad}"):
        ContinuousBatchSampler(SequentialSampler(4), bad)


def test_empty_sampler_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        ContinuousBatchSampler(SequentialSampler(0), 2)
    with pytest.raises(TypeError, match="sampler"):
        ContinuousBatchSampler(42, 2)


def test_unsized_sampler_that_runs_dry_raises_instead_of_spinning():
    class Dry:
        def __iter__(self):
            return iter(())

    with pytest.raises(ValueError, match="no indices"):
        next(iter(ContinuousBatchSampler(Dry(), 2)))


@pytest.mark.parametrize(
    ("args", "error", "text"),
    [
        ((-1, 0), ValueError, "length=-1"),
        ((2.0, 0), TypeError, "length=2.0"),
        ((3, -1), ValueError, "seed=-1"),
        ((3, 2**32), ValueError, "seed="),
        ((3, "a"), TypeError, "seed='a'"),
    ],
)
def test_seeded_random_sampler_validation(args, error, text):
    with pytest.raises(error, match=text):
        SeededRandomSampler(*args)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_inside_gluon_dataloader(num_workers):
    n, batch_size = 10, 3
    data = np.arange(n, dtype=np.float32).reshape(n, 1) * np.ones((1, 4), np.float32)
    dataset = ArrayDataset(data, np.arange(n, dtype=np.float32))
    sampler = ContinuousBatchSampler(SeededRandomSampler(n, seed=7), batch_size)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers)
    try:
        batches = list(itertools.islice(iter(loader), 20))  # 6 passes' worth
    finally:
        close_loader(loader)
    expected = take(ContinuousBatchSampler(SeededRandomSampler(n, seed=7), batch_size), 20)
    assert len(batches) == 20
    for (x, y), indices in zip(batches, expected, strict=True):
        assert x.shape == (batch_size, 4)
        assert y.asnumpy().tolist() == indices
