"""Suites: YAML files naming runs as grids and lists, validated and expanded into run specs.

A suite file (``suites/*.yaml``)::

    name: smoke                      # default: the file name
    description: ...
    include: [base.yaml]             # grids and runs of other suite files come first; each must lie inside
                                     # this file's directory tree or the package's suites/ (symlinks resolved)
    seeds: [0, 1, 2]                 # default seeds of grid entries that name none
    budget: {epochs: 3, limit_batches: null, subset: null}
    margins: {top1: 0.5, energy: 0.10}  # equivalence margins of the verdicts (points; relative)
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
      - {model: qkformer_10_768.in1k, dataset: imagenet, weights: released}  # eval-only, see below
    released: all                    # every catalog entry on its paper's dataset, eval-only

``weights: released`` (the catalog's file under the data root) or ``weights: PATH`` (absolute, or relative to the
data root; see ``harness.weights.locate``) makes a run eval-only: it loads the file and trains nothing. The file's
SHA-256 is part of the run id; a file not yet present keeps the suite valid (``harness validate`` lists it with
where to get it) and ``harness run`` refuses it.

Every error names the file, the line, the field and what was expected; validation covers everything a run
would otherwise only find out when it starts: names (models, datasets, recipes), ``overrides`` against the model
constructor's argument types, ``recipe_overrides`` against the recipe schema, ``data_options`` against the
dataset's options. Suite and variant names become paths, so they must be plain names (no ``/``, ``..`` or
control characters). Each expanded ``RunSpec`` has a stable content hash, its run id: it names what a run
computes, not the code that computes it (that is the code fingerprint each run records, see
``harness.engine.provenance``).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import time
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from harness.argtypes import closest, unknown_model
from harness.configfile import ConfigError, compose, line_of, load_yaml, read_text, value_problem
from harness.names import UnsafePathError, check_name, has_control_characters
from harness.recipe import SAMPLE_ENERGY_IMAGES, EnergyImages, small_energy_sample
from harness.weights.catalog import RELEASED, Catalog


class SuiteError(ConfigError):
    """A suite file is malformed or names unknown things; the message names the file, line and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SafeName = Annotated[str, AfterValidator(check_name)]  # a string that becomes a file or directory name


def _include_path(value: str) -> str:
    if not value or has_control_characters(value):
        raise ValueError(f"{value!r} is empty or contains a NUL or control character; expected a suite file path")
    return value


IncludePath = Annotated[str, AfterValidator(_include_path)]


def _weights_value(value: str) -> str:
    if not value or has_control_characters(value):
        raise ValueError(f"{value!r} is empty or contains a NUL or control character; expected 'released' or a "
                         f"weights file path")
    return value


WeightsValue = Annotated[str, AfterValidator(_weights_value)]  # 'released' or a weights file: an eval-only run


class Budget(_Strict):
    """Knobs that scale a suite down without editing it; they are part of each run id."""

    epochs: int | None = Field(None, ge=1, description="train this many epochs instead of the recipe's")
    limit_batches: int | None = Field(None, ge=1, description="at most this many batches per epoch and split")
    subset: int | None = Field(None, ge=1, description="use only N samples of each split")
    energy_images: EnergyImages | None = Field(
        None, description="images energy is measured on: 'all' (the eval split, the default), N (a seeded subset; "
        f"below {SAMPLE_ENERGY_IMAGES} a small sample, with a warning), 0 (off)")
    threads: int | None = Field(None, ge=1, description="CPU threads of each run (default 1): they change the "
                                "order of floating-point sums, so the numbers; fixed by the run, not the launcher")


class Margins(_Strict):
    """How far a result may sit from a paper's claim and still reproduce it (an equivalence margin): the 95%
    t-interval of the seeds must lie inside claim ± margin."""

    top1: float = Field(0.5, gt=0, description="top-1 margin in percentage points")
    energy: float = Field(0.10, gt=0, description="energy margin relative to the claimed energy")


class RunEntry(_Strict):
    model: str
    dataset: str
    T: int | None = Field(None, ge=1)
    seed: int = 0
    recipe: str | None = None
    overrides: dict[str, Any] = {}
    recipe_overrides: dict[str, Any] = {}
    variant: SafeName | None = None
    data_options: dict[str, Any] = {}
    weights: WeightsValue | None = None


