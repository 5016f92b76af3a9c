"""Training losses: label-smoothed CE on hard labels, soft-target CE on mixed labels, TET on per-step logits, and
knowledge distillation (DeiT's ``DistillationLoss``, as the official SDT v2/v3 code uses it) for ``kd`` models."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.recipe import DistillRecipe, TrainRecipe

Outputs = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class TrainLoss:
    """The recipe's loss on ``[B, K]`` logits, or on per-step ``[T, B, K]`` logits when ``loss == 'tet'``.

    Targets are class indices ``[B]`` (cross-entropy with the recipe's label smoothing) or soft targets
    ``[B, K]`` from mixup/cutmix (which already carry the smoothing). TET (Deng et al. 2022) averages the
    classification loss over time steps and adds ``tet_lambda`` x MSE(logits, ``tet_means``).

    A model with a distillation head returns ``(class logits, kd logits)`` in training: the base loss above
    applies to the class head; with ``distill.type`` soft or hard the kd head (averaged over time when per
    step) learns from the teacher's logits, weighted ``alpha`` against ``1 - alpha`` for the base loss.
    """

    def __init__(self, train: TrainRecipe, distill: DistillRecipe | None = None) -> None:
        self.label_smoothing = train.label_smoothing
        self.tet = train.loss == "tet"
        self.tet_lambda = train.tet_lambda
        self.tet_means = train.tet_means
        self.distill = distill or DistillRecipe()

    @property
    def per_step(self) -> bool:
        """Whether the model must return per-step logits."""
        return self.tet

    @property
    def needs_teacher(self) -> bool:
        """Whether ``__call__`` needs the teacher's logits."""
        return self.distill.type != "none"

    def classification(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dim() == 2:
            return torch.sum(-target * F.log_softmax(logits, dim=-1), dim=-1).mean()
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)

    def base(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The recipe's classification loss (CE or TET) on one head's logits."""
        logits = logits.float()
        if not self.tet:
            return self.classification(logits, target)
        if logits.dim() != 3:
            raise ValueError(f"TET loss needs per-step logits [T, B, K], got {list(logits.shape)}")
        per_step = torch.stack([self.classification(step, target) for step in logits]).mean()
        mse = F.mse_loss(logits, torch.full_like(logits, self.tet_means))
        return (1.0 - self.tet_lambda) * per_step + self.tet_lambda * mse

    def distillation(self, kd_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        """The kd head's loss against the teacher: tau^2-scaled KL per logit (soft) or CE on its argmax (hard)."""
        kd_logits = (kd_logits.mean(0) if kd_logits.dim() == 3 else kd_logits).float()
        teacher_logits = teacher_logits.float()
        if self.distill.type == "hard":
            return F.cross_entropy(kd_logits, teacher_logits.argmax(dim=1))
        tau = self.distill.tau
        kl = F.kl_div(F.log_softmax(kd_logits / tau, dim=1), F.log_softmax(teacher_logits / tau, dim=1),
                      reduction="sum", log_target=True)
        return kl * tau * tau / kd_logits.numel()

    def __call__(self, outputs: Outputs, target: torch.Tensor,
                 teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
        logits, kd_logits = outputs if isinstance(outputs, tuple) else (outputs, None)
        base = self.base(logits, target)
        if not self.needs_teacher:
            return base
        if kd_logits is None:
            raise ValueError(f"distill.type {self.distill.type!r} needs a model with a distillation head (kd=True) "
                             f"that returns (logits, kd_logits) in training")
        if teacher_logits is None:
            raise ValueError(f"distill.type {self.distill.type!r} needs the teacher's logits")
        alpha = self.distill.alpha
        return (1.0 - alpha) * base + alpha * self.distillation(kd_logits, teacher_logits)
