"""Where a run's jobs execute: a Dask cluster, started by the run or given by its address.

A job (initialise a model, sweep, train a candidate) runs on a Dask worker: a
long-lived process that imports the engine once and serves many jobs, on one
device. Prefect keeps orchestrating (tasks, retries, artifacts) in the flow's
process; only the engine's work goes to the workers, so no Prefect task ever
runs on a worker (a task there would start a Prefect server of its own).

- No ``address``: :func:`job_cluster` starts a cluster on this machine and stops
  it at the end, however the run ends: one worker per job that may run at once.
  On CPU the cores are shared (``OMP_NUM_THREADS`` per worker, as
  :func:`lrf.execution.threads_per_job` says); with GPUs, one worker per GPU that
  sees only its own (``CUDA_VISIBLE_DEVICES``): what dask-cuda's
  ``LocalCUDACluster`` does, done here with ``distributed.SpecCluster`` so that
  CPU machines need neither CUDA nor dask-cuda.
- ``address`` (``tcp://HOST:8786``): a scheduler the user runs, with workers on
  other machines; the run only connects, and leaves it running.

Work is sent by value (arguments, parameter files as bytes, with the task: the
scheduler can then run it again elsewhere when a worker dies) and comes back by
value: no filesystem is shared with the workers. While a job runs, what it says
(progress lines, the fraction done) comes back as Dask events on a topic of its
own. Framework-free: ``distributed`` is imported when a cluster is used.

>>> [slot.label for slot in local_slots(parse_devices("gpu:0,gpu:2"), at_once=None)]
['gpu:0', 'gpu:2']
>>> [(slot.worker, slot.device) for slot in local_slots(parse_devices("gpu:2"), at_once=None)]
[('lrf-gpu2', 'gpu:0')]
>>> len(local_slots(parse_devices("cpu"), at_once=2)), len(local_slots(parse_devices("cpu"), None, cores=16))
(2, 3)
"""

from __future__ import annotations

import contextlib
import logging
import warnings
import os
import queue
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from lrf.config import DeviceSpec, parse_devices
from lrf.execution import cpu_at_once, threads_per_job

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 20.0  # seconds to reach a given scheduler and see a worker there
POLL = 0.25  # seconds between looks at a running job (its events are drained meanwhile)
ALLOWED_FAILURES = 1  # a job whose worker died is run once more (on another worker where there is one)


@dataclass(frozen=True)
class Slot:
    """One place a job can run: a worker, and the device a job uses there.

    Attributes:
        worker: the Dask worker's name (our own clusters) or address (a given cluster).
        device: the device a job names on that worker ("cpu"; "gpu:0" on a worker that
            sees one GPU only).
        label: the device, as a person knows it ("cpu", "gpu:2").
    """

    worker: str
    device: str
    label: str


@dataclass(frozen=True)
class ClusterRef:
    """A running cluster, as tasks see it (small, passed by value): where its scheduler is,
    and its slots in placement order (job i of a batch goes to slot i mod len(slots))."""

    address: str
    slots: tuple[Slot, ...]
    started: bool

    def slot(self, index: int) -> Slot:
        return self.slots[index % len(self.slots)]


@dataclass(frozen=True)
class InProcess:
    """Jobs run in this process, one after another, on ``device``: no cluster to start (the
    CLI's executor; the same interface as :class:`ClusterRef` for :mod:`lrf.jobs`)."""

    device: str = "cpu"
    address = "this process"
    started = True

    @property
    def slots(self) -> tuple[Slot, ...]:
        return (Slot(IN_PROCESS, self.device, self.device),)

    def slot(self, index: int) -> Slot:
        return self.slots[0]


IN_PROCESS = "this process"  # the worker name of a job run by InProcess


def local_slots(devices: Sequence[DeviceSpec], at_once: int | None, cores: int | None = None) -> list[Slot]:
    """The workers a cluster of our own gets: ``at_once`` (default
    :func:`lrf.execution.cpu_at_once` of ``cores``) on CPU, which share the cores; one per
    GPU otherwise (the first ``at_once`` GPUs)."""
    if devices[0].kind == "cpu":
        return [Slot(f"lrf-cpu{i}", "cpu", "cpu") for i in range(at_once or cpu_at_once(cores))]
    gpus = devices[:at_once] if at_once else devices
    return [Slot(f"lrf-gpu{d.index}", "gpu:0", str(d)) for d in gpus]


