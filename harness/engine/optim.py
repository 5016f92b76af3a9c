"""Optimizers (AdamW, LAMB) and the per-step learning-rate schedule: linear warmup, cosine, cooldown."""

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
    """AdamW (torch) or LAMB (timm's, default trust settings) over ``model``'s trainable parameters."""
    groups = param_groups(model, optim.weight_decay, optim.no_decay_1d)
    if optim.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=optim.betas, eps=optim.eps)
    if optim.name == "lamb":
        from timm.optim import Lamb

        return Lamb(groups, lr=lr, betas=optim.betas, eps=optim.eps)
    raise ValueError(f"optim.name: unknown optimizer {optim.name!r}; expected 'adamw' or 'lamb'")


@dataclass(frozen=True)
class LRSchedule:
    """Learning rate of optimizer step ``s``: linear warmup from ``warmup_lr`` to ``peak``, half-cycle cosine
    down to ``min_lr`` over the remaining main epochs, then ``min_lr`` for the cooldown epochs."""

    peak: float
    warmup_lr: float
    min_lr: float
    warmup_steps: int
    main_steps: int

    @classmethod
    def from_recipe(cls, optim: OptimRecipe, peak: float, steps_per_epoch: int) -> "LRSchedule":
        return cls(peak=peak, warmup_lr=optim.warmup_lr, min_lr=optim.min_lr,
                   warmup_steps=round(optim.warmup_epochs * steps_per_epoch),
                   main_steps=optim.epochs * steps_per_epoch)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_lr + (self.peak - self.warmup_lr) * step / self.warmup_steps
        if step >= self.main_steps:
            return self.min_lr
        progress = (step - self.warmup_steps) / max(1, self.main_steps - self.warmup_steps)
        return self.min_lr + (self.peak - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
