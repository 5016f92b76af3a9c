"""Reference outputs of the official Spikformer / SDT v1 / SDT v2 / QKFormer / MSViT code, usable without that code.

``data/official_keys_*.json`` hold, per official configuration, its state_dict layout (key -> shape) and a
fingerprint of its logits for the seeded weights and input built here. The official side was produced by
instantiating the official model code (outside this repository), loading ``seeded_state`` into it,
``calibrate``-ing its BN statistics on ``seeded_input`` and running that input in eval mode; the tests do the
same through ``zoo.load_official_state_dict`` and must reproduce the fingerprint (procedure and commands:
benchmarks/RESULTS.md, "CI fixture").
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import torch

DATA_FILES = tuple(Path(__file__).parent / "data" / f"official_keys_{families}.json"
                   for families in ("spikformer_sdt", "qkformer_msvit"))
HEAD = 16  # leading logits of each row kept verbatim in the fingerprint
BIAS_MEAN = -0.3  # negative BN shifts keep spikes sparse, so attention sums land near their thresholds
# float64 on both sides: the calibration pass reduces BN statistics in a different order in the official code
# (e.g. Spikformer's BN1d over [TB, C, N] vs ours over [TBN, C]); in float32 such a last-bit difference can flip a
# spike that sits on its threshold. (Float32 eval-mode agreement on imported weights: results in benchmarks.)
DTYPE = torch.float64


def load_references() -> dict[str, dict]:
    """Entries keyed by official configuration: zoo name, overrides, layout, input spec, per_step, fingerprint."""
    entries = {}
    for path in DATA_FILES:
        entries.update((k, v) for k, v in json.loads(path.read_text()).items() if not k.startswith("_"))
    return entries


def seeded_state(layout: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Deterministic weights in an official layout, scaled so that a fair share of the neurons fire in eval."""
    state = {}
    for key, shape in layout.items():
        gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = 0.5 + 1.5 * torch.rand(shape, generator=gen)
        elif key.endswith("running_mean"):
            state[key] = 0.2 * torch.randn(shape, generator=gen)
        elif len(shape) == 1 and key.endswith("weight"):
            state[key] = 1.0 + 0.3 * torch.rand(shape, generator=gen)
        elif len(shape) == 1:
            state[key] = BIAS_MEAN + 0.3 * torch.randn(shape, generator=gen)
        else:
            fan_in = max(1, torch.Size(shape).numel() // shape[0])
            state[key] = torch.randn(shape, generator=gen) / fan_in ** 0.5
    return {k: v if k.endswith("num_batches_tracked") else v.to(DTYPE) for k, v in state.items()}


def calibrate(model: torch.nn.Module, x: torch.Tensor, reset_state=lambda model: None) -> torch.nn.Module:
    """Set every BN's running statistics to the batch statistics of one train-mode pass on ``x``; eval mode.

    Keeps the seeded affine parameters. ``reset_state`` clears stateful neurons first (the official code's
    ``functional.reset_net``; the zoo's LIF starts from rest on every call).
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    reset_state(model)
    with torch.no_grad():
        model(x)
    for bn in norms:
        bn.momentum = 0.1
    reset_state(model)
    return model.eval()


def seeded_input(spec: dict) -> torch.Tensor:
    """Normal images (``static``) or Poisson event counts (``dvs``, rate 0.4) of ``spec['shape']``."""
    gen = torch.Generator().manual_seed(spec["seed"])
    if spec["kind"] == "dvs":
        return torch.poisson(torch.full(spec["shape"], 0.4), generator=gen).to(DTYPE)
    return torch.randn(spec["shape"], generator=gen).to(DTYPE)


def fingerprint(logits: torch.Tensor) -> dict[str, list]:
    """The first ``HEAD`` logits of every row, and every row's sum and sum of absolute values."""
    rows = logits.detach().double().flatten(0, -2)
    return {"head": rows[:, :HEAD].tolist(), "sum": rows.sum(-1).tolist(), "abs_sum": rows.abs().sum(-1).tolist()}


def official_logits_reproduced(spec: dict) -> torch.Tensor:
    """Load the seeded official weights into the zoo model of ``spec``, check its eval logits, return them.

    Tolerance: 1e-4 on the kept logits, 1e-3 on the row sums (up to 1000 logits accumulate rounding).
    """
    import zoo

    with torch.device("meta"):
        model = zoo.create_model(spec["zoo"], **spec["overrides"])
    model = zoo.load_official_state_dict(model.to_empty(device="cpu").to(DTYPE), seeded_state(spec["keys"]))
    x = seeded_input(spec["input"])
    with torch.no_grad():
        logits = calibrate(model, x)(x, per_step=spec["per_step"])
    got, want = fingerprint(logits), spec["logits"]
    torch.testing.assert_close(torch.tensor(got["head"]), torch.tensor(want["head"]), rtol=0, atol=1e-4)
    for field in ("sum", "abs_sum"):
        torch.testing.assert_close(torch.tensor(got[field]), torch.tensor(want[field]), rtol=0, atol=1e-3)
    return logits
