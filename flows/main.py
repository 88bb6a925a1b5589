"""``lrf-flow``: the main job. Runs the lr-finder flow with Prefect's embedded local API.

Every flow parameter is an option, generated from the flow's signature and the
``Args:`` section of its docstring (no hand-kept list to drift): ``--seed 7``,
``--candidate-rates 0.05 0.5 0.005``, ``--plan refine``. ``--config FILE`` reads a
TOML file whose keys are the parameter names; options on the command line override
it. Everything is checked before Prefect starts: a bad value exits with status 2 and
a message naming the option and the value.

No server to start: with no ``PREFECT_API_URL`` set, Prefect starts a temporary
local one for the run. Its start-up takes 10-25 s on 2 cores, past Prefect's
default 20 s limit, hence the longer limit set here (and analytics off, which
also avoids a harmless "database is locked" error on a fresh database). Prefect
too is checked first: a ``PREFECT_API_URL`` nobody answers at, or a
``PREFECT_HOME`` the temporary server cannot write its database into, exits 2 with
one line naming it.

SIGTERM and Ctrl-C stop the run within seconds and leave no process behind: the
jobs are stopped at once, the flow unwinds and is recorded as crashed, the
temporary server is stopped (:func:`lrf._signals.stop_started_processes`); the
exit status is 128 + the signal. Finished work is in the cache: the same command
again goes on from there.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import os
import signal
import sys
import tomllib
import types
import typing
import warnings
from pathlib import Path
from typing import Any, Callable

from lrf.config import CandidatePlan, Setup, SweepConfig
from lrf.execution import Execution

DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}
CONFIGURATION = (Setup, SweepConfig, CandidatePlan, Execution)  # what the flow's parameters build


def parser_from_signature(fn: Callable, **kwargs: Any) -> argparse.ArgumentParser:
    """An argument parser with one ``--option`` per parameter of ``fn``: its default, its
    description from the ``Args:`` section of ``fn``'s docstring, its type from the
    annotation (``int``, ``float``, ``str``, ``Literal`` choices, ``tuple[float, ...]`` as
    several values; ``X | None`` as ``X``). Values are not range-checked here: the caller
    validates them, as for every other entry point."""
    from prefect.utilities.callables import parameter_docstrings

    described = parameter_docstrings(inspect.getdoc(fn))
    hints = typing.get_type_hints(fn, include_extras=True)
    parser = argparse.ArgumentParser(**kwargs)
    for name, parameter in inspect.signature(fn).parameters.items():
        kind, many, choices = _option_type(hints[name])
        text = " ".join((described.get(name) or "").split())
        if choices:
            text += f" One of: {', '.join(choices)}."
        if parameter.default is not None:
            shown = " ".join(map(str, parameter.default)) if many else parameter.default
            text += f" (default: {shown})"
        option = "--" + name.replace("_", "-")
        if kind is dict:  # --optimizer-params momentum=0.9 wd=5e-4
            parser.add_argument(option, dest=name, nargs="+", default=argparse.SUPPRESS, metavar="KEY=VALUE",
                                type=str, action=_KeyValues, help=text.strip())
            continue
        if kind is bool:  # --recompute / --no-recompute
            parser.add_argument(option, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=text.strip())
            continue
        parser.add_argument(option, dest=name, type=kind, nargs="+" if many else None,
                            default=argparse.SUPPRESS, metavar=name.upper(), help=text.strip())
    return parser


class _KeyValues(argparse.Action):
    """``KEY=VALUE ...`` as a mapping (:func:`lrf.config.parse_key_values`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from lrf.config import parse_key_values

        try:
            setattr(namespace, self.dest, parse_key_values(self.dest, values))
        except ValueError as error:
            parser.error(f"argument {option_string}: {error}")


def _option_type(hint) -> tuple[Callable, bool, tuple[str, ...]]:
    """(converter, several values?, choices) for a parameter's annotation."""
    while True:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin is typing.Annotated:
            hint = args[0]
        elif origin in (typing.Union, types.UnionType):
            hint = next(a for a in args if a is not type(None))
        else:
            break
    if origin is typing.Literal:
        return str, False, tuple(args)
    if origin is dict:
        return dict, False, ()
    if origin is tuple:
        element, _ = _option_type(args[0])[:2]
        return element, True, ()
    return hint, False, ()


def build_parser() -> argparse.ArgumentParser:
    from flows.lr_finder import lr_finder

    parser = parser_from_signature(
        lr_finder.fn, prog="lrf-flow",
        description="Run the lr-finder flow: sweep, pick a rate, train candidates, recommend the rate that did "
                    "best on held-out data, write the artifacts.",
    )
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="TOML file of flow parameters (keys as the option names, with _ for -); options "
                             "given on the command line override it")
    return parser


