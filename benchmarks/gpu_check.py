"""GPU check (issue 19 §4): lrf's PyTorch engine on an NVIDIA GPU, sized to take under 10 minutes.

On a machine with an NVIDIA GPU and torch + torchvision + Pillow + numpy (no MXNet, no Prefect,
no Dask, no scikit-learn, no network, lrf not installed), from the repository's root::

    PYTHONPATH=. python3 -m benchmarks.gpu_check --device gpu:0 --out benchmarks/results/gpu.md

(in lrf's own checkout: ``uv run --locked --extra torch python -m benchmarks.gpu_check``). It
prints a markdown report and writes it to ``--out`` (default ``benchmarks/results/gpu.md``,
``benchmarks/results/quick/gpu.md`` for ``--quick``), with the raw figures beside it as ``.json``.

What it measures, for torchvision's ResNet-18 (the torch engine's reference model) at batch 128:

1. a bare training loop: plain torch (the same network from the same initial parameters, the
   same loader, the same SGD), N iterations between two ``torch.cuda.synchronize()``: seconds
   per iteration, with and without reading the loss back every iteration;
2. the lrf sweep (:func:`lrf.training.run_sweep` over the engine's learner, default
   :class:`lrf.config.SweepConfig`): seconds per iteration, and sweep / bare;
3. the run's fixed overhead: from the start of a fresh process to the first sweep iteration
   (imports, the entry check, the initial parameters, data load, model build, loader start),
   in seconds and in bare iterations, phase by phase;
4. the reference check of the pick: the default :class:`lrf.config.CandidatePlan`'s rates
   (:func:`lrf.candidates.select`), each trained by :func:`lrf.pytorch.experiment.train_at_rate`
   from the same saved initial parameters, and lrf's recommendation (:func:`lrf.candidates.recommend`).

The data is generated here, deterministically from ``--seed``: CIFAR-10-sized (50,000 training
and 10,000 held-out 3x32x32 images, 10 classes told apart by a coloured blob's colour and place
and a stripe pattern's angle, under noise and jitter), JPEG-encoded with Pillow and written as
MXNet's indexed RecordIO (``train.rec``/``.idx`` and its ``test`` sibling) in a temporary folder.
The engine reads it as ``data=rec:PATH/train.rec``: its own RecordIO reader, Pillow decoder,
normalisation, seeded batch order and loader worker processes, the path a user's CIFAR-10 takes.
(A recipe over an in-memory torch Dataset would be faster to set up but would leave all of that
out of the figures.) Generating the data is not part of any figure.

The sweep, the bare loop and the candidates run in one fresh child process (so the fixed
overhead is that of a fresh run); this process generates the data and writes the report.
Without CUDA it refuses in one line (exit status 2), unless ``--device cpu`` is given: then it
runs on the CPU at ``--quick`` sizes (how it is tested without a GPU).

Imports: the standard library at module level; numpy and Pillow to make the data; torch,
torchvision and lrf's framework-free core plus :mod:`lrf.pytorch` in the child. Nothing from
:mod:`benchmarks._common` (it may grow imports a GPU machine does not have).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "gpu.md"
QUICK_OUT = REPO / "benchmarks" / "results" / "quick" / "gpu.md"
COMMAND = "PYTHONPATH=. python3 -m benchmarks.gpu_check --device gpu:0 --out benchmarks/results/gpu.md"
MODEL = "resnet18"  # lrf.config.REFERENCE_MODELS["torch"]
BATCH_SIZE = 128
BARE_LR = 0.01  # the bare loop's constant rate (its cost does not depend on it)
SWEEP_WARM_UP = 5  # sweep iterations left out of its per-iteration figure (the bare loop has its own warm-up)
GOAL = 1.02  # sweep / bare, the goal of benchmarks/sweep_overhead.py
CHILD_TIMEOUT = {"full": 1800, "quick": 900}  # seconds: the child is killed after this

# (sizes) full: CIFAR-10's; quick: a smoke run (and every --device cpu run)
SIZES = {
    "full": {"train": 50_000, "test": 10_000, "bare_iterations": 100, "bare_rounds": 3, "bare_warm_up": 10,
             "candidate_iterations": None},  # None: CandidatePlan's own (500)
    "quick": {"train": 5_000, "test": 500, "bare_iterations": 10, "bare_rounds": 2, "bare_warm_up": 3,
              "candidate_iterations": 20},
}
# what the child may not import (the GPU machine has none of them; the test checks it)
FORBIDDEN = ("mxnet", "prefect", "distributed", "dask", "sklearn")


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] gpu_check: {message}", file=sys.stderr, flush=True)


# --- the data: CIFAR-10-sized, learnable, deterministic ---------------------------------

RECORDIO_MAGIC = 0xCED7230A  # lrf.datacheck.RECORDIO_MAGIC (MXNet's / dmlc's kMagic)
_MAGIC_BYTES = struct.pack("<I", RECORDIO_MAGIC)
_IR_HEADER = struct.Struct("<IfQQ")  # mxnet.recordio.IRHeader: flag, label, id, id2
IMAGE_SIDE, NUM_CLASSES, CHUNK = 32, 10, 2_500
JPEG_QUALITY = 95  # mx.recordio.pack_img's default


def _framed(record: bytes) -> bytes:
    """``record`` as dmlc's RecordIOWriter writes it: magic, length word (continuation flag in
    the top 3 bits), payload, zero padding to 4 bytes; a payload holding the magic number at an
    aligned place is split there (flags 1, 2, 3), the magic dropped, as MXNet does."""
    parts, start, position = [], 0, record.find(_MAGIC_BYTES)
    while position != -1:
        if position % 4 == 0:
            parts.append(record[start:position])
            start = position + 4
        position = record.find(_MAGIC_BYTES, position + 1)
    parts.append(record[start:])
    out = bytearray()
    for number, part in enumerate(parts):
        flag = 0 if len(parts) == 1 else 1 if number == 0 else 3 if number == len(parts) - 1 else 2
        out += _MAGIC_BYTES + struct.pack("<I", (flag << 29) | len(part)) + part
    out += b"\0" * (-len(record) % 4)  # dmlc pads the whole record's length; the inner parts are aligned
    return bytes(out)


def _class_templates():
    import numpy as np

    c = np.arange(NUM_CLASSES)
    hue = c / NUM_CLASSES
    # a saturated colour per class (HSV with s = v = 1)
    k = (np.array([5.0, 3.0, 1.0])[None, :] + hue[:, None] * 6) % 6
    colour = 1 - np.clip(np.minimum(k, 4 - k), 0, 1)
    angle = (c * 3 % NUM_CLASSES) * np.pi / NUM_CLASSES  # stripe angle, in another order than the hue
    centre = np.stack([16 + 7 * np.cos(2 * np.pi * c * 7 / NUM_CLASSES),
                       16 + 7 * np.sin(2 * np.pi * c * 7 / NUM_CLASSES)], axis=1)  # blob place (x, y)
    return colour, angle, centre


def make_images(count: int, seed: int, split: int, start: int = 0):
    """``count`` HWC uint8 images and their labels (0-9, balanced), chunk by chunk from
    ``(seed, split, chunk)``: the same images whatever else is generated (for one numpy: its
    ``default_rng`` streams). Hard enough that the rate matters: ResNet-18 at lr 0.1 reached
    60% held-out accuracy after 60 iterations of 128 (1,000 held-out images), chance is 10%."""
    import numpy as np

    colour, angle, centre = _class_templates()
    yy, xx = np.mgrid[0:IMAGE_SIDE, 0:IMAGE_SIDE].astype(np.float32)
    rng = np.random.default_rng([seed, split, start // CHUNK])
    labels = rng.permutation(np.arange(count) % NUM_CLASSES)
    n = count
    cx = centre[labels, 0] + rng.uniform(-6, 6, n)
    cy = centre[labels, 1] + rng.uniform(-6, 6, n)
    radius = rng.uniform(2.5, 5.0, n)
    blob = np.exp(-((xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2) / (2 * radius[:, None, None] ** 2))
    theta = angle[labels] + rng.normal(0, 0.3, n)
    wave = (np.cos(theta)[:, None, None] * xx + np.sin(theta)[:, None, None] * yy) * (2 * np.pi / 8)
    stripes = 0.5 + 0.5 * np.sin(wave + rng.uniform(0, 2 * np.pi, n)[:, None, None])
    background = rng.uniform(0.05, 0.55, (n, 1, 1, 3))
    tint = colour[labels] * rng.uniform(0.55, 1.0, (n, 1)) + rng.normal(0, 0.15, (n, 3))
    alpha = rng.uniform(0.3, 0.7, (n, 1, 1, 1))  # how much the blob shows through
    images = (background + alpha * blob[..., None] * (tint[:, None, None, :] - background)
              + 0.10 * (stripes[..., None] - 0.5) + rng.normal(0, 0.2, (n, IMAGE_SIDE, IMAGE_SIDE, 3)))
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8), labels


def write_rec(folder: Path, name: str, count: int, seed: int, split: int) -> Path:
    """``folder/name.rec`` and ``.idx``: ``count`` JPEG images as MXNet's MXIndexedRecordIO
    writes them (key TAB offset lines; the key is the record's position)."""
    from PIL import Image

    rec, idx = folder / f"{name}.rec", folder / f"{name}.idx"
    with open(rec, "wb") as records, open(idx, "w", encoding="ascii") as index:
        for start in range(0, count, CHUNK):
            images, labels = make_images(min(CHUNK, count - start), seed, split, start)
            for offset, (image, label) in enumerate(zip(images, labels.tolist())):
                key = start + offset
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
                index.write(f"{key}\t{records.tell()}\n")
                records.write(_framed(_IR_HEADER.pack(0, float(label), key, 0) + buffer.getvalue()))
    return rec


def make_data(folder: Path, train: int, test: int, seed: int) -> Path:
    """The training and held-out RecordIO files under ``folder``; the training ``.rec``."""
    rec = write_rec(folder, "train", train, seed, 0)
    write_rec(folder, "test", test, seed, 1)
    return rec


# --- the child: a fresh process doing a run's work, timed -------------------------------


class _Marks:
    """Wall-clock marks (``time.time()``: comparable with the parent's spawn time)."""

    def __init__(self, spawned: float, sync):
        self.at = {"spawned": spawned, "entered": time.time()}
        self.phases: list[tuple[str, float, float]] = []
        self.sync = sync
        self._originals: list[tuple[object, str, object]] = []

    def mark(self, name: str) -> None:
        self.at[name] = time.time()

    def wrap(self, module, name: str, label: str) -> None:
        """Time every call of ``module.name`` (GPU work drained before the clock stops) as phase
        ``label``; nothing if the engine has no such function (a refactor: the breakdown is lost,
        not the run)."""
        original = getattr(module, name, None)
        if original is None:
            return

        def timed(*args, **kwargs):
            began = time.time()
            result = original(*args, **kwargs)
            self.sync()
            self.phases.append((label, began, time.time()))
            return result

        self._originals.append((module, name, original))
        setattr(module, name, timed)

    def unwrap(self) -> None:
        for module, name, original in reversed(self._originals):
            setattr(module, name, original)
        self._originals.clear()


def runtime_imports():
    """Import what the child uses (torch, torchvision, lrf's core and lrf.pytorch); return them."""
    import torch
    import torchvision

    import lrf.pytorch.experiment as experiment
    from lrf import candidates, training
    from lrf.config import CandidatePlan, Setup, SweepConfig
    from lrf.engine import prepare_setup
    from lrf.pytorch import data as tdata

    return torch, torchvision, experiment, candidates, training, CandidatePlan, Setup, SweepConfig, prepare_setup, tdata


def child(config_path: str, spawned: float) -> int:
    """The measurements, in a fresh process; what they found goes to the config's ``result`` file
    after every stage (the parent reports what a failed or stopped child finished)."""
    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    out = Path(config["result"])
    found: dict = {"notes": [], "stage": "imports"}

    def save() -> None:
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(found, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, out)

    try:
        return _measure(config, spawned, found, save)
    except BaseException as error:
        found["error"] = f"{type(error).__name__}: {error}".strip()
        save()
        raise


def _measure(config: dict, spawned: float, found: dict, save) -> int:
    marks = _Marks(spawned, lambda: None)
    (torch, torchvision, experiment, candidates, training, CandidatePlan, Setup, SweepConfig, prepare_setup,
     tdata) = runtime_imports()
    marks.mark("imported")
    device_text = config["device"]
    setup = Setup(data=f"rec:{config['train_rec']}", model=MODEL, device=device_text, batch_size=BATCH_SIZE,
                  seed=config["seed"], engine="torch")
    try:
        setup, size = prepare_setup(setup)  # the entry check of every run: data files, model, GPU code
        found["data_size"] = dataclasses.asdict(size)
    except ValueError as error:
        found["notes"].append(f"lrf.engine.prepare_setup refused this setup, and the check went on without it: "
                              f"{error}")
    marks.mark("prepared")
    device = experiment.parse_device(setup.device_spec)
    if device.type == "cuda":
        marks.sync = lambda: torch.cuda.synchronize(device)
    found["machine"] = _device_facts(torch, torchvision, device)
    found["loader_workers"] = setup.loader_workers if setup.loader_workers is not None else (os.cpu_count() or 1)
    found["stage"] = "initial parameters"
    save()

    marks.wrap(experiment, "recipe_for", "data")
    marks.wrap(experiment, "_network", "model")
    log(f"initial parameters of {MODEL} on {device}")
    init_params, message = experiment.initialise(setup, config["folder"])
    marks.sync()
    marks.mark("initialised")

    def opening(setup, init_params=None, *, start=0):
        marks.mark("open_learner")
        learner = experiment.open_learner(setup, init_params, start=start)
        marks.sync()
        marks.mark("learner_ready")
        return learner

    stamps: list[float] = []
    sweep_config = SweepConfig()
    log(f"sweep (default SweepConfig: lr {sweep_config.lr_start:g} x {sweep_config.lr_multiplier:g} per iteration)")
    found["stage"] = "sweep"
    save()
    result = training.run_sweep(opening, setup, sweep_config, init_params=init_params,
                                progress=lambda p: stamps.append(time.time()))
    marks.mark("sweep_done")
    marks.unwrap()  # the timing hooks were for the start of the run only
    found["sweep"] = {"iterations": len(result), "stop_reason": result.stop_reason.value,
                      "last_lr": result.lrs[-1] if len(result) else None, "stamps": stamps,
                      "result": json.loads(result.to_json())}
    found["marks"], found["phases"] = marks.at, marks.phases
    log(f"sweep: {len(result)} iterations, stopped: {result.stop_reason.value}")
    found["stage"] = "bare loop"
    save()

    found["bare"] = _bare_loop(torch, torchvision, tdata, setup, device, init_params, config["sizes"])
    found["stage"] = "candidates"
    save()

    plan = CandidatePlan()
    if config["sizes"]["candidate_iterations"] is not None:
        plan = dataclasses.replace(plan, iterations=config["sizes"]["candidate_iterations"])
    selection = candidates.select(result, plan)
    found["plan"] = plan.to_dict()
    found["selection"] = selection.to_dict()
    trained = []
    for lr in selection.candidates:
        log(f"candidate lr={lr:.4g}: {plan.iterations} iterations")
        times: list[float] = []
        trained.append(experiment.train_at_rate(setup, init_params, lr, plan.iterations, plan.last_k,
                                                report=lambda line: None, progress=lambda n: times.append(time.time())))
        found.setdefault("candidate_stamps", []).append(times)
        found["candidates"] = [json.loads(c.to_json()) for c in trained]
        save()
    if not selection.candidates:
        found["notes"].append(f"the sweep gave no reliable pick ({selection.pick.reason}): no candidate was trained")
    recommendation = candidates.recommend(selection, trained)
    found["candidates"] = [json.loads(c.to_json()) for c in trained]
    found["recommendation"] = recommendation.to_dict()
    found["table"] = candidates.final_loss_table(selection, trained, recommendation)
    found["modules"] = sorted({m.split(".")[0] for m in sys.modules} & set(FORBIDDEN))
    found["stage"] = "done"
    save()
    return 0


def _device_facts(torch, torchvision, device) -> dict:
    import numpy
    import PIL

    facts = {"device": str(device), "torch": torch.__version__, "torchvision": torchvision.__version__,
             "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
             else None, "python": platform.python_version(), "numpy": numpy.__version__, "pillow": PIL.__version__,
             "cpu_threads": torch.get_num_threads(), "cudnn_benchmark": torch.backends.cudnn.benchmark,
             "tf32_matmul": _setting(lambda: torch.backends.cuda.matmul.allow_tf32),
             "tf32_cudnn": _setting(lambda: torch.backends.cudnn.allow_tf32)}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        facts.update(gpu=p.name, capability=f"{p.major}.{p.minor}", gpu_memory_gib=round(p.total_memory / 2**30, 1),
                     multiprocessors=p.multi_processor_count)
        program = shutil.which("nvidia-smi")
        if program:
            try:
                done = subprocess.run([program, "--query-gpu=driver_version", "--format=csv,noheader"],
                                      capture_output=True, text=True, timeout=20)
                facts["driver"] = done.stdout.strip().splitlines()[device.index or 0] if done.returncode == 0 else None
            except (OSError, subprocess.SubprocessError, IndexError):
                facts["driver"] = None
    return facts


def _setting(read):
    """A torch setting, or None where this torch has it no more (or warns it away)."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read()
    except Exception:  # noqa: BLE001  (a renamed setting must not stop the check)
        return None


def _bare_loop(torch, torchvision, tdata, setup, device, init_params: str, sizes: dict) -> dict:
    """Plain torch over the same network (the saved initial parameters), the same loader (lrf's,
    same workers and batch order) and the same optimizer (SGD): seconds per iteration over
    rounds of N iterations between two synchronisations, without and with reading the loss back
    every iteration (the sweep must: each rate depends on the loss so far), taking turns."""
    from torch import nn

    dataset, _ = tdata.load_dataset(setup.data_spec, "train")
    net = torchvision.models.get_model(MODEL, weights=None, num_classes=10)
    net.load_state_dict(torch.load(init_params, map_location="cpu", weights_only=True))
    net.to(device).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=BARE_LR)
    loss_fn = nn.CrossEntropyLoss()
    loader = tdata.make_batch_loader(dataset, setup.batch_size, setup.loader_workers, seed=setup.seed)
    batches = iter(loader)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def run(count: int, read_loss: bool) -> float:
        sync()
        began = time.perf_counter()
        for _ in range(count):
            data, label = next(batches)
            data, label = data.to(device, non_blocking=True), label.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(data), label)
            loss.backward()
            optimizer.step()
            if read_loss:
                float(loss.detach())
        sync()
        return (time.perf_counter() - began) / count

    log(f"bare loop: {sizes['bare_rounds']} rounds of {sizes['bare_iterations']} iterations, each way")
    times: dict[str, list[float]] = {"bare": [], "bare_read_loss": []}
    try:
        run(sizes["bare_warm_up"], True)
        for r in range(sizes["bare_rounds"]):
            for name in (("bare", "bare_read_loss") if r % 2 == 0 else ("bare_read_loss", "bare")):
                times[name].append(run(sizes["bare_iterations"], name == "bare_read_loss"))
    finally:
        tdata.close_loader(batches)
    return {**times, "iterations": sizes["bare_iterations"], "warm_up": sizes["bare_warm_up"], "lr": BARE_LR}


# --- the parent: check, data, child, report ----------------------------------------------


def refuse_without_device(device_text: str) -> str | None:
    """Why ``device_text`` cannot run here (one line), or None."""
    from lrf.config import parse_device_spec

    try:
        spec = parse_device_spec(device_text)
    except ValueError as error:
        return f"gpu_check: {error}"
    try:
        import torch
    except ImportError:
        return f"gpu_check: torch is not installed for {sys.executable}; this check needs torch and torchvision"
    if spec.kind == "cpu":
        return None
    if not torch.cuda.is_available():
        return (f"gpu_check: --device {device_text} needs CUDA, but torch {torch.__version__} sees no CUDA GPU here "
                f"(torch.cuda.is_available() is False); on an NVIDIA GPU machine run `{COMMAND}`, or give --device cpu "
                f"for a CPU smoke run at --quick sizes")
    count = torch.cuda.device_count()
    if spec.index >= count:
        return f"gpu_check: --device {device_text} asks for GPU {spec.index}, but torch sees {count} CUDA GPU(s)"
    return None


def _host() -> dict:
    cpu, ram = "?", "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
        ram = f"{kib / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    commit = "?"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=10).stdout.strip() or "?"
        if commit != "?" and subprocess.run(["git", "status", "--porcelain", "--", "lrf"], cwd=REPO,
                                            capture_output=True, text=True, timeout=10).stdout.strip():
            commit += " (lrf/ modified)"
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram": ram, "os": platform.platform(), "commit": commit}


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _median(values) -> float:
    return statistics.median(values) if values else math.nan


def _fmt(value, pattern: str = "{:.4g}") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return "diverged" if math.isnan(value) else str(value)
    return pattern.format(value)


def _spread(values) -> str:
    if not values:
        return "—"
    text = _fmt(_median(values))
    return text if len(values) == 1 else f"{text} [{_fmt(min(values))}–{_fmt(max(values))}]"


def _steady(stamps: list[float], skip: int) -> tuple[float, float]:
    """(mean, median) seconds per iteration from the end-of-iteration stamps, the first ``skip``
    iterations left out: the mean is the throughput; the median is robust to other work on a
    shared machine (and hides a stall that recurs less than every other iteration)."""
    skip = min(skip, max(0, len(stamps) - 2))
    deltas = [b - a for a, b in zip(stamps[skip:], stamps[skip + 1:])]
    return (sum(deltas) / len(deltas), statistics.median(deltas)) if deltas else (math.nan, math.nan)


def report(found: dict, args, data: dict, host: dict, seconds: float) -> tuple[str, dict]:
    """The markdown report and its figures."""
    m = found.get("machine", {})
    sizes = data["sizes"]
    quick = data["quick"]
    lines = [f"# GPU check: lrf's PyTorch engine, {MODEL} at batch {BATCH_SIZE} on "
             f"{m.get('gpu', m.get('device', args.device))}", "",
             f"`{data['command']}` · run {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} · took {seconds:.0f} s · "
             f"lrf at {host['commit']} · load average {data.get('load_start', '?')} → {data.get('load_end', '?')}"
             + (" · **--quick sizes**" if quick else ""), ""]
    lines += ["## Machine", "", "| | |", "|:---|:---|"]
    if "gpu" in m:
        lines.append(f"| GPU | {m['gpu']}, compute capability {m['capability']}, {m['multiprocessors']} "
                     f"multiprocessors, {m['gpu_memory_gib']} GiB; driver {m.get('driver') or '?'} |")
    else:
        lines.append(f"| device | {m.get('device', args.device)} (no GPU used) |")
    lines += [f"| torch | {m.get('torch', '?')} (CUDA {m.get('cuda')}, cuDNN {m.get('cudnn')}), torchvision "
              f"{m.get('torchvision', '?')}; cudnn.benchmark {m.get('cudnn_benchmark')}, TF32 matmul "
              f"{m.get('tf32_matmul')}, TF32 cuDNN {m.get('tf32_cudnn')} (torch's defaults: lrf sets none) |",
              f"| Python | {m.get('python', platform.python_version())}, numpy {m.get('numpy', '?')}, Pillow "
              f"{m.get('pillow', '?')} |",
              f"| host | {host['cpu']}, {host['cores']} cores, {host['ram']} RAM; {host['os']} |",
              f"| loader | lrf's `make_batch_loader`, {found.get('loader_workers', '?')} worker processes "
              f"(`loader_workers=None`: one per core) |", ""]
    lines += ["## Data", "",
              f"Synthetic, CIFAR-10-sized: {sizes['train']:,} training and {sizes['test']:,} held-out 3x32x32 images, "
              f"10 classes (a blob's colour and place, a stripe pattern's angle; noise and jitter), seed {args.seed}, "
              f"JPEG (quality {JPEG_QUALITY}) in indexed RecordIO, read as `data=rec:.../train.rec` (its `test.rec` "
              f"the held-out split) through the engine's own reader, decoder and loader. Generated in "
              f"{data['generate_s']:.1f} s ({data['megabytes']:.0f} MB; not counted in any figure).", ""]

    figures: dict = {}
    bare = found.get("bare", {})
    bare_s = _median(bare.get("bare", []))
    bare_read_s = _median(bare.get("bare_read_loss", []))
    sweep = found.get("sweep")
    rows = []
    if bare:
        rows.append((f"(1) bare loop: plain torch, {bare['iterations']} iterations per round between two "
                     f"synchronisations, {len(bare['bare'])} rounds ({bare['warm_up']} warm-up iterations first), "
                     "s/iteration", _spread(bare["bare"]), "—", ""))
        rows.append(("(1b) the same, reading the loss back (`float(loss)`) every iteration, as lrf's learner does, "
                     "s/iteration", _spread(bare["bare_read_loss"]), "—", ""))
        figures.update(bare_s=bare_s, bare_read_loss_s=bare_read_s)
    if sweep:
        sweep_s, sweep_median = _steady(sweep["stamps"], SWEEP_WARM_UP)
        figures.update(sweep_s=sweep_s, sweep_median_s=sweep_median)
        rows.append((f"(2) lrf sweep (`run_sweep`, default SweepConfig: {sweep['iterations']} iterations, stopped: "
                     f"{sweep['stop_reason']} at lr={_fmt(sweep['last_lr'])}), s/iteration after its first "
                     f"{SWEEP_WARM_UP}: mean (median iteration)", f"{_fmt(sweep_s)} ({_fmt(sweep_median)})", "—", ""))
        if bare:
            ratio = sweep_s / bare_s
            figures.update(sweep_over_bare=ratio, sweep_median_over_bare=sweep_median / bare_s,
                           sweep_over_bare_read_loss=sweep_s / bare_read_s)
            rows.append(("(2) sweep / bare", _fmt(ratio, "{:.3f}"), f"≤ {GOAL:g}",
                         "**met**" if ratio <= GOAL else "**missed**"))
            rows.append(("(2) the same, the sweep's median iteration / bare", _fmt(sweep_median / bare_s, "{:.3f}"),
                         "—", ""))
            rows.append(("(2b) sweep / bare reading the loss back every iteration",
                         _fmt(sweep_s / bare_read_s, "{:.3f}"), "—", ""))
    cand_stamps = [s for s in found.get("candidate_stamps", []) if len(s) > 2]
    if cand_stamps and bare:
        per = [_steady(s, SWEEP_WARM_UP)[0] for s in cand_stamps]
        figures["candidate_s"] = _median(per)
        rows.append((f"(4) candidate training (`train_at_rate`), s/iteration after its first {SWEEP_WARM_UP} (mean), "
                     f"/ bare; {len(per)} candidates", _spread([p / bare_s for p in per]), "—", ""))
    overhead = None
    marks = found.get("marks")
    if sweep and marks and sweep["stamps"]:
        first = sweep["stamps"][0]
        one = figures.get("sweep_median_s", math.nan)
        overhead = first - marks["spawned"] - (one if math.isfinite(one) else 0.0)
        figures["overhead_s"] = overhead
        rows.append(("(3) fixed overhead: fresh process start → first sweep iteration (its end, less the sweep's "
                     "median iteration), s", _fmt(overhead, "{:.2f}"), "—", ""))
        if bare:
            figures["overhead_over_bare_iteration"] = overhead / bare_s
            rows.append(("(3) fixed overhead / one bare iteration", _fmt(overhead / bare_s, "{:.0f}"), "—", ""))
    if rows:
        lines += [f"## Speed ({MODEL}, batch {BATCH_SIZE}, {m.get('device', args.device)})", "",
                  "| figure | value: median [min–max] | goal | met |", "|:---|---:|:---:|:---:|"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
        lines.append("")
    if overhead is not None:
        lines += _overhead_table(found, figures.get("bare_s", math.nan), figures.get("sweep_median_s", math.nan))
    lines += _candidates_section(found)
    notes = list(found.get("notes", []))
    if found.get("stage") != "done":
        error = f": {found['error']}" if found.get("error") else ""
        notes.insert(0, f"**the child process stopped during: {found.get('stage', 'its start')}** "
                        f"(exit status {data.get('child_rc')}{error}); the figures above are what it finished")
    if found.get("modules"):
        notes.append(f"the child imported {', '.join(found['modules'])}, which a GPU machine may not have")
    notes += [
        "The sweep, the bare loop and the candidates ran in one fresh child process, in that order; the sweep's "
        "per-iteration time comes from lrf's progress callback (each iteration ends with the loss read back), the "
        "bare loop's from two `torch.cuda.synchronize()` around N iterations.",
        f"The bare loop trains at a constant lr={BARE_LR:g}; the sweep's rates rise from 1e-6 (the cost of an "
        "iteration does not depend on its rate).",
        "lrf's learner reads every loss back to the host (`float(loss)`): the sweep needs it (the next rate "
        "and the stop depend on it), so (1b) is the bare loop it can at best match on a GPU; (1) is what a training "
        "loop that never looks at its loss runs at.",
    ]
    if quick:
        notes.append("--quick sizes: a smoke run; the figures are not the GPU's (a --device cpu run always uses them).")
    lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines), figures


def _overhead_table(found: dict, bare_s: float, sweep_s: float) -> list[str]:
    at, phases, first = found["marks"], found.get("phases", []), found["sweep"]["stamps"][0]
    gpu = "gpu" in found.get("machine", {})

    def between(label, start, end):
        return (label, end - start)

    def inside(label, kind, start, end):
        return sum(e - b for name, b, e in phases if name == kind and start <= b and e <= end)

    rows = [between("interpreter start, `import torch, torchvision`, lrf's core and `lrf.pytorch`",
                    at["spawned"], at["imported"]),
            between("entry check (`lrf.engine.prepare_setup`: the data's labels and images, model, GPU code)",
                    at["imported"], at["prepared"])]
    init = at["initialised"] - at["prepared"]
    data = inside("", "data", at["prepared"], at["initialised"])
    model = inside("", "model", at["prepared"], at["initialised"])
    rows += [("initial parameters (`experiment.initialise`): data load (the built-in recipe)", data),
             ("… model build on the device" + (" (the first CUDA work: context, kernels)" if gpu else "")
              + ", seeded init", model),
             ("… the rest (saving `init.pt`)", init - data - model),
             between("between the jobs", at["initialised"], at["open_learner"])]
    opened = at["learner_ready"] - at["open_learner"]
    data = inside("", "data", at["open_learner"], at["learner_ready"])
    model = inside("", "model", at["open_learner"], at["learner_ready"])
    rows += [("sweep's learner (`open_learner`): data load", data),
             ("… model build, initial parameters loaded", model),
             ("… optimizer, learner, loader start (its worker processes)", opened - data - model)]
    one = sweep_s if math.isfinite(sweep_s) else 0.0
    rows.append(("first batch, dry run (no step), snapshot (until the first iteration starts)",
                 first - at["learner_ready"] - one))
    total = first - at["spawned"] - one
    lines = ["## Where the fixed overhead goes", "",
             "| phase | seconds | bare iterations |", "|:---|---:|---:|"]
    for label, value in rows + [("**total**", total)]:
        share = _fmt(value / bare_s, "{:.0f}") if math.isfinite(bare_s) else "—"
        lines.append(f"| {label} | {value:.3f} | {share} |")
    if gpu:
        lines += ["", "The phases are timed with the GPU drained at their end (`torch.cuda.synchronize()`), so "
                  "queued GPU work counts where it was queued."]
    lines.append("")
    return lines


def _candidates_section(found: dict) -> list[str]:
    if "selection" not in found:
        return []
    plan, selection = found["plan"], found["selection"]
    pick = selection["pick"]
    lines = ["## The reference check of the pick", "",
             f"Default CandidatePlan (plan {plan['plan']!r}, rule {plan['rule']!r}, multipliers "
             f"{', '.join(f'{x:g}' for x in plan['candidate_multipliers'])}, {plan['iterations']} iterations each, "
             f"last_k {plan['last_k']}), every candidate trained by `lrf.pytorch.experiment.train_at_rate` from the "
             f"same saved initial parameters on the same batches; chosen by `lrf.candidates.select` and "
             f"`lrf.candidates.recommend`.", "",
             f"Pick: lr={_fmt(pick['lr'])} ({pick['reason']}).", ""]
    table = found.get("table") or []
    seconds = {c["lr"]: c["seconds"] for c in found.get("candidates", [])}
    if table:
        lines += ["| rank | lr | × pick | iterations | final loss | mean last k | held-out loss | held-out accuracy "
                  "| seconds | pick | recommended |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|"]
        for row in table:
            lines.append(" | ".join([
                f"| {row['rank']}", _fmt(row["lr"]), _fmt(row["multiplier"], "{:.3g}"), str(row["iterations"]),
                _fmt(_num(row["final_loss"])), _fmt(_num(row["mean_last_k"])), _fmt(_num(row["holdout_loss"])),
                _fmt(row["holdout_accuracy"], "{:.1%}"), _fmt(seconds.get(row["lr"]), "{:.1f}"),
                "yes" if row["pick"] else "", "yes" if row["recommended"] else ""]) + " |")
        lines.append("")
    rec = found.get("recommendation")
    if rec:
        lines += [f"**Recommendation**: lr={_fmt(rec['lr'])} (by {rec['measure']}): {rec['evidence']}.", ""]
    return lines


def _num(value):
    if isinstance(value, str):  # strict JSON's "NaN"/"Infinity"
        return float(value)
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="gpu:0",
                        help="gpu:N (default gpu:0), or cpu for a smoke run at --quick sizes")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"the report (default {DEFAULT_OUT.relative_to(REPO)}; with --quick "
                             f"{QUICK_OUT.relative_to(REPO)}); its figures go beside it as .json")
    parser.add_argument("--quick", action="store_true",
                        help="smoke sizes: 5,000 images, short bare loop and candidates")
    parser.add_argument("--seed", type=int, default=42, help="the data's and the run's seed (42, lrf's default)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        return child(args.child, args.spawned)

    began = time.perf_counter()
    why = refuse_without_device(args.device)
    if why is not None:
        print(why, file=sys.stderr)
        return 2
    quick = args.quick or args.device == "cpu"
    sizes = SIZES["quick" if quick else "full"]
    out = args.out or (QUICK_OUT if quick else DEFAULT_OUT)
    given = list(argv if argv is not None else sys.argv[1:])
    command = " ".join(["PYTHONPATH=. python3 -m benchmarks.gpu_check", shlex.join(given)]).strip()
    host = _host()
    load_start = _load_average()
    folder = Path(tempfile.mkdtemp(prefix="lrf-gpu-check-"))
    found: dict = {}
    rc, generate_s, megabytes = None, math.nan, math.nan
    try:
        log(f"data: {sizes['train']:,} + {sizes['test']:,} images as RecordIO in {folder}")
        started = time.perf_counter()
        train_rec = make_data(folder, sizes["train"], sizes["test"], args.seed)
        generate_s = time.perf_counter() - started
        megabytes = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        config = {"device": args.device, "seed": args.seed, "sizes": sizes, "train_rec": str(train_rec),
                  "folder": str(folder), "result": str(folder / "child.json")}
        (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        log("a fresh process: imports, initial parameters, sweep, bare loop, candidates")
        timeout = CHILD_TIMEOUT["quick" if quick else "full"]
        spawned = time.time()
        child_process = subprocess.Popen([sys.executable, "-m", "benchmarks.gpu_check", "--child",
                                          str(folder / "config.json"), "--spawned", repr(spawned)], cwd=REPO, env=env)
        try:
            rc = child_process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child_process.kill()
            rc = child_process.wait()
            log(f"the child ran past {timeout} s and was stopped")
        except BaseException:
            child_process.kill()
            child_process.wait()
            raise
        if (folder / "child.json").is_file():
            found = json.loads((folder / "child.json").read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    seconds = time.perf_counter() - began
    data = {"sizes": sizes, "quick": quick, "generate_s": generate_s, "megabytes": megabytes, "command": command,
            "child_rc": rc, "load_start": load_start, "load_end": _load_average()}
    text, figures = report(found, args, data, host, seconds)
    print(text, flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    from lrf import _io  # strict JSON (non-finite numbers as text), atomic writes

    _io.write_text(out, text)
    raw = {"figures": figures, "host": host, "data": data, "child": found, "seconds": round(seconds, 1)}
    _io.write_text(out.with_suffix(".json"), _io.to_json(raw))
    log(f"written: {out}, {out.with_suffix('.json')}")
    return 0 if found.get("stage") == "done" and rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
