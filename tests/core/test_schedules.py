import math

import pytest

from lrf import schedules


def test_exponential_is_the_reference_closed_form():
    schedule = schedules.exponential(1e-6, 1.1)
    assert [schedule(i) for i in range(4)] == [1e-6, 1e-6 * 1.1, 1e-6 * 1.1**2, 1e-6 * 1.1**3]


def test_exponential_defaults_are_the_reference():
    assert schedules.exponential()(0) == 1e-6
    assert schedules.exponential()(1) == pytest.approx(1.1e-6, rel=1e-15)


def test_exponential_range_hits_both_ends_and_is_geometric():
    schedule = schedules.exponential_range(1e-4, 1.0, 5)
    values = [schedule(i) for i in range(5)]
    assert values[0] == 1e-4 and values[-1] == 1.0
    ratios = [b / a for a, b in zip(values, values[1:])]
    assert ratios == pytest.approx([10.0] * 4, rel=1e-12)


def test_linear_range_is_evenly_spaced():
    schedule = schedules.linear_range(0.01, 0.05, 5)
    assert [schedule(i) for i in range(5)] == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05], abs=1e-15)
    assert schedule(4) == 0.05


@pytest.mark.parametrize(
    "make, args, message",
    [
        (schedules.exponential, (0.0, 1.1), "lr_start=0.0"),
        (schedules.exponential, (-1e-3, 1.1), "lr_start=-0.001"),
        (schedules.exponential, (math.nan, 1.1), "lr_start=nan"),
        (schedules.exponential, (math.inf, 1.1), "lr_start=inf"),
        (schedules.exponential, (1e-6, 1.0), "lr_multiplier=1.0"),
        (schedules.exponential, (1e-6, 0.5), "lr_multiplier=0.5"),
        (schedules.exponential_range, (1e-3, 1e-4, 10), "lr_end=0.0001"),
        (schedules.exponential_range, (1e-3, 1.0, 1), "num_steps=1"),
        (schedules.linear_range, (1e-3, 1.0, 0), "num_steps=0"),
    ],
)
def test_bad_arguments_name_parameter_and_value(make, args, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        make(*args)


def test_non_numbers_are_type_errors():
    with pytest.raises(TypeError, match="lr_start='1e-3'"):
        schedules.exponential("1e-3", 1.1)
    with pytest.raises(TypeError, match="num_steps=2.5"):
        schedules.linear_range(1e-3, 1.0, 2.5)
