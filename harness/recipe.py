"""Training recipes: one validated schema for every hyper-parameter of an official training pipeline.

Named recipes live as YAML files in ``harness/recipes/<name>.yaml``; each names where its values come from
(``source``). A recipe is resolved once (``load_recipe``) and saved with every run.
"""

from __future__ import annotations

import difflib
import math
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.configfile import load_yaml, type_name
from harness.names import has_control_characters

RECIPE_DIR = Path(__file__).with_name("recipes")
# Below this many images a run's energy, firing rates and NeuroBench metrics are a small sample of the eval split:
# allowed (a quick check measures a few images), but ``harness.suite.expand`` warns, and the report shows the count.
SAMPLE_ENERGY_IMAGES = 1000

# Images a run's energy is measured on (suites' budget and the engine's spec): "all" = the whole eval split,
# N >= 1 = a seeded subset of N (the whole split if it is smaller), 0 = not measured.
EnergyImages = Literal["all"] | Annotated[int, Field(ge=0)]


def small_energy_sample(value: EnergyImages) -> bool:
    """Whether ``value`` measures energy on fewer than ``SAMPLE_ENERGY_IMAGES`` images (a noisy per-image mean)."""
    return isinstance(value, int) and 0 < value < SAMPLE_ENERGY_IMAGES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataRecipe(_Strict):
    """The data side: input pipeline, augmentation and mixing."""

    input_size: int | None = None  # None: the dataset's native size
    normalize_mean: tuple[float, ...] | None = None  # None: the dataset's own constants
    normalize_std: tuple[float, ...] | None = None
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bicubic"
    hflip: float = 0.0
    random_resized_crop: tuple[float, float] | None = None  # (min, max) scale; None: no random crop
    eval_crop_pct: float = 1.0  # eval: resize to size / crop_pct, then centre crop
    randaugment: str | None = None  # timm config string, e.g. "rand-m9-n1-mstd0.4-inc1"
    randaugment_ops: tuple[str, ...] | None = None  # restrict RandAugment to these timm op names
    random_erasing: float = 0.0
    random_erasing_mode: Literal["const", "rand", "pixel"] = "const"
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0
    mix_switch_prob: float = 0.5
    mix_off_epoch: int | None = None  # epoch from which mixup/cutmix is switched off
    dvs_hflip: float = 0.0  # DVS: flip all T frames of a sample together
    dvs_augment: Literal["snn_augment_wide"] | None = None
    dvs_cutout: int | None = None  # DVS cutout hole size in pixels
    dvs_resize: int | None = None  # DVS: resize frames (SDT resizes CIFAR10-DVS to 64)
    dvs_channels: Literal[2, 3] = 2  # DVS: 2 polarities, or 3 = the polarities and their sum (model in_channels)


class OptimRecipe(_Strict):
    """Optimizer and learning-rate schedule: linear warmup, half-cycle cosine, then cooldown at ``min_lr``.

    ``lr_step`` says when the rate changes, as the official script does: ``"epoch"`` is timm's
    ``CosineLRScheduler`` (the timm ``train.py`` scripts: one rate per epoch, the cosine runs over the whole
    ``epochs`` and warmup overrides its first epochs); ``"step"`` is the MAE/DeiT ``adjust_learning_rate``
    (a new rate every optimizer step, the cosine starts where warmup ends). See ``harness.engine.optim``.
    """

    name: Literal["adamw", "lamb"] = "adamw"
    lr: float = 1e-3
    lr_base_batch: int | None = None  # if set, lr is scaled by effective_batch / lr_base_batch
    weight_decay: float = 0.05
    no_decay_1d: bool = False  # no weight decay on biases and norm parameters
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    epochs: int = 1
    warmup_epochs: float = 0.0
    warmup_lr: float = 0.0
    min_lr: float = 0.0
    cooldown_epochs: int = 0
    lr_step: Literal["epoch", "step"] = "step"
    grad_clip: float | None = None
    lamb_trust_clip: bool = False  # LAMB: clip the trust ratio at 1 (timm's Lamb trust_clip; timm's default: off)


