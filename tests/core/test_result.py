import json
import math

import pytest

from lrf import StopReason, SweepConfig, SweepResult, find
from tests.core.quadratic import QuadraticLearner


@pytest.fixture
def result():
    return find(QuadraticLearner(a=2.0), lr_start=1e-4)


@pytest.fixture
def non_finite():
    return SweepResult(
        (1e-3, 1e-2, 0.1, 1.0), (2.5, 2.0, math.inf, math.nan), (2.5, 2.15, math.nan, math.nan),
        StopReason.NON_FINITE, SweepConfig(max_iter=4, criterion="best"),
    )


def same(a: SweepResult, b: SweepResult) -> bool:
    bits = lambda r: [tuple(float(v).hex() for v in col) for col in (r.lrs, r.losses, r.smoothed)]
    return bits(a) == bits(b) and a.stop_reason == b.stop_reason and a.config == b.config


@pytest.mark.parametrize("fixture", ["result", "non_finite"])
def test_csv_and_json_round_trip_bit_for_bit(fixture, request):
    sweep = request.getfixturevalue(fixture)
    assert same(SweepResult.from_csv(sweep.to_csv()), sweep)
    assert same(SweepResult.from_json(sweep.to_json()), sweep)


def test_json_is_strict(non_finite):
    data = json.loads(non_finite.to_json(), parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    assert data["points"]["loss"][2:] == ["Infinity", "NaN"]
    assert data["stop_reason"] == "non_finite"


def test_files_round_trip_and_leave_no_temporary(tmp_path, result):
    for name in ("sweep.csv", "sweep.json"):
        path = result.save(tmp_path / name)
        assert same(SweepResult.load(path), result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.csv", "sweep.json"]


def test_csv_reads_with_pandas(tmp_path, result):
    import pandas

    # pandas C parser rounds the last bit unless asked for round-trip precision
    frame = pandas.read_csv(result.save(tmp_path / "sweep.csv"), comment="#", float_precision="round_trip")
    assert list(frame.columns) == ["iteration", "lr", "loss", "smoothed_loss"]
    assert frame["lr"].tolist() == list(result.lrs)


def test_to_dataframe(result):
    frame = result.to_dataframe()
    assert frame["smoothed_loss"].tolist() == list(result.smoothed)
    assert frame.attrs["stop_reason"] == "diverged"
    assert frame.attrs["config"]["lr_start"] == 1e-4


def test_result_is_frozen(result):
    with pytest.raises(AttributeError):
        result.lrs = ()


def test_mismatched_lengths_rejected():
    with pytest.raises(ValueError, match="lengths 2, 1, 1"):
        SweepResult((1.0, 2.0), (1.0,), (1.0,), StopReason.MAX_ITER, SweepConfig())


def test_not_a_sweep_file():
    with pytest.raises(ValueError, match="not an lrf sweep CSV"):
        SweepResult.from_csv("lr,loss\n1,2\n")