class GridEntry(_Strict):
    models: list[str] = Field(min_length=1)
    datasets: list[str] = Field(min_length=1)
    T: list[int] | None = None
    seeds: list[int] | None = None
    recipe: str | None = None
    overrides: dict[str, Any] = {}
    recipe_overrides: dict[str, Any] = {}
    variants: dict[SafeName, dict[str, Any]] | None = None
    data_options: dict[str, Any] = {}
    weights: WeightsValue | None = None


class SuiteFile(_Strict):
    name: SafeName | None = None  # names the suite's tables, MLflow experiment and SLURM submissions
    description: str = ""
    include: list[IncludePath] = []
    seeds: list[int] | None = None
    budget: Budget = Budget()
    margins: Margins = Margins()
    grid: list[GridEntry] = []
    runs: list[RunEntry] = []
    released: Literal["all"] | None = Field(
        None, description="'all': one eval-only run per entry of the weights catalog, on its paper's dataset")


PACKAGE_SUITES = Path(__file__).resolve().parents[1] / "suites"  # the suites shipped with spikebench
DEFAULT_ENERGY_IMAGES = "all"  # a run's energy is measured on the whole eval split unless the budget says otherwise
# RunSpec fields that do not shape a run's numbers, hence not hashed into its run id: the suite, and where the
# weights file lies (its content is hashed: ``weights_sha256``)
NOT_IN_RUN_ID = frozenset({"suite", "weights_file"})
# RunSpec fields of eval-only runs, left out of the hash while unset so that training runs keep their ids
WEIGHTS_FIELDS = ("weights", "weights_sha256")


class RunSpec(_Strict):
    """One fully resolved run. ``run_id`` hashes every field that shapes its numbers: all but ``NOT_IN_RUN_ID``.
    The code version is not one of them: runs record a code fingerprint instead (``harness.engine.provenance``)."""

    suite: SafeName
    model: str
    dataset: str
    T: int
    seed: int
    recipe: str
    recipe_hash: str
    overrides: dict[str, Any] = {}
    recipe_overrides: dict[str, Any] = {}
    variant: SafeName | None = None
    data_options: dict[str, Any] = {}
    epochs: int | None = None
    limit_batches: int | None = None
    subset: int | None = None
    energy_images: EnergyImages = DEFAULT_ENERGY_IMAGES
    threads: int = Field(1, ge=1)
    weights: str | None = None
    weights_sha256: str | None = None
    weights_file: str | None = None

    @property
    def eval_only(self) -> bool:
        """Whether the run evaluates a weights file instead of training."""
        return self.weights is not None

    @cached_property
    def run_id(self) -> str:
        unset = {name for name in WEIGHTS_FIELDS if getattr(self, name) is None}
        content = self.model_dump(exclude=set(NOT_IN_RUN_ID) | unset)
        if self.eval_only:  # the file counts by its content (weights_sha256), not by the path that names it
            content["weights"] = self.weights if self.weights == RELEASED else "file"
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
        line = line_of(compose(read_text(self.path, "suite", SuiteError), self.path, SuiteError), loc)
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
    margins: Margins = Margins()
    released: tuple[Origin, ...] = ()
    sources: tuple[str, ...] = ()  # every suite file read: this one and its includes


def _read_suite_file(path: Path) -> SuiteFile:
    return load_yaml(path, SuiteFile, "suite", SuiteError)


def _confined_include(including: Path, index: int, include: str, roots: tuple[Path, ...]) -> Path:
    """The file an ``include`` entry names (relative to the including file, symlinks resolved), refused unless it
    lies inside one of ``roots``: a suite reads no file outside its own directory tree or the package's suites."""
    target = (including.parent / include).resolve()
    if any(target.is_relative_to(root) for root in roots):
        return target
    line = line_of(compose(read_text(including, "suite", SuiteError), including, SuiteError), ("include", index))
    raise SuiteError(f"{including}: line {line}: field include.{index}: {include!r} resolves to {target}, outside "
                     f"{' and '.join(str(root) for root in roots)}; an include must stay inside the suite's own "
                     f"directory tree or the package's suites/ folder")


