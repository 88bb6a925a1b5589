"""Recipes for the tests (:mod:`lrf.recipe`): the example project's, without its held-out
set, and ones that are wrong in each way a recipe can be."""

from mxnet import gluon

from lrf.recipe import Recipe
from spirals.recipe import recipe as spirals


def without_holdout(setup) -> Recipe:
    full = spirals(setup)
    return Recipe(network=full.network, loss=full.loss, train=full.train)


def not_a_recipe(setup):
    return {"network": None}


def unfit(setup) -> Recipe:
    full = spirals(setup)  # 2-D points into a layer that takes 5 inputs
    return Recipe(network=gluon.nn.Dense(3, in_units=5), loss=full.loss, train=full.train, holdout=full.holdout)


def failing(setup) -> Recipe:
    raise ValueError("the data file moved")
