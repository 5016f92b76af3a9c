"""Reference outputs of the official code of every family, usable without that code.

``data/official_keys_*.json`` hold, per official configuration, its state_dict layout (key -> shape) and a
fingerprint of its logits for the seeded weights and input built here. The official side was produced by
instantiating the official model code (outside this repository), loading ``seeded_state`` into it,
``calibrate``-ing its BN statistics on ``seeded_input`` and running that input in eval mode; the tests do the
same through ``zoo.load_official_state_dict`` and must reproduce the fingerprint (procedure and commands:
benchmarks/RESULTS.md, "CI fixture"). Entries with a ``train`` part also fingerprint one train-mode step after
that (loss ``mean(logits^2)``): its logits and every gradient.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import torch

DATA_DIR = Path(__file__).parent / "data"
DATA_FILES = tuple(sorted(DATA_DIR.glob("official_keys_*.json")))
HEAD = 16  # leading logits of each row kept verbatim in the fingerprint
BIAS_MEAN = -0.3  # negative BN shifts keep spikes sparse, so attention sums land near their thresholds
# float64 on both sides: the calibration pass reduces BN statistics in a different order in the official code
# (e.g. Spikformer's BN1d over [TB, C, N] vs ours over [TBN, C]); in float32 such a last-bit difference can flip a
# spike that sits on its threshold. (Float32 eval-mode agreement on imported weights: results in benchmarks.)
DTYPE = torch.float64


def load_references(*paths: Path) -> dict[str, dict]:
    """Entries keyed by official configuration (of ``paths``, default every data file): zoo name, overrides,
    layout, input spec, per_step, fingerprint."""
    entries = {}
    for path in paths or DATA_FILES:
        entries.update((k, v) for k, v in json.loads(path.read_text()).items() if not k.startswith("_"))
    return entries


def seeded_state(layout: dict[str, list[int]], bias_mean: float = BIAS_MEAN) -> dict[str, torch.Tensor]:
    """Deterministic weights in an official layout, scaled so that a fair share of the neurons fire in eval.

    ``bias_mean``: the mean BN shift (an entry's ``"bias_mean"``; SpikingResformer uses 0: with negative shifts its
    DSSA scores ``Y1^T X``, sums over many spikes of one sign, all fall below threshold and attention never fires).
    """
    state = {}
    for key, shape in layout.items():
        gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif "firing_rate" in key:  # SpikingResformer's running firing rates (they divide: keep them positive)
            state[key] = 0.02 + 0.08 * torch.rand(shape, generator=gen)
        elif len(shape) == 0:  # a PLIF's w (1/tau = sigmoid(w)): tau between about 1.6 and 2.6
            state[key] = 0.3 * torch.randn(shape, generator=gen)
        elif key.endswith("running_var"):
            state[key] = 0.5 + 1.5 * torch.rand(shape, generator=gen)
        elif key.endswith("running_mean"):
            state[key] = 0.2 * torch.randn(shape, generator=gen)
        elif len(shape) == 1 and key.endswith("weight"):
            state[key] = 1.0 + 0.3 * torch.rand(shape, generator=gen)
        elif len(shape) == 1:
            state[key] = bias_mean + 0.3 * torch.randn(shape, generator=gen)
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


def _assert_fingerprint(got: dict[str, list], want: dict[str, list]) -> None:
    torch.testing.assert_close(torch.tensor(got["head"]), torch.tensor(want["head"]), rtol=0, atol=1e-4)
    for field in ("sum", "abs_sum"):
        torch.testing.assert_close(torch.tensor(got[field]), torch.tensor(want[field]), rtol=0, atol=1e-3)


def _seeded_zoo_model(spec: dict) -> torch.nn.Module:
    import zoo

    with torch.device("meta"):
        model = zoo.create_model(spec["zoo"], **spec["overrides"])
    state = seeded_state(spec["keys"], spec.get("bias_mean", BIAS_MEAN))
    return zoo.load_official_state_dict(model.to_empty(device="cpu").to(DTYPE), state)


def built_at_official_count(name: str, official_params: int, **kwargs) -> torch.nn.Module:
    """Build ``name`` on the meta device and check its parameter count equals the official code's (and the card's
    ``code_params`` unless ``kwargs`` change the architecture); returns the model for further card checks."""
    import zoo

    with torch.device("meta"):
        model = zoo.create_model(name, **kwargs)
    assert sum(p.numel() for p in model.parameters()) == official_params
    assert kwargs or model.card.code_params == official_params
    return model


def official_layout_loaded(spec: dict, wrap=lambda state: state) -> dict[str, str | None]:
    """Load seeded weights in ``spec``'s official layout (passed through ``wrap``, e.g. a checkpoint dict) into its
    zoo model, check every mapped tensor arrived unchanged, and return the key map (None: official keys the zoo
    drops, for the caller to check)."""
    import zoo

    with torch.device("meta"):
        model = zoo.create_model(spec["zoo"], **spec["overrides"])
    state = seeded_state(spec["keys"], spec.get("bias_mean", BIAS_MEAN))
    model = zoo.load_official_state_dict(model.to_empty(device="cpu"), wrap(state))
    key_map = model.official_key_map(list(state))
    ours = model.state_dict()
    for official_key, our_key in key_map.items():
        if our_key is not None:
            assert torch.equal(ours[our_key], state[official_key].to(ours[our_key].dtype)), official_key
    return key_map


def official_logits_reproduced(spec: dict) -> torch.Tensor:
    """Load the seeded official weights into the zoo model of ``spec``, check its eval logits, return them.

    Tolerance: 1e-4 on the kept logits, 1e-3 on the row sums (up to 1000 logits accumulate rounding).
    """
    model = _seeded_zoo_model(spec)
    x = seeded_input(spec["input"])
    with torch.no_grad():
        logits = calibrate(model, x)(x, per_step=spec["per_step"])
    _assert_fingerprint(fingerprint(logits), spec["logits"])
    return logits


def official_train_step_reproduced(spec: dict) -> torch.nn.Module:
    """The eval check of :func:`official_logits_reproduced`, then one train-mode step as the official side ran it.

    Checks the train-mode logits like the eval ones and every official parameter's gradient (sum and sum of
    absolute values, to 1e-4 relative to the largest of the official ones); returns the trained-on model.
    """
    model = _seeded_zoo_model(spec)
    x = seeded_input(spec["input"])
    with torch.no_grad():
        _assert_fingerprint(fingerprint(calibrate(model, x)(x, per_step=spec["per_step"])), spec["logits"])
    model.train()
    logits = model(x, per_step=spec["per_step"])
    logits.square().mean().backward()
    _assert_fingerprint(fingerprint(logits), spec["train"]["logits"])
    ours = dict(model.named_parameters())
    key_map = model.official_key_map(list(spec["train"]["grads"]))
    want = torch.tensor([spec["train"]["grads"][k] for k in key_map])
    got = torch.tensor([[ours[v].grad.sum().item(), ours[v].grad.abs().sum().item()] for v in key_map.values()])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4 * max(1.0, want.abs().max().item()))
    return model