def load_suite(path: str | Path, _seen: tuple[Path, ...] = ()) -> Suite:
    """Read a suite file and its includes (relative to the including file), validated. Includes must resolve
    inside the top suite's directory tree or ``PACKAGE_SUITES`` (see ``_confined_include``)."""
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise SuiteError(f"{path}: include cycle: {chain}")
    own = _read_suite_file(path)
    roots = (_seen[0].parent if _seen else path.parent, PACKAGE_SUITES.resolve())
    grid = []
    runs = []
    released = []
    budget = Budget()
    seeds = None
    sources = [str(path)]
    for index, inc in enumerate(own.include):
        parent = load_suite(_confined_include(path, index, inc, roots), (*_seen, path))
        sources += parent.sources
        grid += parent.grid
        runs += parent.runs
        released += parent.released
        budget = Budget(**{**budget.model_dump(exclude_none=True), **parent.budget.model_dump(exclude_none=True)})
        seeds = parent.seeds or seeds
    budget = Budget(**{**budget.model_dump(exclude_none=True), **own.budget.model_dump(exclude_none=True)})
    grid += [(entry, Origin(path, ("grid", i))) for i, entry in enumerate(own.grid)]
    runs += [(entry, Origin(path, ("runs", i))) for i, entry in enumerate(own.runs)]
    released += [Origin(path, ("released",))] if own.released else []
    name = own.name or path.stem
    try:
        check_name(name, "suite name")
    except UnsafePathError as err:
        raise SuiteError(f"{path}: {err} (taken from the file name; set `name:` in the file)") from None
    return Suite(name=name, path=str(path), description=own.description,
                 seeds=own.seeds or seeds, budget=budget, grid=grid, runs=runs,
                 margins=own.margins, released=tuple(released), sources=tuple(sources))


Where = Callable[..., str]  # (field, *keys) -> "file: line N: field ..." (computed only for an error)
NOT_OVERRIDES = {"T": "set it with the run's T field", "num_classes": "it follows the dataset"}


def _unknown(kind: str, value: str, valid: list[str], where: str) -> SuiteError:
    close = closest(value, valid)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return SuiteError(f"{where}: unknown {kind} {value!r}; {hint}valid {kind}s: {', '.join(valid)}")


