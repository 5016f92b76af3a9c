"""Theoretical energy per image in two named conventions, each with a per-layer audit that adds up by hand.

``paper``: the MSViT paper's Appendix C, Eq. 18, as the papers compute it,
    E = 4.6 pJ x FLOPs_enc + 0.9 pJ x sum_l fr_l x T_l x FLOPs_l,
  - FLOPs_enc: the encoding layer (every contraction on the image before the first neuron runs) ONCE per image,
    although direct encoding executes it at each of the T steps on the same image;
  - l: every other contraction (conv, linear, and the attention matmuls); FLOPs_l its dense FLOPs per time
    step, T_l the steps it runs (T when its leading axis is the flattened T x batch, else 1: an op outside
    the time axis), fr_l the firing rate of its spike input under a rule the audit names (``fr_rule``, see
    :mod:`harness.metrics.spikes`): ``nonzero``, the fraction of non-zero values (the Spike-driven Transformer's
    definition, NeurIPS 2023 supplementary; a spike-add count of 2 counts once), for binary and ternary
    spikes, integer sums of them and event frames; ``count``, events per element, for the integer MultiSpike
    neurons of SDT v3 / E-SpikeFormer (arXiv 2411.16061), whose spike-driven inference emits an activation
    ``k`` as ``k`` binary spikes over ``D`` virtual time steps (its "integer training, spike-driven inference"),
    so a count k is k synaptic events: fr = mean count, SOPs = fr x T x FLOPs = events x fan-out, the energy
    at T x D binary steps. A product of two spike operands (Q K^T, Q (K^T V)) takes the product of both rates,
    so under ``nonzero`` it never exceeds its dense FLOPs. A contraction on real values after the first neuron
    (a head on time-averaged spikes, a conv on BN outputs) is a term of the sum like any other, with fr_l its
    non-zero fraction, as Eq. 18 has no third term; the audit marks it ``real``.
  - Event inputs (DVS models, ``model.input_kind == "dvs"``): the frames are spikes, not an image to encode. The
    first layer is a spike-driven term like the others (fr by the ``nonzero`` rule: the non-zero fraction of
    the frames, a pixel holding 18 events counts once, as the papers define fr; T steps, 0.9 pJ) and there is
    no 4.6 pJ term. The rule depends only on the input kind, so it is the same for every family; ``ops``
    counts the accumulations the frames' counts execute.
  Element-wise masks, column sums and residual additions are not FLOPs of a layer in Eq. 18 and are left out.
``ops``: every operation as executed (:mod:`harness.metrics.ops`): every real-valued product a MAC (the
  first conv T times), every accumulation a spike causes an AC with its multiplicity (a count of 2 is 2 ACs,
  a MultiSpike output k / D is k ACs, an event pixel holding 18 events 18; an SSA ``Q (K^T V)`` can exceed
  its dense FLOPs), masks, sums and additions included.

Both are counted in one pass by :class:`harness.metrics.counter.LayerCounter` (per-layer hooks, accumulators
on the device; the default) or by the reference :class:`harness.metrics.ops.OpCounter` (the dispatcher on
every op, ``counter="reference"``), which give the same numbers; firing rates (per layer and time step) and,
on request, NeuroBench's metrics come from the same pass.

E_AC = 0.9 pJ and E_MAC = 4.6 pJ (45 nm, the papers' figures). Counts and rates are per image, averaged over
the images of real evaluation batches. The memory-aware conventions ``memory`` and ``lemaire``, computed by
spikingjelly's own estimators, live in :mod:`harness.metrics.memory_energy`; the break-even firing rate against the
equivalent quantised ANN in :mod:`harness.metrics.break_even`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from harness.argtypes import OneLineParser, positive_int, seed_int
from harness.metrics.counter import LayerCounter
from harness.metrics.firing import FiringRates
from harness.metrics.neurobench_metrics import NeuroBenchPass
from harness.metrics.ops import OpCounter, PaperTally
from harness.recipe import DataRecipe

E_AC_PJ = 0.9
E_MAC_PJ = 4.6
PJ_PER_MJ = 1e9
CONVENTIONS = ("paper", "ops")
SILENT_FIRING_RATE = 0.01
Counter = Literal["hooks", "reference"]
COUNTERS = {"hooks": LayerCounter, "reference": OpCounter}


def silent_network_warning(firing_rate: float, consequence: str) -> str | None:
    """The one-line warning for a network that hardly spikes (overall firing rate below ``SILENT_FIRING_RATE``),
    saying what that makes of the figure shown (``consequence``); None when it spikes enough."""
    if firing_rate >= SILENT_FIRING_RATE:
        return None
    return (f"warning: overall firing rate {firing_rate:.4f} < {SILENT_FIRING_RATE}: the network is silent, "
            f"so {consequence}")


@dataclass
class AuditRow:
    """One (layer, op kind, class) line of the ``ops`` audit, per image."""

    layer: str
    kind: str
    op_class: str
    dense: float
    count: float
    density: float
    energy_pj: float


@dataclass
class PaperRow:
    """One term of Eq. 18, per image: ``energy_pj = 4.6 x flops`` for the encoding layer (``input == "image"``,
    counted once), else ``sops = fr x T x flops`` and ``energy_pj = 0.9 x sops``, ``fr`` by ``fr_rule``:
    ``nonzero`` (fraction of non-zero inputs) or ``count`` (events per input: a MultiSpike count k is k)."""

    layer: str
    kind: str
    input: str
    flops: float
    fr: float | None
    T: int
    sops: float
    energy_pj: float
    fr_rule: str | None = None


@dataclass
class EnergyReport:
    """Energy per image in both conventions, their audits, and the firing rates measured on the same images."""

    images: int
    T: int
    rows: list[AuditRow]
    macs: float
    acs: float
    energy_mj: float
    paper_rows: list[PaperRow]
    first_layer_macs: float
    sops: float
    paper_energy_mj: float
    firing_overall: float
    firing_per_layer: dict[str, float]
    lif_never_called: list[str] = field(default_factory=list)
    params: int = 0
    firing_per_layer_step: dict[str, list[float]] = field(default_factory=dict)
    neurobench: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """The per-image figures of both conventions: the ``energy`` block of a run's final.json."""
        return {"images": self.images,
                "paper": {"energy_mj": self.paper_energy_mj, "first_layer_macs": self.first_layer_macs,
                          "sops": self.sops, "firing_rate": self.firing_overall},
                "ops": {"energy_mj": self.energy_mj, "macs": self.macs, "acs": self.acs,
                        "firing_rate": self.firing_overall}}

    def encoding_macs_executed(self) -> float:
        """MACs of the encoding layer as executed (``ops``: at every time step)."""
        encoding = {r.layer for r in self.paper_rows if r.input == "image"}
        return sum(r.count for r in self.rows if r.op_class == "MAC" and r.layer in encoding)


