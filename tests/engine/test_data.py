"""Data sources and loaders on real MXNet: digits, RecordIO, image folders."""

import itertools
import multiprocessing
import os

import mxnet as mx
import numpy as np
import pytest
from PIL import Image  # installed with matplotlib, a project dependency

from lrf.config import DataSpec, parse_data_spec
from lrf.datasets import digits_splits as _digits_splits
from lrf.gluon.data import close_loader, load_dataset, make_batch_loader, make_eval_loader
from lrf.datasets import validate_data_spec



@pytest.fixture(scope="module")
def cifar_rec(cifar10_dir):
    return str(cifar10_dir / "train.rec")


# -- specs -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["digits", "cifar10", "cifar10:/tmp/c10", "rec:data/train.rec", "folder:/x/y:z"]
)
def test_parse_round_trips(text):
    spec = parse_data_spec(text)
    assert str(spec) == text
    assert parse_data_spec(str(spec)) == spec


def test_parse_splits_source_and_path():
    assert parse_data_spec("rec:/a/train.rec") == DataSpec("rec", "/a/train.rec")
    assert parse_data_spec("digits") == DataSpec("digits")


@pytest.mark.parametrize("text", ["", "mnist", "rec", "rec:", "folder", "digits:/x", "Digits"])
def test_parse_errors_name_data_and_value(text):
    with pytest.raises(ValueError, match="data=") as info:
        parse_data_spec(text)
    assert f"data={text!r}" in str(info.value)


def test_parse_rejects_non_strings():
    with pytest.raises(TypeError, match="data=3"):
        parse_data_spec(3)


def test_validate_missing_rec_and_idx(tmp_path):
    with pytest.raises(ValueError, match="record file .*missing.rec does not exist"):
        validate_data_spec(DataSpec("rec", str(tmp_path / "missing.rec")))
    rec = tmp_path / "train.rec"
    rec.write_bytes(b"")
    with pytest.raises(ValueError, match=r"index file .*train\.idx does not exist") as info:
        validate_data_spec(DataSpec("rec", str(rec)))
    assert f"data='rec:{rec}'" in str(info.value)


def test_validate_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="is not a directory"):
        validate_data_spec(DataSpec("folder", str(tmp_path / "nope")))
    with pytest.raises(ValueError, match="no class sub-folder holding an image"):
        validate_data_spec(DataSpec("folder", str(tmp_path)))
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=f"data='folder:{tmp_path}'"):
        load_dataset(f"folder:{tmp_path}")


def test_validate_cifar10_root_without_downloading(tmp_path):
    validate_data_spec(DataSpec("cifar10"))
    validate_data_spec(DataSpec("cifar10", str(tmp_path / "not-yet")))
    afile = tmp_path / "file"
    afile.write_text("")
    with pytest.raises(ValueError, match="not a directory"):
        validate_data_spec(DataSpec("cifar10", str(afile)))


def test_unknown_split():
    with pytest.raises(ValueError, match="split='test'"):
        load_dataset("digits", "test")


# -- digits ------------------------------------------------------------------


def test_digits_splits():
    train, info = load_dataset("digits")
    holdout, info_holdout = load_dataset(DataSpec("digits"), "holdout")
    assert info == info_holdout
    assert (info.num_classes, info.image_shape) == (10, (1, 8, 8))
    assert (info.num_train, info.num_holdout) == (1500, 297)
    assert (len(train), len(holdout)) == (1500, 297)
    x, y = train[0]
    assert x.shape == (1, 8, 8) and x.dtype == np.float32
    assert isinstance(y, np.float32)

    train_x = np.stack([train[i][0] for i in range(len(train))])
    train_y = np.array([train[i][1] for i in range(len(train))])
    holdout_x = np.stack([holdout[i][0] for i in range(len(holdout))])
    assert abs(train_x.mean()) < 1e-5 and abs(train_x.std() - 1) < 1e-5
    assert set(np.unique(train_y)) == set(range(10))
    train_rows = {row.tobytes() for row in train_x}
    assert len(train_rows) == 1500
    assert not train_rows & {row.tobytes() for row in holdout_x}


def test_digits_split_is_deterministic():
    first, _ = load_dataset("digits")
    _digits_splits.cache_clear()  # rebuild from scratch, not from the cache
    second, _ = load_dataset("digits")
    assert all(np.array_equal(first[i][0], second[i][0]) for i in range(0, 1500, 97))
    assert [first[i][1] for i in range(1500)] == [second[i][1] for i in range(1500)]


# -- RecordIO ------------------------------------------------------------------


