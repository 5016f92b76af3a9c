"""Training losses: label-smoothed CE on hard labels, soft-target CE on mixed labels, and TET on per-step logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.recipe import TrainRecipe


class TrainLoss:
    """The recipe's loss on ``[B, K]`` logits, or on per-step ``[T, B, K]`` logits when ``loss == 'tet'``.

    Targets are class indices ``[B]`` (cross-entropy with the recipe's label smoothing) or soft targets
    ``[B, K]`` from mixup/cutmix (which already carry the smoothing). TET (Deng et al. 2022) averages the
    classification loss over time steps and adds ``tet_lambda`` x MSE(logits, ``tet_means``).
    """

    def __init__(self, train: TrainRecipe) -> None:
        self.label_smoothing = train.label_smoothing
        self.tet = train.loss == "tet"
        self.tet_lambda = train.tet_lambda
        self.tet_means = train.tet_means

    @property
    def per_step(self) -> bool:
        """Whether the model must return per-step logits."""
        return self.tet

    def classification(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dim() == 2:
            return torch.sum(-target * F.log_softmax(logits, dim=-1), dim=-1).mean()
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if not self.tet:
            return self.classification(logits, target)
        if logits.dim() != 3:
            raise ValueError(f"TET loss needs per-step logits [T, B, K], got {list(logits.shape)}")
        per_step = torch.stack([self.classification(step, target) for step in logits]).mean()
        mse = F.mse_loss(logits, torch.full_like(logits, self.tet_means))
        return (1.0 - self.tet_lambda) * per_step + self.tet_lambda * mse
