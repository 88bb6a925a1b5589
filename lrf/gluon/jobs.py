"""MXNet work in a fresh child process: initialise a model, sweep, train a candidate.

Why a process per job: MXNet's Python front end is not thread-safe (parallel
candidates cannot share one interpreter), its DataLoader forks worker processes
(unsafe from a process full of an orchestrator's threads), and a job that is
killed or crashes then takes nothing else down. Each job reads small JSON
arguments, writes its result file atomically, and prints progress lines that
the parent forwards (to a Prefect run log, say).

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

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

from lrf import _io, cache
from lrf.candidates import CandidateResult
from lrf.config import CandidatePlan, Setup, SweepConfig
from lrf.gluon.preflight import data_fingerprint
from lrf.result import SweepResult

log = logging.getLogger(__name__)

PROGRESS = "lrf-progress: "  # lines with this prefix are forwarded to the parent's report
DONE = "lrf-done: "  # ... and these, the fraction of the job done, to its ``done`` callback
DONE_STEP = 0.05  # the child says how far it got every 5 % (each update costs the UI ~20 ms)
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


def work_fields(setup: Setup) -> dict:
    """What of ``setup`` determines a job's numbers, the data's content included (its
    :func:`lrf.gluon.preflight.data_fingerprint`): for cache keys, and recorded in each
    result. Computed without MXNet, in the caller's process."""
    return {**setup.cache_fields(), "data_fingerprint": data_fingerprint(setup.source)}


def init_job(setup: Setup, out: str | os.PathLike, *, watch: Watch = Watch()) -> Path:
    """Build, Xavier-initialise (seeded) and materialise the model; save its parameters to ``out``
    (and the record of that work to ``out``'s sidecar, :func:`lrf.cache.sidecar`).
    (Fetches data that is downloaded, both splits, once, before the other jobs need it.)"""
    work = {"job": "init", "setup": work_fields(setup)}
    return _run("init", {"setup": setup.to_dict(), "work": work}, out, lambda path: cache.check_params(path, work),
                watch=watch)


def sweep_job(setup: Setup, config: SweepConfig, init_params: str | os.PathLike, out: str | os.PathLike, *,
              watch: Watch = Watch(), report_every: int = 10) -> SweepResult:
    """Run the range test from ``init_params``; the result is also saved to ``out`` (JSON)."""
    work = {"job": "sweep", "setup": work_fields(setup), "config": config.to_dict(),
            "init_params": _sha256_or_none(init_params)}
    args = {"setup": setup.to_dict(), "config": config.to_dict(), "init_params": str(init_params),
            "report_every": report_every, "work": work}

    def read(path: Path) -> SweepResult:
        text, _ = cache.read_checked_json(path, work)
        result = SweepResult.from_json(text)
        if result.config != config:
            raise cache.Unusable(f"it holds a sweep of {result.config}, this run asks for {config}")
        return result

    return _run("sweep", args, out, read, watch=watch)


def candidate_job(setup: Setup, init_params: str | os.PathLike, lr: float, out: str | os.PathLike, *,
                  iterations: int = CandidatePlan.iterations, last_k: int = CandidatePlan.last_k,
                  threads: int | None = None, start: int = 0, resume_from: str | os.PathLike | None = None,
                  state_out: str | os.PathLike | None = None, watch: Watch = Watch()) -> CandidateResult:
    """Train one candidate rate; the result is also saved to ``out`` (JSON).

    ``threads`` caps MXNet's OpenMP threads in the child (see
    :func:`lrf.execution.threads_per_job`); None keeps MXNet's default. ``start``,
    ``resume_from`` and ``state_out`` go on from, and save, a training's state (see
    :func:`lrf.gluon.experiment.train_at_rate`); the state is written before ``out``, and
    ``out`` records its SHA-256 (a cached result whose state is gone or damaged is not used).
    """
    work = {"job": "candidate", "setup": work_fields(setup), "init_params": _sha256_or_none(init_params),
            "lr": lr, "iterations": iterations, "last_k": last_k, "start": start,
            "resume_from": None if resume_from is None else _sha256_or_none(resume_from),
            "saves_state": state_out is not None}
    args = {"setup": setup.to_dict(), "init_params": str(init_params), "lr": lr,
            "iterations": iterations, "last_k": last_k, "start": start,
            "resume_from": None if resume_from is None else str(resume_from),
            "state_out": None if state_out is None else str(state_out), "work": work}

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

    return _run("candidate", args, out, read, threads=threads, watch=watch)


def _sha256_or_none(path: str | os.PathLike):
    """A file's SHA-256 for a work record; None if it is missing (the job then fails, naming it)."""
    try:
        return cache.file_sha256(path)
    except FileNotFoundError:
        return None


def _run(job: str, args: dict, out: str | os.PathLike, read: Callable[[Path], Any], *, threads: int | None = None,
         watch: Watch):
    """``read(out)`` if ``out`` exists and verifies (and ``watch.recompute`` is off); else (a
    failing ``out`` set aside first) run ``python -m lrf.gluon.jobs JOB ARGS OUT`` and return
    ``read(out)``. Raise RuntimeError with the child's last lines if it fails."""
    out = Path(out)
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
    _run_child(job, args, out, threads=threads, watch=watch)
    try:
        return read(out)
    except Exception as error:
        raise RuntimeError(f"lrf job {job!r} wrote {out}, which does not verify: {error}") from None


