"""A run's stages (:class:`lrf.run.Stages`) as Prefect tasks: each job a task run of its own,
with its name, state ("Reused", "Diverged"), retries and progress artifact."""
from __future__ import annotations

from lrf.candidates import CandidateResult, Selection
from lrf.cluster import ClusterRef
from lrf.config import CandidatePlan, Setup, SweepConfig
from lrf.execution import lanes
from lrf.result import SweepResult
from lrf.run import Training
from tasks.model import initialise_model
from tasks.sweep import lr_sweep, select_lr
from tasks.train import train_candidate


class TaskStages:
    """The stages of one flow run on ``cluster``; ``reused`` names the jobs whose task read
    their result back from the cache (for the report)."""

    def __init__(self, setup: Setup, config: SweepConfig, plan: CandidatePlan, cache_dir: str, cluster: ClusterRef,
                 *, init_params: str | None = None, recompute: bool = False):
        self.setup, self.config, self.plan, self.cache_dir, self.cluster = setup, config, plan, cache_dir, cluster
        self.init_params, self.recompute = init_params, recompute
        self.reused: list[str] = []

    def initialise(self) -> str:
        state = initialise_model(self.setup, self.cache_dir, self.cluster, self.recompute, self.init_params,
                                 return_state=True)
        self._note_reused(["initialise-model"], [state])
        return state.result()

    def sweep(self, init_params: str, count: int) -> list[SweepResult]:
        futures = in_lanes(lr_sweep, [dict(setup=self.setup.with_batch_order(r), config=self.config,
                                           init_params=init_params, cache_dir=self.cache_dir, cluster=self.cluster,
                                           recompute=self.recompute) for r in range(count)], len(self.cluster.slots))
        results = [future.result() for future in futures]
        self._note_reused([f"lr-sweep {r}" for r in range(count)], [future.state for future in futures])
        return results

    def select(self, results: list[SweepResult]) -> Selection:
        return select_lr(results, self.plan)

    def train(self, init_params: str, trainings: list[Training]) -> list[tuple[CandidateResult, str | None]]:
        futures = in_lanes(train_candidate, [dict(setup=self.setup, init_params=init_params, training=t,
                                                  cache_dir=self.cache_dir, cluster=self.cluster,
                                                  recompute=self.recompute) for t in trainings],
                           len(self.cluster.slots))
        done = [future.result() for future in futures]
        self._note_reused([t.name for t in trainings], [future.state for future in futures])
        return done

    def _note_reused(self, names: list[str], states: list) -> None:
        self.reused += [name for name, state in zip(names, states) if state.name == "Reused"]


def in_lanes(task, calls: list[dict], width: int) -> list:
    """Submit ``task`` once per keyword-argument dict, in ``width`` lanes side by side
    (:func:`lrf.execution.lanes`): lane j runs on the cluster's slot j (``slot=j``), one
    call after another; the futures, in call order."""
    futures: list = [None] * len(calls)
    for slot, lane in enumerate(lanes(len(calls), width)):
        previous = []
        for i in lane:
            futures[i] = task.submit(**calls[i], slot=slot, wait_for=previous)
            previous = [futures[i]]
    return futures
