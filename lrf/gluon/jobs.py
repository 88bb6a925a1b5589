"""MXNet work on a Dask worker: initialise a model, sweep, train a candidate.

Why workers: MXNet's import costs seconds (scikit-learn's included) and a GPU's
context more; a worker pays them once and serves many jobs, on one device
(:mod:`lrf.cluster` starts the workers, or connects to a user's). A worker runs one
job at a time (MXNet's Python front end is not thread-safe), and a job whose worker
dies fails alone: the scheduler runs it again on another worker, then gives up.
Each job gets what it needs by value (the setup, parameter files as bytes) and
returns its result by value; the caller, on the flow's machine, writes the cache.
What a job says while it runs (progress lines, the fraction done) comes back as
Dask events, handed to the caller's :class:`Watch` in the caller's thread.

``out`` names a job's result. If it exists and verifies, it *is* the result and
the job is not run again: a caller that derives ``out`` from everything that
determines the work (see :func:`lrf.runs.work_key` and :func:`work_fields`) gets
resumable, never-repeated work. Verifies means (:mod:`lrf.cache`): the file is
whole and unedited (its SHA-256), and the work it records (job, setup, the data's
fingerprint, the initial parameters' SHA-256, rate, iterations, ...) is the work
asked for now. A file that fails is set aside as ``NAME.corrupt-TIMESTAMP`` with a
warning naming it, and the job runs again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lrf import _io, cache
from lrf.candidates import CandidateResult
from lrf.cluster import ClusterRef, JobFailed, run_job, send_event, where
from lrf.config import CandidatePlan, Setup, SweepConfig
from lrf.gluon.preflight import data_fingerprint
from lrf.result import SweepResult

log = logging.getLogger(__name__)

DONE_STEP = 0.05  # a job says how far it got every 5 % (each update costs the UI ~20 ms)
Report = Callable[[str], None]


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


@dataclass(frozen=True)
class Place:
    """Where a job runs: a cluster and the slot of it (:meth:`lrf.cluster.ClusterRef.slot`)."""

    cluster: ClusterRef
    slot: int = 0


def work_fields(setup: Setup) -> dict:
    """What of ``setup`` determines a job's numbers, the data's content included (its
    :func:`lrf.gluon.preflight.data_fingerprint`): for cache keys, and recorded in each
    result. Computed without MXNet, in the caller's process."""
    return {**setup.cache_fields(), "data_fingerprint": data_fingerprint(setup.source)}


def init_job(setup: Setup, out: str | os.PathLike, *, place: Place, watch: Watch = Watch()) -> Path:
    """Build, Xavier-initialise (seeded) and materialise the model; save its parameters to ``out``
    (and the record of that work to ``out``'s sidecar, :func:`lrf.cache.sidecar`).
    (Fetches data that is downloaded, both splits, before the other jobs need it.)"""
    out = Path(out)
    work = {"job": "init", "setup": work_fields(setup)}

    def keep(value: dict) -> None:
        with _io.atomic_path(out) as tmp:  # the record first: parameters in place always have theirs
            tmp.write_bytes(value["files"]["params"])
            cache.write_sidecar(out, tmp, work)

    return _run("init", {"setup": setup.to_dict()}, {}, out, keep, lambda path: cache.check_params(path, work),
                place=place, watch=watch)


def sweep_job(setup: Setup, config: SweepConfig, init_params: str | os.PathLike, out: str | os.PathLike, *,
              place: Place, watch: Watch = Watch(), report_every: int = 10) -> SweepResult:
    """Run the range test from ``init_params``; the result is also saved to ``out`` (JSON)."""
    work = {"job": "sweep", "setup": work_fields(setup), "config": config.to_dict(),
            "init_params": _sha256_or_none(init_params)}
    args = {"setup": setup.to_dict(), "config": config.to_dict(), "report_every": report_every}

    def read(path: Path) -> SweepResult:
        text, _ = cache.read_checked_json(path, work)
        result = SweepResult.from_json(text)
        if result.config != config:
            raise cache.Unusable(f"it holds a sweep of {result.config}, this run asks for {config}")
        return result

    def keep(value: dict) -> None:
        _io.write_text(out, cache.stamp(value["text"], work))

    return _run("sweep", args, {"init_params": init_params}, Path(out), keep, read, place=place, watch=watch)