class _Resolver:
    """Checks names against the registries and fills defaults from model cards."""

    def __init__(self, suite: Suite, data_root: Path | None = None) -> None:
        import zoo
        from harness.data import list_datasets
        from harness.recipe import apply_overrides, list_recipes, load_recipe

        self.suite = suite
        self.data_root = data_root
        self.models = zoo.list_models()
        self.datasets = list_datasets()
        self.recipes = list_recipes()
        self.card = zoo.model_card
        self.load_recipe = load_recipe
        self.apply_overrides = apply_overrides
        self._catalog: Catalog | None = None
        self._applied: dict[tuple[str, str], Any] = {}
        self._recipe_hashes: dict[str, str] = {}

    @staticmethod
    @functools.lru_cache(maxsize=None)
    def model_parameters(model: str) -> dict[str, Any]:
        """The model constructor's arguments with their annotations: the schema of a run's ``overrides`` (read
        once per model: ``inspect.signature`` for each of 10,000 runs took a minute)."""
        import zoo

        return {name: p.annotation for name, p in zoo.model_parameters(model).items()}

    def check_overrides(self, model: str, overrides: dict[str, Any], where: Where) -> None:
        """Each override names a constructor argument (not T or num_classes) and has its type, or is a component
        swap (``neuron``, ``surrogate``) the model's card allows."""
        if not overrides:
            return
        import zoo.core

        parameters = self.model_parameters(model)
        for key, value in overrides.items():
            if key in NOT_OVERRIDES:
                raise SuiteError(f"{where('overrides', key)}: {key} is not a model override; {NOT_OVERRIDES[key]}")
            if key in zoo.core.SWAP_FIELDS:
                self.check_swap(model, key, overrides, where)
                continue
            if key not in parameters:
                valid = sorted(set(parameters) - set(NOT_OVERRIDES) | set(zoo.core.SWAP_FIELDS))
                raise _unknown("override", key, valid, where("overrides", key))
            problem = value_problem(value, parameters[key])
            if problem:
                raise SuiteError(f"{where('overrides', key)}: override {key!r} of {model}: {problem}")

    def check_swap(self, model: str, key: str, overrides: dict[str, Any], where: Where) -> None:
        """Swap override ``key`` is well formed and allowed by the model's card (``zoo.core.swap``), with the swaps
        before it (a surrogate swap acts on the neuron the neuron swap puts in)."""
        from zoo.core.swap import SWAP_FIELDS, SwapError, check_swaps

        if overrides[key] is None:
            raise SuiteError(f"{where('overrides', key)}: override {key!r} of {model}: a swap needs a value (leave "
                             f"{key} out to keep the model's own)")
        upto = SWAP_FIELDS[:SWAP_FIELDS.index(key) + 1]
        try:
            check_swaps(model, self.card(model).swaps, **{k: overrides[k] for k in upto if k in overrides})
        except SwapError as err:
            raise SuiteError(f"{where('overrides', key)}: {err}") from None

    def recipe_with(self, recipe: str, overrides: dict[str, Any]):
        """``recipe`` with ``overrides`` applied as a run applies them, once per recipe and overrides in an
        expansion (10,000 runs share a few hundred); an invalid override raises ``OverrideError``."""
        key = (recipe, repr(overrides))
        if key not in self._applied:
            self._applied[key] = self.apply_overrides(self.load_recipe(recipe), overrides)
        return self._applied[key]

    def recipe_hash(self, recipe: str) -> str:
        """The ``recipe_hash`` of a run spec: of the recipe's identity (``Recipe.identity_json``), once per recipe."""
        if recipe not in self._recipe_hashes:
            identity = self.load_recipe(recipe).identity_json()
            self._recipe_hashes[recipe] = hashlib.sha256(identity.encode()).hexdigest()[:16]
        return self._recipe_hashes[recipe]

    def check_recipe_overrides(self, recipe: str, overrides: dict[str, Any], where: Where) -> None:
        """The recipe overrides apply to the recipe as a run applies them."""
        from harness.recipe import OverrideError

        try:
            self.recipe_with(recipe, overrides)
        except OverrideError as err:
            key, problem = next(iter(err.problems.items()))
            raise SuiteError(f"{where('recipe_overrides', key)}: recipe {recipe!r}: {problem}") from None

    def check_data_options(self, dataset: str, options: dict[str, Any], where: Where) -> None:
        """Each data option is one the dataset takes, with its type (the dataset builders, hence timm, are imported
        only for a run that has data options: suite expansion comes before `harness run`'s first line)."""
        if not options:
            return
        from harness.data import dataset_options

        accepted = dataset_options(dataset)
        for key, value in options.items():
            if key not in accepted:
                valid = ", ".join(sorted(accepted)) or "none"
                raise SuiteError(f"{where('data_options', key)}: unknown data option {key!r} for dataset {dataset!r}; "
                                 f"valid data options: {valid}")
            problem = value_problem(value, accepted[key])
            if problem:
                raise SuiteError(f"{where('data_options', key)}: data option {key!r} of {dataset}: {problem}")

    def check_distillation(self, entry: RunEntry, recipe: str, where: Where) -> None:
        """A run that distils needs a model with a distillation head and a teacher that exists (its weights file is
        checked by ``harness.launch.preflight``)."""
        import zoo

        distill = self.recipe_with(recipe, entry.recipe_overrides).distill
        if distill.type == "none":
            return
        kd = zoo.model_parameters(entry.model).get("kd")
        if kd is None or not entry.overrides.get("kd", kd.default):
            fix = "overrides: {kd: true}" if kd is not None else "a model with a kd argument"
            raise SuiteError(f"{where('model')}: recipe {recipe!r} distils (distill.type {distill.type!r}) but "
                             f"{entry.model} has no distillation head; expected a kd model ({fix})")
        given = "distill.teacher" in entry.recipe_overrides
        self.check_teacher(distill.teacher, recipe,
                           lambda: where("recipe_overrides", "distill.teacher") if given else where("recipe"))

    def check_teacher(self, teacher: str, recipe: str, at: Callable[[], str]) -> None:
        """The teacher names a registered zoo model or a model of the installed timm. ``at()`` says where it is set,
        computed only for an error: it parses the suite file, which for every run of a 10,000-run file is hours."""
        library, name = teacher.split(":", 1)
        if library == "zoo":
            valid, what = self.models, "a registered zoo model"
        else:
            version, valid = timm_models()
            what = f"a model of the installed timm {version}"
        if name not in valid:
            close = closest(name, list(valid))
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise SuiteError(f"{at()}: recipe {recipe!r}: distill.teacher {teacher!r}: expected {what}{hint}")

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
        from zoo.core.swap import canonical_swaps

        if entry.model not in self.models:
            raise SuiteError(f"{where('model')}: {unknown_model(entry.model)}")
        if entry.dataset not in self.datasets:
            raise _unknown("dataset", entry.dataset, self.datasets, where("dataset"))
        self.check_overrides(entry.model, entry.overrides, where)
        self.check_data_options(entry.dataset, entry.data_options, where)
        recipe = self.recipe_for(entry.model, entry.dataset, entry.recipe, where)
        self.check_recipe_overrides(recipe, entry.recipe_overrides, where)
        if entry.weights is None:  # an eval-only run has no teacher
            self.check_distillation(entry, recipe, where)
        weights = self.weights_fields(entry, where)
        if weights:  # an eval-only run trains nothing: the epochs knob does not apply, energy covers every image
            budget = Budget(**{**budget.model_dump(), "epochs": None, "energy_images": "all"})
        return RunSpec(
            suite=self.suite.name, model=entry.model, dataset=entry.dataset,
            T=entry.T or self.card(entry.model).T, seed=entry.seed, recipe=recipe,
            recipe_hash=self.recipe_hash(recipe),
            overrides={**self.released_arguments(entry, where), **canonical_swaps(entry.overrides)},
            recipe_overrides=entry.recipe_overrides, variant=entry.variant,
            data_options=entry.data_options, epochs=budget.epochs, limit_batches=budget.limit_batches,
            subset=budget.subset, energy_images=_energy_images(budget), threads=budget.threads or 1, **weights,
        )

    def weights_catalog(self, at: Callable[[], str]) -> Catalog:
        """The weights catalog (``harness.weights.catalog.active_catalog``), read once per expansion; an unreadable
        one is an error at ``at()``."""
        if self._catalog is None:
            from harness.weights.catalog import CatalogError, active_catalog

            try:
                self._catalog = active_catalog()
            except CatalogError as err:
                raise SuiteError(f"{at()}: {err}") from None
        return self._catalog

    def released_arguments(self, entry: RunEntry, where: Where) -> dict[str, Any]:
        """The constructor arguments a released checkpoint needs (the catalog's ``model_args``, e.g. SDT v2's
        ``kd: true`` for its distillation head); the entry's own overrides take precedence."""
        if entry.weights != RELEASED:
            return {}
        try:
            return dict(self.weights_catalog(lambda: where("weights")).get(entry.model).model_args)
        except KeyError as err:
            raise SuiteError(f"{where('weights')}: {str(err).strip(chr(34))}") from None

    def weights_fields(self, entry: RunEntry, where: Where) -> dict[str, Any]:
        """The weights fields of an eval-only run (none for a training run): the file is located under the data
        root and hashed when present; a missing one is no error here (``harness validate`` lists it)."""
        if entry.weights is None:
            return {}
        from harness.data.catalog import resolve_data_root
        from harness.weights.locate import WeightsLocationError, locate

        catalog = self.weights_catalog(lambda: where("weights")) if entry.weights == RELEASED else None
        try:
            located = locate(entry.model, entry.weights, resolve_data_root(self.data_root), catalog)
        except WeightsLocationError as err:
            raise SuiteError(f"{where('weights')}: {err}") from None
        return {"weights": entry.weights, "weights_sha256": located.sha256, "weights_file": located.location}