class TrainRecipe(_Strict):
    """Batching, loss and numerics."""

    batch_size: int = Field(64, ge=1)  # per device
    accum_steps: int = Field(1, ge=1)  # used when global_batch is None
    global_batch: int | None = Field(None, ge=1)  # batch_size x devices x accumulation, kept at launch
    label_smoothing: float = 0.0
    loss: Literal["ce", "tet"] = "ce"
    tet_lambda: float = 0.001  # TET: weight of the MSE term pulling outputs towards tet_means
    tet_means: float = 1.0
    amp: bool = False  # bf16/fp16 autocast on GPU; ignored on CPU
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: bf16 autocast on every device (fast mode)
    ema_decay: float | None = None
    channels_last: bool = False  # channels-last weights and images (fast mode on CPU; changes the rounding)
    compile: bool = False
    fast: bool = False  # fast mode: precision, channels_last and compile chosen for the device (engine/numerics.py)
    eval_batch_size: int | None = None

    @model_validator(mode="after")
    def _fast_chooses_the_numerics(self) -> "TrainRecipe":
        chosen = [name for name, on in (("precision: bf16", self.precision != "fp32"),
                                        ("channels_last: true", self.channels_last), ("compile: true", self.compile))
                  if on]
        if self.fast and chosen:
            raise ValueError(f"train.fast chooses precision, channels_last and compile for the device it runs on; "
                             f"drop {', '.join(chosen)}")
        return self

    @model_validator(mode="after")
    def _one_way_to_accumulate(self) -> "TrainRecipe":
        if self.global_batch is not None and self.accum_steps != 1:
            raise ValueError("give train.global_batch (accumulation follows the devices) or train.accum_steps, "
                             "not both")
        if self.global_batch is not None and self.global_batch % self.batch_size:
            raise ValueError(f"train.global_batch {self.global_batch} is not a multiple of train.batch_size "
                             f"{self.batch_size}")
        return self


def accumulation_steps(train: TrainRecipe, devices: int) -> int:
    """Micro-batches per optimizer step on ``devices`` devices: ``global_batch / (batch_size x devices)`` when the
    recipe fixes the global batch (so it stays what the paper used on any device count), else ``accum_steps``."""
    if train.global_batch is None:
        return train.accum_steps
    per_step = train.batch_size * devices
    if train.global_batch % per_step:
        raise ValueError(f"train.global_batch {train.global_batch} is not divisible by train.batch_size "
                         f"{train.batch_size} x {devices} devices = {per_step}: use a device count or batch_size "
                         f"that divides it")
    return train.global_batch // per_step


def model_input_kwargs(data: DataRecipe, kind: str) -> dict[str, Any]:
    """Model constructor arguments the data recipe implies: ``in_channels`` for 3-channel event input."""
    return {"in_channels": data.dvs_channels} if kind == "dvs" and data.dvs_channels != 2 else {}


def _weights_path(value: str | None) -> str | None:
    """A teacher weights file is named relative to the data root: no absolute path, no '..', no control chars."""
    if value is None:
        return None
    parts = Path(value).parts
    if not parts or Path(value).is_absolute() or ".." in parts or has_control_characters(value):
        raise ValueError(f"expected a file path relative to the data root (no leading '/', no '..'), got {value!r}")
    return value


TEACHER_LIBRARIES = ("timm", "zoo")


def _teacher_name(value: str | None) -> str | None:
    if value is None:
        return None
    library, _, name = value.partition(":")
    if library not in TEACHER_LIBRARIES or not name:
        raise ValueError(f"expected 'timm:<timm model name>' or 'zoo:<registered zoo model>', got {value!r}")
    return value


