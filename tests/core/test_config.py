"""The configuration's single home: every entry point's defaults are the configuration's,
each registry matches the names a configuration may use, and a parameter is validated
once on its way from the configuration to the schedule."""

from __future__ import annotations

import dataclasses
import inspect
import sys
from pathlib import Path

import pytest
import yaml

import lrf
from lrf import _validate
from lrf.config import CandidatePlan, Setup, SweepConfig
from lrf.execution import Execution
from lrf.runs import DEFAULT_OUTPUT_ROOT
from tests.core.quadratic import QuadraticLearner

ROOT = Path(__file__).resolve().parents[2]
CLASSES = (Setup, SweepConfig, CandidatePlan, Execution)


def configuration_defaults() -> dict:
    defaults = {f.name: f.default for cls in CLASSES for f in dataclasses.fields(cls)}
    return {**defaults, "output_root": DEFAULT_OUTPUT_ROOT, "init_params": None}  # None: a fresh initialisation


def test_flow_signature_defaults_are_the_configuration():
    from flows.lr_finder import lr_finder

    signature = inspect.signature(lr_finder.fn)
    expected = configuration_defaults()
    assert set(signature.parameters) == set(expected)  # every configuration field is a flow parameter
    assert {name: p.default for name, p in signature.parameters.items()} == expected


def test_lrf_find_defaults_are_the_configuration():
    from lrf.cli import build_parser

    parser = build_parser()
    find = parser._subparsers._group_actions[0].choices["find"]
    options = {a.dest: a.default for a in find._actions if a.dest in configuration_defaults()}
    assert len(options) >= 16
    assert options == {name: configuration_defaults()[name] for name in options}


def test_lrf_flow_defaults_are_the_configuration():
    from flows.main import build_parser, parameters

    assert parameters(build_parser(), []) == configuration_defaults()


def test_deployments_declare_only_what_differs_from_the_defaults():
    declared = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    defaults = configuration_defaults()
    for deployment in declared["deployments"]:
        parameters = deployment.get("parameters") or {}
        assert set(parameters) <= set(defaults), deployment["name"]
        repeated = {k: v for k, v in parameters.items() if defaults[k] == v}
        assert repeated == {}, f"{deployment['name']} repeats defaults {repeated}"


def test_a_rule_or_criterion_registered_is_accepted_everywhere_at_once(monkeypatch):
    monkeypatch.setitem(lrf.RULES, "halfway", lrf.RULES["reference"])
    assert CandidatePlan(rule="halfway").rule == "halfway"  # the registry gives the names
    with pytest.raises(ValueError, match="rule='nope'"):
        CandidatePlan(rule="nope")
    monkeypatch.setitem(lrf.CRITERIA, "patient", lrf.CRITERIA["best"])
    assert SweepConfig(criterion="patient").criterion == "patient"
    assert lrf.DEFAULT_RULE == CandidatePlan.rule


def test_a_sweep_parameter_is_validated_once_from_configuration_to_schedule(monkeypatch):
    seen = []
    original = _validate.positive_float

    def counting(name, value):
        seen.append(name)
        return original(name, value)

    for name, module in list(sys.modules.items()):  # every module that imported the check
        if name == "lrf" or name.startswith("lrf."):
            if getattr(module, "positive_float", None) is original:
                monkeypatch.setattr(module, "positive_float", counting)
    sweep_config = SweepConfig(lr_start=1e-4)
    lrf.find(QuadraticLearner(), sweep_config)
    assert seen.count("lr_start") == 1


@pytest.mark.parametrize("text, source", [("digits", ("digits", None)), ("rec:/d/train.rec", ("rec", "/d/train.rec"))])
def test_setup_parses_data_and_device_once_into_value_objects(text, source):
    setup = Setup(data=text, device="gpu:1")
    assert (setup.data_spec.source, setup.data_spec.path) == source
    assert (setup.device_spec.kind, setup.device_spec.index) == ("gpu", 1)
    assert setup.to_dict()["data"] == text  # plain values for tasks, JSON and other processes


def test_a_name_given_up_is_refused_with_its_new_name():
    with pytest.raises(ValueError, match=r"plan='reference' \('reference' is now 'multiples'\)"):
        CandidatePlan(plan="reference")
    with pytest.raises(ValueError, match=r"criterion='reference' \('reference' is now 'twice-first'\)"):
        SweepConfig(criterion="reference")
    # what an earlier lrf wrote still reads, under the new name
    assert SweepConfig.from_dict({**SweepConfig().to_dict(), "criterion": "reference"}) == SweepConfig()


def test_a_subnormal_lr_start_bounds_the_sweep_by_max_iter():
    # max_lr / 1e-320 overflows to inf: the bound is taken from the logs (issue 21: was an OverflowError)
    assert SweepConfig(lr_start=1e-320).expected_iterations() == SweepConfig.max_iter
    assert SweepConfig().expected_iterations() == 170  # 1e-6 x 1.1^169 <= 10 < 1e-6 x 1.1^170