def paper_row(tally: PaperTally, images: int) -> PaperRow:
    """The per-image Eq. 18 term of one tally (the encoding layer once per image)."""
    flops = tally.dense / images / tally.steps
    if tally.source == "image":
        return PaperRow(tally.layer, tally.kind, tally.source, flops, None, 1, 0.0, E_MAC_PJ * flops)
    sops = tally.fr * tally.steps * flops
    return PaperRow(tally.layer, tally.kind, tally.source, flops, tally.fr, tally.steps, sops, E_AC_PJ * sops,
                    tally.rule)


def measure_energy(model: nn.Module, batches: Iterable[torch.Tensor], T: int | None = None,
                   on_output: Callable[[torch.Tensor], None] | None = None, neurobench: bool = False,
                   counter: Counter = "hooks") -> EnergyReport:
    """Run ``model`` (eval, no grad) on ``batches`` and return its energy per image in both conventions.

    ``T`` (time steps) defaults to ``model.T``; it locates the time axis of each op for Eq. 18. ``on_output``
    is called with each batch's output (e.g. to score accuracy in the same pass); ``neurobench`` adds the
    NeuroBench package's metrics of the same pass. ``counter``: ``hooks`` (:class:`LayerCounter`, cheap) or
    ``reference`` (:class:`OpCounter`, the dispatcher on every op); both give the same numbers.
    """
    T = T or getattr(model, "T", None)
    if not T:
        raise ValueError(f"{type(model).__name__} has no attribute T: pass the number of time steps")
    if counter not in COUNTERS:
        raise ValueError(f"unknown op counter {counter!r}; expected one of {COUNTERS}")
    model.eval()
    images = 0
    ops = COUNTERS[counter](model, T)
    firing = FiringRates(model, T, ops.sources.stats)  # its event totals serve the counter and NeuroBench
    bench = NeuroBenchPass(model, ops.sources) if neurobench else None
    with (torch.no_grad(), firing, ops, bench.active() if bench else contextlib.nullcontext()):
        for x in batches:
            out = model(x)
            images += x.shape[0]
            with ops.paused():
                if bench is not None:
                    bench.batch_done(out, x)
                if on_output is not None:
                    on_output(out)
    if images == 0:
        raise ValueError("energy needs at least one evaluation batch; got none")
    tallies = ops.tallies
    if not tallies:
        raise ValueError(f"{type(model).__name__}: no operation was counted; energy cannot be computed")
    rows = []
    for tally in tallies.values():
        unit = E_MAC_PJ if tally.op_class == "MAC" else E_AC_PJ
        rows.append(AuditRow(tally.layer, tally.kind, tally.op_class, tally.dense / images, tally.count / images,
                             tally.density, unit * tally.count / images))
    paper_rows = [paper_row(t, images) for t in ops.paper_tallies.values()]
    rates = firing.table()
    macs = sum(r.count for r in rows if r.op_class == "MAC")
    acs = sum(r.count for r in rows if r.op_class == "AC")
    first = sum(r.flops for r in paper_rows if r.input == "image")
    sops = sum(r.sops for r in paper_rows)
    return EnergyReport(
        images=images, T=T, rows=rows, macs=macs, acs=acs, energy_mj=(E_MAC_PJ * macs + E_AC_PJ * acs) / PJ_PER_MJ,
        paper_rows=paper_rows, first_layer_macs=first, sops=sops,
        paper_energy_mj=(E_MAC_PJ * first + E_AC_PJ * sops) / PJ_PER_MJ,
        firing_overall=rates["overall"], firing_per_layer=rates["per_layer"],
        lif_never_called=rates["never_called"], params=sum(p.numel() for p in model.parameters()),
        firing_per_layer_step=rates["per_layer_step"], neurobench=bench.results() if bench else None,
    )


