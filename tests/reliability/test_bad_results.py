"""Wrong values from a learner, damaged result files, checks that could not check anything:
each refused with an error that names what is wrong (never a bare float()/KeyError)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lrf import SweepConfig, SweepResult, find
from lrf.candidates import CandidateResult
from lrf.config import CandidatePlan
from lrf.stopping import StopReason


class Returning:
    """A learner whose iteration returns ``value`` (after a dry run that returns a float)."""

    def __init__(self, value):
        self.value, self.state = value, 0

    def iteration(self, lr=None, take_step=True):
        if not take_step:
            return 2.3
        self.state += 1
        return self.value

    def snapshot(self):
        return self.state

    def restore(self, snapshot):
        self.state = snapshot


@pytest.mark.parametrize("value", [np.array([2.3, 2.2]), np.array([2.3]), None, "2.3", True, [2.3]],
                         ids=["array", "one-element array", "None", "string", "bool", "list"])
def test_a_learner_returning_no_float_is_named(value):
    learner = Returning(value)
    with pytest.raises(TypeError, match=r"learner\.iteration\(lr=1e-06\) must return the batch's mean loss as a float"):
        find(learner)
    assert learner.state == 0  # restored all the same


def test_numpy_floats_are_losses():
    assert len(find(Returning(np.float32(2.3)), max_iter=5)) == 5


SWEEP = SweepResult([1e-6, 1.1e-6], [2.3, 2.2], [2.3, 2.23], StopReason.MAX_ITER, SweepConfig(max_iter=2))


@pytest.mark.parametrize("edit, message", [
    (lambda text: text.replace("0,1e-06,2.3,2.3\n", "0,1e-06,,2.3\n"), "line 3 column loss is ''"),
    (lambda text: text.replace("0,1e-06,2.3,2.3\n", "0,1e-06,2.3\n"), "line 3 has 3 cells, expected 4"),
    (lambda text: text.replace("1,1.1e-06", "7,1.1e-06"), "line 4 is iteration '7', expected 1"),
    (lambda text: text.replace('{"config": {', '{"settings": {'), "lacks config in its header"),
    (lambda text: text.replace('"stop_reason": "max_iter", ', ""), "lacks stop_reason in its header"),
    (lambda text: text.replace('"smoothing": 0.3', '"smoothness": 0.3'), "has an invalid config"),
    (lambda text: text.split("\n", 1)[0][:40] + "\n" + text.split("\n", 1)[1], "is not a JSON header"),
])
def test_a_damaged_sweep_csv_is_a_value_error_naming_the_line(edit, message):
    text = edit(SWEEP.to_csv())
    assert text != SWEEP.to_csv()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SweepResult.from_csv(text)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("points"), "must have points"),
    (lambda d: d["points"].update(loss=[2.3, None]), r"points.loss\[1\] is None, not a number"),
    (lambda d: d.pop("config"), "lacks config"),
])
def test_a_damaged_sweep_json_is_a_value_error(edit, message):
    data = json.loads(SWEEP.to_json())
    edit(data)
    with pytest.raises(ValueError, match=message):
        SweepResult.from_json(json.dumps(data))


GOOD = CandidateResult(0.1, 4, (2.3, 2.0, 1.8, 1.7), 1.7, 2, 1.75, 1.6, 0.5, 1.0)


@pytest.mark.parametrize("edit, message", [
    (dict(final_loss=-5.0, losses=[]), "it has no losses"),
    (dict(final_loss=-5.0), "final_loss=-5.0 is not the last loss"),
    (dict(mean_last_k=0.1), "mean_last_k=0.1 is not the mean of the last 2 losses"),
    (dict(losses=[2.3, 2.0]), "stops early without"),
    (dict(losses=[2.3, 2.0, 1.8, 1.7, 1.6]), "5 losses for iterations=4"),
    (dict(iterations="4"), "iterations='4', expected an integer"),
    (dict(lr=-0.1), "lr=-0.1 is not a positive rate"),
    (dict(holdout_accuracy=1.5), "holdout_accuracy=1.5 is not in"),
    (dict(losses=[2.3, "a lot", 1.8, 1.7]), r"losses\[1\]='a lot', expected a number"),
])
def test_an_inconsistent_candidate_result_is_refused(edit, message):
    data = json.loads(GOOD.to_json())
    data.update(edit)
    with pytest.raises(ValueError, match=message):
        CandidateResult.from_json(json.dumps(data))


def test_a_candidate_result_lacking_fields_names_them():
    data = json.loads(GOOD.to_json())
    del data["losses"], data["seconds"]
    with pytest.raises(ValueError, match="lacks losses, seconds"):
        CandidateResult.from_json(json.dumps(data))
    assert CandidateResult.from_json(GOOD.to_json()) == GOOD


def test_one_iteration_checks_nothing_and_is_refused():
    with pytest.raises(ValueError, match="iterations=1"):
        CandidatePlan(iterations=1, last_k=1)


def test_a_last_k_beyond_the_iterations_is_the_mean_of_them_all_and_says_so():
    plan = CandidatePlan(iterations=7)
    assert plan.last_k == 7 and CandidatePlan(iterations=30, last_k=5).last_k == 5
    assert not math.isnan(CandidatePlan().last_k)


@pytest.mark.parametrize("name, content, message", [
    ("missing-cell.csv", SWEEP.to_csv().replace("0,1e-06,2.3,2.3\n", "0,1e-06,,2.3\n"), "line 3 column loss is ''"),
    ("short-row.csv", SWEEP.to_csv().replace("0,1e-06,2.3,2.3\n", "0,1e-06\n"), "line 3 has 2 cells"),
    ("no-header.csv", SWEEP.to_csv().split("\n", 1)[1], "not an lrf sweep CSV"),
    ("no-columns.csv", SWEEP.to_csv().split("\n", 1)[0] + "\n", "must have the columns"),
    ("empty.csv", "", "not an lrf sweep CSV"),
    ("binary.csv", b"\xff\xfe\x00\x01garbage", "not UTF-8 text"),
    ("truncated.json", SWEEP.to_json()[:60], "not whole JSON"),
    ("binary.json", b"\x89PNG\r\n\x1a\n", "not UTF-8 text"),
    ("list.json", "[1, 2]", "not an lrf sweep JSON"),
    ("bad-reason.csv", SWEEP.to_csv().replace('"stop_reason": "max_iter"', '"stop_reason": "gave up"'),
     "stop_reason='gave up', expected one of"),
])
def test_a_damaged_sweep_file_is_one_value_error_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError) as error:
        SweepResult.load(path)
    text = str(error.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text, text
    assert type(error.value) is ValueError  # not a JSONDecodeError/UnicodeDecodeError to dig out of


def test_a_sweep_file_that_is_not_there_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        SweepResult.load(tmp_path / "nothing.csv")
