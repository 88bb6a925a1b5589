"""The PyTorch engine's data sources and loaders, on real data, against the Gluon engine's:
the same records, labels, pixels and batch order (the cross-engine pairing promise)."""

import io
import itertools
import multiprocessing
import pickle
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from lrf.datacheck import IMAGE_SAMPLE, DataError, sample_positions
from lrf.datasets import CIFAR10_STD
from lrf.gluon import data as gluon_data
from lrf.pytorch.data import close_loader, load_dataset, make_batch_loader, make_eval_loader
from tests.reliability.test_bad_data import _folder, _image, _unsampled, _write_rec

LEVELS = np.array(CIFAR10_STD, np.float32).reshape(3, 1, 1) * 255  # normalised values -> pixel levels


def _as_numpy(value):
    return value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)


def _pixels_and_labels(dataset):
    items = [dataset[i] for i in range(len(dataset))]
    return np.stack([_as_numpy(x) for x, _ in items]), [int(y) for _, y in items]


# -- digits --------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")[0], gluon_data.load_dataset("digits")[0]


def test_digits(digits):
    train, info = load_dataset("digits")
    holdout, holdout_info = load_dataset("digits", "holdout")
    assert info == holdout_info == gluon_data.load_dataset("digits")[1]
    assert (len(train), len(holdout), info.num_classes, info.image_shape) == (1500, 297, 10, (1, 8, 8))
    x, y = train[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32
    assert y.shape == () and y.dtype == torch.int64
    for ours, theirs in (digits, (holdout, gluon_data.load_dataset("digits", "holdout")[0])):
        pixels, labels = _pixels_and_labels(ours)
        gluon_pixels, gluon_labels = _pixels_and_labels(theirs)
        assert np.array_equal(pixels, gluon_pixels) and labels == gluon_labels


def _batches(loader, count):
    """Labels and images of the first ``count`` batches of a loader or an iterator."""
    batches = list(itertools.islice(iter(loader), count))
    return [_as_numpy(y).astype(int).tolist() for _, y in batches], np.stack([_as_numpy(x) for x, _ in batches])


@pytest.mark.parametrize("start", [0, 3])
def test_the_batch_order_is_gluons(digits, start):
    ours, theirs = digits
    labels, images = _batches(make_batch_loader(ours, 32, loader_workers=0, seed=7, start=start), 5)
    gluon_labels, gluon_images = _batches(gluon_data.make_batch_loader(theirs, 32, loader_workers=0, seed=7,
                                                                       start=start), 5)
    assert labels == gluon_labels and np.array_equal(images, gluon_images)
    assert images.shape == (5, 32, 1, 8, 8)


# -- RecordIO -------------------------------------------------------------------


def _modes_png(mode: str, seed: int) -> bytes:
    pixels = np.random.RandomState(seed).randint(0, 256, (8, 8, 4), dtype=np.uint8)
    image = {"L": lambda: Image.fromarray(pixels[..., 0]), "RGBA": lambda: Image.fromarray(pixels),
             "P": lambda: Image.fromarray(pixels[..., :3]).quantize(16)}[mode]()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _both_engines(data, split="train"):
    (ours, info), (theirs, gluon_info) = load_dataset(data, split), gluon_data.load_dataset(data, split)
    assert info == gluon_info and len(ours) == len(theirs)
    pixels, labels = _pixels_and_labels(ours)
    gluon_pixels, gluon_labels = _pixels_and_labels(theirs)
    assert labels == gluon_labels
    assert pixels.dtype == np.float32 and pixels.shape == gluon_pixels.shape
    return info, float(np.round((np.abs(pixels - gluon_pixels) * LEVELS).max(), 3))


def test_jpeg_records_read_by_both_engines(tmp_path):
    _write_rec(tmp_path / "train.rec", [i % 3 for i in range(12)], {i: _image(24, 16, seed=i) for i in range(12)})
    _write_rec(tmp_path / "test.rec", [2, 0, 1], {i: _image(24, 16, seed=50 + i) for i in range(3)})
    info, levels = _both_engines(f"rec:{tmp_path / 'train.rec'}")
    assert (info.num_classes, info.image_shape, info.num_train, info.num_holdout) == (3, (3, 16, 24), 12, 3)
    assert levels <= 2  # JPEG decoders may differ by a level or two; Pillow's and MXNet's here agree exactly
    assert _both_engines(f"rec:{tmp_path / 'train.rec'}", "holdout")[1] <= 2


def test_png_records_read_by_both_engines_exactly(tmp_path):
    payloads = {i: _image(seed=i, fmt="PNG") for i in range(10)}
    payloads.update({7: _modes_png("L", 7), 8: _modes_png("RGBA", 8), 9: _modes_png("P", 9)})  # made RGB alike
    _write_rec(tmp_path / "images.rec", [i % 5 for i in range(10)], payloads)
    info, levels = _both_engines(f"rec:{tmp_path / 'images.rec'}")
    assert (info.num_classes, info.image_shape, info.num_holdout) == (5, (3, 8, 8), 0)
    assert levels == 0
    with pytest.raises(ValueError, match="has no holdout"):
        load_dataset(f"rec:{tmp_path / 'images.rec'}", "holdout")


def test_records_written_in_parts_read_whole(tmp_path):
    """A payload holding RecordIO's magic number at a 4-byte boundary is written in parts;
    the reader joins them as MXNet's does."""
    import mxnet as mx

    from lrf.pytorch.data import _MAGIC, _RecordFile

    payloads = [b"plain", _MAGIC + b"head", b"abcd" + _MAGIC + _MAGIC + b"xy", b"ab" + _MAGIC + b"cd",
                b"1234" + _MAGIC, _MAGIC, b""]
    writer = mx.recordio.MXIndexedRecordIO(str(tmp_path / "parts.idx"), str(tmp_path / "parts.rec"), "w")
    for key, payload in enumerate(payloads):
        writer.write_idx(key, payload)
    writer.close()
    records = _RecordFile(str(tmp_path / "parts.rec"), "test")
    assert [records.read(i, "test") for i in range(len(payloads))] == payloads


def _same_error(data, read, monkeypatch=None):
    """The DataError of both engines' ``read(dataset)``; the same text up to the decoder's reason."""
    errors = []
    for engine in (load_dataset, gluon_data.load_dataset):
        with pytest.raises(DataError) as error:
            read(engine(data)[0])
        errors.append(str(error.value))
    assert errors[0].split(" (")[0] == errors[1].split(" (")[0], errors
    return errors[0]


LONG = 70  # records: some escape every sample


def test_a_label_that_is_no_class_index_names_the_record(tmp_path, monkeypatch):
    bad = _unsampled(LONG)
    monkeypatch.setattr("lrf.datacheck.LABEL_SCAN_LIMIT", IMAGE_SAMPLE)  # so that preflight does not read it
    rec = _write_rec(tmp_path / "train.rec", [11 if i == bad else i % 10 for i in range(LONG)])
    message = _same_error(f"rec:{rec}", lambda dataset: dataset[bad])
    assert f"record {bad} of {rec} has label 11.0; labels must be class indices 0 to 9" in message


def test_a_record_that_does_not_decode_names_it(tmp_path):
    bad = _unsampled(LONG)
    rec = _write_rec(tmp_path / "train.rec", [i % 10 for i in range(LONG)], {bad: b"garbage " * 40})
    dataset, _ = load_dataset(f"rec:{rec}")  # the sample decodes
    message = _same_error(f"rec:{rec}", lambda dataset: dataset[bad])
    assert f"record {bad} of {rec} does not decode as an image" in message
    for workers in (0, 2):  # in a batch too; from a worker process with the same one-line message
        with pytest.raises(DataError) as error:
            next(iter(make_batch_loader(dataset, LONG, loader_workers=workers)))
        assert str(error.value) == message
    # in the sample decoded at load: a JPEG header over garbage, which only decoding tells
    last = LONG - 1
    _write_rec(tmp_path / "other" / "train.rec", [i % 10 for i in range(LONG)],
               {last: _image()[:20] + np.random.RandomState(2).bytes(300)})
    for engine in (load_dataset, gluon_data.load_dataset):
        with pytest.raises(DataError, match=f"record {last} of .* does not decode as an image"):
            engine(f"rec:{tmp_path / 'other' / 'train.rec'}")


def test_an_image_of_another_size_names_the_record(tmp_path):
    bad = _unsampled(LONG)
    rec = _write_rec(tmp_path / "train.rec", [i % 10 for i in range(LONG)], {bad: _image(12, 10, seed=bad)})
    message = _same_error(f"rec:{rec}", lambda dataset: dataset[bad])
    assert f"record {bad} of {rec} is a 12x10 image, the first record is 8x8" in message


def test_a_multi_value_label_names_the_record(tmp_path):
    import mxnet as mx

    rec = tmp_path / "train.rec"
    writer = mx.recordio.MXIndexedRecordIO(str(tmp_path / "train.idx"), str(rec), "w")
    for i in range(4):
        header = mx.recordio.IRHeader(0, np.array([i % 2, 1.0], np.float32) if i == 3 else float(i % 2), i, 0)
        writer.write_idx(i, mx.recordio.pack(header, _image(seed=i)))
    writer.close()
    from lrf.pytorch.data import _CheckedRecordDataset, _RecordFile  # preflight reads every label: past it

    dataset = _CheckedRecordDataset(_RecordFile(str(rec), "test"), f"rec:{rec}", 2, (3, 8, 8))
    assert int(dataset[2][1]) == 0
    with pytest.raises(DataError, match=f"record 3 of {rec} holds a multi-value label"):
        dataset[3]


def test_a_record_dataset_pickles_without_its_file_handle(tmp_path):
    rec = _write_rec(tmp_path / "train.rec", [i % 2 for i in range(6)])
    dataset, _ = load_dataset(f"rec:{rec}")
    first = dataset[0][0]
    state = pickle.dumps(dataset)
    assert dataset._records._fd is not None and pickle.loads(state)._records._fd is None
    assert torch.equal(pickle.loads(state)[0][0], first)


def test_cifar10_rec_quick_check(cifar10_dir):
    started = time.perf_counter()
    dataset, info = load_dataset(f"rec:{cifar10_dir / 'train.rec'}")
    assert (info.num_classes, info.image_shape, info.num_train, info.num_holdout) == (10, (3, 32, 32), 50_000, 10_000)
    x, y = next(iter(make_batch_loader(dataset, 256, loader_workers=0)))
    assert x.shape == (256, 3, 32, 32) and y.dtype == torch.int64 and 0 <= int(y.min()) <= int(y.max()) <= 9
    assert abs(float(x.mean())) < 0.3 and 0.6 < float(x.std()) < 1.5  # normalised
    assert time.perf_counter() - started < 2


# -- image folders ---------------------------------------------------------------


def test_image_folder_of_two_classes(tmp_path):
    root = _folder(tmp_path / "images", {"dogs": 3, "cats": 2})
    sizes = {"cats/big.png": (40, 40), "dogs/wide.png": (33, 20), "dogs/small.png": (10, 12)}  # shrunk, grown
    for name, (width, height) in sizes.items():
        (root / name).write_bytes(_image(width, height, seed=width, fmt="PNG"))
    info, levels = _both_engines(f"folder:{root}")
    assert (info.num_classes, info.image_shape, info.num_train, info.num_holdout) == (2, (3, 32, 32), 8, 0)
    assert load_dataset(f"folder:{root}")[0].synsets == ["cats", "dogs"]
    assert levels <= 1  # resized as Gluon resizes (bilinear, no antialiasing): within a level
    with pytest.raises(ValueError, match="no holdout"):
        load_dataset(f"folder:{root}", "holdout")


def test_an_image_file_that_does_not_decode_is_named(tmp_path):
    root = _folder(tmp_path / "images", {"cats": 2, "dogs": 2}, {"dogs/x.png": _image(fmt="PNG")[:40]})
    with pytest.raises(DataError, match=f"data='folder:{root}': image file {root}/dogs/x.png does not decode"):
        load_dataset(f"folder:{root}")


@pytest.mark.parametrize("data", ["cifar10", "cifar10:/tmp/c10"])
def test_cifar10_is_refused(data):
    with pytest.raises(ValueError, match=f"data={data!r} is MXNet's download of CIFAR-10.*rec:PATH/train.rec"):
        load_dataset(data)


def test_unknown_split():
    with pytest.raises(ValueError, match="split='test'"):
        load_dataset("digits", "test")


# -- loaders -----------------------------------------------------------------------


def _new_children(before: set) -> list:
    return [child for child in multiprocessing.active_children() if child.pid not in before]


def test_workers_give_the_batches_of_the_calling_process(tmp_path, digits):
    rec = _write_rec(tmp_path / "train.rec", [i % 4 for i in range(40)])
    for dataset in (digits[0], load_dataset(f"rec:{rec}")[0]):
        expected = _batches(make_batch_loader(dataset, 16, loader_workers=0, seed=3), 7)
        before = {child.pid for child in multiprocessing.active_children()}
        loader = make_batch_loader(dataset, 16, loader_workers=2, seed=3)
        batches = iter(loader)
        try:
            labels, images = _batches(batches, 7)
            workers = _new_children(before)
            assert len(workers) == 2
        finally:
            close_loader(loader)  # the loader stops the workers of the iterators it made
        assert labels == expected[0] and np.array_equal(images, expected[1])
        assert not any(worker.is_alive() for worker in workers)
        close_loader(loader)  # idempotent


def test_close_loader_takes_an_iterator_and_is_idempotent(digits):
    before = {child.pid for child in multiprocessing.active_children()}
    batches = iter(make_batch_loader(digits[0], 64, loader_workers=2))
    next(batches)
    workers = _new_children(before)
    assert len(workers) == 2
    close_loader(batches)
    close_loader(batches)
    assert not any(worker.is_alive() for worker in workers)
    close_loader(iter(make_eval_loader(digits[0], 100)))  # no workers: nothing to do
    close_loader(make_batch_loader(digits[0], 64, loader_workers=0))


def test_off_the_main_thread_and_in_a_daemonic_process_batches_load_in_the_calling_thread(digits, monkeypatch):
    expected = _batches(make_batch_loader(digits[0], 32, loader_workers=0), 3)
    seen = []

    def in_a_thread():
        before = {child.pid for child in multiprocessing.active_children()}
        loader = make_batch_loader(digits[0], 32, loader_workers=2)
        seen.append((loader.num_workers, _batches(loader, 3), _new_children(before)))

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join(timeout=60)
    workers, batches, children = seen[0]
    assert workers == 0 and not children
    assert batches[0] == expected[0] and np.array_equal(batches[1], expected[1])

    class Daemonic:
        daemon = True

    monkeypatch.setattr("lrf.pytorch.data.multiprocessing.current_process", Daemonic)
    assert make_batch_loader(digits[0], 32, loader_workers=2).num_workers == 0


def test_making_an_iterator_draws_nothing_from_torchs_global_random_stream(digits):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    next(iter(make_batch_loader(digits[0], 32, loader_workers=0)))
    next(iter(make_eval_loader(digits[0], 32)))
    assert torch.equal(torch.rand(3), expected)


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
        make_batch_loader(digits[0], **kwargs)


def test_eval_loader_is_finite_and_ordered():
    holdout, _ = load_dataset("digits", "holdout")
    batches = list(make_eval_loader(holdout, 100))
    assert [x.shape[0] for x, _ in batches] == [100, 100, 97]
    assert torch.cat([y for _, y in batches]).tolist() == [int(holdout[i][1]) for i in range(len(holdout))]
    with pytest.raises(ValueError, match="batch_size=0"):
        make_eval_loader(holdout, 0)

