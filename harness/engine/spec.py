"""What one training run is: model, dataset, recipe (+ overrides), T, seed and budget knobs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

import zoo
from harness.data import dataset_info
from harness.recipe import EnergyImages, Recipe, apply_overrides, load_recipe, model_input_kwargs, scale_schedule


class TrainSpec(BaseModel):
    """Everything ``harness.engine.train`` needs; saved (resolved) as ``config.json`` in the run directory.

    ``overrides`` replace recipe fields by dotted key (``{"optim.lr": 5e-4, "train.batch_size": 32}``);
    ``epochs`` is the run's budget: that many epochs in total, the recipe's schedule (warmup, cosine,
    cooldown) scaled to them by ``harness.recipe.scale_schedule`` after the overrides are applied.
    ``train_subset`` / ``eval_subset`` keep a seeded random subset of that many samples;
    ``limit_train_batches`` / ``limit_eval_batches`` cap the batches per epoch / per evaluation.
    ``energy_images`` ("all", N or 0 = off): after training, energy (both conventions), firing rates and
    NeuroBench's metrics are measured on the whole eval set or a seeded subset of N of its images (fewer than
    ``harness.recipe.SAMPLE_ENERGY_IMAGES`` is a small sample: suites warn about it).
    ``weights`` (a file) makes the run eval-only (``harness.engine.eval_only``): nothing is trained, and
    ``weights_sha256`` is the file's SHA-256 the run was planned with (checked before it is evaluated).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str
    dataset: str
    recipe: Recipe | str
    data_root: str | None = None
    T: int | None = Field(default=None, ge=1)
    seed: int = 0
    overrides: dict[str, Any] = Field(default_factory=dict)
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    eval_split: str | None = None
    epochs: int | None = Field(default=None, ge=1)
    train_subset: int | None = Field(default=None, ge=1)
    eval_subset: int | None = Field(default=None, ge=1)
    limit_train_batches: int | None = Field(default=None, ge=1)
    limit_eval_batches: int | None = Field(default=None, ge=1)
    checkpoint_every_steps: int | None = Field(default=None, ge=1)
    keep_last: int = Field(default=2, ge=1)
    num_workers: int = Field(default=0, ge=0)
    device: str = "auto"
    energy_images: EnergyImages = 0
    weights: str | None = None
    weights_sha256: str | None = None

    def resolved_recipe(self) -> Recipe:
        """The recipe with ``overrides`` (and ``epochs``) applied and re-validated."""
        recipe = self._overridden()
        if self.epochs is None:
            return recipe
        return recipe.model_copy(update={"optim": scale_schedule(recipe.optim, self.epochs)})

    def reduced_budget(self) -> bool:
        """Whether ``epochs`` cuts (or stretches) the recipe's schedule: its length differs from the recipe's."""
        if self.epochs is None:
            return False
        optim = self._overridden().optim
        return self.epochs != optim.epochs + optim.cooldown_epochs

    def time_steps(self) -> int:
        """The run's T: its own, else the model card's."""
        return self.T or zoo.model_card(self.model).T

    def create_model(self, recipe: Recipe) -> nn.Module:
        """The run's zoo model (random weights from the global RNG): its T, the dataset's classes, the input
        arguments ``recipe``'s data section implies, then the run's own model overrides."""
        info = dataset_info(self.dataset)
        kwargs = {**model_input_kwargs(recipe.data, info["kind"]), **self.model_kwargs}
        return zoo.create_model(self.model, T=self.time_steps(), num_classes=info["num_classes"], **kwargs)

    def _overridden(self) -> Recipe:
        """The recipe with ``overrides`` applied, before the budget scales its schedule."""
        base = load_recipe(self.recipe) if isinstance(self.recipe, str) else self.recipe
        if not self.overrides:
            return base
        return apply_overrides(base, self.overrides)
