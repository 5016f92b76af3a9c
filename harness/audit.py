"""Batch-size invariance: does a model's eval output for an image depend on the batch it is evaluated in?

The official QKFormer/MSViT SSA projection neuron runs over the flattened ``T*B`` axis, so its membrane carries
from one sample to the next: accuracy then depends on the eval batch (QKFormer issue #14). ``audit_batches``
evaluates the same seeded images one at a time and in batches of 32 and reports the difference;
``batch_dependent`` is what runs record (decided from the model's structure, see ``SpikingClassifier``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


def batch_dependent(model: nn.Module) -> bool:
    """True when ``model`` declares (``batch_dependent``) that its eval output depends on its batch."""
    return bool(getattr(model, "batch_dependent", False))


@torch.no_grad()
def logits_in_batches(model: nn.Module, images: torch.Tensor, batch: int) -> torch.Tensor:
    """Eval-mode logits of ``images`` fed ``batch`` at a time (the last batch may be smaller), on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(images[i:i + batch].to(device)).float().cpu() for i in range(0, len(images), batch)])


def audit_batches(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None,
                  batches: tuple[int, int] = (1, 32)) -> dict[str, Any]:
    """Compare the logits of the same images at two eval batch sizes: top-1 at each (if labels), the share of
    images whose prediction changes, the max and mean absolute logit difference."""
    small, large = (logits_in_batches(model, images, b) for b in batches)
    diff = (small - large).abs()
    report: dict[str, Any] = {
        "images": len(images), "batches": list(batches),
        "max_logit_diff": float(diff.max()), "mean_logit_diff": float(diff.mean()),
        "prediction_changes_pct": 100.0 * float((small.argmax(1) != large.argmax(1)).float().mean()),
        "batch_dependent": batch_dependent(model),
    }
    if labels is not None:
        top1 = [100.0 * float((logits.argmax(1) == labels).float().mean()) for logits in (small, large)]
        report.update({f"top1_batch{batches[0]}": top1[0], f"top1_batch{batches[1]}": top1[1],
                       "top1_diff": top1[1] - top1[0]})
    return report


class WeightsError(ValueError):
    """A weights file that cannot be read safely or does not fit the model (one line, names the file)."""


def read_weights_file(path: str | Path) -> Any:
    """What a ``.safetensors`` file or a torch file loaded weights-only holds: a file that needs pickled code (or
    is missing, truncated or foreign) is refused in one line naming it."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unsafe pickle, truncated or foreign file
        first_line = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise WeightsError(f"{path}: not a readable safetensors or weights-only torch file ({first_line})") from None


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load an engine checkpoint (``{"model": ...}``), a state dict of ``model``, or an official checkpoint
    (mapped by ``zoo.load_official_state_dict``), read by ``read_weights_file``."""
    from zoo.official import load_official_state_dict

    state = read_weights_file(path)
    inner = state.get("model", state) if isinstance(state, dict) else state
    ours = model.state_dict()
    if isinstance(inner, dict) and set(inner) == set(ours):
        wrong = next((k for k, v in inner.items() if tuple(getattr(v, "shape", ())) != tuple(ours[k].shape)), None)
        if wrong is not None:
            raise WeightsError(f"{path}: tensor {wrong} has shape {tuple(inner[wrong].shape)}, the model's is "
                               f"{tuple(ours[wrong].shape)}: weights of another configuration")
        model.load_state_dict(inner)
        return
    try:
        load_official_state_dict(model, state)
    except (TypeError, ValueError) as err:
        raise WeightsError(f"{path}: {str(err).splitlines()[0][:300]}") from None