def _worker_env(slot: Slot, workers: int, cores: int | None) -> dict[str, str]:
    if slot.label.startswith("gpu"):
        # GPU N is the N-th this process sees: under CUDA_VISIBLE_DEVICES=3,5 (a deployment's,
        # say), gpu:1 is the machine's GPU 5
        index = int(slot.label.partition(":")[2])
        visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        return {"CUDA_VISIBLE_DEVICES": visible[index] if index < len(visible) else str(index)}
    threads = threads_per_job(workers, cores)
    # OpenMP threads per operator only: raising MXNET_CPU_WORKER_NTHREADS too (more engine
    # workers, each with that many OpenMP threads) made ResNet training ~3x slower (benchmarks)
    return {} if threads is None else {"OMP_NUM_THREADS": str(threads)}


@contextlib.contextmanager
def job_cluster(device: str, at_once: int | None = None, address: str | None = None, *,
                warm_up: Callable[[], Any] | None = None) -> Iterator[ClusterRef]:
    """A cluster for one run's jobs: connect to ``address``, or start one here (stopped at the
    end, an exception, KeyboardInterrupt or SystemExit included: no worker outlives it).

    ``device`` is a run's device text, already checked (see
    :func:`lrf.engine.prepare_setup`: ``gpu:all`` is resolved there). With
    ``address``, it must name one device: the one each of that cluster's workers uses.
    ``warm_up`` (e.g. import the engine) is run once on every slot's worker at once, as a
    job queued before any other: the slots that wait for their first job meanwhile get
    ready for it instead of paying that cost on the critical path.
    """
    from distributed import Client

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines would flood the run log
    devices = parse_devices(device)
    if address is not None:
        if len(devices) != 1:
            raise ValueError(f"device={device!r} lists devices, but cluster={address!r} has its own: "
                             "give the one device each of its workers uses (cpu, gpu or gpu:N)")
        client = _connect(address)
        try:
            workers = sorted(client.scheduler_info(n_workers=-1)["workers"].items(),
                             key=lambda item: (item[1].get("name") is None, str(item[1].get("name")), item[0]))
            slots = tuple(Slot(addr, str(devices[0]), str(devices[0])) for addr, _ in workers)
            width = min(at_once or len(slots), len(slots))
            ref = ClusterRef(address, slots[:width], started=False)
            _warm(client, ref, warm_up)
            yield ref
        finally:
            _forget(address)
        return

    started = _claim_head_start(device, at_once)
    if started is None:
        started = _start_warm(local_slots(devices, at_once), warm_up)
    cluster, ref = started
    try:
        yield ref
    finally:
        _forget(ref.address)
        with contextlib.suppress(Exception):
            cluster.close(timeout=10)


def _start_warm(slots: Sequence[Slot], warm_up: Callable[[], Any] | None):
    """A local cluster of ``slots``, its client registered, its workers warming up: (cluster, ref)."""
    from distributed import Client

    cluster = _start_local(slots)
    try:
        ref = ClusterRef(cluster.scheduler_address, tuple(slots), started=True)
        client = _clients[ref.address] = Client(cluster, set_as_default=False)
        _warm(client, ref, warm_up)
        return cluster, ref
    except BaseException:
        _forget(cluster.scheduler_address)
        with contextlib.suppress(Exception):
            cluster.close(timeout=10)
        raise


# --- a head start: the cluster started while something else is waited for ------------

_head_starts: dict[tuple[str, int | None], "concurrent.futures.Future"] = {}