class DistillRecipe(_Strict):
    """Knowledge distillation as the official SDT v2/v3 code trains its ``kd`` models (DeiT's ``DistillationLoss``):
    ``loss = (1 - alpha) * base(class head) + alpha * distillation(kd head, teacher)``, where ``soft`` is
    ``KL(log_softmax(kd / tau) || log_softmax(teacher / tau)) * tau^2 / numel`` and ``hard`` is the cross-entropy
    of the kd head against the teacher's argmax. ``none`` trains on the class head alone; its other fields are
    cleared, so that settings without effect do not reach the run id. The teacher is ``timm:<name>`` or
    ``zoo:<name>`` (built with ``teacher_kwargs`` and the dataset's classes) with its weights read, weights only,
    from ``teacher_weights`` under the data root (``.safetensors`` or a torch file)."""

    type: Literal["none", "soft", "hard"] = "none"
    alpha: float = Field(0.5, ge=0.0, le=1.0)
    tau: float = Field(1.0, gt=0.0)
    teacher: Annotated[str | None, AfterValidator(_teacher_name)] = None
    teacher_kwargs: dict[str, Any] = Field(default_factory=dict)
    teacher_weights: Annotated[str | None, AfterValidator(_weights_path)] = None

    @model_validator(mode="before")
    @classmethod
    def _no_teacher_without_distillation(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type", "none") == "none":
            return {"type": "none"}
        return data

    @model_validator(mode="after")
    def _teacher_when_distilling(self) -> "DistillRecipe":
        if self.type != "none" and (self.teacher is None or self.teacher_weights is None):
            raise ValueError(f"distill.type {self.type!r} needs distill.teacher and distill.teacher_weights")
        return self


class Deviation(_Strict):
    """One place where the paper and the official code disagree, and which value the recipe uses.

    ``field`` is a recipe field (``train.global_batch``; its value must be the chosen side's) or a quantity
    derived from several (``peak_lr``); ``source`` says where each value is stated.
    """

    field: str
    paper: Any
    code: Any
    chosen: Literal["paper", "code"]
    source: str


SECTIONS = {"data": DataRecipe, "optim": OptimRecipe, "train": TrainRecipe, "distill": DistillRecipe}


class Recipe(_Strict):
    """A named, complete training recipe."""

    name: str
    description: str
    source: str = Field(description="where the values come from (official repository file at a commit / paper section)")
    data: DataRecipe = DataRecipe()
    optim: OptimRecipe = OptimRecipe()
    train: TrainRecipe = TrainRecipe()
    distill: DistillRecipe = DistillRecipe()
    deviations: tuple[Deviation, ...] = ()

    @model_validator(mode="after")
    def _deviations_match_the_values(self) -> "Recipe":
        raw = self.model_dump()
        for deviation in self.deviations:
            section, _, name = deviation.field.partition(".")
            if section in SECTIONS and name in raw[section]:
                expected = getattr(deviation, deviation.chosen)
                if _as_value(raw[section][name]) != _as_value(expected):
                    raise ValueError(f"deviations: {deviation.field} chooses the {deviation.chosen}'s value "
                                     f"{expected!r} but the recipe has {raw[section][name]!r}")
        return self

    def identity_json(self) -> str:
        """The recipe's content as run ids hash it: the distillation section is left out while it is off, and a
        field added later (``LATER_FIELDS``) while it holds its default, so that a recipe not using them keeps
        the run ids it had before they existed."""
        exclude: dict[str, Any] = {"distill": True} if self.distill.type == "none" else {}
        for section, name in LATER_FIELDS:
            model = getattr(self, section)
            if getattr(model, name) == type(model).model_fields[name].default:
                exclude.setdefault(section, set()).add(name)
        return self.model_dump_json(exclude=exclude or None)


# Recipe fields added after run ids were published: left out of a recipe's identity while at their default.
LATER_FIELDS = (("optim", "lamb_trust_clip"), ("train", "fast"))


def _as_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def scale_schedule(optim: OptimRecipe, epochs: int) -> OptimRecipe:
    """The recipe's schedule shrunk (or stretched) to ``epochs`` epochs in total, keeping its shape.

    With ``f = epochs / (optim.epochs + optim.cooldown_epochs)``: cooldown becomes ``round(cooldown * f)``
    epochs, at least 1 when the recipe has one and the run has 2+ epochs (so the run ends at ``min_lr``, the
    recipe's final rate), the main phase the rest; warmup becomes ``warmup * f`` epochs, rounded to whole epochs
    when the rate steps per epoch (per-step schedules round it to whole steps) and shorter than the main phase.
    Rounding is half up. E.g. 400 + 10 cooldown, warmup 20, run for 5 epochs: 4 main (warmup 0) + 1 cooldown.
    """
    full = optim.epochs + optim.cooldown_epochs
    factor = epochs / full
    cooldown = _round_half_up(optim.cooldown_epochs * factor)
    if optim.cooldown_epochs and epochs > 1:
        cooldown = max(cooldown, 1)
    cooldown = min(cooldown, epochs - 1)
    main = epochs - cooldown
    warmup = optim.warmup_epochs * factor
    if optim.lr_step == "epoch":
        warmup = min(_round_half_up(warmup), main - 1)
    return optim.model_copy(update={"epochs": main, "cooldown_epochs": cooldown, "warmup_epochs": min(warmup, main)})


def list_recipes() -> list[str]:
    """Names of the shipped recipes."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


@lru_cache(maxsize=None)
def load_recipe(name: str) -> Recipe:
    """Load and validate ``harness/recipes/<name>.yaml``; errors name the file and the field."""
    if name not in list_recipes():  # a name, never a path: "../x" cannot reach outside the recipe folder
        raise KeyError(f"unknown recipe {name!r}; available: {', '.join(list_recipes())}")
    return load_yaml(RECIPE_DIR / f"{name}.yaml", Recipe, "recipe")


class OverrideError(ValueError):
    """Recipe overrides that name no recipe field or give a value the field does not take; ``problems`` maps
    each bad dotted key to what was expected."""

    def __init__(self, recipe: str, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__(f"recipe {recipe!r}: " + "; ".join(f"override {k!r}: {v}" for k, v in problems.items()))




def apply_overrides(recipe: Recipe, changes: dict[str, Any]) -> Recipe:
    """``recipe`` with dotted-key ``changes`` (``{"optim.lr": 5e-4}``) applied and re-validated, exactly as a run
    applies them; an OverrideError names every bad key, what was expected and (for a typo) close field names."""
    raw = recipe.model_dump()
    problems: dict[str, str] = {}
    for key, value in changes.items():
        section, _, field = key.partition(".")
        if section not in SECTIONS or field not in SECTIONS[section].model_fields:
            fields = [f"{s}.{f}" for s, model in SECTIONS.items() for f in model.model_fields]
            close = difflib.get_close_matches(key, fields, n=3, cutoff=0.6)
            problems[key] = ("expected 'data.<field>', 'optim.<field>', 'train.<field>' or 'distill.<field>' naming a "
                             "recipe field"
                             + (f"; did you mean {', '.join(close)}?" if close else ""))
        else:
            raw[section][field] = value
    if not problems:
        try:
            return Recipe.model_validate(raw)
        except ValidationError as err:
            for e in err.errors():
                loc = [str(p) for p in e["loc"]]
                if len(loc) < 2:  # a check across the section's fields: blame the first override in it
                    key = next((k for k in changes if k.startswith(f"{loc[0]}.")), loc[0])
                    problems[key] = e["msg"].removeprefix("Value error, ")
                    continue
                section, field = loc[:2]
                expected = type_name(SECTIONS[section].model_fields[field].annotation)
                problems[f"{section}.{field}"] = f"{e['msg']} (expected {expected})"
    raise OverrideError(recipe.name, problems)
