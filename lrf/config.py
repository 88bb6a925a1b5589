"""What a finder run is: the data and model to train, the sweep, and the check of its pick.

The one framework-free home of lrf's configuration. Every default is written here
once; the CLI, the flow, the deployments and the benchmarks read them from these
classes. Each class validates its fields at construction, cheaply (syntax, ranges,
choices: no file is opened, no framework imported), so a process validates its
input once, at its entry, and passes the value objects around. What the engine
must check on top (files, model names, devices) is
:func:`lrf.engine.prepare_setup`.

How the work is *executed* (how many jobs at once, where) is not part of what a
run is: see :mod:`lrf.execution`.

>>> Setup().data, Setup().data_spec
('digits', DataSpec(source='digits', path=None))
>>> Setup(recipe="spirals.recipe:recipe").data is None  # the recipe brings its data
True
>>> SweepConfig(lr_start=1e-5).lr_multiplier
1.1
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

from lrf._validate import bounded, check_bounds, one_of, positive_float

# --- what to train --------------------------------------------------------------------

DATA_SOURCES = ("digits", "cifar10", "rec", "folder")
DATA_FORMS = "digits, cifar10, cifar10:ROOT, rec:PATH/train.rec, folder:PATH"
_DEVICE = re.compile(r"^(cpu|gpu)(?::(\d+))?$")  # one device name
DEFAULT_DATA = "digits"  # offline: ships inside scikit-learn's wheel
SMALL_CNN = "small-cnn"  # for the offline digits
REFERENCE_MODEL = "resnet18_v2"  # SPEC §3: the pre-activation ResNet-18 of the Gluon model zoo
# each engine's ResNet-18, for data other than digits: torchvision's is the original (v1)
REFERENCE_MODELS = {"mxnet": REFERENCE_MODEL, "torch": "resnet18"}


@dataclass(frozen=True)
class DataSpec:
    """A data source: its name and, for some sources, a path; the parsed ``data`` text.

    ``str(spec)`` gives the text :func:`parse_data_spec` reads back.

    Raises:
        ValueError: unknown source, missing path (rec, folder) or a path given to ``digits``.
    """

    source: str
    path: str | None = None

    def __post_init__(self) -> None:
        if self.source not in DATA_SOURCES:
            raise ValueError(f"data= must be one of {DATA_FORMS}; got data={str(self)!r}")
        if self.path == "":
            raise ValueError(f"data= has an empty path; got data={str(self)!r}")
        if self.source == "digits" and self.path is not None:
            raise ValueError(f"data=digits takes no path; got data={str(self)!r}")
        if self.source in ("rec", "folder") and self.path is None:
            raise ValueError(f"data={self.source} needs a path ({self.source}:PATH); got data={str(self)!r}")

    def __str__(self) -> str:
        return self.source if self.path is None else f"{self.source}:{self.path}"


def parse_data_spec(text: str) -> DataSpec:
    """Parse ``digits``, ``cifar10[:ROOT]``, ``rec:PATH`` or ``folder:PATH`` (syntax only).

    Raises:
        TypeError: ``text`` is not a string.
        ValueError: unknown source or missing path, naming ``data=``.

    >>> parse_data_spec("rec:/data/train.rec")
    DataSpec(source='rec', path='/data/train.rec')
    """
    if not isinstance(text, str):
        raise TypeError(f"data= must be a string, got data={text!r}")
    source, sep, path = text.strip().partition(":")
    return DataSpec(source, path if sep else None)


@dataclass(frozen=True)
class DeviceSpec:
    """A device name parsed: ``cpu`` (index 0), ``gpu`` (= ``gpu:0``) or ``gpu:N``.

    >>> parse_device_spec("gpu:2")
    DeviceSpec(kind='gpu', index=2)
    """

    kind: str
    index: int = 0

    def __str__(self) -> str:
        return self.kind if self.kind == "cpu" and self.index == 0 else f"{self.kind}:{self.index}"


DEVICE_FORMS = "cpu, gpu, gpu:N, a list gpu:0,gpu:2 or gpu:all"
ALL_GPUS = "gpu:all"
# the syntax of a run's device text, for :func:`parse_devices` and the flow's typed parameter
DEVICE_PATTERN = r"^\s*((cpu|gpu)(:\d+)?(\s*,\s*(cpu|gpu)(:\d+)?)*|gpu:all)\s*$"


def parse_device_spec(text: str) -> DeviceSpec:
    """Parse one device name (syntax only; whether the machine has it is the engine's check).

    Raises:
        ValueError: anything but ``cpu``, ``gpu`` or ``gpu:N``, naming ``device=``.
    """
    match = _DEVICE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"device must be 'cpu', 'gpu' or 'gpu:N', got device={text!r}")
    return DeviceSpec(match.group(1), int(match.group(2) or 0))


def parse_devices(text: str) -> tuple[DeviceSpec, ...]:
    """Parse a run's devices: ``cpu``, ``gpu``, ``gpu:N`` or a list of GPUs ``gpu:0,gpu:2``
    (syntax only). ``gpu:all`` is resolved by the engine, which counts the GPUs
    (:func:`lrf.engine.prepare_setup`); here it parses to no device.

    Raises:
        ValueError: another form, ``cpu`` in a list, or a GPU listed twice, naming ``device=``.

    >>> parse_devices("gpu:0,gpu:2")
    (DeviceSpec(kind='gpu', index=0), DeviceSpec(kind='gpu', index=2))
    """
    if not isinstance(text, str):
        raise ValueError(f"device must be one of {DEVICE_FORMS}, got device={text!r}")
    if text.strip() == ALL_GPUS:
        return ()
    if re.match(DEVICE_PATTERN, text) is None:
        raise ValueError(f"device must be one of {DEVICE_FORMS}, got device={text!r}")
    names = [name.strip() for name in text.split(",")]
    devices = tuple(parse_device_spec(name) for name in names)
    if len(devices) > 1 and any(d.kind == "cpu" for d in devices):
        raise ValueError(f"device lists name GPUs only (cpu is one device, its cores shared), got device={text!r}")
    if len(set(devices)) != len(devices):
        raise ValueError(f"device lists a GPU twice, got device={text!r}")
    return devices


OPTIMIZER_VALUE_TYPES = (bool, int, float, str)


def check_optimizer_params(optimizer: object, params: object) -> None:
    """The engine-independent part of an optimizer's check: a name, and a mapping of names to
    plain values (numbers finite) that does not set the learning rate (the finder sets it).
    What names and ranges an optimizer takes is the engine's check (``check_optimizer``).

    Raises:
        TypeError/ValueError naming ``optimizer`` or ``optimizer_params`` and the value.
    """
    if not isinstance(optimizer, str) or not optimizer:
        raise ValueError(f"optimizer must be an optimizer's name such as 'sgd' or 'adam', got optimizer={optimizer!r}")
    if params is None:
        return
    if not isinstance(params, dict):
        raise TypeError(f"optimizer_params must be a mapping of argument names to values, got "
                        f"optimizer_params={params!r}")
    for key, value in params.items():
        shown = f"optimizer_params={{{key!r}: {value!r}}}"
        if not isinstance(key, str) or not key:
            raise TypeError(f"optimizer_params names its arguments by text, got {shown}")
        if key in ("learning_rate", "lr"):
            raise ValueError(f"{shown} sets the learning rate, which the finder sets itself: leave it out")
        if not isinstance(value, OPTIMIZER_VALUE_TYPES):
            raise TypeError(f"optimizer_params values are numbers, true/false or text, got {shown}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"optimizer_params values must be finite, got {shown}")


def parse_key_values(name: str, items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` texts (a command line's) as a mapping: values true/false as booleans,
    numbers as int or float, the rest as text.

    >>> parse_key_values("optimizer_params", ["momentum=0.9", "wd=5e-4", "centered=true"])
    {'momentum': 0.9, 'wd': 0.0005, 'centered': True}

    Raises:
        ValueError: an item without ``=`` or without a key, naming ``name``.
    """
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{name} takes KEY=VALUE items, got {name}={item!r}")
        parsed[key.strip()] = _plain_value(text.strip())
    return parsed


def _plain_value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def default_model(spec: DataSpec, engine: str) -> str:
    """The small CNN for the offline digits, the engine's ResNet-18 for the rest (MXNet's:
    the reference ResNet-18 v2)."""
    return SMALL_CNN if spec.source == "digits" else REFERENCE_MODELS[engine]


@dataclass(frozen=True)
class Setup:
    """What to train on, and where (SPEC §2-3).

    Attributes:
        data: a data-source text: digits (offline default), cifar10[:ROOT],
            rec:PATH/train.rec, folder:PATH; None picks :data:`DEFAULT_DATA`, or nothing
            with a recipe (which brings its own data).
        model: a model name; None picks :func:`default_model` for the data. Which names
            exist is the engine's business (:func:`lrf.gluon.engine.check_model_name`).
        device: "cpu" (default), "gpu", "gpu:N", a list of GPUs "gpu:0,gpu:2" or
            "gpu:all": candidates are placed one per device, the sweep on the first.
        batch_size: samples per batch (128, the reference).
        seed: seeds the initial weights and the batch order (42).
        loader_workers: data loader processes (threads on a Dask worker); None = one per
            CPU core (SPEC §3).
        engine: the training framework, a name of :data:`lrf.engine.ENGINES` ("mxnet").
        optimizer: the optimizer's name in the engine's registry ("sgd", the reference; the
            sweep and every candidate use it). Which names exist is the engine's check.
        optimizer_params: its constructor arguments other than the learning rate, e.g.
            ``{"momentum": 0.9, "wd": 5e-4}`` (None: the optimizer's defaults).
        recipe: the user's own network, loss and data: an import path
            ``package.module:name`` to a factory (:mod:`lrf.recipe`); ``data`` and ``model``
            are then the recipe's business and stay None (None: the built-in data and
            model named by them).

    ``data_spec`` and ``device_spec`` are ``data`` and ``device`` parsed (once, here).

    Raises:
        ValueError/TypeError at construction, naming the field and the value.
    """

    data: str | None = None  # DEFAULT_DATA unless a recipe brings its own
    model: str | None = None
    device: str = "cpu"
    batch_size: int = bounded(128, ge=1)
    seed: int = bounded(42, ge=0)
    loader_workers: int | None = bounded(None, ge=0)
    engine: str = "mxnet"  # the reference engine
    optimizer: str = "sgd"  # plain SGD, SPEC §2
    optimizer_params: dict[str, Any] | None = None  # the optimizer's own defaults
    recipe: str | None = None  # the engine's built-in recipe, from data and model

    def __post_init__(self) -> None:
        one_of("engine", self.engine, engine_names())
        if self.recipe is not None:
            from lrf.recipe import check_recipe_path

            check_recipe_path(self.recipe)
        check_optimizer_params(self.optimizer, self.optimizer_params)
        if self.recipe is not None and self.model is not None:
            raise ValueError(f"model and recipe exclude each other: the recipe builds its own network, "
                             f"got model={self.model!r} and recipe={self.recipe!r}")
        if self.recipe is not None and self.data is not None:
            raise ValueError(f"data and recipe exclude each other: the recipe brings its own data, "
                             f"got data={self.data!r} and recipe={self.recipe!r}")
        if self.data is None and self.recipe is None:
            object.__setattr__(self, "data", DEFAULT_DATA)
        object.__setattr__(self, "_data_spec", None if self.data is None else parse_data_spec(self.data))
        object.__setattr__(self, "_devices", parse_devices(self.device))
        if self.model is None and self.recipe is None:
            object.__setattr__(self, "model", default_model(self.data_spec, self.engine))
        elif self.model is not None and (not isinstance(self.model, str) or not self.model):
            raise ValueError(f"model must be a model name, got model={self.model!r}")
        check_bounds(self)

    @property
    def network(self) -> str:
        """What is trained, for people: the model's name, or ``recipe PATH``."""
        return self.model if self.recipe is None else f"recipe {self.recipe}"

    @property
    def subject(self) -> str:
        """What is trained on what, for people: ``small-cnn on digits``, or ``recipe PATH``."""
        return f"{self.model} on {self.data}" if self.recipe is None else self.network

    @property
    def data_spec(self) -> DataSpec | None:
        """``data``, parsed (None with a recipe: its data is the recipe's)."""
        return self._data_spec  # type: ignore[attr-defined]

    @property
    def devices(self) -> tuple[DeviceSpec, ...]:
        """The devices, parsed (empty for ``gpu:all`` until the engine resolves it)."""
        return self._devices  # type: ignore[attr-defined]

    @property
    def device_spec(self) -> DeviceSpec:
        """The one device a job of this setup uses (the first of a list: the sweep's)."""
        if not self.devices:
            raise ValueError(f"device={self.device!r} is not resolved to GPUs yet (lrf.engine.prepare_setup)")
        return self.devices[0]

    def on_device(self, device: str) -> "Setup":
        """This setup, run on ``device`` (a job's, on the worker it was placed on)."""
        return self if device == self.device else dataclasses.replace(self, device=device)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_batch_order(self, number: int) -> "Setup":
        """The setup of sweep ``number`` of several: its batches drawn with ``seed + number``
        (its weights are the run's all the same: loaded from the initial parameters)."""
        return self if number == 0 else dataclasses.replace(self, seed=self.seed + number)

    def cache_fields(self) -> dict[str, Any]:
        """The fields that determine the numbers this setup produces, for cache keys
        (the loader's worker count does not: the batch order comes from the seed alone)."""
        return {k: v for k, v in self.to_dict().items() if k != "loader_workers"}


# --- the sweep ------------------------------------------------------------------------

SCHEDULES = ("exponential", "linear")


@dataclass(frozen=True)
class SweepConfig:
    """Everything that defines a sweep; the defaults are the reference's (SPEC §4, §5).

    Attributes:
        lr_start: rate of the first iteration (1e-6).
        lr_multiplier: factor between iterations of the reference schedule (1.1).
        lr_end: if set, sweep a range instead: ``max_iter`` steps from ``lr_start``
            to ``lr_end`` (None).
        schedule: "exponential" (reference) or "linear" (Smith 2017; needs ``lr_end``).
        smoothing: weight of the old running mean, in [0, 1) (0.3).
        min_iter: no divergence stop before this many iterations (20).
        criterion: stopping criterion name, see :data:`lrf.stopping.CRITERIA` ("twice-first":
            the reference's, SPEC §5).
        max_iter: at most this many iterations (1000; the reference has no bound).
        max_lr: never train at a rate above this (10.0; the reference has no bound).

    Raises:
        ValueError/TypeError at construction, naming the field and the value.
    """

    lr_start: float = bounded(1e-6, gt=0)
    lr_multiplier: float = bounded(1.1, gt=1)
    lr_end: float | None = bounded(None, gt=0)
    schedule: str = "exponential"
    smoothing: float = bounded(0.3, ge=0, lt=1)
    min_iter: int = bounded(20, ge=1)
    criterion: str = "twice-first"
    max_iter: int = bounded(1000, ge=1)
    max_lr: float = bounded(10.0, gt=0)

    def __post_init__(self) -> None:
        check_bounds(self)
        one_of("schedule", self.schedule, SCHEDULES)
        one_of("criterion", self.criterion, criterion_names(), RENAMED["criterion"])
        if self.lr_start > self.max_lr:
            raise ValueError(f"lr_start must be <= max_lr, got lr_start={self.lr_start!r}, max_lr={self.max_lr!r}")
        if self.lr_end is None:
            if self.schedule == "linear":
                raise ValueError("schedule='linear' needs lr_end (a linear sweep has two ends), got lr_end=None")
            return
        if self.lr_end > self.max_lr:
            raise ValueError(f"lr_end must be <= max_lr, got lr_end={self.lr_end!r}, max_lr={self.max_lr!r}")
        if self.lr_end <= self.lr_start:
            raise ValueError(f"lr_end must be > lr_start, got lr_end={self.lr_end!r}, lr_start={self.lr_start!r}")
        if self.max_iter < 2:
            raise ValueError(f"a range sweep (lr_end set) needs max_iter >= 2, got max_iter={self.max_iter!r}")

    def expected_iterations(self) -> int:
        """An upper bound of the sweep's length: ``max_iter``, or fewer when ``max_lr``
        comes first on the reference schedule (for a progress bar's total)."""
        if self.lr_end is not None:
            return self.max_iter
        # logs apart, not of the ratio: max_lr / a subnormal lr_start (1e-320) overflows to inf
        steps = (math.log(self.max_lr) - math.log(self.lr_start)) / math.log(self.lr_multiplier)
        return min(self.max_iter, math.floor(steps) + 1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SweepConfig":
        """The configuration :meth:`to_dict` wrote, by this lrf or an earlier one (a criterion
        recorded under its old name reads as its new one)."""
        criterion = data.get("criterion")
        if criterion in RENAMED["criterion"]:
            data = {**data, "criterion": RENAMED["criterion"][criterion]}
        return cls(**data)


# --- the check of the pick ------------------------------------------------------------

REFERENCE_MULTIPLIERS = (1.0, 10.0, 0.1)  # the pick, ten times it, a tenth of it (SPEC §7)
PLANS = ("multiples", "refine")
# names given up for one name per concept ("reference" named a rule, a criterion and a plan):
# a configuration that still says them is told the new one
RENAMED = {"plan": {"reference": "multiples"}, "criterion": {"reference": "twice-first"}}
# The refine plan spends at most this many times `iterations` in all: what the reference
# check spends on its three candidates.
REFINE_BUDGET = 3


@dataclass(frozen=True)
class CandidatePlan:
    """How the pick is checked: the rule, the candidate rates and their training budget.

    Attributes:
        rule: suggestion rule name ("reference"; see :mod:`lrf.rules`).
        candidate_multipliers: candidates = pick x each (1, 10, 0.1: SPEC §7).
        candidate_rates: explicit rates instead of multipliers (None).
        iterations: training iterations per candidate (500, SPEC §7); with the refine
            plan, those of the candidates that reach the last rung. At least 2: the first
            loss is measured before any update.
        last_k: also rank by the mean loss of the last ``last_k`` iterations (20); more
            than ``iterations`` becomes ``iterations`` (the mean of them all, reported as
            such). The refine plan's earlier rungs may be shorter: they rank on what they have.
        plan: "multiples" (the pick's multiples, each trained ``iterations``: SPEC §7) or "refine"
            (successive halving over ``refine_rates`` log-spaced rates from pick /
            ``refine_span`` to pick x ``refine_span``: the weaker half stops at each
            rung, the others continue from their saved state; at most
            :data:`REFINE_BUDGET` x ``iterations`` in all, as the reference check).
        refine_rates: rates of the refine plan's first rung (9).
        refine_span: the refine plan's range, pick / span to pick x span (10: a decade
            each way, the reference candidates' range).
        rungs: rungs of the refine plan; each keeps the better half (3).
        sweeps: range tests from the same initial weights on different batch orders (1);
            the pick is their median, and their spread (largest / smallest pick) says how
            sure it is.
        spread_threshold: above this spread the pick is uncertain and the candidates'
            range is widened by the spread (3.0, half a decade: above every spread of 3
            sweeps measured on digits, 1.21-2.85 over 5 weight seeds, benchmarks/spread.py).

    Raises:
        ValueError/TypeError at construction, naming the field and the value.
    """

    rule: str = "reference"
    candidate_multipliers: tuple[float, ...] = REFERENCE_MULTIPLIERS
    candidate_rates: tuple[float, ...] | None = None
    # a candidate's first loss is measured before any update: with one iteration every
    # candidate has the same loss, and the check would "confirm" whatever it is given
    iterations: int = bounded(500, ge=2, why="the first loss is measured before any update")
    last_k: int = bounded(20, ge=1)
    plan: str = "multiples"
    refine_rates: int = bounded(9, ge=2)
    refine_span: float = bounded(10.0, gt=1)
    rungs: int = bounded(3, ge=1)
    sweeps: int = bounded(1, ge=1)
    spread_threshold: float = bounded(3.0, gt=1)

    def __post_init__(self) -> None:
        one_of("rule", self.rule, rule_names())
        one_of("plan", self.plan, PLANS, RENAMED["plan"])
        check_bounds(self)
        if self.candidate_rates is not None:
            object.__setattr__(self, "candidate_rates", validate_rates("candidate_rates", self.candidate_rates))
        else:
            multipliers = validate_rates("candidate_multipliers", self.candidate_multipliers)
            object.__setattr__(self, "candidate_multipliers", multipliers)
        if self.last_k > self.iterations:
            # the mean of the last k of fewer than k losses is the mean of them all: say so, in
            # the plan every table and summary reports, rather than label it "last k"
            object.__setattr__(self, "last_k", self.iterations)
        if self.plan == "refine":
            self.rung_schedule(self.refine_rates if self.candidate_rates is None else len(self.candidate_rates))
        self._check_plan_settings()

    def _check_plan_settings(self) -> None:
        # a setting the chosen plan does not read would be ignored without a word (a deployment
        # form shows them all): refuse it, naming it and the plan it belongs to
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        if self.plan == "refine" and self.candidate_rates is None \
                and self.candidate_multipliers != defaults["candidate_multipliers"]:
            raise ValueError(
                f"candidate_multipliers={list(self.candidate_multipliers)!r} is read by plan='multiples' only; "
                f"plan='refine' trains refine_rates={self.refine_rates} rates from pick / refine_span to "
                f"pick x refine_span (or give candidate_rates)")
        if self.plan == "multiples":
            unread = [f"{name}={getattr(self, name)!r}" for name in ("refine_rates", "refine_span", "rungs")
                      if getattr(self, name) != defaults[name]]
            if unread:
                raise ValueError(f"{', '.join(unread)} shape(s) plan='refine' only, and this plan is 'multiples': "
                                 f"add plan='refine' or leave them at their defaults")

    def rung_schedule(self, num_rates: int) -> list[tuple[int, int, int]]:
        """``(candidates, start, end)`` per rung for ``num_rates`` first-rung candidates: how
        many train in the rung, from which iteration to which.

        The multiples plan is one rung: every candidate from 0 to ``iterations``. The refine
        plan halves the candidates at each rung (rounding down) and ends its last rung at
        ``iterations``; earlier rungs end at ``f x 2**r x iterations`` with the largest
        ``f`` that keeps the total within :data:`REFINE_BUDGET` x ``iterations``.

        >>> CandidatePlan(plan="refine").rung_schedule(9)
        [(9, 0, 55), (4, 55, 111), (2, 111, 500)]

        Raises:
            ValueError: the rungs cannot fit the budget (too many rates survive to the
                last rung, or a rung would train for less than one iteration).
        """
        if self.plan == "multiples":
            return [(num_rates, 0, self.iterations)]
        counts = [num_rates // 2**r for r in range(self.rungs)]
        # the first rung's rates are refine_rates log-spaced ones, or the user's candidate_rates
        rates_name = "refine_rates" if self.candidate_rates is None else "candidate_rates"
        rates = f"refine_rates={num_rates!r}" if self.candidate_rates is None else f"the {num_rates} candidate_rates"
        if counts[-1] < 1 or counts[-1] >= REFINE_BUDGET:
            raise ValueError(
                f"rungs={self.rungs!r} over {rates} leave {counts[-1]} rate(s) for the last "
                f"rung; it needs 1 or 2 to stay within {REFINE_BUDGET} x iterations: change rungs or {rates_name}"
            )
        spread = sum(2**r * (counts[r] - counts[r + 1]) for r in range(self.rungs - 1))
        fraction = (REFINE_BUDGET - counts[-1]) / spread if spread else 0.0
        ends = [math.floor(fraction * 2**r * self.iterations) for r in range(self.rungs - 1)] + [self.iterations]
        if any(end <= start for start, end in zip([0, *ends[:-1]], ends)):
            raise ValueError(
                f"rungs={self.rungs!r} with {rates} leave an empty rung "
                f"at iterations={self.iterations!r}: fewer rungs or more iterations"
            )
        return [(count, start, end) for count, start, end in zip(counts, [0, *ends[:-1]], ends)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def engine_names() -> tuple[str, ...]:
    """The engines a setup may name: the registry's (:data:`lrf.engine.ENGINES`)."""
    from lrf.engine import ENGINES  # lrf.engine reads this module: imported when asked

    return tuple(ENGINES)


def rule_names() -> tuple[str, ...]:
    """The suggestion rules a configuration may name: the registry's (:data:`lrf.rules.RULES`)."""
    from lrf.rules import RULES  # lrf.rules reads this module's defaults: imported when asked

    return tuple(RULES)


def criterion_names() -> tuple[str, ...]:
    """The stopping criteria a configuration may name: the registry's (:data:`lrf.stopping.CRITERIA`)."""
    from lrf.stopping import CRITERIA

    return tuple(CRITERIA)


def validate_rates(name: str, values: Sequence[float]) -> tuple[float, ...]:
    """Positive, finite, distinct numbers, at least one; errors name the parameter and value."""
    if values is None or isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of numbers, got {name}={values!r}")
    if len(values) == 0:
        raise ValueError(f"{name} must name at least one rate, got {name}={list(values)!r}")
    rates = tuple(positive_float(name, v) for v in values)
    if len(set(rates)) != len(rates):
        raise ValueError(f"{name} must not repeat a value, got {name}={list(values)!r}")
    return rates


def default(cls: type, name: str) -> Any:
    """The default of field ``name`` of the configuration class ``cls`` (for entry points).

    >>> default(SweepConfig, "lr_start")
    1e-06
    """
    return {f.name: f.default for f in dataclasses.fields(cls)}[name]