def calibrate_batch_norm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Reset every BatchNorm's running statistics to the exact average over ``batches`` (train-mode forwards,
    no grad), so an untrained model's neurons see normalised inputs; returns the number of BN layers."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average: equal weight for every batch
    model.train()
    with torch.no_grad():
        for x in batches:
            model(x)
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum
    model.eval()
    return len(norms)


def format_audit(report: EnergyReport, convention: str = "paper", title: str = "") -> str:
    """The audit of one convention as fixed-width text: one line per term, then LIF firing rates and totals."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown energy convention {convention!r}; expected one of {CONVENTIONS}")
    lines = [title] if title else []
    if convention == "paper":
        head = (f"{'layer':<44} {'op':<6} {'input':<6} {'FLOPs/step':>12} {'fr':>8} {'T':>3} {'SOPs':>12} "
                f"{'pJ':>12}")
        lines += [head, "-" * len(head)]
        for r in report.paper_rows:
            fr = "MAC" if r.fr is None else f"{r.fr:.4f}"
            sops = "-" if r.fr is None else f"{r.sops:.6g}"
            lines.append(f"{r.layer:<44} {r.kind:<6} {r.input:<6} {r.flops:>12.6g} {fr:>8} {r.T:>3} {sops:>12} "
                         f"{r.energy_pj:>12.6g}")
        total = (f"paper (MSViT App. C, Eq. 18): {E_MAC_PJ} pJ x {report.first_layer_macs:.6g} encoding FLOPs + "
                 f"{E_AC_PJ} pJ x {report.sops:.6g} SOPs = {report.paper_energy_mj:.4f} mJ per image")
    else:
        head = f"{'layer':<44} {'op':<6} {'class':<5} {'dense/img':>12} {'ops/img':>12} {'density':>8} {'pJ':>12}"
        lines += [head, "-" * len(head)]
        for r in report.rows:
            lines.append(f"{r.layer:<44} {r.kind:<6} {r.op_class:<5} {r.dense:>12.6g} {r.count:>12.6g} "
                         f"{r.density:>8.4f} {r.energy_pj:>12.6g}")
        total = (f"ops (as executed): {E_MAC_PJ} pJ x {report.macs:.6g} MACs + {E_AC_PJ} pJ x {report.acs:.6g} ACs "
                 f"= {report.energy_mj:.4f} mJ per image")
    lines += ["", f"{'LIF layer':<44} {'firing rate':>12}"]
    lines += [f"{name:<44} {rate:>12.4f}" for name, rate in report.firing_per_layer.items()]
    lines += [f"{name:<44} {'never called':>12}" for name in report.lif_never_called]
    lines += ["", f"images: {report.images}   T: {report.T}   params: {report.params:,}   "
                  f"overall firing rate: {report.firing_overall:.4f}", total]
    return "\n".join(lines)


def convention_summary(report: EnergyReport, convention: str) -> dict[str, Any]:
    """The per-image figures and audit rows of one convention, under the CLI's JSON keys.

    ``paper``: ``first_layer_macs`` the encoding FLOPs once per image, ``sops`` the sum of fr x T x FLOPs.
    ``ops``: ``first_layer_macs`` the encoding layer's MACs as executed (T times), ``sops`` every AC; all MACs
    (head and other real-valued products included) are under ``macs``.
    """
    if convention == "paper":
        return {"energy_mj": report.paper_energy_mj, "first_layer_macs": report.first_layer_macs,
                "sops": report.sops, "per_layer": [asdict(r) for r in report.paper_rows]}
    return {"energy_mj": report.energy_mj, "first_layer_macs": report.encoding_macs_executed(), "sops": report.acs,
            "macs": report.macs, "acs": report.acs, "per_layer": [asdict(r) for r in report.rows]}


def synthetic_images(shape: tuple[int, ...], images: int, seed: int) -> torch.Tensor:
    """Standard-normal images (the statistics of normalised pixels) for models with no dataset at hand."""
    return torch.randn((images, *shape), generator=torch.Generator().manual_seed(seed))


def dataset_images(dataset: str, split: str, images: int, root: str | None, T: int,
                   recipe: DataRecipe | None) -> torch.utils.data.Dataset:
    """The first ``images`` samples of a harness dataset's split, in order."""
    from harness.data import build_dataset

    data = build_dataset(dataset, split, root=root, T=T, recipe=recipe)
    return torch.utils.data.Subset(data, range(min(images, len(data))))


