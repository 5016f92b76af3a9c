"""The Triton LIF on CUDA against the fused CPU path, for every neuron setting: one JSON line.

    python benchmarks/triton_check.py [--T 4] [--neurons 100003]
"""

from __future__ import annotations

import itertools
import json

import torch

from harness.argtypes import OneLineParser, positive_int
from zoo.core import LIF

SETTINGS = list(itertools.product([2.0, 3.0], [1.0, 0.5], [0.0, None, -0.2], [True, False], [True, False],
                                  ["sigmoid", "atan"]))


def _run(lif: LIF, x: torch.Tensor, grad_s: torch.Tensor, grad_v: torch.Tensor):
    x = x.detach().clone().requires_grad_()
    spikes = lif(x)
    ((spikes * grad_s).sum() + (lif.v_seq * grad_v).sum()).backward()
    return spikes.detach().cpu(), lif.v_seq.detach().cpu(), x.grad.cpu()


def main(argv: list[str] | None = None) -> dict:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=positive_int, default=4)
    parser.add_argument("--neurons", type=positive_int, default=100_003)
    args = parser.parse_args(argv)
    gen = torch.Generator().manual_seed(0)
    worst = {"spikes": 0.0, "membrane": 0.0, "input_grad": 0.0}
    for setting in SETTINGS:
        x = torch.randn((args.T, args.neurons), generator=gen) * 2.5 + 0.5
        grad_s, grad_v = torch.randn_like(x), torch.randn_like(x)
        cpu = _run(LIF(*setting, path="fused", store_v_seq=True), x, grad_s, grad_v)
        gpu_lif = LIF(*setting, store_v_seq=True)
        assert gpu_lif.resolved_path(torch.device("cuda")) == "triton"
        gpu = _run(gpu_lif, x.cuda(), grad_s.cuda(), grad_v.cuda())
        for key, a, b in zip(worst, cpu, gpu):
            worst[key] = max(worst[key], (a - b).abs().max().item())
    result = {"check": "triton_lif_cuda", "settings": len(SETTINGS), "T": args.T, "neurons": args.neurons,
              **{f"max_abs_diff_{k}": v for k, v in worst.items()},
              "spike_mismatch_fraction_bound": worst["spikes"], "pass": max(worst.values()) <= 1e-6}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
