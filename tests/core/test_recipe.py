"""The recipe's entry checks and its cache fingerprint: framework-free, on modules written here."""

import sys

import pytest

from lrf.config import Setup
from lrf.recipe import check_recipe_path, recipe_fingerprint, recipe_source

SOURCE = "DATA_FILES = ['points.csv']\n\ndef recipe(setup):\n    raise RuntimeError('never run by the checks')\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    package = tmp_path / "userproj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "training.py").write_text(SOURCE)
    (package / "points.csv").write_text("x,y\n1,2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("userproj", None)  # each test's project is a new one
    yield package
    sys.modules.pop("userproj", None)


@pytest.mark.parametrize("value", ["", "module", "module:", ":name", "a b:c", "pkg.mod:na-me", 3])
def test_a_recipe_that_is_not_an_import_path_is_refused_naming_it(value):
    with pytest.raises(ValueError, match=f"recipe={value!r}"):
        check_recipe_path(value)
    with pytest.raises(ValueError, match="recipe="):
        Setup(recipe=value)


def test_a_recipe_excludes_a_model():
    with pytest.raises(ValueError, match="model and recipe exclude each other"):
        Setup(model="small-cnn", recipe="userproj.training:recipe")
    assert Setup(recipe="userproj.training:recipe").network == "recipe userproj.training:recipe"


def test_the_checks_find_the_factory_without_running_it(project):
    assert recipe_source("userproj.training:recipe") == project / "training.py"
    with pytest.raises(ValueError, match="defines no 'missing' at its top level"):
        recipe_source("userproj.training:missing")
    with pytest.raises(ValueError, match="no module named 'userproj.nothing'"):
        recipe_source("userproj.nothing:recipe")


def test_the_fingerprint_changes_with_the_code_and_the_declared_data_only(project):
    first = recipe_fingerprint("userproj.training:recipe")
    assert recipe_fingerprint("userproj.training:recipe") == first
    (project / "notes.txt").write_text("not code, not declared data")
    assert recipe_fingerprint("userproj.training:recipe") == first
    (project / "points.csv").write_text("x,y\n10,3\n")
    data_changed = recipe_fingerprint("userproj.training:recipe")
    assert data_changed != first
    (project / "helpers.py").write_text("SCALE = 2\n")  # another module of the package
    assert recipe_fingerprint("userproj.training:recipe") not in (first, data_changed)


def test_declared_data_that_is_missing_is_refused_naming_it(project):
    (project / "points.csv").unlink()
    with pytest.raises(ValueError, match="points.csv"):
        recipe_fingerprint("userproj.training:recipe")
