"""Top-k accuracy and parameter counts."""

from __future__ import annotations

import torch
from torch import nn


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, int]:
    """Number of samples whose label is among the ``k`` highest logits, for each ``k`` (capped at #classes).

    ``target`` holds class indices ``[B]`` or soft/mixed targets ``[B, K]`` (their argmax is the label).
    """
    if logits.dim() != 2:
        raise ValueError(f"top-k accuracy expects logits shaped [B, classes], got {list(logits.shape)}")
    labels = target.argmax(-1) if target.dim() == 2 else target
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(f"{logits.shape[0]} logits but {labels.shape[0]} targets")
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hits = top == labels.unsqueeze(1)
    return {k: int(hits[:, :k].any(dim=1).sum()) for k in ks}


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all registered ones, or only those that require grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
