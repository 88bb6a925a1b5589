"""The seam between lrf and a training framework: one engine per framework, looked up by name.

An engine is a module (MXNet's: :mod:`lrf.gluon.engine`) that imports its framework
only inside the functions that train, so that an orchestrating process can ask
it the entry checks without paying for the framework. It provides:

- ``NAME``; ``PARAMS_SUFFIX`` (its parameter files' suffix); ``check_model_name(name)``; ``check_data_source(source, data)`` (the sources it reads); ``check_optimizer(name, params)``; ``visible_gpus()`` and ``NO_GPU_HINT`` (the
  devices it could use here); ``GPU_CODE`` (:class:`lrf.gpus.Architectures`), ``GPU_CODE_OF`` and
  ``NO_GPU_CODE_HINT`` (the GPUs its build can run on, refused otherwise before any work); ``check_init_params(path)`` and
  ``check_fits(path, fresh, what)`` (a user's saved parameters, read without the
  framework);
- ``open_learner(setup, init_params)``: a learner in this process (``lrf find``'s sweep);
- ``warm_up()``: import what its jobs need (once per worker, ahead of the first job);
- ``JOBS``: ``{"init" | "sweep" | "candidate": work(setup, args, paths, folder, say)}``,
  each returning ``(result JSON or None, {name: file path})``: the work a job does
  where it was placed (:mod:`lrf.jobs` runs them, in this process or on a Dask worker).

Everything else (the sweep loop, rules, plans, the run, the cache, the artifacts)
is lrf's, the same for every engine. A second engine is one module and one line of
:data:`ENGINES`.

>>> engine_for().NAME
'mxnet'
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from types import ModuleType

from lrf.config import ALL_GPUS, DeviceSpec, Setup
from lrf.datasets import DataSize, resolve_data_spec, validate_data_spec

ENGINES = {"mxnet": "lrf.gluon.engine", "torch": "lrf.pytorch.engine"}  # engine name -> its module
DEFAULT_ENGINE = Setup.engine


def engine_for(name: str = DEFAULT_ENGINE) -> ModuleType:
    """The engine module registered as ``name``; ValueError naming ``engine`` otherwise."""
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(sorted(ENGINES))}, got engine={name!r}")
    return importlib.import_module(ENGINES[name])


def optimizer_names() -> tuple[str, ...]:
    """Every optimizer name some engine has (a flow's choices; each engine checks its own)."""
    return tuple(sorted({name for engine in ENGINES for name in engine_for(engine).OPTIMIZERS}))


def resolve_devices(text: str, visible: int, hint: str = "") -> str:
    """``text``, or for ``gpu:all`` the list of the ``visible`` GPUs (``gpu:0,gpu:1,...``).

    Raises:
        ValueError: ``gpu:all`` where no GPU is visible, naming device.

    >>> resolve_devices("gpu:all", visible=3)
    'gpu:0,gpu:1,gpu:2'
    """
    if text.strip() != ALL_GPUS:
        return text
    if visible == 0:
        raise ValueError(f"device={text!r} asks for every GPU, but this machine has no visible GPU{hint}")
    return ",".join(f"gpu:{i}" for i in range(visible))


def check_device(spec: DeviceSpec, text: str, visible: int, hint: str = "") -> None:
    """Raise ValueError if this machine lacks the device ``spec`` (parsed from ``text``),
    ``visible`` GPUs being there; ``hint`` says why there may be none."""
    if spec.kind == "cpu":
        if spec.index != 0:
            raise ValueError(f"device must be 'cpu', 'gpu' or 'gpu:N' (there is one CPU device), got device={text!r}")
        return
    if spec.index >= visible:
        raise ValueError(f"device={text!r} asks for GPU {spec.index}, but this machine has {visible} visible "
                         f"GPU(s){hint if visible == 0 else ''}")


def check_gpu_code(setup: Setup, engine: ModuleType, gpus) -> None:
    """Raise ValueError if a GPU ``setup.device`` selects (CUDA's numbering; ``gpus`` as
    :func:`lrf.gpus.visible` lists them) has no device code in the engine's build
    (``GPU_CODE``, ``GPU_CODE_OF``, ``NO_GPU_CODE_HINT``)."""
    from lrf.gpus import check_runs_on

    indices = [d.index for d in setup.devices if d.kind == "gpu"]
    check_runs_on(indices, setup.device, gpus, engine.GPU_CODE, engine.GPU_CODE_OF, engine.NO_GPU_CODE_HINT)


def prepare_setup(setup: Setup, engine: ModuleType | None = None) -> tuple[Setup, DataSize]:
    """The entry check of a setup, and the setup completed for the jobs (no framework imported).

    Returns the setup with its data source resolved (:func:`lrf.datasets.resolve_data_spec`)
    and ``gpu:all`` resolved to this machine's GPUs, and the data's size.

    Raises:
        ValueError: the engine not installed, unknown model, missing GPU, unusable data files, or a batch larger
            than the training data; the message names the parameter and the value.
    """
    engine = engine or engine_for(setup.engine)
    engine.check_installed()
    if setup.recipe is None:
        engine.check_model_name(setup.model)
        engine.check_data_source(setup.data_spec.source, setup.data)
    engine.check_optimizer(setup.optimizer, setup.optimizer_params)
    visible = engine.visible_gpus() if "gpu" in setup.device else 0
    setup = replace(setup, device=resolve_devices(setup.device, visible, engine.NO_GPU_HINT))
    for device in setup.devices:
        check_device(device, setup.device, visible, engine.NO_GPU_HINT)
    if visible:
        from lrf.gpus import cuda_visible_devices, query_gpus, visible as cuda_gpus

        known = query_gpus()
        if known is not None:  # a driver that cannot be asked refuses nothing
            check_gpu_code(setup, engine, cuda_gpus(known, cuda_visible_devices()))
    if setup.recipe is not None:  # its data is known where it runs: the first job checks it
        from lrf.recipe import recipe_fingerprint

        recipe_fingerprint(setup.recipe)  # found, names its factory, its declared data exists
        return setup, DataSize(0, 0)
    size = validate_data_spec(setup.data_spec)
    if setup.batch_size > size.num_train:
        raise ValueError(
            f"batch_size must be at most the {size.num_train} training samples of the data, "
            f"got batch_size={setup.batch_size} (data={setup.data!r})"
        )
    return replace(setup, data=str(resolve_data_spec(setup.data_spec))), size
