import json
import math

import pytest

from lrf import StopReason, SweepConfig, SweepResult
from lrf.candidates import CandidateResult, continued, final_loss_table, recommend, refine_multipliers, select, survivors
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
    assert selection.pick_lr == pick
    assert selection.candidates == pytest.approx((pick, 10 * pick, pick / 10))


def test_explicit_rates_replace_multipliers_but_the_pick_is_reported():
    selection = select(synthetic(), CandidatePlan(candidate_rates=[0.01, 0.1]))
    assert selection.candidates == (0.01, 0.1) and selection.multipliers is None
    assert selection.pick.ok


def test_no_reliable_suggestion_gives_no_candidates():
    flat = SweepResult([1e-6 * 1.1**i for i in range(50)], [1.0] * 50, [1.0] * 50, StopReason.MAX_ITER, SweepConfig())
    selection = select(flat)
    assert selection.candidates == () and not selection.pick.ok


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
    pick = selection.pick_lr
    rows = final_loss_table(selection, [candidate(pick * 10, math.nan, math.nan), candidate(pick, 0.5, 0.6),
                                        candidate(pick / 10, 0.4, 0.9)])
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert [r["multiplier"] for r in rows] == pytest.approx([1, 0.1, 10])
    assert rows[0]["pick"] and rows[0]["recommended"] and not rows[1]["pick"]
    assert "diverged" in table_markdown(rows, 2)
    assert table_csv(rows).splitlines()[0] == ("rank,lr,multiplier,iterations,final_loss,mean_last_k,holdout_loss,"
                                              "holdout_accuracy,pick,recommended,ran_on")


def test_the_recommendation_follows_the_held_out_evidence_not_the_rule():
    selection = select(synthetic())
    pick = selection.pick_lr
    # ten times the pick ends lower on held-out data, although its training loss is higher
    candidates = [candidate(pick, 0.5, 0.5, holdout=0.9), candidate(pick * 10, 0.6, 0.6, holdout=0.8),
                  candidate(pick / 10, 0.7, 0.7, holdout=1.2)]
    rec = recommend(selection, candidates)
    assert rec.lr == pytest.approx(pick * 10) and rec.measure == "holdout_loss" and rec.value == 0.8
    assert rec.pick_lr == pick and not rec.tie_broken
    assert "10 x the reference pick" in rec.evidence and "held-out loss" in rec.evidence
    rows = final_loss_table(selection, candidates, rec)
    assert [r["recommended"] for r in rows] == [True, False, False] and rows[1]["pick"]


def test_without_a_held_out_split_the_mean_of_the_last_k_decides():
    selection = select(synthetic())
    pick = selection.pick_lr
    rec = recommend(selection, [candidate(pick, 1.0), candidate(pick / 10, 0.5)])
    assert rec.lr == pytest.approx(pick / 10) and rec.measure == "mean_last_k"
    assert "the pick" in rec.evidence


def test_diverged_candidates_are_never_recommended():
    selection = select(synthetic())
    pick = selection.pick_lr
    rec = recommend(selection, [candidate(pick * 10, math.nan, math.nan), candidate(pick, 0.9, 0.9, holdout=1.0)])
    assert rec.lr == pick and "reference pick" in rec.evidence
    everything_diverged = recommend(selection, [candidate(pick * 10, math.nan, math.nan)])
    assert everything_diverged.lr is None and "diverged" in everything_diverged.evidence


def test_ties_go_to_the_lower_rate_and_say_so():
    selection = select(synthetic())
    pick = selection.pick_lr
    rec = recommend(selection, [candidate(pick, 0.5, 0.5, holdout=0.800), candidate(pick / 10, 0.5, 0.5, holdout=0.802)])
    assert rec.lr == pytest.approx(pick / 10) and rec.tie_broken
    assert "so the lower rate is recommended" in rec.evidence
    clear = recommend(selection, [candidate(pick, 0.5, 0.5, holdout=0.80), candidate(pick / 10, 0.5, 0.5, holdout=0.85)])
    assert clear.lr == pick and not clear.tie_broken


def test_no_candidates_no_recommendation():
    flat = SweepResult([1e-6 * 1.1**i for i in range(50)], [1.0] * 50, [1.0] * 50, StopReason.MAX_ITER, SweepConfig())
    rec = recommend(select(flat), [])
    assert rec.lr is None and rec.measure is None and rec.evidence


def test_candidate_result_json_round_trip_with_divergence():
    c = CandidateResult(1.0, 10, (2.3, math.inf), math.nan, 20, math.nan, None, None, 0.5)
    text = c.to_json()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON {name}"))
    back = CandidateResult.from_json(text)
    assert back.losses == (2.3, math.inf) and math.isnan(back.final_loss) and back.diverged


def test_refine_plan_spans_a_decade_each_way_at_quarter_decades():
    plan = CandidatePlan(plan="refine")
    multipliers = refine_multipliers(plan)
    assert len(multipliers) == 9 and multipliers[0] == pytest.approx(0.1) and multipliers[-1] == pytest.approx(10)
    assert multipliers[4] == pytest.approx(1.0)  # the pick itself is a candidate
    selection = select(synthetic(), plan)
    assert selection.candidates == pytest.approx(tuple(selection.pick_lr * m for m in multipliers))