def parameters(parser: argparse.ArgumentParser, argv: list[str] | None) -> dict[str, Any]:
    """The flow's parameters: its defaults, then the config file, then the command line."""
    from flows.lr_finder import lr_finder

    given = vars(parser.parse_args(argv))
    config_file = given.pop("config", None)
    params = {name: p.default for name, p in inspect.signature(lr_finder.fn).parameters.items()}
    if config_file is not None:
        params.update(_read_config(parser, config_file, params))
    params.update(given)
    return params


def _read_config(parser: argparse.ArgumentParser, path: Path, known: dict) -> dict:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        parser.error(f"argument --config: cannot read {str(path)!r}: {error}")
    unknown = sorted(set(data) - set(known))
    if unknown:
        parser.error(f"argument --config: {str(path)!r} has unknown key(s) {', '.join(unknown)}; "
                     f"the keys are the flow's parameters: {', '.join(known)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


def validate(parser: argparse.ArgumentParser, params: dict) -> tuple[Setup, Execution]:
    """Every check the flow's first tasks make, here, so a bad value exits 2 before Prefect starts;
    the setup as the flow will prepare it, and the execution."""
    from lrf._validate import parameter_of
    from lrf.cluster import check_cluster
    from lrf.engine import engine_for, prepare_setup
    from lrf.runs import check_output_root

    try:
        built = {cls: cls(**{f.name: params[f.name] for f in dataclasses.fields(cls)}) for cls in CONFIGURATION}
        setup, _ = prepare_setup(built[Setup])
        check_output_root(params["output_root"])
        check_cluster(built[Execution].cluster)
        engine_for(built[Setup].engine).check_init_params(params["init_params"])
    except (ValueError, TypeError) as error:
        name = parameter_of(error, params)
        option = f"argument --{name.replace('_', '-')}: " if name else ""
        parser.error(f"{option}{error}")
    return setup, built[Execution]


def cluster_head_start(setup: Setup, execution: Execution):
    """The run's local cluster, started (and MXNet imported on its workers) while Prefect starts
    its temporary server, instead of after: :func:`lrf.cluster.head_start`; the report's plotting
    library is imported meanwhile too. Nothing with a given cluster."""
    from functools import partial

    from lrf.cluster import head_start
    from lrf.jobs import warm_up
    from lrf.plot import preload

    if execution.cluster is not None:
        return contextlib.nullcontext()
    return head_start(setup.device, execution.at_once, warm_up=partial(warm_up, setup.engine), also=preload)


def main(argv: list[str] | None = None) -> int:
    from lrf._signals import TERMINATED, exit_on_sigterm, interrupt_on_sigint, stop_started_processes

    exit_on_sigterm()  # from the start: a SIGTERM unwinds (temporary files, the temporary server)
    interrupt_on_sigint()  # a Ctrl-C that lands in a destructor is recorded, not lost
    # Prefect warns on import when PREFECT_HOME cannot be made; check_prefect says it in one line
    warnings.filterwarnings("ignore", "Failed to create the Prefect home directory", UserWarning)
    parser = build_parser()
    params = parameters(parser, argv)
    setup, execution = validate(parser, params)
    with prefect_defaults():
        check_prefect(parser)
        from flows.lr_finder import lr_finder

        try:
            with stop_started_processes(spare=is_temporary_server), cluster_head_start(setup, execution):
                summary = lr_finder(**params)
        except KeyboardInterrupt:
            return _stopped(parser, signal.SIGINT, params)
        except SystemExit as exit_:
            if exit_.code != TERMINATED:
                raise
            return _stopped(parser, signal.SIGTERM, params)
    print(f"run folder: {summary['run_dir']}")
    recommended = summary["recommended_lr"]
    print("recommended learning rate: " + (f"{recommended:.4g}" if recommended is not None else "none"))
    print(f"  evidence: {summary['recommendation']['evidence']}")
    print(f"  trained with: {summary['setup']['optimizer']} {summary['setup']['optimizer_params'] or ''}".rstrip())
    if summary["setup"]["recipe"] is not None:
        print(f"  recipe: {summary['setup']['recipe']} (its network, loss and data)")
    pick = summary["pick_lr"]
    print(f"  the {summary['rule']} rule's pick: " + (f"{pick:.4g}" if pick is not None else "none"))
    bounds = summary["cyclical_range"]
    if bounds["base_lr"] is not None:
        print(f"  cyclical range (Smith 2017): {bounds['base_lr']:.3g} to {bounds['max_lr']:.3g}")
    for name, file in summary["files"].items():
        print(f"  {name}: {summary['run_dir']}/{file}")
    runs = summary["history"]
    if runs["runs"]:
        print(f"  history: {runs['runs']} run(s) in {runs['file']} (lrf history prints them)")
    if runs["changed"]:
        print(f"  changed since the last run of this set-up: {runs['changed']['reason']}")
    return 0


def _stopped(parser: argparse.ArgumentParser, how: int, params: dict) -> int:
    """One line for a run stopped by a signal; its exit status 128 + the signal."""
    cache = Path(params["output_root"]).expanduser() / "cache"
    print(f"{parser.prog}: stopped by {signal.Signals(how).name}; finished work is kept in {cache}: "
          f"the same command again goes on from there", file=sys.stderr)
    return 128 + how


def is_temporary_server(argv: list[str]) -> bool:
    """The temporary Prefect server (uvicorn) that Prefect starts for a run without
    PREFECT_API_URL: kept while the flow records how it ended, stopped by Prefect on exit."""
    return "prefect.server.api.server:create_app" in argv


@contextlib.contextmanager
def prefect_defaults():
    """:data:`DEFAULTS` for the settings the environment does not set. As settings, not as
    environment variables: Prefect reads its environment once, when it is imported (which
    building the parser already did)."""
    import prefect.settings
    from prefect.settings import temporary_settings

    updates = {getattr(prefect.settings, name): value for name, value in DEFAULTS.items() if name not in os.environ}
    with temporary_settings(updates=updates):
        yield


API_CHECK_SECONDS = 10  # a live API answers its health check in milliseconds


def check_prefect(parser: argparse.ArgumentParser) -> None:
    """What Prefect needs, checked before the flow starts; exit 2 with one line naming the
    setting and its value: the API that ``PREFECT_API_URL`` names must answer; without it,
    the temporary server's home (``PREFECT_HOME``, its database) must be writable."""
    from prefect.settings import get_current_settings

    from lrf.runs import check_can_create

    settings = get_current_settings()
    if settings.api.url:
        from prefect.client.orchestration import get_client

        problem = get_client(sync_client=True, httpx_settings={"timeout": API_CHECK_SECONDS}).api_healthcheck()
        if problem is not None:
            reason = " ".join(f"{type(problem).__name__}: {problem}".split())
            parser.exit(2, f"{parser.prog}: error: PREFECT_API_URL={settings.api.url}: no Prefect API answers there "
                           f"(its health check: {reason[:200]}); start that server, correct PREFECT_API_URL, or unset "
                           f"it to run on a temporary local server\n")
        return
    home = Path(settings.home).expanduser()
    try:
        check_can_create(home, "PREFECT_HOME")
        database = _sqlite_file(settings.server.database.connection_url)
        if database is not None and database.exists():
            os.close(os.open(database, os.O_RDWR))  # opened, not os.access(): root passes that on anything
    except OSError as error:
        parser.exit(2, f"{parser.prog}: error: PREFECT_HOME={str(home)!r}: the temporary Prefect server cannot "
                       f"keep its database there ({error.strerror}): point PREFECT_HOME to a writable folder\n")
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}; the temporary Prefect server keeps its database in "
                       f"PREFECT_HOME: point it to a writable folder\n")


def _sqlite_file(url) -> Path | None:
    """The file of a SQLite database URL (``sqlite+aiosqlite:///PATH``), else None."""
    text = url.get_secret_value() if hasattr(url, "get_secret_value") else url
    if not text or not text.startswith("sqlite") or ":///" not in text or ":memory:" in text:
        return None
    return Path(text.split(":///", 1)[1].split("?", 1)[0])


if __name__ == "__main__":
    sys.exit(main())
