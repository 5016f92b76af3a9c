"""timm's Mixup/CutMix configured from a recipe, and its switch-off epoch.

The engine calls ``mixup_fn`` once, then per batch ``x, y_soft = mix(x, y)`` (the batch size must be even) and
trains on soft targets; at the start of every epoch it calls ``update_mixup_for_epoch(mix, recipe, epoch)``,
which turns mixing off from ``recipe.mix_off_epoch`` on (as timm's train script does: label smoothing stays).
CutMix cuts the last two axes, so it only suits ``[B, C, H, W]`` batches; mixup works on DVS ``[B, T, C, H, W]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.recipe import DataRecipe

if TYPE_CHECKING:
    from timm.data import Mixup


def mixup_fn(recipe: DataRecipe, num_classes: int, label_smoothing: float = 0.0) -> Mixup | None:
    """timm Mixup (batch mode) from the recipe's alphas/probabilities, or None when the recipe mixes nothing (then
    timm is not imported)."""
    if recipe.mixup_alpha <= 0 and recipe.cutmix_alpha <= 0:
        return None
    from timm.data import Mixup

    return Mixup(
        mixup_alpha=recipe.mixup_alpha,
        cutmix_alpha=recipe.cutmix_alpha,
        prob=recipe.mix_prob,
        switch_prob=recipe.mix_switch_prob,
        mode="batch",
        label_smoothing=label_smoothing,
        num_classes=num_classes,
    )


def update_mixup_for_epoch(mix: Mixup | None, recipe: DataRecipe, epoch: int) -> None:
    """Enable mixing before ``recipe.mix_off_epoch`` (0-based epochs) and disable it from then on."""
    if mix is not None:
        mix.mixup_enabled = recipe.mix_off_epoch is None or epoch < recipe.mix_off_epoch
