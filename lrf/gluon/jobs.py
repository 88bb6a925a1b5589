"""MXNet work in a fresh child process: initialise a model, sweep, train a candidate.

Why a process per job: MXNet's Python front end is not thread-safe (parallel
candidates cannot share one interpreter), its DataLoader forks worker processes
(unsafe from a process full of an orchestrator's threads), and a job that is
killed or crashes then takes nothing else down. Each job reads small JSON
arguments, writes its result file atomically, and prints progress lines that
the parent forwards (to a Prefect run log, say).

``out`` names a job's result. If it exists, it *is* the result (results are
written atomically, so an existing file is complete) and the job is not run
again: a caller that derives ``out`` from everything that determines the work
(see :func:`lrf.runs.work_key`) gets resumable, never-repeated work.
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
from typing import Callable

from lrf import _io
from lrf.candidates import CandidateResult
from lrf.config import CandidatePlan, Setup, SweepConfig
from lrf.result import SweepResult

log = logging.getLogger(__name__)

PROGRESS = "lrf-progress: "  # lines with this prefix are forwarded to the parent's report
Report = Callable[[str], None]


def init_job(setup: Setup, out: str | os.PathLike, *, report: Report = log.info) -> Path:
    """Build, Xavier-initialise (seeded) and materialise the model; save its parameters to ``out``.
    (Fetches data that is downloaded, both splits, once, before the other jobs need it.)"""
    _run("init", {"setup": setup.to_dict()}, out, report=report)
    return Path(out)


def sweep_job(setup: Setup, config: SweepConfig, init_params: str | os.PathLike, out: str | os.PathLike, *,
              report: Report = log.info, report_every: int = 10) -> SweepResult:
    """Run the range test from ``init_params``; the result is also saved to ``out`` (JSON)."""
    args = {"setup": setup.to_dict(), "config": config.to_dict(), "init_params": str(init_params),
            "report_every": report_every}
    _run("sweep", args, out, report=report)
    return SweepResult.load(out)


def candidate_job(setup: Setup, init_params: str | os.PathLike, lr: float, out: str | os.PathLike, *,
                  iterations: int = CandidatePlan.iterations, last_k: int = CandidatePlan.last_k,
                  threads: int | None = None, start: int = 0, resume_from: str | os.PathLike | None = None,
                  state_out: str | os.PathLike | None = None, report: Report = log.info) -> CandidateResult:
    """Train one candidate rate; the result is also saved to ``out`` (JSON).

    ``threads`` caps MXNet's OpenMP threads in the child (see
    :func:`lrf.execution.threads_per_job`); None keeps MXNet's default. ``start``,
    ``resume_from`` and ``state_out`` go on from, and save, a training's state (see
    :func:`lrf.gluon.experiment.train_at_rate`); the state is written before ``out``.
    """
    args = {"setup": setup.to_dict(), "init_params": str(init_params), "lr": lr,
            "iterations": iterations, "last_k": last_k, "start": start,
            "resume_from": None if resume_from is None else str(resume_from),
            "state_out": None if state_out is None else str(state_out)}
    _run("candidate", args, out, threads=threads, report=report)
    return CandidateResult.from_json(Path(out).read_text(encoding="utf-8"))


def _run(job: str, args: dict, out: str | os.PathLike, *, threads: int | None = None, report: Report) -> None:
    """Run ``python -m lrf.gluon.jobs JOB ARGS OUT`` unless ``out`` exists; raise RuntimeError
    with its last lines if it fails."""
    if Path(out).is_file():
        report(f"{job}: reusing {out}")
        return
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
                report(line[len(PROGRESS):])
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
        raise RuntimeError(f"lrf job {job!r} failed in its process ({how}):\n" + "\n".join(tail[-15:]))


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


def _child_init(args: dict, out: str) -> None:
    from lrf.gluon.data import load_dataset
    from lrf.gluon.experiment import build_network
    from lrf.gluon.models import save_parameters

    setup = Setup(**args["setup"])
    net, _, info, _ = build_network(setup)
    if info.num_holdout:
        load_dataset(setup.source, "holdout")  # a download (cifar10) happens here, once
    save_parameters(net, out)
    _say(f"initialised {setup.model} for {info.num_classes} classes of {info.image_shape} (seed {setup.seed})")


def _child_sweep(args: dict, out: str) -> None:
    from lrf.gluon.experiment import run_sweep

    every = args["report_every"]

    def progress(p) -> None:
        if p.iteration % every == 0:
            _say(f"iteration {p.iteration} lr={p.lr:.4g} loss={p.loss:.4f} smoothed_loss={p.smoothed_loss:.4f}")

    result = run_sweep(Setup(**args["setup"]), SweepConfig.from_dict(args["config"]),
                       init_params=args["init_params"], progress=progress)
    result.save(out)
    _say(f"sweep: {len(result)} iterations, stopped: {result.stop_reason.value} at lr={result.lrs[-1]:.4g}")


def _child_candidate(args: dict, out: str) -> None:
    from lrf.gluon.experiment import train_at_rate

    result = train_at_rate(Setup(**args["setup"]), args["init_params"], args["lr"], args["iterations"],
                           args["last_k"], report=_say, start=args["start"], resume_from=args["resume_from"],
                           state_out=args["state_out"])
    _io.write_text(out, result.to_json())


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
