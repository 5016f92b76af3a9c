"""Import of the official repositories' state_dicts into zoo models, strictly checked."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


def _unwrap(state_dict: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Accept a bare state_dict or a checkpoint dict holding one under 'model'/'state_dict'; drop 'module.'."""
    for key in ("model", "state_dict", "model_ema"):
        inner = state_dict.get(key) if isinstance(state_dict, Mapping) else None
        if isinstance(inner, Mapping) and all(isinstance(v, torch.Tensor) for v in inner.values()):
            state_dict = inner
            break
    out = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"official state_dict entry {key!r} is {type(value).__name__}, expected a tensor")
        out[key[len("module."):] if key.startswith("module.") else key] = value
    return out


def load_official_state_dict(model: nn.Module, state_dict: Mapping[str, object]) -> nn.Module:
    """Load an official checkpoint into ``model`` through its ``official_key_map``.

    The model maps each official key to its own key (or to ``None`` for entries that carry nothing the
    model has, e.g. BN ``num_batches_tracked``). Every official tensor must be mapped, every model
    tensor must be covered, and every shape must agree; otherwise a ValueError lists the offenders.
    """
    mapper = getattr(model, "official_key_map", None)
    if mapper is None:
        raise TypeError(f"{type(model).__name__} has no official_key_map(); official import is not supported")
    official = _unwrap(state_dict)
    key_map: dict[str, str | None] = mapper(list(official))
    ours = model.state_dict()
    unmapped = sorted(k for k in official if k not in key_map)
    unknown = sorted(v for v in key_map.values() if v is not None and v not in ours)
    converted = {key_map[k]: v for k, v in official.items() if key_map.get(k) is not None}
    missing = sorted(k for k in ours if k not in converted and not k.endswith("num_batches_tracked"))
    shapes = [f"{k} -> {key_map[k]}: official {tuple(v.shape)} vs model {tuple(ours[key_map[k]].shape)}"
              for k, v in official.items()
              if key_map.get(k) in ours and tuple(v.shape) != tuple(ours[key_map[k]].shape)]
    problems = []
    if unmapped:
        problems.append(f"official keys with no place in the model: {unmapped[:20]}")
    if unknown:
        problems.append(f"mapped to keys the model does not have: {unknown[:20]}")
    if missing:
        problems.append(f"model tensors the checkpoint does not provide: {missing[:20]}")
    if shapes:
        problems.append("shape mismatches: " + "; ".join(shapes[:20]))
    if problems:
        raise ValueError(f"cannot load official state_dict into {type(model).__name__}: " + " | ".join(problems))
    for key in ours:
        if key.endswith("num_batches_tracked") and key not in converted:
            converted[key] = ours[key]
    model.load_state_dict(converted, strict=True)
    return model
