import json
import math

import pytest

from lrf import StopReason, SweepConfig, SweepResult
from lrf.candidates import CandidateResult, final_loss_table, select, verdict
from lrf.config import CandidatePlan
from lrf.execution import Execution
from lrf.report import table_csv, table_markdown
from lrf.rules import suggest
from tests.core.test_suggest import synthetic


def candidate(lr, final, mean=None, holdout=None):
    losses = (2.3, 1.0, final)
    return CandidateResult(lr, 3, losses, final, 2, final if mean is None else mean, holdout, None, 0.1)


def test_reference_candidates_are_pick_ten_times_and_a_tenth():
    result = synthetic()
    selection = select(result)
    pick = suggest(result).lr
    assert selection.chosen_lr == pick
    assert selection.candidates == pytest.approx((pick, 10 * pick, pick / 10))


def test_explicit_rates_replace_multipliers_but_the_pick_is_reported():
    selection = select(synthetic(), CandidatePlan(candidate_rates=[0.01, 0.1]))
    assert selection.candidates == (0.01, 0.1) and selection.multipliers is None
    assert selection.suggestion.ok


def test_no_reliable_suggestion_gives_no_candidates():
    flat = SweepResult([1e-6 * 1.1**i for i in range(50)], [1.0] * 50, [1.0] * 50, StopReason.MAX_ITER, SweepConfig())
    selection = select(flat)
    assert selection.candidates == () and not selection.suggestion.ok


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"candidate_multipliers": []}, r"candidate_multipliers=\[\]"),
        ({"candidate_multipliers": [1.0, 1.0]}, "must not repeat"),
        ({"candidate_multipliers": [1.0, -10.0]}, "candidate_multipliers=-10.0"),
        ({"candidate_rates": [0.1, 0.0]}, "candidate_rates=0.0"),
        ({"candidate_rates": [math.nan]}, "candidate_rates=nan"),
        ({"rule": "magic"}, "rule='magic'"),
    ],
)
def test_bad_candidates_name_parameter_and_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        select(synthetic(), CandidatePlan(**kwargs))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"iterations": 0}, "iterations=0"),
        ({"last_k": -1}, "last_k=-1"),
        ({"candidate_rates": ()}, "candidate_rates=\\[\\]"),
        ({"candidate_multipliers": None}, "candidate_multipliers=None"),
        ({"rule": "best"}, "rule='best'"),
    ],
)
def test_candidate_plan_validation(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        CandidatePlan(**kwargs)


def test_execution_validation():
    with pytest.raises(ValueError, match="at_once=0"):
        Execution(at_once=0)


def test_table_ranks_by_mean_of_last_k_and_puts_divergence_last():
    selection = select(synthetic())
    pick = selection.chosen_lr
    rows = final_loss_table(selection, [candidate(pick * 10, math.nan, math.nan), candidate(pick, 0.5, 0.6),
                                        candidate(pick / 10, 0.4, 0.9)])
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert [r["multiplier"] for r in rows] == pytest.approx([1, 0.1, 10])
    assert rows[0]["chosen"] and not rows[1]["chosen"]
    assert verdict(rows).startswith("confirmed: the pick")
    assert "diverged" in table_markdown(rows, 2)
    assert table_csv(rows).splitlines()[0] == "rank,lr,multiplier,final_loss,mean_last_k,holdout_loss,holdout_accuracy,chosen"


def test_verdict_says_when_the_pick_is_beaten():
    selection = select(synthetic())
    pick = selection.chosen_lr
    rows = final_loss_table(selection, [candidate(pick, 1.0), candidate(pick / 10, 0.5)])
    assert verdict(rows).startswith("not confirmed")
    rows = final_loss_table(selection, [candidate(pick, 0.52), candidate(pick / 10, 0.5)])
    assert verdict(rows).startswith("confirmed within 5%")


def test_candidate_result_json_round_trip_with_divergence():
    c = CandidateResult(1.0, 10, (2.3, math.inf), math.nan, 20, math.nan, None, None, 0.5)
    text = c.to_json()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON {name}"))
    back = CandidateResult.from_json(text)
    assert back.losses == (2.3, math.inf) and math.isnan(back.final_loss) and back.diverged
