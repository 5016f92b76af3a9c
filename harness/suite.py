"""Suites: YAML files naming runs as grids and lists, validated and expanded into run specs.

A suite file (``suites/*.yaml``)::

    name: smoke                      # default: the file name
    description: ...
    include: [base.yaml]             # grids and runs of other suite files come first
    seeds: [0, 1, 2]                 # default seeds of grid entries that name none
    budget: {epochs: 3, limit_batches: null, subset: null}
    grid:
      - models: [msvit_4_384.cifar10]
        datasets: [digits]
        T: [4]
        recipe: digits
        overrides: {embed_dim: 64}          # model constructor arguments
        recipe_overrides: {optim.lr: 1e-3}  # dotted recipe fields
        variants: {"MSSA(P+Q) + SSA": {}, "MSSA(P+P) + SSA": {stage12_attn: "P+P"}}
    runs:
      - {model: sdt_2_512.cifar10, dataset: cifar10, T: 4, seed: 0}

Every error names the file, the line, the field and what was expected. Each expanded ``RunSpec`` has a
stable content hash, its run id: it names what a run computes, not the code that computes it (that is the
code fingerprint each run records, see ``harness.engine.provenance``).
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ConfigDict, Field

from harness.configfile import ConfigError, line_of, load_yaml

class SuiteError(ConfigError):
    """A suite file is malformed or names unknown things; the message names the file, line and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budget(_Strict):
    """Knobs that scale a suite down without editing it; they are part of each run id."""

    epochs: int | None = Field(None, ge=1, description="train this many epochs instead of the recipe's")
    limit_batches: int | None = Field(None, ge=1, description="at most this many batches per epoch and split")
    subset: int | None = Field(None, ge=1, description="use only N samples of each split")
    energy_batches: int = Field(2, ge=0, description="eval batches over which energy and firing rates are measured")
    threads: int | None = Field(None, ge=1, description="CPU threads of each run (default 1): they change the "
                                "order of floating-point sums, so the numbers; fixed by the run, not the launcher")


class RunEntry(_Strict):
    model: str
    dataset: str
    T: int | None = Field(None, ge=1)
    seed: int = 0
    recipe: str | None = None
    overrides: dict[str, Any] = {}
    recipe_overrides: dict[str, Any] = {}
    variant: str | None = None
    data_options: dict[str, Any] = {}


class GridEntry(_Strict):
    models: list[str] = Field(min_length=1)
    datasets: list[str] = Field(min_length=1)
    T: list[int] | None = None
    seeds: list[int] | None = None
    recipe: str | None = None
    overrides: dict[str, Any] = {}
    recipe_overrides: dict[str, Any] = {}
    variants: dict[str, dict[str, Any]] | None = None
    data_options: dict[str, Any] = {}


class SuiteFile(_Strict):
    name: str | None = None
    description: str = ""
    include: list[str] = []
    seeds: list[int] | None = None
    budget: Budget = Budget()
    grid: list[GridEntry] = []
    runs: list[RunEntry] = []


# RunSpec fields that do not shape a run's numbers, hence not hashed into its run id
NOT_IN_RUN_ID = frozenset({"suite"})


class RunSpec(_Strict):
    """One fully resolved run. ``run_id`` hashes every field that shapes its numbers: all but ``NOT_IN_RUN_ID``.
    The code version is not one of them: runs record a code fingerprint instead (``harness.engine.provenance``)."""

    suite: str
    model: str
    dataset: str
    T: int
    seed: int
    recipe: str
    recipe_hash: str
    overrides: dict[str, Any] = {}
    recipe_overrides: dict[str, Any] = {}
    variant: str | None = None
    data_options: dict[str, Any] = {}
    epochs: int | None = None
    limit_batches: int | None = None
    subset: int | None = None
    energy_batches: int = 2
    threads: int = Field(1, ge=1)

    @cached_property
    def run_id(self) -> str:
        content = self.model_dump(exclude=set(NOT_IN_RUN_ID))
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Origin:
    """Where an entry was written: its file and its position (``("grid", 2)``) in that file."""

    path: Path
    loc: tuple[Any, ...]

    def at(self, *field: Any) -> str:
        """``file: line N: field a.b``, for the entry itself or one of its fields."""
        loc = (*self.loc, *field)
        line = line_of(yaml.compose(self.path.read_text()), loc)
        return f"{self.path}: line {line}: field {'.'.join(str(p) for p in loc)}"


@dataclass(frozen=True)
class Suite:
    name: str
    path: str
    description: str
    seeds: list[int] | None
    budget: Budget
    grid: list[tuple[GridEntry, Origin]]
    runs: list[tuple[RunEntry, Origin]]


def _read_suite_file(path: Path) -> SuiteFile:
    return load_yaml(path, SuiteFile, "suite", SuiteError)