def _parser() -> argparse.ArgumentParser:
    from harness.metrics.memory_energy import MEMORY_CONVENTIONS

    parser = OneLineParser(prog="python -m harness energy", description=main.__doc__)
    parser.add_argument("model", help="registered zoo model name")
    parser.add_argument("--convention", choices=CONVENTIONS + MEMORY_CONVENTIONS, default="paper",
                        help="paper: MSViT App. C Eq. 18 as the papers compute it; ops: as executed; memory, lemaire: "
                             "spikingjelly's own estimators (with memory traffic) on its neurons")
    parser.add_argument("--checkpoint", default=None,
                        help="official weights (mapped by zoo.load_official_state_dict) or a spikebench checkpoint; "
                             "compares the energy with the paper's claim")
    parser.add_argument("--dataset", default=None,
                        help="harness dataset to take evaluation images from (default: synthetic N(0,1) images)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--data-root", "--root", dest="root", default=None, help="dataset root directory")
    parser.add_argument("--images", type=positive_int, default=4, help="images to measure on (the first N of the split)")
    parser.add_argument("--batch-size", type=positive_int, default=1)
    parser.add_argument("--T", type=positive_int, default=None, help="time steps (default: the model card's)")
    parser.add_argument("--calibrate-bn", action="store_true",
                        help="first set BatchNorm statistics from the same images (for untrained weights)")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of the random weights and synthetic images")
    parser.add_argument("--no-neurobench", action="store_true", help="skip the NeuroBench metrics")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line")
    return parser


class EnergyInputError(ValueError):
    """A user mistake in ``harness energy``'s arguments or files."""