def test_cifar_rec(cifar_rec):
    train, info = load_dataset(f"rec:{cifar_rec}")
    assert (info.num_classes, info.image_shape) == (10, (3, 32, 32))
    assert (info.num_train, info.num_holdout) == (50_000, 10_000)
    assert len(train) == 50_000
    images = [train[i] for i in range(64)]
    x, y = images[0]
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    assert isinstance(y, np.float32) and 0 <= y <= 9 and y == int(y)
    stacked = np.stack([image.asnumpy() for image, _ in images])
    assert abs(stacked.mean()) < 0.3 and 0.6 < stacked.std() < 1.5  # normalised
    holdout, _ = load_dataset(f"rec:{cifar_rec}", "holdout")
    assert len(holdout) == 10_000
    assert holdout[0][0].shape == (3, 32, 32)


def _write_rec(path, labels, size=(24, 16)):
    """A tiny indexed RecordIO file of random JPEGs (PIL size is width, height)."""
    import io

    rng = np.random.RandomState(0)
    writer = mx.recordio.MXIndexedRecordIO(str(path.with_suffix(".idx")), str(path), "w")
    for i, label in enumerate(labels):
        buf = io.BytesIO()
        pixels = rng.randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(buf, format="JPEG")
        header = mx.recordio.IRHeader(0, float(label), i, 0)
        writer.write_idx(i, mx.recordio.pack(header, buf.getvalue()))
    writer.close()


def test_small_rec_without_holdout(tmp_path):
    rec = tmp_path / "mydata.rec"
    _write_rec(rec, [0, 2, 1, 2])
    dataset, info = load_dataset(f"rec:{rec}")
    assert info.num_classes == 3 and info.image_shape == (3, 16, 24)
    assert (info.num_train, info.num_holdout) == (4, 0)
    assert dataset[1][0].shape == (3, 16, 24) and dataset[1][1] == 2
    with pytest.raises(ValueError, match="has no holdout"):
        load_dataset(f"rec:{rec}", "holdout")


def test_small_rec_finds_test_sibling(tmp_path):
    _write_rec(tmp_path / "train.rec", [0, 1, 2, 3, 4])
    _write_rec(tmp_path / "test.rec", [4, 3])
    holdout, info = load_dataset(f"rec:{tmp_path / 'train.rec'}", "holdout")
    assert (info.num_classes, info.num_train, info.num_holdout) == (5, 5, 2)
    assert [holdout[i][1] for i in range(2)] == [4, 3]


# -- image folder ------------------------------------------------------------