@functools.lru_cache(maxsize=1)
def timm_models() -> tuple[str, list[str]]:
    """The installed timm's version and model names, cached per timm version and install location
    (``harness.usercache``): importing timm to list them takes seconds, and ``validate`` should not."""
    from importlib.metadata import version
    from importlib.util import find_spec

    from harness.usercache import cached

    def names() -> list[str]:
        import timm

        return list(timm.list_models())

    spec = find_spec("timm")
    release = version("timm")
    listed = cached("timm-models", f"{release} {spec.origin if spec else ''}", names,
                    lambda value: isinstance(value, list) and all(isinstance(n, str) for n in value))
    return release, listed


def _energy_images(budget: Budget) -> EnergyImages:
    return DEFAULT_ENERGY_IMAGES if budget.energy_images is None else budget.energy_images


def _grid_runs(entry: GridEntry, origin: Origin, default_seeds: list[int] | None):
    """Each run of a grid entry, with the error locations of its model, dataset and recipe."""
    variants = entry.variants or {None: {}}
    for (m, model), (d, dataset), T, seed, (variant, extra) in itertools.product(
            enumerate(entry.models), enumerate(entry.datasets), entry.T or [None],
            entry.seeds or default_seeds or [0], variants.items()):
        run = RunEntry(model=model, dataset=dataset, T=T, seed=seed, recipe=entry.recipe,
                       overrides={**entry.overrides, **extra}, recipe_overrides=entry.recipe_overrides,
                       variant=variant, data_options=entry.data_options, weights=entry.weights)
        fields = {"model": ("models", m), "dataset": ("datasets", d), "recipe": ("recipe",),
                  "overrides": ("overrides",), "recipe_overrides": ("recipe_overrides",),
                  "data_options": ("data_options",), "weights": ("weights",)}

        def where(field: str, *keys: Any, fields=fields, variant=variant, extra=extra) -> str:
            base = ("variants", variant) if field == "overrides" and keys and keys[0] in extra else fields[field]
            return origin.at(*base, *keys)

        yield run, where