@contextlib.contextmanager
def head_start(device: str, at_once: int | None = None, *, warm_up: Callable[[], Any] | None = None,
               also: Callable[[], Any] | None = None) -> Iterator[None]:
    """Start, in the background, the local cluster that ``job_cluster(device, at_once)`` will
    ask for in this process, and warm it up, while this process waits for something else (the
    CLI: Prefect's temporary server, 10-25 s on 2 cores). :func:`job_cluster` then takes it
    over and stops it as its own; one nobody took is stopped when this block ends, however it
    ends. ``also`` (e.g. the report's imports) runs on the same background thread afterwards.
    A start that failed is left to :func:`job_cluster` to do again, and to report.
    """
    import concurrent.futures

    key = (device, at_once)
    future: concurrent.futures.Future = concurrent.futures.Future()

    def start() -> None:
        try:
            future.set_result(_start_warm(local_slots(parse_devices(device), at_once), warm_up))
        except BaseException as error:  # noqa: BLE001 (handed to the taker)
            future.set_exception(error)
        if also is not None:
            with contextlib.suppress(Exception):
                also()

    _head_starts[key] = future
    thread = threading.Thread(target=start, name="lrf-head-start", daemon=True)
    thread.start()
    try:
        yield
    finally:
        unclaimed = _head_starts.pop(key, None)
        if unclaimed is not None:
            thread.join()  # a start under way ends in seconds; its processes are ours to stop
            with contextlib.suppress(BaseException):
                cluster, ref = unclaimed.result()
                _forget(ref.address)
                cluster.close(timeout=10)


def _claim_head_start(device: str, at_once: int | None):
    """The (cluster, ref) of this process's head start for ``(device, at_once)``, now ours; None
    when there is none, or its start failed (logged: the caller starts one the usual way)."""
    key = (device, at_once)
    future = _head_starts.get(key)
    if future is None:
        return None
    try:
        started = future.result()  # interrupted while waiting: still the head start's to stop
    except Exception as error:  # noqa: BLE001
        _head_starts.pop(key, None)
        log.warning("the cluster started ahead failed (%s: %s); starting one now", type(error).__name__, error)
        return None
    _head_starts.pop(key, None)
    return started


def _warm(client, ref: ClusterRef, warm_up: Callable[[], Any] | None) -> None:
    if warm_up is not None:  # fire and forget: the futures are kept until the client closes
        _warming[ref.address] = [client.submit(warm_up, key=f"lrf-warm-up-{uuid.uuid4().hex}", pure=False,
                                               workers=[slot.worker], allow_other_workers=False, priority=10)
                                 for slot in ref.slots]


def _start_local(slots: Sequence[Slot]):
    from distributed import Nanny, Scheduler, SpecCluster

    workers = {
        slot.worker: {"cls": Nanny, "options": {
            "nthreads": 1,  # MXNet's front end is not thread-safe: one job per worker at a time
            "env": _worker_env(slot, len(slots), None),
            "host": "127.0.0.1", "memory_limit": 0, "dashboard": False,
            "silence_logs": logging.WARNING,  # a worker's INFO lines would flood the run log
        }} for slot in slots
    }
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard": False, "dashboard_address": ":0",
                                               "allowed_failures": ALLOWED_FAILURES}}
    return SpecCluster(workers=workers, scheduler=scheduler, silence_logs=logging.ERROR, name="lrf")


CHECK_TIMEOUT = 5.0  # seconds a run's entry check waits for a given scheduler


def check_cluster(address: str | None) -> None:
    """A run's entry check of ``cluster=``: a scheduler answers at ``address`` and has a
    worker (None, a cluster of the run's own: nothing to check).

    Raises:
        ValueError: naming cluster and the address, and what is wrong there.
    """
    if address is None:
        return
    from distributed import Client

    try:
        client = Client(address, timeout=CHECK_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise ValueError(f"cluster={address!r}: no Dask scheduler answered there within {CHECK_TIMEOUT:.0f} s "
                         f"({type(error).__name__}); start one with: dask scheduler") from None
    try:
        if not client.scheduler_info(n_workers=-1)["workers"]:
            raise ValueError(f"cluster={address!r}: the scheduler has no worker; start some with: dask worker {address}")
    finally:
        client.close()


def _connect(address: str):
    from distributed import Client

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise RuntimeError(f"cluster={address!r}: no Dask scheduler answered there within "
                           f"{CONNECT_TIMEOUT:.0f} s ({error})") from None
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError):
        client.close()
        raise RuntimeError(f"cluster={address!r}: the scheduler has no worker (waited {CONNECT_TIMEOUT:.0f} s); "
                           "start some with: dask worker " + address) from None
    _clients[address] = client
    return client


_clients: dict[str, Any] = {}
_warming: dict[str, list] = {}
_clients_lock = threading.Lock()


