"""The jobs of a run (initialise a model, sweep, train a candidate), placed and cached.

Framework-free: a job's work is its engine's (:mod:`lrf.engine`), run where the job
was placed (an *executor* and its slot ``slot``, :class:`lrf.cluster.Slot`): on a Dask worker (:mod:`lrf.cluster`: a long-lived
process that imports the engine once and serves many jobs, on one device), or in
this process (:class:`lrf.cluster.InProcess`, for the CLI). A worker runs one job
at a time (MXNet's Python front end is not thread-safe), and a job whose worker
dies fails alone: the scheduler runs it again on another worker, then gives up.
Each job gets what it needs by value (the setup, parameter files as bytes) and
returns its result by value; the caller, on the flow's machine, writes the cache.
What a job says while it runs (progress lines, the fraction done) comes back as
events, handed to the caller's :class:`Watch` in the caller's thread.

Every job reads its result from the work cache (:mod:`lrf.cache`, which owns its
names, records and verification) when the same work was finished before, and
otherwise runs, then writes it there: resumable, never-repeated work.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lrf import _io
from lrf.cache import (Unusable, WorkCache, candidate_work, check_params, file_sha256, init_work, read_checked_json,
                       read_or_compute, stamp, sweep_work, write_sidecar)
from lrf.candidates import CandidateResult, Selection, select
from lrf.cluster import ClusterRef, InProcess, JobFailed, run_job, scratch_folder, send_event, where
from lrf.config import CandidatePlan, Setup, SweepConfig
from lrf.engine import DEFAULT_ENGINE, engine_for
from lrf.execution import lanes
from lrf.result import SweepResult
from lrf.run import Training

log = logging.getLogger(__name__)

DONE_STEP = 0.05  # a job says how far it got every 5 % (each update costs the UI ~20 ms)
Report = Callable[[str], None]
Executor = ClusterRef | InProcess  # where jobs run: a Dask cluster's slots, or this process


@dataclass(frozen=True)
class Watch:
    """What a caller wants of a job besides its result.

    Attributes:
        report: where the job's progress lines go (log.info).
        done: called with the fraction of the job done, every :data:`DONE_STEP` (None).
        reused: called with the cached file when the result is read back instead of computed (None).
        recompute: never reuse a cached result: compute it again and replace it (False).
    """

    report: Report = log.info
    done: Callable[[float], None] | None = None
    reused: Callable[[Path], None] | None = None
    recompute: bool = False


def init_job(setup: Setup, cache: WorkCache, *, executor: Executor, slot: int = 0,
             watch: Watch = Watch()) -> Path:
    """Build, initialise (seeded) and materialise the model; its parameters are kept in
    ``cache`` (with the record of that work in their sidecar, :func:`lrf.cache.sidecar`).
    (Fetches data that is downloaded, both splits, before the other jobs need it.)"""
    work = init_work(setup)
    out = cache.file_for(work, engine_for(setup.engine).PARAMS_SUFFIX)

    def keep(value: dict) -> None:
        with _io.atomic_path(out) as tmp:  # the record first: parameters in place always have theirs
            tmp.write_bytes(value["files"]["params"])
            write_sidecar(out, tmp, work)

    return _run("init", {"setup": setup.to_dict()}, {}, out, keep, lambda path: check_params(path, work),
                executor=executor, slot=slot, watch=watch)


def sweep_job(setup: Setup, config: SweepConfig, init_params: str | os.PathLike, cache: WorkCache, *,
              executor: Executor, slot: int = 0, watch: Watch = Watch(), report_every: int = 10) -> SweepResult:
    """Run the range test from ``init_params``; the result is kept in ``cache`` (JSON)."""
    work = sweep_work(setup, config, init_params)
    out = cache.file_for(work, ".json")
    args = {"setup": setup.to_dict(), "config": config.to_dict(), "report_every": report_every}

    def read(path: Path) -> SweepResult:
        text, _ = read_checked_json(path, work)
        result = SweepResult.from_json(text)
        if result.config != config:
            raise Unusable(f"it holds a sweep of {result.config}, this run asks for {config}")
        return result

    def keep(value: dict) -> None:
        _io.write_text(out, stamp(value["text"], work))

    return _run("sweep", args, {"init_params": init_params}, out, keep, read, executor=executor, slot=slot, watch=watch)


def candidate_job(setup: Setup, init_params: str | os.PathLike, lr: float, cache: WorkCache, *,
                  executor: Executor, slot: int = 0, iterations: int = CandidatePlan.iterations, last_k: int = CandidatePlan.last_k,
                  start: int = 0, resume_from: str | os.PathLike | None = None, saves_state: bool = False,
                  watch: Watch = Watch()) -> tuple[CandidateResult, Path | None]:
    """Train one candidate rate; the result is kept in ``cache`` (JSON), and records where it
    ran (:attr:`lrf.candidates.CandidateResult.ran_on`). Returns it, and the training's
    saved state (None unless ``saves_state`` and it did not diverge).

    ``start`` and ``resume_from`` go on from a training's state (see
    :func:`lrf.training.train_at_rate`); the state is written before the result,
    which records its SHA-256 (a cached result whose state is gone or damaged is not used).
    """
    work = candidate_work(setup, init_params, lr, iterations, last_k, start, resume_from, saves_state)
    out = cache.file_for(work, ".json")
    state_out = cache.state_file_for(work) if saves_state else None
    args = {"setup": setup.to_dict(), "lr": lr, "iterations": iterations, "last_k": last_k, "start": start,
            "saves_state": saves_state}
    inputs = {"init_params": init_params, **({} if resume_from is None else {"resume_from": resume_from})}

    def read(path: Path) -> CandidateResult:
        text, data = read_checked_json(path, work)
        result = CandidateResult.from_json(text)
        if (result.lr, result.iterations, result.last_k) != (lr, iterations, last_k):
            raise Unusable(f"it holds lr={result.lr!r}, iterations={result.iterations}, last_k={result.last_k}; "
                           f"this run asks for lr={lr!r}, iterations={iterations}, last_k={last_k}")
        if state_out is not None and not result.diverged:
            recorded = (data.get("outputs") or {}).get("state")
            if not state_out.is_file():
                raise Unusable(f"the training state it saved, {state_out}, is missing")
            if recorded is None or file_sha256(state_out) != recorded:
                raise Unusable(f"the training state it saved, {state_out}, does not match its SHA-256 (damaged)")
        return result

    def keep(value: dict) -> None:
        outputs = None
        state = value["files"].get("state")
        if state_out is not None and state is not None:  # the state first: a result in place has its state
            with _io.atomic_path(state_out) as tmp:
                tmp.write_bytes(state)
            outputs = {"state": file_sha256(state_out)}
        result = dataclasses.replace(CandidateResult.from_json(value["text"]),
                                     ran_on=_ran_on(executor, value["where"]))
        _io.write_text(out, stamp(result.to_json(), work, outputs))

    result = _run("candidate", args, inputs, out, keep, read, executor=executor, slot=slot, watch=watch)
    return result, (state_out if state_out is not None and not result.diverged else None)


def _ran_on(executor: Executor, worker: dict) -> str:
    """Where a job ran, for people: the worker, and the device as the machine knows it."""
    if not executor.started:  # a user's cluster: which worker, and the address that finds its machine
        return f"{worker['worker']} at {worker['address']} ({executor.slots[0].label})"
    label = next((slot.label for slot in executor.slots if slot.worker == worker["worker"]), executor.slots[0].label)
    return f"{worker['worker']} ({label})"


def _run(job: str, args: dict, inputs: dict[str, str | os.PathLike], out: Path, keep: Callable[[dict], None],
         read: Callable[[Path], Any], *, executor: Executor, slot: int, watch: Watch):
    """The verified result in ``out`` (:func:`lrf.cache.read_or_compute`), or the job run on
    ``executor``'s slot ``slot`` and its value kept (``keep`` writes ``out``). Raise RuntimeError naming the
    job if it fails."""

    def compute() -> None:
        files = {}
        for key, path in inputs.items():
            try:
                files[key] = Path(path).read_bytes()
            except OSError as error:
                raise RuntimeError(f"lrf job {job!r} cannot read its {key} {str(path)!r}: {error.strerror}") from None
        heard = _Heard(watch)
        device = executor.slot(slot).device
        placed = {**args, "setup": Setup(**args["setup"]).on_device(device).to_dict()}
        try:
            value = run_job(executor, slot, work_on_worker, placed["setup"]["engine"], job, placed, inputs=files,
                            on_event=heard, name=f"lrf-{job}")
        except JobFailed as error:
            raise RuntimeError(f"lrf job {job!r} failed: {error}") from None
        except Exception as error:  # raised by the job on its worker: its message names what went wrong
            kind = "" if type(error).__name__ in ("DataError", "RecipeError") else f"{type(error).__name__}: "  # says it all
            raise RuntimeError(f"lrf job {job!r} failed on its worker: {kind}{error}") from error
        heard.rest(value["said"])
        keep(value)

    return read_or_compute(job, out, read, compute, recompute=watch.recompute, report=watch.report,
                           reused=watch.reused)


class _Heard:
    """A job's events, handed to a :class:`Watch`: lines numbered, so that the lines the
    job's value repeats (events can trail the value) are reported once."""

    def __init__(self, watch: Watch):
        self.watch, self.lines = watch, 0

    def __call__(self, event: dict) -> None:
        if "say" in event and event["n"] >= self.lines:
            self.lines = event["n"] + 1
            self.watch.report(event["say"])
        elif "done" in event and self.watch.done is not None:
            self.watch.done(float(event["done"]))

    def rest(self, said: list[str]) -> None:
        for n, line in enumerate(said):
            self({"say": line, "n": n})