def expand(suite: Suite, budget: Budget | None = None, data_root: str | Path | None = None) -> list[RunSpec]:
    """All run specs of a suite, in file order, without duplicates; ``budget`` overrides the suite's. Eval-only
    runs' weights files are looked for under ``data_root`` (their hash is part of the run id)."""
    effective = Budget(**{**suite.budget.model_dump(exclude_none=True),
                          **(budget.model_dump(exclude_none=True) if budget else {})})
    if small_energy_sample(effective.energy_images):
        warnings.warn(f"{suite.path}: budget.energy_images {effective.energy_images}: energy, firing rates and "
                      f"NeuroBench metrics are measured on a sample of {effective.energy_images} images, fewer than "
                      f"the {SAMPLE_ENERGY_IMAGES} that give a stable per-image mean", stacklevel=2)
    resolver = _Resolver(suite, Path(data_root) if data_root is not None else None)
    specs: dict[str, RunSpec] = {}
    for entry, origin in suite.grid:
        for run, where in _grid_runs(entry, origin, suite.seeds):
            spec = resolver.spec(run, effective, where)
            specs.setdefault(spec.run_id, spec)
    for run, origin in suite.runs:
        spec = resolver.spec(run, effective, lambda *field, origin=origin: origin.at(*field))
        specs.setdefault(spec.run_id, spec)
    for origin in suite.released:
        for run in _released_runs(resolver.weights_catalog(origin.at)):
            spec = resolver.spec(run, effective, lambda *field, origin=origin: origin.at())
            specs.setdefault(spec.run_id, spec)
    return list(specs.values())


EXPANSIONS = "suite-specs"  # the user cache entries (``harness.usercache``) of ``cached_expansion``
HEADINGS = "suite-headings"  # and of ``cached_heading``
CODE = ("harness", "zoo")  # spikebench's sources: the names, cards, recipes, schemas and checks expansion uses
FILE_TIME_TICK_NS = 50_000_000  # file times lag the clock by up to a kernel tick: a file this recent counts as new


def cached_expansion(path: str | Path, budget: Budget | None = None,
                     data_root: str | Path | None = None) -> tuple[str, list[RunSpec]]:
    """The name and run specs (``load_suite``, ``expand``) of the suite file ``path``, kept in the user cache
    while every suite file it read and spikebench's own sources (``CODE``) keep their stamps: ``status`` of a
    10,000-run suite spent most of its time parsing and checking the same files again (and importing the model
    zoo to do so). A suite with eval-only runs (their weights files count) or whose expansion warns is not kept."""
    path = Path(path).resolve()
    made: list[RunSpec] = []

    def derive(suite: Suite) -> tuple[dict[str, Any], bool]:
        made.extend(expand(suite, budget, data_root))
        return {"specs": [spec.model_dump(mode="json") for spec in made]}, not any(spec.eval_only for spec in made)

    def valid(value: dict) -> bool:
        return isinstance(value.get("specs"), list) and all(isinstance(spec, dict) for spec in value["specs"])

    request = [str(path), budget.model_dump() if budget else None, str(data_root)]
    record = _kept_per_suite_file(EXPANSIONS, request, path, derive, valid)
    return record["name"], made or [RunSpec.model_validate(spec) for spec in record["specs"]]