def candidate_job(setup: Setup, init_params: str | os.PathLike, lr: float, out: str | os.PathLike, *,
                  place: Place, iterations: int = CandidatePlan.iterations, last_k: int = CandidatePlan.last_k,
                  start: int = 0, resume_from: str | os.PathLike | None = None,
                  state_out: str | os.PathLike | None = None, watch: Watch = Watch()) -> CandidateResult:
    """Train one candidate rate; the result is also saved to ``out`` (JSON), and records where
    it ran (:attr:`lrf.candidates.CandidateResult.placement`).

    ``start``, ``resume_from`` and ``state_out`` go on from, and save, a training's state (see
    :func:`lrf.gluon.experiment.train_at_rate`); the state is written before ``out``, and
    ``out`` records its SHA-256 (a cached result whose state is gone or damaged is not used).
    """
    work = {"job": "candidate", "setup": work_fields(setup), "init_params": _sha256_or_none(init_params),
            "lr": lr, "iterations": iterations, "last_k": last_k, "start": start,
            "resume_from": None if resume_from is None else _sha256_or_none(resume_from),
            "saves_state": state_out is not None}
    args = {"setup": setup.to_dict(), "lr": lr, "iterations": iterations, "last_k": last_k, "start": start,
            "saves_state": state_out is not None}
    inputs = {"init_params": init_params, **({} if resume_from is None else {"resume_from": resume_from})}

    def read(path: Path) -> CandidateResult:
        text, data = cache.read_checked_json(path, work)
        result = CandidateResult.from_json(text)
        if (result.lr, result.iterations, result.last_k) != (lr, iterations, last_k):
            raise cache.Unusable(f"it holds lr={result.lr!r}, iterations={result.iterations}, last_k={result.last_k}; "
                                 f"this run asks for lr={lr!r}, iterations={iterations}, last_k={last_k}")
        if state_out is not None and not result.diverged:
            recorded = (data.get("outputs") or {}).get("state")
            if not Path(state_out).is_file():
                raise cache.Unusable(f"the training state it saved, {state_out}, is missing")
            if recorded is None or cache.file_sha256(state_out) != recorded:
                raise cache.Unusable(f"the training state it saved, {state_out}, does not match its SHA-256 (damaged)")
        return result

    def keep(value: dict) -> None:
        outputs = None
        state = value["files"].get("state")
        if state_out is not None and state is not None:  # the state first: a result in place has its state
            with _io.atomic_path(state_out) as tmp:
                tmp.write_bytes(state)
            outputs = {"state": cache.file_sha256(state_out)}
        result = dataclasses.replace(CandidateResult.from_json(value["text"]),
                                     placement=_placement(place.cluster, value["where"]))
        _io.write_text(out, cache.stamp(result.to_json(), work, outputs))

    return _run("candidate", args, inputs, Path(out), keep, read, place=place, watch=watch)


def _sha256_or_none(path: str | os.PathLike):
    """A file's SHA-256 for a work record; None if it is missing (the job then fails, naming it)."""
    try:
        return cache.file_sha256(path)
    except FileNotFoundError:
        return None


def _placement(cluster: ClusterRef, worker: dict) -> str:
    """Where a job ran, for people: the worker, and the device as the machine knows it."""
    if not cluster.started:  # a user's cluster: which worker, and the address that finds its machine
        return f"{worker['worker']} at {worker['address']} ({cluster.slots[0].label})"
    label = next((slot.label for slot in cluster.slots if slot.worker == worker["worker"]), cluster.slots[0].label)
    return f"{worker['worker']} ({label})"