# --- where the job was placed ---------------------------------------------------------------


class _Say:
    """A job's voice: lines and the fraction done, sent to its caller as events."""

    def __init__(self, topic: str):
        self.topic, self.lines, self.said_done = topic, [], 0.0

    def __call__(self, line: str) -> None:
        send_event(self.topic, {"say": line, "n": len(self.lines)})
        self.lines.append(line)

    def done(self, fraction: float) -> None:
        fraction = min(1.0, fraction)
        if fraction >= self.said_done + DONE_STEP or fraction == 1.0 > self.said_done:
            self.said_done = fraction
            send_event(self.topic, {"done": round(fraction, 4)})


def work_on_worker(engine: str, job: str, args: dict, inputs: dict[str, bytes], topic: str) -> dict:
    """Run ``engine``'s ``job`` here, where it was placed, with ``inputs`` (files' bytes) in a
    temporary folder; return ``{"text": result JSON or None, "files": {name: bytes}, "said":
    lines, "where": worker}``."""
    say, engine_module = _Say(topic), engine_for(engine)
    with tempfile.TemporaryDirectory(prefix=f"lrf-{job}-", dir=scratch_folder()) as folder:
        paths = {}
        for key, data in inputs.items():
            paths[key] = os.path.join(folder, key + engine_module.PARAMS_SUFFIX)
            Path(paths[key]).write_bytes(data)
        text, files = engine_module.JOBS[job](Setup(**args["setup"]), args, paths, folder, say)
        return {"text": text, "files": {key: Path(path).read_bytes() for key, path in files.items()},
                "said": say.lines, "where": where()}


