"""A run, as an algorithm: initialise, R sweeps, select, candidates rung by rung, recommend.

Framework-free, Prefect-free and executor-free: each stage is asked of a
:class:`Stages` (the same for every caller: :class:`lrf.jobs.JobStages` runs them as
placed, cached jobs, in this process or on a Dask cluster; the Prefect flow maps
them onto its tasks; the core's tests onto a quadratic learner). What *this*
module decides is the order of the work and what goes on: every candidate of a
rung starts from the run's initial parameters (or, past the first rung, from its
own saved state), the weaker half stops at each rung of the refine plan, and the
recommendation comes from the candidates of the last rung.

>>> from lrf.config import CandidatePlan
>>> plan_rungs(CandidatePlan(plan="refine"), 9)
[(9, 0, 55), (4, 55, 111), (2, 111, 500)]
>>> plan_rungs(CandidatePlan(plan="refine"), 0)
[]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from lrf.candidates import CandidateResult, Recommendation, Selection, continued, recommend, survivors
from lrf.config import CandidatePlan
from lrf.result import SweepResult


@dataclass(frozen=True)
class Training:
    """One candidate job of a rung: train ``lr`` from iteration ``start`` to ``end`` (going on
    from ``resume_from``, its state at ``start``, past the first rung), ranked by the mean of
    its last ``last_k`` losses; ``saves_state`` when a later rung may go on from it."""

    lr: float
    start: int
    end: int
    last_k: int
    resume_from: str | None = None
    saves_state: bool = False

    @property
    def name(self) -> str:
        """The job's name for people (run logs, "reused" lists)."""
        return f"train-candidate lr={self.lr:.4g} to {self.end}"


class Stages(Protocol):
    """Who does the work of a run's stages, for one setup, sweep configuration and plan."""

    def initialise(self) -> str:
        """The run's initial parameters: a file every sweep and candidate starts from."""

    def sweep(self, init_params: str, count: int) -> list[SweepResult]:
        """``count`` range tests from ``init_params``, sweep r on batch order r."""

    def select(self, results: list[SweepResult]) -> Selection:
        """The pick and the candidate rates from the sweeps (:func:`lrf.candidates.select`)."""

    def train(self, init_params: str, trainings: list[Training]) -> list[tuple[CandidateResult, str | None]]:
        """Each training's result and its saved state (None if it saves none), in order."""


@dataclass(frozen=True)
class RunResult:
    """What a run found: the sweeps, the selection, each rung's candidates, the recommendation."""

    init_params: str
    sweeps: tuple[SweepResult, ...]
    selection: Selection
    rungs: tuple[tuple[CandidateResult, ...], ...]
    recommendation: Recommendation


def plan_rungs(plan: CandidatePlan, num_rates: int) -> list[tuple[int, int, int]]:
    """``plan``'s rungs for ``num_rates`` candidates (:meth:`CandidatePlan.rung_schedule`);
    none without a candidate (a sweep that found no reliable rate)."""
    return plan.rung_schedule(num_rates) if num_rates else []


def run(stages: Stages, plan: CandidatePlan) -> RunResult:
    """Do the run's stages in order (SPEC §7, with the plan's rungs and sweeps) and recommend.

    Raises whatever a stage raises; a stage's work that finished stays where the stage
    keeps it (the work cache), so the same run started again goes on from there.
    """
    init_params = stages.initialise()
    results = stages.sweep(init_params, plan.sweeps)
    selection = stages.select(results)
    rates = list(selection.candidates)
    rungs: list[tuple[CandidateResult, ...]] = []
    latest: dict[float, CandidateResult] = {}
    states: dict[float, str | None] = {}
    for number, (count, start, end) in enumerate(plan_rungs(plan, len(rates))):
        rates = survivors([latest[lr] for lr in rates], count) if number else rates
        if not rates:  # every candidate diverged
            break
        trainings = [Training(lr, start, end, plan.last_k, states.get(lr), end < plan.iterations) for lr in rates]
        for training, (segment, state) in zip(trainings, stages.train(init_params, trainings)):
            states[training.lr] = state
            latest[training.lr] = continued(latest.get(training.lr), segment)
        rungs.append(tuple(latest[lr] for lr in rates))
    return RunResult(init_params, tuple(results), selection, tuple(rungs), recommend(selection, last_rung(rungs)))


def last_rung(rungs: Sequence[Sequence[CandidateResult]]) -> Sequence[CandidateResult]:
    """The candidates of the last rung that trained any (what the recommendation compares)."""
    return next((rung for rung in reversed(rungs) if rung), ())
