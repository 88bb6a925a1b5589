"""What every benchmark shares: interleaved timing, statistics, the machine, the result files.

The machine is shared and noisy, so no benchmark asserts an absolute time: every
figure is a ratio of two things measured in the same run, interleaved (the
variants take turns, in an order that rotates from round to round: AB, BA, ...),
reported as the median over rounds with the smallest and largest round.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

from lrf import _io

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
QUICK_RESULTS = RESULTS / "quick"
# benchmark data beside the repository (../shared), never downloaded
CIFAR_TRAIN_REC = Path(__file__).resolve().parents[2] / "shared/data/cifar10/train.rec"
CIFAR_DATA = f"rec:{CIFAR_TRAIN_REC}"  # Setup picks the reference ResNet-18 v2 for it (lrf.config.default_model)

# seconds a temporary Prefect API may take to start: 10-20 s on 2 idle cores, over 120 s on this shared machine
HARNESS_STARTUP_TIMEOUT = 600

# the order of the suite (and of the combined README)
NAMES = ("sweep_overhead", "snapshot", "orchestration", "parallel", "data_pipeline", "regret", "answer", "spread", "scale_out",
         "engines")


def cifar_available() -> bool:
    return CIFAR_TRAIN_REC.is_file() and CIFAR_TRAIN_REC.with_suffix(".idx").is_file()


def in_process_stages(setup, plan, folder: Path, config=None):
    """The run's stages (:class:`lrf.jobs.JobStages`) for ``setup`` in this process, caching in
    ``folder``/cache: the benchmarks do a run's work through the run's own jobs, not copies of them."""
    from lrf.cache import WorkCache
    from lrf.cluster import InProcess
    from lrf.config import SweepConfig
    from lrf.engine import prepare_setup
    from lrf.jobs import JobStages

    prepared, _ = prepare_setup(setup)
    return JobStages(prepared, config or SweepConfig(), plan, WorkCache(folder / "cache"), InProcess(),
                     report=lambda line: None)


# --- timing -----------------------------------------------------------------------


def interleaved(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run every variant once per round, taking turns: round r runs the variants rotated by r
    (AB, BA, ... for two; ABC, BCA, CAB, ... for three), reversed every other cycle, so each
    variant runs in every position equally often and none always follows the same one.

    Each variant returns its own seconds (so it can leave set-up and clean-up out).
    """
    names = list(variants)
    k = len(names)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % k:] + names[: r % k]
        if (r // k) % 2:
            order = order[::-1]
        for name in order:
            times[name].append(float(variants[name]()))
    return times


def timed(call: Callable[[], Any], wait: Callable[[], Any] | None = None) -> float:
    """Seconds ``call()`` takes. ``wait``, if given, runs before the clock starts and again before
    it stops: :func:`benchmarks._engine.sync` there times MXNet work with the device idle before
    and drained after (MXNet queues work: the copies and updates still run when most calls return)."""
    if wait is not None:
        wait()
    started = time.perf_counter()
    call()
    if wait is not None:
        wait()
    return time.perf_counter() - started


def ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """Per-round ratios a/b (the rounds are paired: same round, adjacent in time)."""
    return [x / y for x, y in zip(a, b)]


@dataclass
class Stat:
    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Stat":
        values = [float(v) for v in values]
        if not values:
            return cls(math.nan, math.nan, math.nan, 0)
        return cls(statistics.median(values), min(values), max(values), len(values))

    def fmt(self, pattern: str = "{:.3f}") -> str:
        if self.n <= 1:
            return pattern.format(self.median)
        return f"{pattern.format(self.median)} [{pattern.format(self.low)}–{pattern.format(self.high)}]"


# --- results ----------------------------------------------------------------------


@dataclass
class Figure:
    """One reported figure: a value (median over rounds), its spread, its goal, met or not."""

    name: str
    value: float
    low: float | None = None
    high: float | None = None
    n: int = 1
    goal: str | None = None  # e.g. "<= 1.02"
    met: bool | None = None  # None: no goal, or informational
    unit: str = ""
    note: str = ""

    def shown(self) -> str:
        pattern = _pattern(self.value)
        text = _num(self.value, pattern)
        if self.low is not None and self.high is not None and self.n > 1:
            text += f" [{_num(self.low, pattern)}–{_num(self.high, pattern)}]"
        return text + (f" {self.unit}" if self.unit else "")


def figure(name: str, values: Sequence[float] | float, *, goal: str | None = None, le: float | None = None,
           ge: float | None = None, unit: str = "", note: str = "") -> Figure:
    """A figure from one value or from per-round values; ``le``/``ge`` judge the median."""
    if isinstance(values, (int, float)):
        stat = Stat(float(values), float(values), float(values), 1)
    else:
        stat = Stat.of(values)
    met = None
    if le is not None:
        goal = goal or f"≤ {le:g}"
        met = bool(stat.median <= le)
    elif ge is not None:
        goal = goal or f"≥ {ge:g}"
        met = bool(stat.median >= ge)
    return Figure(name, stat.median, stat.low, stat.high, stat.n, goal, met, unit, note)


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---:" if i else ":---" for i in range(len(self.columns))) + "|"]
        for row in self.rows:
            lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"


@dataclass
class Report:
    name: str
    title: str
    quick: bool
    goal: str  # what the benchmark is for, in one or two sentences
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sizes: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    seconds: float = math.nan
    date: str = ""
    command: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)

    def markdown(self, level: int = 1) -> str:
        h = "#" * level
        out = [f"{h} {self.title}", "", self.goal, "",
               f"Re-run alone: `{self.command}` · run {self.date} · took {self.seconds:.0f} s · "
               f"lrf at {self.machine.get('commit', '?')} · "
               f"load average {self.load.get('start', '?')} → {self.load.get('end', '?')}"
               + (" · **--quick sizes**" if self.quick else ""), ""]
        if self.sizes:
            out += ["Sizes: " + "; ".join(f"{k} = {v}" for k, v in self.sizes.items()), ""]
        if self.figures:
            out += [figures_markdown(self.figures), ""]
        for table in self.tables:
            out += [table.markdown()]
        if self.notes:
            out += [f"{h}# Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(out)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Report":
        data = dict(data)
        data["figures"] = [Figure(**f) for f in data.get("figures", [])]
        data["tables"] = [Table(**t) for t in data.get("tables", [])]
        return cls(**data)


def figures_markdown(figures: Sequence[Figure]) -> str:
    lines = ["| figure | value: median [min–max] | goal | met |", "|:---|---:|:---:|:---:|"]
    for f in figures:
        met = "—" if f.met is None else ("**met**" if f.met else "**missed**")
        note = f" ({f.note})" if f.note else ""
        lines.append(f"| {f.name}{note} | {f.shown()} | {f.goal or '—'} | {met} |")
    return "\n".join(lines) + "\n"


def _pattern(value: float) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "{}"
    a = abs(value)
    if a == 0:
        return "{:.3g}"
    if a >= 100:
        return "{:.0f}"
    if a >= 0.01:
        return "{:.3f}"
    return "{:.3g}"


def _num(value: Any, pattern: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return "diverged" if math.isnan(value) else str(value)
    return pattern.format(value)


NON_FINITE = ("Infinity", "-Infinity", "NaN")  # how strict JSON (lrf._io) stores a non-finite number


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str) and value in NON_FINITE:  # a table read back from its JSON
        value = float(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _num(value, _pattern(value))
    return str(value)


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, Python, mxnet and prefect versions, the repository's commit."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    commit = "?"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=10).stdout.strip() or "?"
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "lrf", "tasks", "flows"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        if dirty:
            commit += " (lrf/, tasks/ or flows/ modified)"
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "ram": ram, "python": platform.python_version(),
        "mxnet": version("mxnet"), "prefect": version("prefect"), "numpy": version("numpy"),
        "os": platform.platform(), "commit": commit,
    }


def machine_markdown(m: dict[str, Any]) -> str:
    return (f"{m.get('cpu')}, {m.get('cores')} cores, {m.get('ram')} RAM, no GPU; Python {m.get('python')}, "
            f"mxnet {m.get('mxnet')}, prefect {m.get('prefect')}, numpy {m.get('numpy')}; {m.get('os')}; "
            f"lrf at {m.get('commit')}")


def write_report(report: Report, out_dir: Path) -> None:
    """``NAME.json`` (strict JSON: non-finite floats as strings) and ``NAME.md``, each written atomically."""
    _io.write_text(out_dir / f"{report.name}.json", _io.to_json(report.to_dict()))
    md = report.markdown() + "\nMachine: " + machine_markdown(report.machine) + "\n"
    _io.write_text(out_dir / f"{report.name}.md", md)


# benchmarks that need one of lrf's optional extras (uv's --extra), by name
EXTRAS = {"engines": "torch"}


def command(quick: bool, only: str | None = None) -> str:
    names = NAMES if only is None else [n.strip() for n in only.split(",")]
    extras = sorted({EXTRAS[n] for n in names if n in EXTRAS})
    cmd = "uv run --locked" + "".join(f" --extra {e}" for e in extras) + " python -m benchmarks"
    if quick:
        cmd += " --quick"
    if only:
        cmd += f" --only {only}"
    return cmd


def module_main(name: str, run: Callable[[bool], Report]) -> None:
    """``python -m benchmarks.NAME [--quick] [--out DIR]``: run one benchmark, print and write it."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}")
    parser.add_argument("--quick", action="store_true", help="smoke sizes (digits only, tiny budgets)")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()
    out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    load_start = load_average()
    started = time.perf_counter()
    report = run(args.quick)
    report.seconds = round(time.perf_counter() - started, 1)
    report.date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report.command = command(args.quick, name)
    report.machine = machine()
    report.load = {"start": load_start, "end": load_average()}
    print(report.markdown(level=2), flush=True)
    write_report(report, out)
    print(f"written: {out / (name + '.json')}, {out / (name + '.md')}", flush=True)


def log(message: str) -> None:
    """Progress on stderr with a timestamp (the tables go to stdout)."""
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)
