"""Training recipes: one validated schema for every hyper-parameter of an official training pipeline.

Named recipes live as YAML files in ``harness/recipes/<name>.yaml``; each names where its values come from
(``source``). A recipe is resolved once (``load_recipe``) and saved with every run.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.configfile import load_yaml

RECIPE_DIR = Path(__file__).with_name("recipes")


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


class OptimRecipe(_Strict):
    """Optimizer and learning-rate schedule (linear warmup, then cosine per step, then cooldown at min_lr)."""

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
    grad_clip: float | None = None


class TrainRecipe(_Strict):
    """Batching, loss and numerics."""

    batch_size: int = 64
    accum_steps: int = 1
    label_smoothing: float = 0.0
    loss: Literal["ce", "tet"] = "ce"
    tet_lambda: float = 0.001  # TET: weight of the MSE term pulling outputs towards tet_means
    tet_means: float = 1.0
    amp: bool = False  # bf16/fp16 autocast on GPU; ignored on CPU
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: bf16 autocast on every device (fast mode)
    ema_decay: float | None = None
    channels_last: bool = False
    compile: bool = False
    eval_batch_size: int | None = None


class Recipe(_Strict):
    """A named, complete training recipe."""

    name: str
    description: str
    source: str = Field(description="where the values come from (official file / zoo-spec section / paper)")
    data: DataRecipe = DataRecipe()
    optim: OptimRecipe = OptimRecipe()
    train: TrainRecipe = TrainRecipe()


def list_recipes() -> list[str]:
    """Names of the shipped recipes."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


@lru_cache(maxsize=None)
def load_recipe(name: str) -> Recipe:
    """Load and validate ``harness/recipes/<name>.yaml``; errors name the file and the field."""
    path = RECIPE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"unknown recipe {name!r}; available: {', '.join(list_recipes())}")
    return load_yaml(path, Recipe, "recipe")


def parse_recipe(raw: object, source: str) -> Recipe:
    """Validate a recipe mapping; a ValueError names ``source``, each bad field and what was expected."""
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: a recipe must be a mapping, got {type(raw).__name__}")
    try:
        return Recipe.model_validate(raw)
    except ValidationError as err:
        lines = [f"{source}: field {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
        raise ValueError("invalid recipe\n" + "\n".join(lines)) from None