def _run_child(job: str, args: dict, out: Path, *, threads: int | None, watch: Watch) -> None:
    """Run ``python -m lrf.gluon.jobs JOB ARGS OUT``; raise RuntimeError with its last lines
    if it fails."""
    env = dict(os.environ)
    if threads is not None:
        # OpenMP threads per operator only: raising MXNET_CPU_WORKER_NTHREADS too (more engine
        # workers, each with that many OpenMP threads) made ResNet training ~3x slower (benchmarks)
        env["OMP_NUM_THREADS"] = str(int(threads))
    # mxnet 1.9 on numpy 1.23 floods stderr with DeprecationWarnings that would bury a real error
    command = [sys.executable, "-W", "ignore::DeprecationWarning", "-m", "lrf.gluon.jobs", job, json.dumps(args), str(out)]
    tail: list[str] = []
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                             preexec_fn=_die_with_parent)
    try:
        for line in child.stdout:
            line = line.rstrip("\n")
            if line.startswith(PROGRESS):
                watch.report(line[len(PROGRESS):])
            elif line.startswith(DONE):
                if watch.done is not None:
                    watch.done(float(line[len(DONE):]))
            elif line.strip():
                tail = (tail + [line])[-30:]
        status = child.wait()
    finally:
        if child.poll() is None:  # we are being interrupted: do not leave the child training
            child.kill()
            child.wait()
        child.stdout.close()
    if status != 0:
        how = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
        named = [line[len(_DATA_ERROR):] for line in tail if line.startswith(_DATA_ERROR)]
        if named:  # bad data, named by the engine: its one line says it all
            raise RuntimeError(f"lrf job {job!r} failed in its process ({how}): {named[-1]}")
        raise RuntimeError(f"lrf job {job!r} failed in its process ({how}):\n" + "\n".join(tail[-15:]))


_DATA_ERROR = "lrf.gluon.datacheck.DataError: "  # how the child's traceback ends on bad data


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the parent dies (Linux), so a killed
    flow or worker does not leave orphans training on."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# --- the child's side ----------------------------------------------------------------


def _say(line: str) -> None:
    print(PROGRESS + line, flush=True)


class _Done:
    """Tells the parent the fraction done, every :data:`DONE_STEP` of ``total``."""

    def __init__(self, total: int):
        self.total, self.said = max(1, total), 0.0

    def __call__(self, count: int) -> None:
        fraction = min(1.0, count / self.total)
        if fraction >= self.said + DONE_STEP or fraction == 1.0 > self.said:
            self.said = fraction
            print(f"{DONE}{fraction:.4f}", flush=True)


def _child_init(args: dict, out: str) -> None:
    from lrf.gluon.data import load_dataset
    from lrf.gluon.experiment import build_network
    from lrf.gluon.models import save_parameters

    setup = Setup(**args["setup"])
    net, _, info, _ = build_network(setup)
    if info.num_holdout:
        load_dataset(setup.source, "holdout")  # a download (cifar10) happens here, once
    with _io.atomic_path(out) as tmp:  # the record first: parameters in place always have theirs
        save_parameters(net, tmp)
        cache.write_sidecar(out, tmp, args["work"])
    _say(f"initialised {setup.model} for {info.num_classes} classes of {info.image_shape} (seed {setup.seed})")


def _child_sweep(args: dict, out: str) -> None:
    from lrf.gluon.experiment import run_sweep

    every = args["report_every"]
    config = SweepConfig.from_dict(args["config"])
    done = _Done(config.expected_iterations())  # an upper bound: divergence usually ends it sooner

    def progress(p) -> None:
        done(p.iteration + 1)
        if p.iteration % every == 0:
            _say(f"iteration {p.iteration} lr={p.lr:.4g} loss={p.loss:.4f} smoothed_loss={p.smoothed_loss:.4f}")

    result = run_sweep(Setup(**args["setup"]), config, init_params=args["init_params"], progress=progress)
    done(done.total)
    _io.write_text(out, cache.stamp(result.to_json(), args["work"]))
    _say(f"sweep: {len(result)} iterations, stopped: {result.stop_reason.value} at lr={result.lrs[-1]:.4g}")


def _child_candidate(args: dict, out: str) -> None:
    from lrf.gluon.experiment import train_at_rate

    result = train_at_rate(Setup(**args["setup"]), args["init_params"], args["lr"], args["iterations"],
                           args["last_k"], report=_say, start=args["start"], resume_from=args["resume_from"],
                           state_out=args["state_out"], progress=_Done(args["iterations"]))
    state = args["state_out"]
    outputs = {"state": cache.file_sha256(state)} if state is not None and not result.diverged else None
    _io.write_text(out, cache.stamp(result.to_json(), args["work"], outputs))


JOBS = {"init": _child_init, "sweep": _child_sweep, "candidate": _child_candidate}


def _main(argv: list[str]) -> int:
    from lrf._signals import exit_on_sigterm

    exit_on_sigterm()  # a terminated job removes its temporary file and stops its loader workers
    os.register_at_fork(after_in_child=_die_with_parent)  # loader workers never outlive their job
    job, args, out = argv
    logging.basicConfig(level=logging.WARNING)
    JOBS[job](json.loads(args), out)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
