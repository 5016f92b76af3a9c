"""LIF forward+backward speed: our fused path vs our reference path vs spikingjelly 2.0's LIFNode.

Input [T=4, 64, 384, 64] (T, batch, channels, tokens), default neuron settings, spikes-only loss.
Every path runs interleaved in the same process; reported as the median over repeats and as ratios
against spikingjelly measured in this same run.

    python benchmarks/lif_speed.py [--repeats 15] [--threads 1] [--shape 4 64 384 64] [--dtype fp32|bf16]

``--dtype bf16`` feeds every path a bf16 input and bf16 gradient, as bf16 autocast does (ours integrates in fp32).
"""

from __future__ import annotations

import platform
import statistics
import time

import torch
from spikingjelly.activation_based import neuron, surrogate

from harness.argtypes import OneLineParser, positive_int
from zoo.core import LIF


def _spikingjelly_lif() -> torch.nn.Module:
    return neuron.LIFNode(tau=2.0, v_threshold=1.0, v_reset=0.0, decay_input=True, detach_reset=True,
                          surrogate_function=surrogate.Sigmoid(alpha=4.0), step_mode="m")


def _time_fwd_bwd(module: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor) -> float:
    xi = x.detach().requires_grad_()
    start = time.perf_counter()
    out = module(xi)
    out.backward(grad)
    elapsed = time.perf_counter() - start
    if hasattr(module, "reset"):
        module.reset()
    return elapsed


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=15)
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--shape", type=positive_int, nargs="+", default=[4, 64, 384, 64])
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    x = (torch.randn(*args.shape) * 2).to(dtype)
    grad = torch.randn_like(x)
    paths = {"spikingjelly": _spikingjelly_lif(), "fused": LIF(path="fused"), "reference": LIF(path="reference")}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for name, module in paths.items():  # warm-up
        _time_fwd_bwd(module, x, grad)
    for _ in range(args.repeats):
        for name, module in paths.items():
            times[name].append(_time_fwd_bwd(module, x, grad))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"LIF fwd+bwd, input {list(x.shape)} {args.dtype}, {args.threads} thread(s), {args.repeats} repeats, "
          f"torch {torch.__version__}, {platform.machine()}")
    for name, med in medians.items():
        print(f"  {name:12s} median {med * 1e3:8.1f} ms   speed vs spikingjelly {medians['spikingjelly'] / med:5.2f}x")
    return medians


if __name__ == "__main__":
    main()
