"""Optimizers (AdamW, LAMB) and the learning-rate schedule (linear warmup, cosine, cooldown) per epoch or per step."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.recipe import OptimRecipe


def scaled_lr(optim: OptimRecipe, effective_batch: int) -> float:
    """The peak learning rate: ``lr``, times ``effective_batch / lr_base_batch`` when the recipe scales it."""
    return optim.lr * effective_batch / optim.lr_base_batch if optim.lr_base_batch else optim.lr


def param_groups(model: nn.Module, weight_decay: float, no_decay_1d: bool) -> list[dict]:
    """One group with weight decay and, if ``no_decay_1d``, one without it for biases and norm weights."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not no_decay_1d:
        return [{"params": [p for _, p in params], "weight_decay": weight_decay}]
    decay = [p for n, p in params if p.ndim > 1 and not n.endswith(".bias")]
    no_decay = [p for n, p in params if p.ndim <= 1 or n.endswith(".bias")]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, optim: OptimRecipe, lr: float) -> torch.optim.Optimizer:
    """AdamW (torch) or LAMB (timm's; ``lamb_trust_clip`` clips its trust ratio at 1, as the official SDT v2/v3
    code does) over ``model``'s trainable parameters."""
    groups = param_groups(model, optim.weight_decay, optim.no_decay_1d)
    if optim.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=optim.betas, eps=optim.eps)
    if optim.name == "lamb":
        from timm.optim import Lamb

        return Lamb(groups, lr=lr, betas=optim.betas, eps=optim.eps, trust_clip=optim.lamb_trust_clip)
    raise ValueError(f"optim.name: unknown optimizer {optim.name!r}; expected 'adamw' or 'lamb'")


@dataclass(frozen=True)
class LRSchedule:
    """Learning rate of optimizer step ``s``, following the official scheduler the recipe names (``lr_step``).

    ``"step"`` (MAE/DeiT ``adjust_learning_rate``): linear warmup from ``warmup_lr`` to ``peak`` over
    ``warmup_steps``, then a half-cycle cosine from ``peak`` to ``min_lr`` over the remaining main steps, then
    ``min_lr``. ``"epoch"`` (timm ``CosineLRScheduler``, ``warmup_prefix=False``): the rate of epoch ``e`` is
    ``warmup_lr + e (peak - warmup_lr) / warmup`` during warmup, else ``min_lr + (peak - min_lr)(1 + cos(pi e /
    epochs)) / 2`` (the cosine counts from epoch 0, not from the end of warmup), and ``min_lr`` from ``epochs`` on.

    Both official schedulers reach ``min_lr`` just after the main phase, so a recipe without cooldown never
    trains at it; over a full recipe that last step (or epoch) is a negligible part of the run, over a reduced
    budget it is not (3 epochs stepped per epoch end at a quarter of the peak). A reduced budget therefore ends
    the cosine one unit earlier (``ends_at_min``): its last step or epoch trains at ``min_lr``, as a recipe with
    cooldown does.
    """

    peak: float
    warmup_lr: float
    min_lr: float
    warmup: float  # in epochs (per-epoch stepping) or steps (per-step stepping)
    main: int  # same unit: where the cosine reaches min_lr
    steps_per_epoch: int
    per_epoch: bool

    @classmethod
    def from_recipe(cls, optim: OptimRecipe, peak: float, steps_per_epoch: int,
                    ends_at_min: bool = False) -> "LRSchedule":
        """The recipe's schedule; with ``ends_at_min`` (a reduced budget) a recipe without cooldown reaches
        ``min_lr`` at its last step (per-step) or epoch (per-epoch, when it has two or more)."""
        per_epoch = optim.lr_step == "epoch"
        unit = 1 if per_epoch else steps_per_epoch
        main = optim.epochs * unit
        if ends_at_min and optim.cooldown_epochs == 0 and main > 1:
            main -= 1
        return cls(peak=peak, warmup_lr=optim.warmup_lr, min_lr=optim.min_lr,
                   warmup=optim.warmup_epochs if per_epoch else round(optim.warmup_epochs * unit),
                   main=main, steps_per_epoch=steps_per_epoch, per_epoch=per_epoch)

    @property
    def warmup_steps(self) -> int:
        """Optimizer steps before the rate first reaches the cosine part."""
        return math.ceil(self.warmup) * self.steps_per_epoch if self.per_epoch else int(self.warmup)

    def __call__(self, step: int) -> float:
        t = step // self.steps_per_epoch if self.per_epoch else step
        if t < self.warmup:
            return self.warmup_lr + (self.peak - self.warmup_lr) * t / self.warmup
        if t >= self.main:
            return self.min_lr
        progress = t / self.main if self.per_epoch else (t - self.warmup) / max(1, self.main - self.warmup)
        return self.min_lr + (self.peak - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
