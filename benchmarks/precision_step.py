"""One training step of a suite's run in fp32 and under bf16 autocast (or, with ``--fast``, in the whole fast mode
that ``train.fast`` chooses for this CPU), from the same weights on the same batch.

Issue 24 asked why MSViT gained accuracy in bf16 on the smoke suite: a bug in one path shows here as a parameter
that gets a gradient in one mode only, a gradient that points elsewhere (cosine far below 1) in one family but
not the others, a layer whose firing rate moves, or a neuron whose membrane input is not the dtype expected.
Printed per neuron layer: firing rate in each mode and the dtype its input arrives in under autocast; per
parameter: gradient norms, their ratio and cosine, sorted by cosine; the parameters with a zero or missing gradient
in exactly one mode; the largest relative change of a BatchNorm running mean between modes.

With ``--fast`` the second step runs as a ``train.fast`` run does on this machine: the precision and memory format
``harness.engine.numerics`` chooses, and the zoo's fast paths (``zoo.core.use_fast_paths``: the C LIF loops, a
static image through the first layer once, whose batch norm then sees B images instead of T*B copies).

    python benchmarks/precision_step.py msvit_4_384.cifar10 [--dataset digits] [--suite suites/smoke.yaml] [--batch 64]
        [--fast]
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from harness.argtypes import OneLineParser, positive_int, seed_int
from harness.configfile import ConfigError
from harness.data import build_dataset
from harness.engine.evaluate import autocast
from harness.engine.loss import TrainLoss
from harness.engine.numerics import FastChoice, fast_choice
from harness.engine.trainer import seed_all
from harness.launch.worker import train_spec
from harness.suite import expand, load_suite
from zoo.core import to_channels_last, use_fast_paths
from zoo.core.neuron import neuron_modules

CPU = torch.device("cpu")


@dataclass
class StepRecord:
    """What one step left behind: its loss, per-layer firing rates and input dtypes, gradients, BN means."""

    loss: float
    rates: dict[str, float]
    input_dtypes: dict[str, torch.dtype]
    grads: dict[str, torch.Tensor | None]
    running_means: dict[str, torch.Tensor]


@dataclass(frozen=True)
class Mode:
    """How a step runs: its autocast dtype (None: fp32), channels-last, the zoo's fast paths; ``label`` heads its
    columns in the report."""

    label: str
    dtype: torch.dtype | None = None
    channels_last: bool = False
    fast_paths: bool = False

    @classmethod
    def of_fast(cls, choice: FastChoice) -> Mode:
        """The mode a ``train.fast`` run trains in under ``choice`` (``harness.engine.numerics``)."""
        dtype = torch.bfloat16 if choice.precision == "bf16" else None
        return cls("fast", dtype, choice.channels_last, fast_paths=True)

    def prepare(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Set ``model`` up for this mode as the trainer does and return ``x`` in the layout it then feeds."""
        use_fast_paths(model, enabled=self.fast_paths)
        if self.channels_last:
            to_channels_last(model)
            if x.dim() == 4:
                return x.contiguous(memory_format=torch.channels_last)
        return x


FP32, BF16 = Mode("fp32"), Mode("bf16", torch.bfloat16)


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: TrainLoss, mode: Mode) -> StepRecord:
    """Forward (set up and autocast as ``mode`` says, as the trainer does), loss and backward of one batch."""
    rates: dict[str, float] = {}
    dtypes: dict[str, torch.dtype] = {}

    def record(name: str, inputs: tuple, output: torch.Tensor) -> None:
        rates[name] = float(output.detach().float().mean())
        dtypes[name] = inputs[0].dtype

    x = mode.prepare(model, x)
    hooks = [m.register_forward_hook(lambda _m, i, o, n=name: record(n, i, o)) for name, m in neuron_modules(model)]
    model.train()
    try:
        with autocast(CPU, mode.dtype):
            out = model(x)
        loss = loss_fn(out, y, None)
        loss.backward()
    finally:
        for hook in hooks:
            hook.remove()
    grads = {n: None if p.grad is None else p.grad.detach().float() for n, p in model.named_parameters()}
    means = {n: b.detach().clone() for n, b in model.named_buffers() if n.endswith("running_mean")}
    return StepRecord(float(loss.detach()), rates, dtypes, grads, means)


def gradient_rows(exact: StepRecord, fast: StepRecord) -> list[tuple[float, str, float, float]]:
    """``(cosine, name, exact norm, fast norm)`` of every parameter with a gradient in both modes, lowest cosine
    first (a zero gradient's cosine is NaN, listed last)."""
    rows = []
    for name, a in exact.grads.items():
        b = fast.grads[name]
        if a is None or b is None:
            continue
        na, nb = float(a.norm()), float(b.norm())
        cosine = float(torch.dot(a.flatten(), b.flatten())) / (na * nb) if na and nb else float("nan")
        rows.append((cosine, name, na, nb))
    return sorted(rows, key=lambda r: (r[0] != r[0], r[0]))


