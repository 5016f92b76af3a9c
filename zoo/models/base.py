"""The contract every zoo model follows: validated input, time-major body, per-step or averaged logits."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from zoo.core import time_major


class SpikingClassifier(nn.Module):
    """Base of every zoo model.

    Static configs take ``[B, C, H, W]`` images (repeated over T: direct encoding); DVS configs take
    ``[B, T, C, H, W]`` frames. Subclasses implement ``forward_steps(x)`` on ``[T, B, C, H, W]`` and return
    per-step logits ``[T, B, classes]``; ``forward`` averages them over time unless ``per_step=True``
    (TET-style losses).
    """

    def __init__(self, T: int, num_classes: int, in_channels: int, input_kind: Literal["static", "dvs"]) -> None:
        super().__init__()
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        self.T = int(T)
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.input_kind = input_kind

    @property
    def batch_dependent(self) -> bool:
        """Whether a sample's eval output depends on the other samples of its batch: true when any submodule
        declares ``couples_batch`` (the official QKFormer/MSViT SSA projection neuron running over ``T*B``)."""
        return any(getattr(m, "couples_batch", False) for m in self.modules())

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, per_step: bool = False) -> torch.Tensor:
        steps = self.forward_steps(time_major(x, self.T, self.input_kind, self.in_channels, type(self).__name__))
        return steps if per_step else steps.mean(0)


class DistilledClassifier(SpikingClassifier):
    """A classifier with an optional distillation head (``kd``), as in the official SDT v2 and v3 code: subclasses
    implement ``head_logits(x)`` (per-step logits of the classifier and of ``head_kd``, the latter None without
    ``kd``); eval averages the two heads, training returns both so that a distillation loss can use them."""

    kd: bool

    def head_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        logits, kd_logits = self.head_logits(x)
        return logits if kd_logits is None else (logits + kd_logits) / 2

    def forward(self, x: torch.Tensor, per_step: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not (self.kd and self.training):
            return super().forward(x, per_step)
        logits, kd_logits = self.head_logits(time_major(x, self.T, self.input_kind, self.in_channels,
                                                        type(self).__name__))
        return (logits, kd_logits) if per_step else (logits.mean(0), kd_logits.mean(0))