def _claim_line(measured: float, convention: str, claimed_mj: float | None) -> str:
    if claimed_mj is None:
        return "paper claim: none on the model card"
    return (f"paper claim: {claimed_mj} mJ; measured ({convention}): {measured:.4f} mJ "
            f"({measured / claimed_mj:.3f} x the claim)")


def main(argv: list[str] | None = None) -> int:
    """``energy MODEL [--convention paper|ops|memory|lemaire] [--checkpoint F] [--json]``: per-layer audit and energy
    per image, and the break-even firing rate against the equivalent quantised ANN."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except EnergyInputError as err:
        print(f"error: harness energy: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    import zoo
    from harness.argtypes import unknown_model
    from harness.audit import WeightsError, load_weights
    from harness.metrics.break_even import break_even, format_break_even
    from harness.metrics.memory_energy import (MEMORY_CONVENTIONS, UnsupportedModelError, check_supported,
                                               format_memory_audit, measure_memory_energy)
    from harness.recipe import load_recipe

    problem = unknown_model(args.model)
    if problem:
        raise EnergyInputError(problem)
    card = zoo.model_card(args.model)
    T = args.T or card.T
    torch.manual_seed(args.seed)
    model = zoo.create_model(args.model, T=T)
    if args.convention in MEMORY_CONVENTIONS:
        try:
            check_supported(model, args.convention)
        except UnsupportedModelError as err:
            raise EnergyInputError(f"{args.model}: {err}") from None
    weights = f"random (seed {args.seed})"
    if args.checkpoint:
        try:
            load_weights(model, args.checkpoint)
        except WeightsError as err:
            raise EnergyInputError(f"--checkpoint {err}") from None
        weights = args.checkpoint
    if args.dataset:
        try:
            data = dataset_images(args.dataset, args.split, args.images, args.root, T, load_recipe(card.recipe).data)
        except (KeyError, ValueError, FileNotFoundError) as err:
            raise EnergyInputError(f"--dataset {args.dataset}: {str(err).strip(chr(39))}") from None
        source = f"{args.dataset}/{args.split}, first {len(data)} images"
    elif getattr(model, "input_kind", "static") == "static":
        images = synthetic_images(card.input_shape, args.images, args.seed)
        data = torch.utils.data.TensorDataset(images, torch.zeros(len(images), dtype=torch.long))
        source = f"{len(data)} synthetic N(0,1) images (seed {args.seed})"
    else:
        raise EnergyInputError(f"{args.model} takes event frames: pass --dataset (e.g. digits_dvs)")
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch_size, shuffle=False)
    if args.calibrate_bn:
        calibrate_batch_norm(model, (x for x, _ in loader))
        weights += ", BatchNorm statistics calibrated on the inputs"
    report = measure_energy(model, (x for x, _ in loader), T, neurobench=not args.no_neurobench)
    neurobench = report.neurobench
    title = f"{args.model}  T={T}  weights: {weights}  inputs: {source}"
    if args.convention in MEMORY_CONVENTIONS:
        result = measure_memory_energy(model, (x for x, _ in loader), args.convention)
        print(format_memory_audit(result, title))
        summary = result.summary()
    else:
        print(format_audit(report, args.convention, title))
        summary = convention_summary(report, args.convention)
    even = break_even(report.paper_rows, T)
    print(format_break_even(even))
    if args.checkpoint:
        print(_claim_line(summary["energy_mj"], args.convention, card.claimed_energy_mj))
    else:
        print("weights are random: the figure is no measure of the trained model, and no paper claim is shown")
        warning = silent_network_warning(report.firing_overall, "nearly all of the energy is the encoding layer's")
        if warning:
            print(warning)
    if neurobench is not None:
        print("neurobench: " + ", ".join(f"{k} {v:.6g}" for k, v in neurobench.items()))
    if args.json:
        out = {"model": args.model, "convention": args.convention, "weights": weights, "images": report.images,
               "T": T, "inputs": source, "firing_rate": report.firing_overall,
               **summary, "break_even_firing_rate": even.break_even_firing_rate, "break_even": asdict(even),
               "neurobench": neurobench}
        if args.checkpoint:
            out["claimed_energy_mj"] = card.claimed_energy_mj
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