@pytest.mark.parametrize("rates, rungs, iterations", [(9, 3, 500), (4, 2, 500), (16, 4, 1000), (9, 3, 40), (5, 2, 100)])
def test_rungs_halve_the_candidates_and_stay_within_the_reference_budget(rates, rungs, iterations):
    plan = CandidatePlan(plan="refine", refine_rates=rates, rungs=rungs, iterations=iterations)
    schedule = plan.rung_schedule(rates)
    assert [count for count, _, _ in schedule] == [rates // 2**r for r in range(rungs)]
    assert schedule[0][1] == 0 and schedule[-1][2] == iterations
    assert all(prev[2] == nxt[1] for prev, nxt in zip(schedule, schedule[1:]))  # survivors go on where they stopped
    spent = sum(count * (end - start) for count, start, end in schedule)
    assert spent <= 3 * iterations


@pytest.mark.parametrize("kwargs, message", [
    ({"plan": "grid"}, "plan='grid'"),
    ({"plan": "refine", "rungs": 1}, "rungs=1"),
    ({"plan": "refine", "refine_rates": 2}, "refine_rates=2"),
    ({"plan": "refine", "iterations": 3}, "iterations=3"),
    ({"refine_rates": 1}, "refine_rates=1"),
    ({"refine_span": 1.0}, "refine_span=1.0"),
    ({"rungs": 0}, "rungs=0"),
    # settings the chosen plan would not read
    ({"rungs": 4}, "rungs=4 shape\\(s\\) plan='refine' only, and this plan is 'multiples'"),
    ({"refine_rates": 5, "refine_span": 3.0}, "refine_rates=5, refine_span=3.0 shape"),
    ({"plan": "refine", "candidate_rates": (0.1, 0.2)}, "rungs=3 over the 2 candidate_rates leave 0 rate"),
    ({"plan": "refine", "candidate_multipliers": (1, 3)}, r"candidate_multipliers=\[1.0, 3.0\] is read by plan='multiples' only"),
])
def test_bad_refine_plans_name_parameter_and_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CandidatePlan(**kwargs)


def test_survivors_are_the_better_half_and_never_diverged():
    scored = [candidate(0.01, 0.5, 0.5, holdout=0.9), candidate(0.02, 0.5, 0.5, holdout=0.7),
              candidate(0.04, math.nan, math.nan), candidate(0.08, 0.5, 0.5, holdout=0.8)]
    assert survivors(scored, 2) == [0.02, 0.08]
    assert survivors(scored, 5) == [0.01, 0.02, 0.08]


def test_a_continued_candidate_appends_its_losses():
    first = CandidateResult(0.1, 3, (2.0, 1.5, 1.2), 1.2, 2, 1.35, 1.3, 0.5, 1.0)
    second = CandidateResult(0.1, 2, (1.0, 0.8), 0.8, 2, 0.9, 0.95, 0.7, 0.5)
    both = continued(first, second)
    assert both.iterations == 5 and both.losses == (2.0, 1.5, 1.2, 1.0, 0.8)
    assert both.mean_last_k == pytest.approx(0.9) and both.holdout_loss == 0.95 and both.seconds == 1.5
    assert continued(None, first) is first


def shifted(factor: float) -> SweepResult:
    """The synthetic sweep with every rate times ``factor``: its pick moves by the same factor."""
    base = synthetic()
    return SweepResult([lr * factor for lr in base.lrs], base.losses, base.smoothed, base.stop_reason, base.config)


def test_several_sweeps_give_the_median_pick_and_their_spread():
    single = select(synthetic()).pick_lr
    selection = select([shifted(1.0), shifted(4.0), shifted(1.5)], CandidatePlan(spread_threshold=5.0))
    assert selection.pick_lr == pytest.approx(1.5 * single)  # the median of three picks
    assert selection.picks == pytest.approx((single, 4 * single, 1.5 * single))
    assert selection.spread == pytest.approx(4.0) and not selection.uncertain
    assert selection.candidates == pytest.approx(tuple(1.5 * single * m for m in (1, 10, 0.1)))


def test_a_spread_above_the_threshold_widens_the_candidates_by_the_spread():
    selection = select([shifted(1.0), shifted(4.0), shifted(1.5)], CandidatePlan(spread_threshold=2.0))
    assert selection.uncertain
    assert selection.multipliers == pytest.approx((1.0, 40.0, 0.025))
    refine = select([shifted(1.0), shifted(4.0), shifted(1.5)], CandidatePlan(plan="refine", spread_threshold=2.0))
    assert refine.multipliers[0] == pytest.approx(1 / 40) and refine.multipliers[-1] == pytest.approx(40)


def test_an_even_number_of_sweeps_takes_the_lower_middle_pick_a_sweep_really_made():
    single = select(synthetic()).pick_lr
    selection = select([shifted(1.0), shifted(2.0)], CandidatePlan())
    assert selection.pick_lr == pytest.approx(single) and selection.spread == pytest.approx(2.0)


@pytest.mark.parametrize("kwargs, message", [({"sweeps": 0}, "sweeps=0"), ({"spread_threshold": 1.0}, "spread_threshold=1.0")])
def test_bad_sweep_counts_and_thresholds(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CandidatePlan(**kwargs)