class SuiteHeading(NamedTuple):
    """What a report needs of its suite file: the name and the verdict margins."""

    name: str
    margins: Margins


def cached_heading(path: str | Path) -> SuiteHeading:
    """The name and margins of the suite file ``path``, kept in the user cache as ``cached_expansion`` keeps its
    specs: a report of a 10,000-run suite spent a second reading and checking the file again."""
    path = Path(path).resolve()

    def derive(suite: Suite) -> tuple[dict[str, Any], bool]:
        return {"margins": suite.margins.model_dump()}, True

    record = _kept_per_suite_file(HEADINGS, [str(path)], path, derive,
                                  lambda value: isinstance(value.get("margins"), dict))
    return SuiteHeading(record["name"], Margins.model_validate(record["margins"]))


def _kept_per_suite_file(kind: str, request: list, path: Path,
                         derive: Callable[[Suite], tuple[dict[str, Any], bool]],
                         valid: Callable[[dict], bool]) -> dict[str, Any]:
    """``derive(load_suite(path))``'s JSON record with the suite's name, sources and their stamps, read from the
    user cache entry ``kind`` (one per ``request``) while those files and spikebench's sources keep their stamps;
    else derived and kept, unless ``derive`` says not to, it warned, or a file changed while it was read."""
    from harness.usercache import file_stamps, lookup, store

    name = f"{kind}-{hashlib.sha256(json.dumps(request, default=str).encode()).hexdigest()[:16]}"  # per request
    key = _expansion_key(request)
    entry = lookup(name, key, lambda value: _suite_record(value) and valid(value))
    if entry is not None and file_stamps(entry["sources"]) == entry["stamps"]:
        return entry
    started = time.time_ns() - FILE_TIME_TICK_NS
    suite = load_suite(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record, keep = derive(suite)
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    stamps = file_stamps(suite.sources)
    written_since = any(stamp[1] is None or stamp[-1] >= started for stamp in stamps)  # changed while read
    record = {**record, "name": suite.name, "sources": list(suite.sources), "stamps": stamps}
    if keep and not (caught or written_since):
        store(name, key, record)
    return record


def _expansion_key(request: list) -> str:
    """What an expansion depends on besides its suite files: the ``request`` (the file it starts from, the budget,
    the data root), the pydantic version and spikebench's sources (``code_stamps``)."""
    import pydantic

    content = [request, pydantic.VERSION, code_stamps()]
    return hashlib.sha256(json.dumps(content, default=str).encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def code_stamps() -> str:
    """A hash of the state of spikebench's own sources, read once per process without reading a source: the
    Python version, the stamps (``harness.usercache.file_stamps``) of every file of ``CODE`` and of the git index
    and code snapshot that say which of them are tracked (``harness.engine.provenance.tracked_files``)."""
    import sys

    from harness.usercache import file_stamps, tree_files

    root = PACKAGE_SUITES.parent
    git = root / ".git"
    if git.is_file():  # a worktree: "gitdir: <its folder in the main repository>"
        git = Path(git.read_text().partition("gitdir:")[2].strip())
    extra = [git / "index", root / "snapshot.json"]
    content = [sys.version, file_stamps(tree_files(root, CODE), root), file_stamps(extra)]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def _suite_record(value: Any) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("name"), str)
            and isinstance(value.get("sources"), list) and all(isinstance(p, str) for p in value["sources"])
            and isinstance(value.get("stamps"), list))


def _released_runs(catalog: Catalog) -> list[RunEntry]:
    """``released: all``: one eval-only run per weights catalog entry, on its model's own (the paper's) dataset."""
    import zoo

    return [RunEntry(model=model, dataset=zoo.model_card(model).dataset, weights=RELEASED)
            for model in catalog.entries]
