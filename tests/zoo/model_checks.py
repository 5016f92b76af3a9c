"""Checks every family's tests make of a built model."""

from __future__ import annotations

import torch


def assert_trains_every_parameter(model: torch.nn.Module, x: torch.Tensor) -> None:
    """One forward and backward pass on ``x``: finite logits of shape [batch, classes] and a gradient for every
    parameter (a parameter without one is built but never used)."""
    out = model(x)
    out.square().mean().backward()
    assert out.shape == (x.shape[0], model.num_classes) and torch.isfinite(out).all()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
