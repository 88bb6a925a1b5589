"""The user's own training: a *recipe* names a factory that gives what to train.

A recipe is an import path ``package.module:name``. Each job calls ``name(setup)``
where it runs (on its Dask worker) and gets a :class:`Recipe`: the network, the
loss, the training data set and, when there is one, the held-out set (the user's
transforms and augmentation included), and optionally the initialiser. lrf keeps
everything else: the seeded initialisation, the endless seeded sampler, the paired
batches, snapshot and restore, the sweep, the candidates, the cache, the artifacts.
The built-in data sources and models are a recipe too (each engine's
``BUILTIN_RECIPE``): one mechanism.

Framework-free: the entry checks and the cache's fingerprint read the recipe's
source without running it, so the orchestrating process imports no framework.
The fingerprint covers the recipe's source files and the files its module declares
as its data in a module-level ``DATA_FILES`` list of paths (relative to the module's
folder); data it reads from anywhere else cannot be known: run with ``recompute``
after changing it.

>>> check_recipe_path("my_project.training:recipe")
'my_project.training:recipe'
>>> check_recipe_path("no colon")
Traceback (most recent call last):
...
ValueError: recipe must be an import path package.module:name, got recipe='no colon'
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrf.datacheck import DataError

RECIPE_PATTERN = r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$"
DATA_FILES = "DATA_FILES"  # the module-level list a recipe declares its data files in


class RecipeError(ValueError):
    """A recipe that cannot give what to train; the message names ``recipe`` and says why."""


@dataclass(frozen=True)
class Recipe:
    """What to train, in the engine's own types (Gluon's for MXNet).

    Attributes:
        network: the network, built but not initialised: lrf initialises it (seeded by
            ``setup.seed``) with ``initializer`` and gives it its shapes from one sample.
        loss: the loss, called as ``loss(output, label)``.
        train: the training data set: a length, and ``dataset[i] -> (input, label)``.
        holdout: the held-out data set the candidates are judged on; None: they are
            judged by the mean of their last k training losses (the summary says so).
        initializer: the initialiser (None: the engine's default: Xavier in MXNet, each module's own
            ``reset_parameters`` in PyTorch, where it is a function applied to every module).
        input_shape: one input's shape, to give the network its shapes (None: the shape
            of the training set's first input).
    """

    network: Any
    loss: Any
    train: Any
    holdout: Any = None
    initializer: Any = None
    input_shape: tuple[int, ...] | None = None


def check_recipe_path(value: Any) -> str:
    """``value`` if it reads as ``package.module:name``; a ValueError naming ``recipe`` otherwise."""
    if not isinstance(value, str) or not re.match(RECIPE_PATTERN, value):
        raise ValueError(f"recipe must be an import path package.module:name, got recipe={value!r}")
    return value


def recipe_source(value: str) -> Path:
    """The source file of the recipe's module, found without running it (a package's
    ``__init__`` runs to find a module inside it).

    Raises:
        RecipeError: no such module, no source file, or no top-level ``name`` in it; naming ``recipe``.
    """
    module, name = check_recipe_path(value).split(":")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as error:
        raise RecipeError(f"recipe={value!r}: cannot find module {module!r}: {error}") from None
    if spec is None:
        raise RecipeError(f"recipe={value!r}: no module named {module!r} on this process's path "
                         "(install the project that holds it, or run from its folder)")
    if not spec.origin or not spec.origin.endswith(".py"):
        raise RecipeError(f"recipe={value!r}: module {module!r} has no Python source ({spec.origin})")
    source = Path(spec.origin)
    if name not in _top_level_names(ast.parse(source.read_text(encoding="utf-8"), str(source))):
        raise RecipeError(f"recipe={value!r}: {source} defines no {name!r} at its top level")
    return source


def recipe_fingerprint(value: str) -> str:
    """SHA-256 over the recipe's source (its module, and every ``.py`` file of the package
    folder it sits in) and the files its ``DATA_FILES`` declares: for cache keys."""
    source = recipe_source(value)
    digest = hashlib.sha256()
    folder = source.parent
    sources = sorted(folder.rglob("*.py")) if (folder / "__init__.py").is_file() else [source]
    for path in sources:
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    for path in declared_data_files(source, value):
        digest.update(b"data\0" + str(path).encode() + b"\0" + _file_or_folder_digest(path).encode())
    return digest.hexdigest()


def declared_data_files(source: Path, value: str) -> list[Path]:
    """The paths of the module's ``DATA_FILES = [...]`` (a literal list of strings, relative to
    its folder), read from its source; a declared path that is missing is a ValueError."""
    for node in ast.parse(source.read_text(encoding="utf-8"), str(source)).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == DATA_FILES for t in node.targets):
            try:
                paths = ast.literal_eval(node.value)
            except ValueError:
                raise RecipeError(f"recipe={value!r}: {source}: {DATA_FILES} must be a literal list of paths") from None
            if not isinstance(paths, (list, tuple)) or not all(isinstance(p, str) for p in paths):
                raise RecipeError(f"recipe={value!r}: {source}: {DATA_FILES} must be a literal list of paths, got {paths!r}")
            resolved = [(source.parent / p).resolve() for p in paths]
            missing = [str(p) for p in resolved if not p.exists()]
            if missing:
                raise RecipeError(f"recipe={value!r}: the data it declares ({DATA_FILES} in {source}) is missing: {', '.join(missing)}")
            return resolved
    return []


def load_recipe(value: str, setup) -> Recipe:
    """Import the recipe's factory and call it with ``setup``: the :class:`Recipe` to train.

    Raises:
        RecipeError: it cannot be imported, is not callable, fails, or returns something
            other than a :class:`Recipe`; the message names ``recipe``.
    """
    module, name = check_recipe_path(value).split(":")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise RecipeError(f"recipe={value!r} cannot be imported: {error}") from None
    if not callable(factory):
        raise RecipeError(f"recipe={value!r} is not callable: {type(factory).__name__}")
    try:
        recipe = factory(setup)
    except DataError:  # data it cannot learn from names its file and record itself
        raise
    except Exception as error:  # the user's code: whatever it raises, in one line naming the recipe
        raise RecipeError(f"recipe={value!r} failed: {type(error).__name__}: {error}") from None
    if not isinstance(recipe, Recipe):
        raise RecipeError(f"recipe={value!r} must return an lrf.recipe.Recipe, got {type(recipe).__name__}")
    for field in ("network", "loss", "train"):
        if getattr(recipe, field) is None:
            raise RecipeError(f"recipe={value!r} returned no {field}")
    for field in ("train", "holdout"):
        data = getattr(recipe, field)
        if data is not None and not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
            raise RecipeError(f"recipe={value!r}: its {field} set must have a length and items, "
                             f"got {type(data).__name__}")
    return recipe


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _file_or_folder_digest(path: Path) -> str:
    from lrf.cache import file_sha256

    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + file_sha256(file).encode())
    return digest.hexdigest()




def recipe_info(recipe: Recipe, name: str | None):
    """The sizes of the recipe's splits and one input's shape (:class:`lrf.datasets.DatasetInfo`);
    ``name`` is the recipe's import path (None: the engine's built-in one), for the message."""
    from lrf.datasets import DatasetInfo

    shape = recipe.input_shape
    if shape is None:
        try:
            shape = recipe.train[0][0].shape
        except ValueError:
            raise
        except Exception as error:  # the user's data set: whatever it raises, say where
            raise RecipeError(f"recipe={name!r}: its train set's first item cannot be read as (input, label): "
                             f"{type(error).__name__}: {error}") from None
    return DatasetInfo(num_train=len(recipe.train), num_holdout=0 if recipe.holdout is None else len(recipe.holdout),
                       image_shape=tuple(shape))


def check_batch_fits(setup, info) -> None:
    """Raise ValueError naming ``batch_size`` if it exceeds the recipe's training samples."""
    if setup.batch_size > info.num_train:
        raise ValueError(f"batch_size must be at most the {info.num_train} training samples of the data, "
                         f"got batch_size={setup.batch_size} (recipe={setup.recipe!r})")
