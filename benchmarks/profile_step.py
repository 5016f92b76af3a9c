"""Where a zoo model's train (or eval) step spends its time: torch.profiler's top operators by self time.

    python -m harness bench profile_step MODEL [--mode train] [--batch 16] [--T 4] [--neuron ours|reference]
                                               [--fast] [--top 15]

``--fast``: what ``bench --fast`` runs on this CPU (``harness.engine.numerics``) and the zoo's fast paths.

Runs two warm-up steps, then profiles one; prints the top operators and the share of convolution, batch norm,
copies, matmuls and the zoo LIF (its autograd nodes; not measurable for spikingjelly's neuron).
"""

from __future__ import annotations


import torch
from torch.profiler import ProfilerActivity, profile, record_function

import zoo
from harness.argtypes import OneLineParser, positive_int
from harness.engine.numerics import fast_choice
from harness.metrics.perf import BenchConfig, StepRunner, random_batch, with_reference_neurons
from zoo.core import to_channels_last, use_fast_paths

GROUPS = {
    "convolution": ("conv", "mkldnn_convolution", "convolution_backward"),
    "batch norm": ("batch_norm",),
    "copies": ("aten::copy_", "aten::clone", "aten::contiguous"),
    "matmul": ("aten::mm", "aten::bmm", "aten::addmm", "aten::matmul"),
}


LIF_NODES = ("FusedLIF", "FusedLIFBackward", "TritonLIF", "TritonLIFBackward")


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--mode", choices=["train", "eval"], default="train")
    parser.add_argument("--batch", type=positive_int, default=16)
    parser.add_argument("--T", type=positive_int)
    parser.add_argument("--neuron", choices=["ours", "reference"], default="ours")
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--top", type=positive_int, default=15)
    args = parser.parse_args(argv)
    cfg = BenchConfig(model=args.model, mode=args.mode, batch=args.batch, T=args.T)
    T = args.T or zoo.model_card(args.model).T
    torch.manual_seed(0)
    model = zoo.create_model(args.model, T=T)
    if args.neuron == "reference":
        model = with_reference_neurons(model)
    x, y = random_batch(model, cfg, T, torch.device("cpu"))
    precision, compile_model = "fp32", False
    if args.fast:  # what `bench --fast` runs on this CPU (harness.engine.numerics)
        choice = fast_choice("cpu")
        precision, compile_model = choice.precision, choice.compile
        use_fast_paths(model)
        if choice.channels_last:
            to_channels_last(model)
            x = x.contiguous(memory_format=torch.channels_last)
    step = StepRunner(model, x, y, args.mode, precision, compile_model)
    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with record_function("step"):
            step()
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.top))
    total = sum(e.self_cpu_time_total for e in events)
    shares = {}
    for group, keys in GROUPS.items():
        shares[group] = sum(e.self_cpu_time_total for e in events if any(k in e.key for k in keys)) / total
    # the zoo LIF's autograd nodes, children included (spikingjelly's neuron has no node of its own)
    shares["LIF"] = sum(e.cpu_time_total for e in events if e.key in LIF_NODES) / total
    copies = sum(e.count for e in events if e.key == "aten::copy_")
    print(f"{args.model} {args.mode} batch {args.batch} T {T} neuron={args.neuron} fast={args.fast}: "
          f"step self time {total / 1e6:.2f} s; " + ", ".join(f"{g} {s * 100:.0f}%" for g, s in shares.items())
          + f"; {copies} aten::copy_ calls")
    return shares


if __name__ == "__main__":
    main()
