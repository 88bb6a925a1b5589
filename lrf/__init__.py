"""lrf: Leslie Smith's learning-rate range test, framework-free at its core.

The core (this package's top level) imports no framework: the MXNet Gluon engine
lives in :mod:`lrf.gluon`, the PyTorch one in :mod:`lrf.pytorch`, plotting in
:mod:`lrf.plot`, each imported on demand.
The run's configuration, with every default, is :mod:`lrf.config`.
Usage: ``result = lrf.find(learner)``, then ``lrf.suggest(result, "reference").lr``
(a runnable example is :func:`lrf.sweep.find`'s).
"""

from lrf.config import CandidatePlan, Setup, SweepConfig
from lrf.learner import Learner
from lrf.result import SweepResult
from lrf.schedules import exponential, exponential_range, linear_range
from lrf.stopping import CRITERIA, StopReason, make_criterion
from lrf.rules import DEFAULT_RULE, RULES, CyclicalRange, Suggestion, cyclical_range, suggest
from lrf.sweep import SweepProgress, find

__all__ = [
    "CRITERIA",
    "CandidatePlan",
    "DEFAULT_RULE",
    "RULES",
    "Setup",
    "CyclicalRange",
    "Learner",
    "StopReason",
    "Suggestion",
    "SweepConfig",
    "SweepProgress",
    "SweepResult",
    "cyclical_range",
    "exponential",
    "exponential_range",
    "find",
    "linear_range",
    "make_criterion",
    "suggest",
]