def test_image_folder(tmp_path):
    rng = np.random.RandomState(0)
    for name, sizes in {"cat": [(10, 12), (40, 40)], "dog": [(33, 20)]}.items():
        (tmp_path / name).mkdir()
        for k, (w, h) in enumerate(sizes):
            pixels = rng.randint(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{k}.{'png' if k else 'jpg'}")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "dog" / "grey.PNG")
    dataset, info = load_dataset(f"folder:{tmp_path}")
    assert (info.num_classes, info.image_shape, info.num_train, info.num_holdout) == (
        2,
        (3, 32, 32),
        4,
        0,
    )
    labels = [dataset[i][1] for i in range(len(dataset))]
    assert labels == [0, 0, 1, 1] and all(isinstance(y, np.float32) for y in labels)
    assert all(dataset[i][0].shape == (3, 32, 32) for i in range(len(dataset)))
    with pytest.raises(ValueError, match="no holdout"):
        load_dataset(f"folder:{tmp_path}", "holdout")


# -- loaders -----------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")[0]


def _labels(loader, count):
    batches = list(itertools.islice(iter(loader), count))
    return [y.asnumpy().tolist() for _, y in batches], [x.shape for x, _ in batches]


def test_batch_loader_is_endless_and_reproducible(digits):
    # 1500 samples / 128 = 11.7 batches per epoch: 25 batches cross two epochs.
    loader = make_batch_loader(digits, 128, loader_workers=0, seed=5)
    labels, shapes = _labels(loader, 25)
    assert shapes == [(128, 1, 8, 8)] * 25
    assert _labels(make_batch_loader(digits, 128, loader_workers=0, seed=5), 25)[0] == labels
    assert _labels(make_batch_loader(digits, 128, loader_workers=0, seed=6), 25)[0] != labels

    pooled = make_batch_loader(digits, 128, loader_workers=2, seed=5)
    try:
        assert _labels(pooled, 25) == (labels, shapes)  # same order with workers
    finally:
        close_loader(pooled)


def _new_children(before: set) -> list:
    return [child for child in multiprocessing.active_children() if child.pid not in before]


def test_close_loader_stops_the_workers(digits):
    before = {child.pid for child in multiprocessing.active_children()}
    loader = make_batch_loader(digits, 64, loader_workers=2)
    workers = _new_children(before)
    assert len(workers) == 2 and all(w.is_alive() for w in workers)
    next(iter(loader))
    close_loader(loader)
    assert not any(w.is_alive() for w in workers)
    alive = {p.pid for p in multiprocessing.active_children()}
    assert not alive & {w.pid for w in workers}
    close_loader(loader)  # idempotent


def test_batch_loader_defaults_to_one_worker_per_core(digits):
    before = {child.pid for child in multiprocessing.active_children()}
    loader = make_batch_loader(digits, 32)
    try:
        assert len(_new_children(before)) == (os.cpu_count() or 1)  # processes that load batches
    finally:
        close_loader(loader)


def test_batch_loader_on_rec_with_workers(cifar_rec):
    dataset, _ = load_dataset(f"rec:{cifar_rec}")
    loader = make_batch_loader(dataset, 16, loader_workers=2)
    try:
        for x, y in itertools.islice(iter(loader), 4):
            assert x.shape == (16, 3, 32, 32) and x.dtype == np.float32
            assert y.dtype == np.float32
    finally:
        close_loader(loader)


def test_a_loader_off_the_main_thread_uses_threads_and_reads_rec_records_whole(cifar_rec):
    """On a Dask worker a job runs in a thread: the loader's workers are threads there, and
    they share the RecordIO file handle (unguarded, they read corrupt records)."""
    import threading

    dataset, _ = load_dataset(f"rec:{cifar_rec}")
    expected = [x.asnumpy() for x, _ in itertools.islice(iter(make_batch_loader(dataset, 128, loader_workers=0)), 40)]
    seen, errors = [], []

    def in_a_thread():
        loader = make_batch_loader(dataset, 128, loader_workers=8)
        try:
            seen.append(type(loader._worker_pool).__name__)
            for x, _ in itertools.islice(iter(loader), 40):
                seen.append(x.asnumpy())
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)
        finally:
            close_loader(loader)

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join(timeout=300)
    assert not errors, errors
    assert seen[0] == "ThreadPool"
    assert all(np.array_equal(a, b) for a, b in zip(seen[1:], expected, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"batch_size": 0}, ValueError, "batch_size=0"),
        ({"batch_size": 1501}, ValueError, r"1500 samples.*batch_size=1501"),
        ({"batch_size": 2.0}, TypeError, "batch_size=2.0"),
        ({"batch_size": 8, "loader_workers": -1}, ValueError, "loader_workers=-1"),
        ({"batch_size": 8, "loader_workers": 1.5}, TypeError, "loader_workers=1.5"),
        ({"batch_size": 8, "loader_workers": 0, "seed": -3}, ValueError, "seed=-3"),
    ],
)
def test_batch_loader_validation(digits, kwargs, error, text):
    with pytest.raises(error, match=text):
        make_batch_loader(digits, **kwargs)


def test_eval_loader_is_finite_and_ordered():
    holdout, _ = load_dataset("digits", "holdout")
    batches = list(make_eval_loader(holdout, 100))
    assert [x.shape[0] for x, _ in batches] == [100, 100, 97]
    labels = np.concatenate([y.asnumpy() for _, y in batches])
    assert labels.tolist() == [holdout[i][1] for i in range(len(holdout))]
    with pytest.raises(ValueError, match="batch_size=0"):
        make_eval_loader(holdout, 0)


def _damaged_copy(cifar10_dir, tmp_path, cut_bytes=0, idx_text=None):
    import shutil
    from pathlib import Path

    src = cifar10_dir / "test"
    rec, idx = tmp_path / "train.rec", tmp_path / "train.idx"
    data = Path(str(src) + ".rec").read_bytes()
    rec.write_bytes(data[: len(data) - cut_bytes])
    if idx_text is None:
        shutil.copy(str(src) + ".idx", idx)
    else:
        idx.write_text(idx_text)
    return f"rec:{rec}"


@pytest.mark.parametrize(
    "cut, idx_text, message",
    [
        (100, None, "is truncated: its last record ends at byte"),
        (0, "", "is empty"),
        (0, "0\tnot-a-number\n", "line 1 is not 'KEY OFFSET'"),
        (0, "0\t0\n1\t7\n", "no record at byte 7"),
    ],
)
def test_damaged_record_files_are_refused_before_loading(cifar10_dir, tmp_path, cut, idx_text, message):
    data = _damaged_copy(cifar10_dir, tmp_path, cut, idx_text)
    with pytest.raises(ValueError, match=message):
        validate_data_spec(parse_data_spec(data))