def _run(job: str, args: dict, inputs: dict[str, str | os.PathLike], out: Path, keep: Callable[[dict], None],
         read: Callable[[Path], Any], *, place: Place, watch: Watch):
    """``read(out)`` if ``out`` exists and verifies (and ``watch.recompute`` is off); else (a
    failing ``out`` set aside first) run the job on ``place``, ``keep`` its value (write
    ``out``) and return ``read(out)``. Raise RuntimeError naming the job if it fails."""
    report = watch.report
    if out.is_file() and not watch.recompute:
        seen = out.stat()
        try:
            result = read(out)
        except Exception as error:  # fail closed: whatever does not read back is not used
            aside = cache.set_aside(out, seen)
            message = (f"{job}: cached {out} cannot be used: {error}; "
                       + (f"set aside as {aside.name}; " if aside else "") + "computing it again")
            log.warning(message)
            report(f"warning: {message}")
        else:
            report(f"{job}: reusing {out}")
            if watch.reused is not None:
                watch.reused(out)
            return result
    files = {}
    for key, path in inputs.items():
        try:
            files[key] = Path(path).read_bytes()
        except OSError as error:
            raise RuntimeError(f"lrf job {job!r} cannot read its {key} {str(path)!r}: {error.strerror}") from None
    heard = _Heard(watch)
    setup = Setup(**args["setup"])
    slot = place.cluster.slot(place.slot)
    args = {**args, "setup": setup.on_device(slot.device).to_dict()}
    try:
        value = run_job(place.cluster, place.slot, work_on_worker, job, args, inputs=files, on_event=heard,
                        name=f"lrf-{job}")
    except JobFailed as error:
        raise RuntimeError(f"lrf job {job!r} failed: {error}") from None
    except Exception as error:  # raised by the job on its worker: its message names what went wrong
        kind = "" if type(error).__name__ == "DataError" else f"{type(error).__name__}: "  # bad data says it all
        raise RuntimeError(f"lrf job {job!r} failed on its worker: {kind}{error}") from error
    heard.rest(value["said"])
    keep(value)
    try:
        return read(out)
    except Exception as error:
        raise RuntimeError(f"lrf job {job!r} wrote {out}, which does not verify: {error}") from None


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


# --- the worker's side ---------------------------------------------------------------


def warm_up() -> None:
    """Import what every job needs (MXNet, its model zoo): once per worker, before its first job."""
    import lrf.gluon.experiment  # noqa: F401  (mxnet, and scikit-learn through mxnet.model)


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


def work_on_worker(job: str, args: dict, inputs: dict[str, bytes], topic: str) -> dict:
    """Run ``job`` here, on a Dask worker, with ``inputs`` (files' bytes) in a temporary folder;
    return ``{"text": result JSON or None, "files": {name: bytes}, "said": lines, "where": worker}``."""
    say = _Say(topic)
    with tempfile.TemporaryDirectory(prefix=f"lrf-{job}-") as folder:
        paths = {}
        for key, data in inputs.items():
            paths[key] = os.path.join(folder, key + ".params")
            Path(paths[key]).write_bytes(data)
        text, files = _WORK[job](Setup(**args["setup"]), args, paths, folder, say)
        return {"text": text, "files": {key: Path(path).read_bytes() for key, path in files.items()},
                "said": say.lines, "where": where()}


def _init_on_worker(setup: Setup, args: dict, paths: dict, folder: str, say: _Say):
    from lrf.gluon.data import load_dataset
    from lrf.gluon.experiment import build_network
    from lrf.gluon.models import save_parameters

    net, _, info, _ = build_network(setup)
    if info.num_holdout:
        load_dataset(setup.source, "holdout")  # a download (cifar10) happens here
    params = os.path.join(folder, "init.params")
    save_parameters(net, params)
    say(f"initialised {setup.model} for {info.num_classes} classes of {info.image_shape} (seed {setup.seed})")
    return None, {"params": params}


def _sweep_on_worker(setup: Setup, args: dict, paths: dict, folder: str, say: _Say):
    from lrf.gluon.experiment import run_sweep

    every = args["report_every"]
    config = SweepConfig.from_dict(args["config"])
    total = max(1, config.expected_iterations())  # an upper bound: divergence usually ends it sooner

    def progress(p) -> None:
        say.done((p.iteration + 1) / total)
        if p.iteration % every == 0:
            say(f"iteration {p.iteration} lr={p.lr:.4g} loss={p.loss:.4f} smoothed_loss={p.smoothed_loss:.4f}")

    result = run_sweep(setup, config, init_params=paths["init_params"], progress=progress)
    say.done(1.0)
    say(f"sweep: {len(result)} iterations, stopped: {result.stop_reason.value} at lr={result.lrs[-1]:.4g}")
    return result.to_json(), {}


def _candidate_on_worker(setup: Setup, args: dict, paths: dict, folder: str, say: _Say):
    from lrf.gluon.experiment import train_at_rate

    state = os.path.join(folder, "state.params") if args["saves_state"] else None
    total = max(1, args["iterations"])
    result = train_at_rate(setup, paths["init_params"], args["lr"], args["iterations"], args["last_k"], report=say,
                           start=args["start"], resume_from=paths.get("resume_from"), state_out=state,
                           progress=lambda count: say.done(count / total))
    files = {"state": state} if state is not None and not result.diverged else {}
    return result.to_json(), files


_WORK = {"init": _init_on_worker, "sweep": _sweep_on_worker, "candidate": _candidate_on_worker}
