"""The run's algorithm (lrf.run) on the quadratic learner: stages in order, rungs, survivors
going on from their saved state, the recommendation; in milliseconds, no framework."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrf.candidates import TIE_TOLERANCE, CandidateResult, recommend, select
from lrf.config import CandidatePlan, SweepConfig
from lrf.run import Training, plan_rungs, run
from lrf.sweep import find
from tests.core.quadratic import QuadraticLearner

FLOOR = 0.1


class QuadraticStages:
    """:class:`lrf.run.Stages` over the quadratic learner, in this process: "files" are keys
    of dicts, a held-out loss is the loss at the trained weights."""

    def __init__(self, plan: CandidatePlan, a: float = 1.0, config: SweepConfig = SweepConfig()):
        self.plan, self.a, self.config = plan, a, config
        self.saved: dict[str, QuadraticLearner] = {}
        self.calls: list[tuple] = []

    def _learner(self) -> QuadraticLearner:
        return QuadraticLearner(a=self.a, floor=FLOOR)

    def initialise(self) -> str:
        self.calls.append(("initialise",))
        self.saved["init"] = self._learner()
        return "init"

    def sweep(self, init_params: str, count: int):
        self.calls.append(("sweep", init_params, count))
        return [find(self._learner(), self.config) for _ in range(count)]

    def select(self, results):
        self.calls.append(("select", len(results)))
        return select(results, self.plan)

    def train(self, init_params: str, trainings: list[Training]):
        self.calls.append(("train", init_params, tuple(trainings)))
        return [self._train(t) for t in trainings]

    def _train(self, t: Training):
        import copy

        learner = copy.deepcopy(self.saved[t.resume_from] if t.resume_from else self.saved["init"])
        assert (t.resume_from is None) == (t.start == 0)
        losses = []
        for _ in range(t.start, t.end):
            losses.append(learner.iteration(t.lr))
            if not math.isfinite(losses[-1]):
                break
        diverged = not math.isfinite(losses[-1])
        tail = losses[-t.last_k:]
        state = None
        if t.saves_state and not diverged:
            state = f"state-{t.lr}-{t.end}"
            self.saved[state] = learner
        holdout = None if diverged else FLOOR + 0.5 * self.a * float(learner.w @ learner.w)
        result = CandidateResult(t.lr, t.end - t.start, tuple(losses), math.nan if diverged else losses[-1], t.last_k,
                                 math.nan if diverged else sum(tail) / len(tail), holdout, None, 0.0)
        return result, state


def straight(lr: float, iterations: int, a: float = 1.0) -> list[float]:
    """The losses of training ``lr`` from the start, without a stop."""
    learner, losses = QuadraticLearner(a=a, floor=FLOOR), []
    for _ in range(iterations):
        losses.append(learner.iteration(lr))
        if not math.isfinite(losses[-1]):
            break
    return losses


def test_the_reference_plan_trains_each_candidate_once_from_the_initial_weights():
    plan = CandidatePlan(iterations=40, last_k=5)
    stages = QuadraticStages(plan)
    outcome = run(stages, plan)
    assert [c[0] for c in stages.calls] == ["initialise", "sweep", "select", "train"]
    (_, init, trainings) = stages.calls[-1]
    assert init == "init" and [t.lr for t in trainings] == list(outcome.selection.candidates)
    assert all((t.start, t.end, t.resume_from, t.saves_state) == (0, 40, None, False) for t in trainings)
    (rung,) = outcome.rungs
    for candidate in rung:
        assert list(candidate.losses) == pytest.approx(straight(candidate.lr, 40))
    assert outcome.recommendation == recommend(outcome.selection, rung)
    assert outcome.recommendation.measure == "holdout_loss"
    best = min(c.holdout_loss for c in rung if not c.diverged)
    assert outcome.recommendation.value <= best * (1 + TIE_TOLERANCE)


def test_the_refine_plan_halves_the_rates_and_survivors_go_on_from_their_state():
    plan = CandidatePlan(plan="refine", iterations=60, last_k=5)
    stages = QuadraticStages(plan)
    outcome = run(stages, plan)
    schedule = plan_rungs(plan, len(outcome.selection.candidates))
    rungs_trained = [c[2] for c in stages.calls if c[0] == "train"]
    assert [len(r) for r in rungs_trained] == [count for count, _, _ in schedule][:len(rungs_trained)]
    for number, (trainings, (_, start, end)) in enumerate(zip(rungs_trained, schedule)):
        assert all((t.start, t.end) == (start, end) for t in trainings)
        assert all(t.saves_state == (end < plan.iterations) for t in trainings)
        assert all((t.resume_from is None) == (number == 0) for t in trainings)
        if number:  # the survivors are the better half of the rung before, by the deciding measure
            before = {c.lr: c for c in outcome.rungs[number - 1]}
            ranked = sorted((c for c in before.values() if not c.diverged), key=lambda c: c.holdout_loss)
            assert {t.lr for t in trainings} == {c.lr for c in ranked[:len(trainings)]}
    for candidate in outcome.rungs[-1]:  # trained in pieces, as if it never stopped
        assert list(candidate.losses) == pytest.approx(straight(candidate.lr, plan.iterations))
        assert candidate.iterations == plan.iterations
    assert outcome.recommendation.lr in {c.lr for c in outcome.rungs[-1]}


def test_when_every_candidate_diverges_the_rungs_stop_and_nothing_is_recommended():
    plan = CandidatePlan(plan="refine", candidate_rates=tuple(1e6 * (1 + i) for i in range(8)),
                         iterations=400)  # w grows a million-fold a step: inf within a rung
    stages = QuadraticStages(plan)
    with np.errstate(over="ignore", invalid="ignore"):
        outcome = run(stages, plan)
    assert len(outcome.rungs) == 1 and all(c.diverged for c in outcome.rungs[0])
    assert outcome.recommendation.lr is None and "diverged" in outcome.recommendation.evidence


def test_a_sweep_without_a_reliable_pick_trains_nothing_with_either_plan():
    # the loss never falls fast enough to read (a tiny curvature): no pick, no candidates
    for plan in (CandidatePlan(iterations=10), CandidatePlan(plan="refine", iterations=100)):
        stages = QuadraticStages(plan, a=1e-9, config=SweepConfig(max_iter=60))
        outcome = run(stages, plan)
        assert not outcome.selection.pick.ok and outcome.rungs == ()
        assert not [c for c in stages.calls if c[0] == "train"] and outcome.recommendation.lr is None


def test_several_sweeps_are_asked_for_at_once():
    plan = CandidatePlan(sweeps=3, iterations=10)
    stages = QuadraticStages(plan)
    outcome = run(stages, plan)
    assert ("sweep", "init", 3) in stages.calls and len(outcome.sweeps) == 3
