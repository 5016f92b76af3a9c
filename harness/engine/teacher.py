"""The frozen teacher of a distillation run: a timm or zoo model whose weights are read, never unpickled as code,
from a file under the data root."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from harness.audit import WeightsError, read_weights_file
from harness.recipe import DistillRecipe


class TeacherError(ValueError):
    """The teacher cannot be built or its weights file cannot be read or does not fit it."""


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (``harness.audit.read_weights_file``: safetensors or weights-only torch, never
    pickled code), unwrapping a ``{"model": ...}`` or ``{"state_dict": ...}`` checkpoint."""
    try:
        state = read_weights_file(path)
    except WeightsError as err:
        raise TeacherError(f"teacher weights {err}") from None
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TeacherError(f"teacher weights {path}: expected a mapping of names to tensors")
    return state


def weights_sha256(path: Path) -> str:
    """The file's SHA-256, recorded with the run: the recipe names the teacher's file, this says which one it was
    (hashed once, then read from its sidecar: ``harness.weights.locate.file_sha256``)."""
    from harness.weights.locate import file_sha256

    return file_sha256(Path(path))


def _create(teacher: str, num_classes: int, kwargs: dict) -> nn.Module:
    library, name = teacher.split(":", 1)
    if library == "zoo":
        import zoo

        try:
            return zoo.create_model(name, num_classes=num_classes, **kwargs)
        except (KeyError, TypeError) as err:
            raise TeacherError(f"distill.teacher {teacher!r}: {err}") from None
    import timm

    if not timm.is_model(name):
        raise TeacherError(f"distill.teacher {teacher!r}: the installed timm {timm.__version__} has no model {name!r}")
    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    except TypeError as err:
        raise TeacherError(f"distill.teacher_kwargs for {teacher!r}: {err}") from None


def _load(model: nn.Module, state: dict[str, torch.Tensor], teacher: str, path: Path) -> None:
    """The model's own keys load strictly; a zoo teacher also takes its official checkpoint layout."""
    own = model.state_dict()
    if set(state) != set(own) and teacher.startswith("zoo:"):
        from zoo.official import load_official_state_dict

        try:
            load_official_state_dict(model, state)
            return
        except (TypeError, ValueError) as err:
            raise TeacherError(f"teacher weights {path}: {str(err)[:300]}") from None
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [k for k in set(own) & set(state) if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        raise TeacherError(f"teacher weights {path} do not fit {teacher}: missing {missing[:5]}, unexpected "
                           f"{unexpected[:5]}, shape mismatches {sorted(shapes)[:5]}")
    model.load_state_dict(state)


def build_teacher(distill: DistillRecipe, num_classes: int, data_root: Path, device: torch.device) -> nn.Module:
    """The recipe's teacher with its weights, frozen in eval mode on ``device``."""
    if distill.teacher is None or distill.teacher_weights is None:
        raise TeacherError(f"distill.type {distill.type!r} needs distill.teacher and distill.teacher_weights")
    path = Path(data_root) / distill.teacher_weights
    state = read_weights(path)
    model = _create(distill.teacher, num_classes, dict(distill.teacher_kwargs))
    _load(model, state, distill.teacher, path)
    return model.eval().requires_grad_(False).to(device)