def load_suite(path: str | Path, _seen: tuple[Path, ...] = ()) -> Suite:
    """Read a suite file and its includes (relative to the including file), validated."""
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise SuiteError(f"{path}: include cycle: {chain}")
    own = _read_suite_file(path)
    grid = []
    runs = []
    budget = Budget()
    seeds = None
    for inc in own.include:
        parent = load_suite(path.parent / inc, (*_seen, path))
        grid += parent.grid
        runs += parent.runs
        budget = Budget(**{**budget.model_dump(exclude_none=True), **parent.budget.model_dump(exclude_none=True)})
        seeds = parent.seeds or seeds
    budget = Budget(**{**budget.model_dump(exclude_none=True), **own.budget.model_dump(exclude_none=True)})
    grid += [(entry, Origin(path, ("grid", i))) for i, entry in enumerate(own.grid)]
    runs += [(entry, Origin(path, ("runs", i))) for i, entry in enumerate(own.runs)]
    return Suite(name=own.name or path.stem, path=str(path), description=own.description,
                 seeds=own.seeds or seeds, budget=budget, grid=grid, runs=runs)


Where = Callable[[str], str]  # field name -> "file: line N: field ..." (computed only for an error)


def _unknown(kind: str, value: str, valid: list[str], where: str) -> SuiteError:
    close = difflib.get_close_matches(value, valid, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return SuiteError(f"{where}: unknown {kind} {value!r}; {hint}valid {kind}s: {', '.join(valid)}")


class _Resolver:
    """Checks names against the registries and fills defaults from model cards."""

    def __init__(self, suite: Suite) -> None:
        import zoo
        from harness.data import list_datasets
        from harness.recipe import list_recipes, load_recipe

        self.suite = suite
        self.models = zoo.list_models()
        self.datasets = list_datasets()
        self.recipes = list_recipes()
        self.card = zoo.model_card
        self.arguments = zoo.model_arguments
        self.load_recipe = load_recipe

    def recipe_for(self, model: str, dataset: str, recipe: str | None, where: Where) -> str:
        """The run's recipe: the given one, the model's own on its own dataset, or the dataset's."""
        if recipe is None:
            card = self.card(model)
            if card.dataset == dataset:
                recipe = card.recipe
            elif dataset in self.recipes:
                recipe = dataset
            else:
                raise SuiteError(f"{where('recipe')}: required, since {model} is configured for "
                                 f"{card.dataset}, not {dataset}; valid recipes: {', '.join(self.recipes)}")
        if recipe not in self.recipes:
            raise _unknown("recipe", recipe, self.recipes, where("recipe"))
        return recipe

    def spec(self, entry: RunEntry, budget: Budget, where: Where) -> RunSpec:
        if entry.model not in self.models:
            raise _unknown("model", entry.model, self.models, where("model"))
        if entry.dataset not in self.datasets:
            raise _unknown("dataset", entry.dataset, self.datasets, where("dataset"))
        allowed = self.arguments(entry.model)
        for key in entry.overrides:
            if key not in allowed:
                raise _unknown("override", key, allowed, where("overrides"))
        recipe = self.recipe_for(entry.model, entry.dataset, entry.recipe, where)
        recipe_json = self.load_recipe(recipe).model_dump_json()
        return RunSpec(
            suite=self.suite.name, model=entry.model, dataset=entry.dataset,
            T=entry.T or self.card(entry.model).T, seed=entry.seed, recipe=recipe,
            recipe_hash=hashlib.sha256(recipe_json.encode()).hexdigest()[:16],
            overrides=entry.overrides, recipe_overrides=entry.recipe_overrides, variant=entry.variant,
            data_options=entry.data_options, epochs=budget.epochs, limit_batches=budget.limit_batches,
            subset=budget.subset, energy_batches=budget.energy_batches, threads=budget.threads or 1,
        )


def _grid_runs(entry: GridEntry, origin: Origin, default_seeds: list[int] | None):
    """Each run of a grid entry, with the error locations of its model, dataset and recipe."""
    variants = entry.variants or {None: {}}
    for (m, model), (d, dataset), T, seed, (variant, extra) in itertools.product(
            enumerate(entry.models), enumerate(entry.datasets), entry.T or [None],
            entry.seeds or default_seeds or [0], variants.items()):
        run = RunEntry(model=model, dataset=dataset, T=T, seed=seed, recipe=entry.recipe,
                       overrides={**entry.overrides, **extra}, recipe_overrides=entry.recipe_overrides,
                       variant=variant, data_options=entry.data_options)
        fields = {"model": ("models", m), "dataset": ("datasets", d), "recipe": ("recipe",),
                  "overrides": ("variants", variant) if variant in (entry.variants or {}) else ("overrides",)}
        yield run, lambda field, fields=fields: origin.at(*fields[field])


def expand(suite: Suite, budget: Budget | None = None) -> list[RunSpec]:
    """All run specs of a suite, in file order, without duplicates; ``budget`` overrides the suite's."""
    effective = Budget(**{**suite.budget.model_dump(exclude_none=True),
                          **(budget.model_dump(exclude_none=True) if budget else {})})
    resolver = _Resolver(suite)
    specs: dict[str, RunSpec] = {}
    for entry, origin in suite.grid:
        for run, where in _grid_runs(entry, origin, suite.seeds):
            spec = resolver.spec(run, effective, where)
            specs.setdefault(spec.run_id, spec)
    for run, origin in suite.runs:
        spec = resolver.spec(run, effective, lambda field, origin=origin: origin.at(field))
        specs.setdefault(spec.run_id, spec)
    return list(specs.values())
