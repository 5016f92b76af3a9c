"""Per-layer firing rates in the papers' table format: one line per neuron layer, named by block and layer, with
its rate at each time step and averaged over them (e.g. the MSViT and QKFormer appendices' firing-rate tables).

The block/layer split comes from the neuron's module name: the block is the first name component with the indices
that follow it (``stages.2.0`` of ``stages.2.0.attn.q.lif``, ``blocks.3`` of ``blocks.3.mlp.fc1_lif``,
``patch_embed`` of ``patch_embed.proj_lif``), the layer is the rest (``attn.q.lif``); a one-component name is a
block of its own with no layer.
"""

from __future__ import annotations

from typing import Any

NO_LAYER = "-"


def block_and_layer(name: str) -> tuple[str, str]:
    """``(block, layer)`` of a neuron module name (see the module docstring)."""
    parts = name.split(".")
    end = 1
    while end < len(parts) - 1 and parts[end].isdigit():
        end += 1
    return ".".join(parts[:end]), ".".join(parts[end:]) or NO_LAYER


def layer_rates(table: dict[str, Any], T: int, images: int) -> dict[str, Any]:
    """The firing-rate artifact of a run from ``FiringRates.table()``: every called neuron layer with its block,
    layer, per-step rates (when its output has a time axis) and mean; the overall rate; the layers never called."""
    per_step = table.get("per_layer_step", {})
    layers = []
    for name, mean in table["per_layer"].items():
        block, layer = block_and_layer(name)
        layers.append({"name": name, "block": block, "layer": layer, "per_step": per_step.get(name), "mean": mean})
    return {"T": T, "images": images, "overall": table["overall"], "layers": layers,
            "never_called": list(table.get("never_called", []))}


def render_layer_rates(rates: dict[str, Any], title: str = "") -> str:
    """The artifact as a Markdown table: Block | Layer | t=1 .. t=T | mean, then the overall rate."""
    T = rates["T"]
    head = ["Block", "Layer", *(f"t={t + 1}" for t in range(T)), "mean"]
    lines = [f"# {title}", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (T + 1)) + "|"]
    for row in rates["layers"]:
        steps = row["per_step"] or [None] * T
        cells = [f"{v:.4f}" if v is not None else "–" for v in steps]
        lines.append(f"| {row['block']} | {row['layer']} | " + " | ".join([*cells, f"{row['mean']:.4f}"]) + " |")
    lines += ["", f"Overall firing rate: {rates['overall']:.4f} (spikes per neuron and time step, "
                  f"{rates['images']} images)."]
    if rates["never_called"]:
        lines.append(f"Never called: {', '.join(rates['never_called'])}.")
    return "\n".join(lines) + "\n"