def warm_up(engine: str = DEFAULT_ENGINE) -> None:
    """Import what ``engine``'s jobs need: once per worker, before its first job."""
    engine_for(engine).warm_up()


# --- a run's stages as jobs ----------------------------------------------------------


class JobStages:
    """The stages of a run (:class:`lrf.run.Stages`) as placed, cached jobs, without Prefect:
    what ``lrf find --check`` and the benchmarks run.

    Jobs of one stage go side by side in lanes, one lane per slot of ``executor`` (a
    :class:`lrf.cluster.ClusterRef`, or :class:`lrf.cluster.InProcess`: one lane, in the
    caller's thread). ``reused`` collects the names of the jobs read back from the cache.

    Args:
        setup, config, plan: what the run is (a prepared :class:`lrf.config.Setup`).
        cache: the work cache.
        executor: where the jobs run.
        init_params: start from this file (it must fit the fresh network) instead of the
            fresh initialisation (None).
        recompute: compute everything again instead of reusing the cache (False).
        report: where the jobs' progress lines go (log.info).
    """

    def __init__(self, setup: Setup, config: SweepConfig, plan: CandidatePlan, cache: WorkCache, executor, *,
                 init_params: str | os.PathLike | None = None, recompute: bool = False, report: Report = log.info):
        self.setup, self.config, self.plan, self.cache, self.executor = setup, config, plan, cache, executor
        self.init_params, self.recompute, self.report = init_params, recompute, report
        self.reused: list[str] = []

    def initialise(self) -> str:
        fresh = init_job(self.setup, self.cache, executor=self.executor, watch=self._watch("initialise-model"))
        if self.init_params is None:
            return str(fresh)
        engine_for(self.setup.engine).check_fits(self.init_params, fresh,
                                                 self.setup.subject)
        return str(self.cache.copy_in(self.init_params))

    def sweep(self, init_params: str, count: int) -> list[SweepResult]:
        return self._in_lanes([
            functools.partial(sweep_job, self.setup.with_batch_order(r), self.config, init_params, self.cache,
                              watch=self._watch(f"lr-sweep {r}"))
            for r in range(count)])

    def select(self, results: list[SweepResult]) -> Selection:
        return select(results, self.plan)

    def train(self, init_params: str, trainings: list[Training]) -> list[tuple[CandidateResult, str | None]]:
        done = self._in_lanes([
            functools.partial(candidate_job, self.setup, init_params, t.lr, self.cache, iterations=t.end - t.start,
                              last_k=t.last_k, start=t.start, resume_from=t.resume_from, saves_state=t.saves_state,
                              watch=self._watch(t.name))
            for t in trainings])
        return [(result, None if state is None else str(state)) for result, state in done]

    def _watch(self, name: str) -> Watch:
        return Watch(report=self.report, reused=lambda path: self.reused.append(name), recompute=self.recompute)

    def _in_lanes(self, calls: list[Callable[..., Any]]) -> list:
        """Each ``call(executor=..., slot=...)``'s value, in order; lane j's calls one after another on slot j."""
        groups = lanes(len(calls), len(self.executor.slots))
        values: list = [None] * len(calls)

        def lane(slot: int, indices: list[int]) -> None:
            for i in indices:
                values[i] = calls[i](executor=self.executor, slot=slot)

        if len(groups) <= 1:  # one lane: in this thread (a job in this process needs the main thread)
            for slot, indices in enumerate(groups):
                lane(slot, indices)
            return values
        pool = ThreadPoolExecutor(len(groups), thread_name_prefix="lrf-lane")
        try:
            for future in [pool.submit(lane, slot, indices) for slot, indices in enumerate(groups)]:
                future.result()
        except BaseException:  # Ctrl-C, or a job failed: queue nothing more; running jobs end with their cluster
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return values