def client_for(address: str):
    """The one client of this process for the cluster at ``address``."""
    with _clients_lock:
        client = _clients.get(address)
        if client is None:
            from distributed import Client

            client = _clients[address] = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        return client


def _forget(address: str) -> None:
    with _clients_lock:
        client = _clients.pop(address, None)
        _warming.pop(address, None)
    if client is not None:
        with contextlib.suppress(Exception):
            client.close(timeout=10)


# --- a job's round trip --------------------------------------------------------------


class JobFailed(RuntimeError):
    """A job failed on its worker; the message says which job, where and why."""


def run_job(ref: ClusterRef, slot: int, function: Callable, *args: Any, inputs: dict[str, bytes] | None = None,
            on_event: Callable[[dict], None] = lambda event: None, name: str = "lrf-job") -> Any:
    """Run ``function(*args, inputs, topic)`` on ``ref``'s slot ``slot`` (another worker if
    that one is gone) and return its value; meanwhile hand each event it sends
    (:func:`send_event` on ``topic``) to ``on_event``, in this thread.

    ``inputs`` (files' bytes) travel with the task. A caller interrupted (KeyboardInterrupt, SystemExit)
    cancels the job. Raises :class:`JobFailed` (a worker that died, repeatedly, included).
    """
    if isinstance(ref, InProcess):
        return _run_here(function, args, inputs, on_event, name)
    from distributed import KilledWorker

    client = client_for(ref.address)
    topic = f"{name}-{uuid.uuid4().hex}"
    events: queue.SimpleQueue = queue.SimpleQueue()
    client.subscribe_topic(topic, lambda event: events.put(event[1]))
    future = None
    try:
        with warnings.catch_warnings():
            # inputs go with the task, not scattered ahead: the scheduler can then run it again
            # elsewhere if its worker dies (scattered data dies with the worker that holds it)
            warnings.filterwarnings("ignore", message="Large object", category=UserWarning)
            warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
            future = client.submit(function, *args, inputs or {}, topic, key=topic, pure=False,
                                   workers=[ref.slot(slot).worker], allow_other_workers=True)
        while not future.done():
            with contextlib.suppress(queue.Empty):
                on_event(events.get(timeout=POLL))
        try:
            value = future.result()
        except KilledWorker as error:
            raise JobFailed(f"{name}: its worker died while running it, {ALLOWED_FAILURES + 1} times "
                            f"(killed, or out of memory): {error}") from None
        while not events.empty():
            on_event(events.get())
        return value
    finally:
        if future is not None and not future.done():
            future.cancel()
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(topic)


_HERE: dict[str, Callable[[dict], None]] = {}  # the topics of the jobs running in this process


def _run_here(function: Callable, args: tuple, inputs: dict[str, bytes] | None,
              on_event: Callable[[dict], None], name: str) -> Any:
    topic = f"{name}-{uuid.uuid4().hex}"
    _HERE[topic] = on_event  # the job's events go straight to its caller: the same thread
    try:
        return function(*args, inputs or {}, topic)
    finally:
        _HERE.pop(topic, None)


def send_event(topic: str, event: dict) -> None:
    """Where a job runs: send ``event`` (plain JSON-like values) to the job's caller."""
    if topic in _HERE:
        _HERE[topic](event)
        return
    from distributed import get_worker

    get_worker().log_event(topic, event)


def scratch_folder() -> str | None:
    """Where a job's temporary files go: its Dask worker's own folder, which Dask removes when
    the worker stops and, if the worker was killed, when the next one starts there (a job
    killed with its worker would leave a folder in the system's temporary directory); ``None``
    (the system's) for a job run by InProcess."""
    if _HERE:
        return None
    from distributed import get_worker

    return get_worker().local_directory


def where() -> dict[str, str]:
    """Where a job runs: which worker this is, for where a result ran (its ran_on)."""
    if _HERE:  # a job run by InProcess (a Dask worker never runs one)
        return {"worker": IN_PROCESS, "address": "", "host": socket.gethostname(), "pid": str(os.getpid())}
    from distributed import get_worker

    worker = get_worker()
    return {"worker": str(worker.name), "address": worker.address, "host": socket.gethostname(),
            "pid": str(os.getpid())}
