"""Bad data, table-driven, through both front doors. Data the engine can open but not learn
from (labels that are no class indices, one class, images that do not decode or differ in
size) is refused by name: the error is one line naming ``data=``, the file and the record.
Through ``lrf find`` it exits 2 and writes nothing; through the flow it fails the first task
that can see it (``prepare-dataset`` for what can be read without MXNet, before any folder
is made; the first job for what takes decoding; the sweep for a record met in training).

The data are tiny synthetic RecordIO files and image folders written here (8x8 images;
``mx.recordio.pack`` with PIL's JPEGs: ``pack_img`` needs OpenCV's Python module, which
the environment does not have).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest

from lrf.cli import main as cli_main
from lrf.datacheck import IMAGE_SAMPLE, sample_positions

pytestmark = pytest.mark.timeout(600)

RECORDS = 40  # per RecordIO file: 10 classes x 4
BATCH = 8


def _image(width=8, height=8, seed=0, fmt="JPEG") -> bytes:
    from PIL import Image

    pixels = np.random.RandomState(seed).randint(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def _write_rec(path: Path, labels, payloads: dict | None = None) -> Path:
    """An indexed RecordIO file: one 8x8 JPEG per label, ``payloads[i]`` replacing record i's image."""
    import mxnet as mx

    payloads = payloads or {}
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = mx.recordio.MXIndexedRecordIO(str(path.with_suffix(".idx")), str(path), "w")
    for i, label in enumerate(labels):
        header = mx.recordio.IRHeader(0, float(label), i, 0)
        writer.write_idx(i, mx.recordio.pack(header, payloads.get(i, _image(seed=i))))
    writer.close()
    return path


def _labels(**changes):
    labels = [i % 10 for i in range(RECORDS)]
    for index, value in changes.items():
        labels[int(index[1:])] = value
    return labels


def _folder(root: Path, classes: dict[str, int], odd: dict[str, bytes] | None = None) -> Path:
    """One sub-folder per class with that many 8x8 PNGs; ``odd`` adds files (relative path: bytes)."""
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            (root / name / f"{k}.png").write_bytes(_image(seed=k, fmt="PNG"))
    for relative, content in (odd or {}).items():
        (root / relative).write_bytes(content)
    return root


def _unsampled(count: int) -> int:
    """A record that neither preflight nor the engine samples: met only in training."""
    return next(i for i in range(1, count) if i not in set(sample_positions(count, IMAGE_SAMPLE).tolist()))


def rec(labels, payloads=None, test_labels=None):
    """A builder of ``rec:TMP/train.rec`` (and its ``test.rec`` sibling if ``test_labels``)."""
    def build(tmp: Path) -> str:
        if test_labels is not None:
            _write_rec(tmp / "test.rec", test_labels)
        return f"rec:{_write_rec(tmp / 'train.rec', labels, payloads)}"
    return build


def folder(classes, odd=None):
    """A builder of ``folder:TMP/images``."""
    return lambda tmp: f"folder:{_folder(tmp / 'images', classes, odd)}"


NOTE = b"not an image, a note\n"
LONG = 70  # records, so that one escapes every sample
# name -> (builder, text the error must contain ({rec}, {test}, {root} filled in),
#          the flow's first task that can see it: "prepare-dataset" (no folder is made),
#          or the job that fails: "init" (decoding the sample), "sweep" (met in training))
CASES = {
    "label -1": (rec(_labels(r5=-1)), "record 5 of {rec} has label -1", "prepare-dataset"),
    "label 9.5": (rec(_labels(r7=9.5)), "record 7 of {rec} has label 9.5", "prepare-dataset"),
    "label NaN": (rec(_labels(r3=math.nan)), "record 3 of {rec} has label nan", "prepare-dataset"),
    "labels 10-19 in 10 classes": (rec([10 + i % 10 for i in range(RECORDS)]),
                                   "class(es) 0, 1, 2, 3, 4, ... (10 of 20) have no record", "prepare-dataset"),
    "held-out labels beyond the classes": (
        rec(_labels(), test_labels=[i % 13 for i in range(20)]),
        "record 10 of the held-out file {test} has label 10, but the training data has 10 classes",
        "prepare-dataset"),
    "one class (RecordIO)": (rec([0] * RECORDS), "every label of {rec} is 0: a classifier needs at least two classes",
                             "prepare-dataset"),
    "one-class folder": (folder({"cats": 12}),
                         "has one class folder with images (cats): a classifier needs at least two classes",
                         "prepare-dataset"),
    "text file named .jpg": (folder({"cats": 6, "dogs": 6}, {"dogs/x.jpg": NOTE}),
                             "image file {root}/dogs/x.jpg is not an image", "prepare-dataset"),
    "empty .png": (folder({"cats": 6, "dogs": 6}, {"cats/empty.png": b""}),
                   "image file {root}/cats/empty.png is empty", "prepare-dataset"),
    "random bytes in a RecordIO payload": (rec(_labels(), {4: np.random.RandomState(1).bytes(300)}),
                                           "record 4 of {rec} is not an image", "prepare-dataset"),
    "mixed image sizes in RecordIO": (rec(_labels(), {6: _image(12, 10, seed=6)}),
                                      "record 6 of {rec} is a 12x10 image, record 0 is 8x8", "prepare-dataset"),
    "a JPEG header over garbage (only decoding tells)": (  # the last record: in every sample
        rec(_labels(), {RECORDS - 1: _image()[:20] + np.random.RandomState(2).bytes(300)}),
        f"record {RECORDS - 1} of {{rec}} does not decode as an image", "init"),
    "an undecodable record past every sample, met in training": (
        rec([i % 10 for i in range(LONG)], {_unsampled(LONG): b"garbage " * 40}),
        f"record {_unsampled(LONG)} of {{rec}} does not decode as an image", "sweep"),
}


def _build(name, tmp_path):
    build, message, task = CASES[name]
    data = build(tmp_path / "data")
    fill = {"rec": tmp_path / "data" / "train.rec", "test": tmp_path / "data" / "test.rec",
            "root": tmp_path / "data" / "images"}
    return data, message.format(**{k: str(v) for k, v in fill.items()}), task


@pytest.mark.parametrize("name", list(CASES))
def test_lrf_find_exits_2_naming_the_file_and_record_and_writes_nothing(tmp_path, capsys, name):
    data, message, _ = _build(name, tmp_path)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        cli_main(["find", "--out", str(out), "--no-progress", "--data", data, "--model", "small-cnn",
                  "--batch-size", str(BATCH), "--loader-workers", "0"])
    error = capsys.readouterr().err
    assert exit_.value.code == 2, error
    assert "argument --data: data=" in error and message in error, error
    assert len(error.strip().splitlines()) == 1  # one line, no traceback
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_the_flow_fails_the_first_task_that_can_see_it(prefect_api, local_jobs, tmp_path, name):
    from flows.lr_finder import lr_finder

    data, message, task = _build(name, tmp_path)
    root = tmp_path / "runs"
    state = lr_finder(data=data, model="small-cnn", batch_size=BATCH, loader_workers=0, iterations=4, last_k=2,
                      candidate_rates=(0.01,), output_root=str(root), cluster=local_jobs.address, return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception) as error:
        state.result()
    text = str(error.value)
    assert message in text and "data=" in text, text
    if task == "prepare-dataset":
        assert not root.exists()  # refused before any folder was made
    else:
        assert text.startswith(f"lrf job {task!r} failed on its worker: data=")
        assert len(text.splitlines()) == 1  # the data error, not the worker's traceback
        assert not list(root.glob("run-*/summary.json"))
