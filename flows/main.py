"""``lrf-flow``: the main job. Runs the lr-finder flow with Prefect's embedded local API.

Every flow parameter is an option, generated from the flow's signature and the
``Args:`` section of its docstring (no hand-kept list to drift): ``--seed 7``,
``--candidate-rates 0.05 0.5 0.005``, ``--plan refine``. ``--config FILE`` reads a
TOML file whose keys are the parameter names; options on the command line override
it. Everything is checked before Prefect starts: a bad value exits with status 2 and
a message naming the option and the value.

No server to start: with no ``PREFECT_API_URL`` set, Prefect starts a temporary
local one for the run. Its start-up takes 10-20 s on 2 cores, close to Prefect's
default 20 s limit, hence the longer limit set here (and analytics off, which
also avoids a harmless "database is locked" error on a fresh database).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
import sys
import tomllib
import types
import typing
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
        if kind is bool:  # --recompute / --no-recompute
            parser.add_argument(option, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=text.strip())
            continue
        parser.add_argument(option, dest=name, type=kind, nargs="+" if many else None,
                            default=argparse.SUPPRESS, metavar=name.upper(), help=text.strip())
    return parser


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


def validate(parser: argparse.ArgumentParser, params: dict) -> None:
    """Every check the flow's first tasks make, here, so a bad value exits 2 before Prefect starts."""
    from lrf.cluster import check_cluster
    from lrf.gluon.params_file import check_init_params
    from lrf.gluon.preflight import prepare_setup
    from lrf.runs import check_output_root

    try:
        built = {cls: cls(**{f.name: params[f.name] for f in dataclasses.fields(cls)}) for cls in CONFIGURATION}
        prepare_setup(built[Setup])
        check_output_root(params["output_root"])
        check_cluster(built[Execution].cluster)
        check_init_params(params["init_params"])
    except (ValueError, TypeError) as error:
        match = re.search(r"\b([a-z_]+)=", str(error))
        option = f"argument --{match.group(1).replace('_', '-')}: " if match and match.group(1) in params else ""
        parser.error(f"{option}{error}")


def main(argv: list[str] | None = None) -> int:
    for name, value in DEFAULTS.items():  # before anything imports prefect, which reads them once
        os.environ.setdefault(name, value)
    parser = build_parser()
    params = parameters(parser, argv)
    validate(parser, params)

    from flows.lr_finder import lr_finder

    summary = lr_finder(**params)
    print(f"run folder: {summary['run_dir']}")
    recommended = summary["recommended_lr"]
    print("recommended learning rate: " + (f"{recommended:.4g}" if recommended is not None else "none"))
    print(f"  evidence: {summary['recommendation']['evidence']}")
    pick = summary["rule_pick"]
    print(f"  the {summary['rule']} rule's pick: " + (f"{pick:.4g}" if pick is not None else "none"))
    bounds = summary["cyclical_range"]
    if bounds["base_lr"] is not None:
        print(f"  cyclical range (Smith 2017): {bounds['base_lr']:.3g} to {bounds['max_lr']:.3g}")
    for name, file in summary["files"].items():
        print(f"  {name}: {summary['run_dir']}/{file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