def one_mode_only(exact: StepRecord, fast: StepRecord) -> list[str]:
    """Parameters whose gradient is missing or all zero in exactly one of the two modes."""
    def dead(g: torch.Tensor | None) -> bool:
        return g is None or not bool(g.any())

    return [n for n in exact.grads if dead(exact.grads[n]) != dead(fast.grads[n])]


def non_finite(record: StepRecord) -> list[str]:
    """Parameters whose gradient holds a NaN or an infinity (a step that would diverge the run)."""
    return [n for n, g in record.grads.items() if g is not None and not bool(torch.isfinite(g).all())]


def report(exact: StepRecord, fast: StepRecord, show: int, labels: tuple[str, str] = ("fp32", "bf16")) -> list[str]:
    """The comparison as printable lines, the two modes' columns headed ``labels``."""
    a, b = labels
    lines = [f"loss: {a} {exact.loss:.6f}  {b} {fast.loss:.6f}", "",
             f"{'neuron layer':48s} {'rate ' + a:>10s} {'rate ' + b:>10s}  input dtype under autocast ({b})"]
    for n in exact.rates:
        dtype = str(fast.input_dtypes[n]).removeprefix("torch.")
        lines.append(f"{n:48s} {exact.rates[n]:10.4f} {fast.rates[n]:10.4f}  {dtype}")
    lines += ["", f"parameters, lowest gradient cosine first ({show} of them):",
              f"{'cosine':>8s} {'|g| ' + a:>11s} {'|g| ' + b:>11s} {'ratio':>9s}  parameter"]
    for cosine, name, na, nb in gradient_rows(exact, fast)[:show]:
        ratio = nb / na if na else float("inf")
        lines.append(f"{cosine:8.3f} {na:11.3e} {nb:11.3e} {ratio:9.2f}  {name}")
    only = one_mode_only(exact, fast)
    lines += ["", "zero or missing gradient in one mode only: " + (", ".join(only) if only else "none")]
    for label, record in zip(labels, (exact, fast)):
        bad = non_finite(record)
        named = f" ({', '.join(bad[:3])}...)" if bad else ""
        lines.append(f"non-finite gradient in {label}: {len(bad)} parameters{named}")
    shift = {n: float((fast.running_means[n] - m).norm() / m.norm().clamp_min(1e-12))
             for n, m in exact.running_means.items()}
    worst = max(shift, key=shift.__getitem__) if shift else None
    if worst:
        lines.append(f"largest relative BN running-mean difference: {shift[worst]:.3g} ({worst})")
    return lines


def compare(suite: Path, model: str, dataset: str | None, batch: int, seed: int, fast_mode: Mode = BF16) -> list[str]:
    """Build the suite run of ``model`` (first one on ``dataset`` when given) twice from one init and compare a
    step in fp32 with one in ``fast_mode``."""
    runs = [s for s in expand(load_suite(suite)) if s.model == model and dataset in (None, s.dataset)]
    if not runs:
        raise ConfigError(f"{suite}: no run of {model}" + (f" on {dataset}" if dataset else ""))
    spec = train_spec(runs[0])
    recipe = spec.resolved_recipe()
    seed_all(seed)
    exact_model = spec.create_model(recipe)
    fast_model = copy.deepcopy(exact_model)
    data = build_dataset(spec.dataset, "train", root=spec.data_root, T=spec.time_steps(), recipe=recipe.data)
    samples = [data[i] for i in range(min(batch, len(data)))]
    x, y = torch.stack([s[0] for s in samples]), torch.tensor([s[1] for s in samples])
    loss_fn = TrainLoss(recipe.train)
    exact = train_step(exact_model, x, y, loss_fn, FP32)
    fast = train_step(fast_model, x, y, loss_fn, fast_mode)
    return [f"{model} on {spec.dataset}, seed {seed}, batch {len(x)}, overrides {spec.model_kwargs}",
            f"modes: {FP32} against {fast_mode}"] + report(exact, fast, show=12, labels=(FP32.label, fast_mode.label))


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="precision_step.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a zoo config that the suite runs")
    parser.add_argument("--dataset", default=None, help="its dataset (default: the suite's first for that model)")
    parser.add_argument("--suite", type=Path, default=Path("suites/smoke.yaml"))
    parser.add_argument("--batch", type=positive_int, default=64)
    parser.add_argument("--seed", type=seed_int, default=0)
    parser.add_argument("--fast", action="store_true",
                        help="compare with the whole fast mode train.fast chooses on this CPU, not bf16 autocast alone")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    mode = BF16
    if args.fast:
        choice = fast_choice("cpu")
        print(f"fast mode on this CPU: {choice.case} ({choice.reason})")
        mode = Mode.of_fast(choice)
    try:
        lines = compare(args.suite, args.model, args.dataset, args.batch, args.seed, mode)
    except ConfigError as err:
        print(f"error: precision_step.py: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print("\n".join(lines))


if __name__ == "__main__":
    main()
