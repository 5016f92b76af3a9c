"""Theoretical energy per image as the MSViT paper's Appendix C defines it, with a per-layer audit table.

``E = E_AC * ACs + E_MAC * MACs`` with E_AC = 0.9 pJ and E_MAC = 4.6 pJ (45 nm figures the paper uses).
The paper's SOP_layer = firing rate x T x FLOPs_layer is what :mod:`harness.metrics.ops` measures exactly:
the accumulations a spike operand causes (multiplicity included), op by op, at the dispatcher. Real-valued
products (the first conv on analog pixels, a head on averaged spikes) are MACs. Counts and firing rates
are averaged over the images of real evaluation batches.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from harness.metrics.firing import FiringRates
from harness.metrics.ops import OpCounter
from harness.recipe import DataRecipe

E_AC_PJ = 0.9
E_MAC_PJ = 4.6
PJ_PER_MJ = 1e9


@dataclass
class AuditRow:
    """One (layer, op kind, class) line of the audit table, per image."""

    layer: str
    kind: str
    op_class: str
    dense: float
    count: float
    density: float
    energy_pj: float


@dataclass
class EnergyReport:
    """Energy per image, its per-layer audit, and the firing rates measured on the same images."""

    images: int
    rows: list[AuditRow]
    macs: float
    acs: float
    energy_mj: float
    firing_overall: float
    firing_per_layer: dict[str, float]
    lif_never_called: list[str] = field(default_factory=list)
    params: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_energy(model: nn.Module, batches: Iterable[torch.Tensor]) -> EnergyReport:
    """Run ``model`` (eval, no grad) on ``batches`` and return its energy per image and audit table."""
    model.eval()
    images = 0
    firing = FiringRates(model)
    with torch.no_grad(), firing, OpCounter(model) as counter:
        for x in batches:
            model(x)
            images += x.shape[0]
    if images == 0:
        raise ValueError("energy needs at least one evaluation batch; got none")
    if not counter.tallies:
        raise ValueError(f"{type(model).__name__}: no operation was counted; energy cannot be computed")
    rows = []
    for tally in counter.tallies.values():
        unit = E_MAC_PJ if tally.op_class == "MAC" else E_AC_PJ
        rows.append(AuditRow(tally.layer, tally.kind, tally.op_class, tally.dense / images, tally.count / images,
                             tally.density, unit * tally.count / images))
    rates = firing.table()
    macs = sum(r.count for r in rows if r.op_class == "MAC")
    acs = sum(r.count for r in rows if r.op_class == "AC")
    return EnergyReport(
        images=images, rows=rows, macs=macs, acs=acs,
        energy_mj=(E_MAC_PJ * macs + E_AC_PJ * acs) / PJ_PER_MJ,
        firing_overall=rates["overall"], firing_per_layer=rates["per_layer"],
        lif_never_called=rates["never_called"], params=sum(p.numel() for p in model.parameters()),
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


def format_audit(report: EnergyReport, title: str = "", claimed_mj: float | None = None) -> str:
    """The audit table as fixed-width text: one line per layer/op, then LIF firing rates and totals."""
    head = f"{'layer':<48} {'op':<6} {'class':<5} {'dense/img':>12} {'ops/img':>12} {'density':>8} {'uJ/img':>10}"
    lines = [title, head, "-" * len(head)] if title else [head, "-" * len(head)]
    for r in report.rows:
        lines.append(f"{r.layer:<48} {r.kind:<6} {r.op_class:<5} {r.dense:>12.4g} {r.count:>12.4g} "
                     f"{r.density:>8.4f} {r.energy_pj / 1e6:>10.4f}")
    lines += ["", f"{'LIF layer':<48} {'firing rate':>12}"]
    lines += [f"{name:<48} {rate:>12.4f}" for name, rate in report.firing_per_layer.items()]
    lines += [f"{name:<48} {'never called':>12}" for name in report.lif_never_called]
    claimed = f" (paper: {claimed_mj} mJ)" if claimed_mj is not None else ""
    lines += [
        "",
        f"images: {report.images}   params: {report.params:,}   overall firing rate: {report.firing_overall:.4f}",
        f"MACs/img: {report.macs:.4g}   ACs/img: {report.acs:.4g}   (E_MAC {E_MAC_PJ} pJ, E_AC {E_AC_PJ} pJ)",
        f"energy per image: {report.energy_mj:.4f} mJ{claimed}",
    ]
    return "\n".join(lines)


def synthetic_images(shape: tuple[int, ...], batches: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """Standard-normal images (the statistics of normalised pixels) for models with no dataset at hand."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn((batch_size, *shape), generator=gen) for _ in range(batches)]


def dataset_batches(dataset: str, split: str, batches: int, batch_size: int, root: str | None, T: int,
                    recipe: DataRecipe | None) -> list[torch.Tensor]:
    """The first ``batches`` evaluation batches (inputs only) of a harness dataset."""
    from harness.data import build_dataset

    data = build_dataset(dataset, split, root=root, T=T, recipe=recipe)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    out = []
    for x, _ in loader:
        out.append(x)
        if len(out) == batches:
            break
    return out


def main(argv: list[str] | None = None) -> int:
    """``energy MODEL [--dataset D --batches N]``: print the audit table and the energy per image in mJ."""
    parser = argparse.ArgumentParser(prog="harness energy", description=main.__doc__)
    parser.add_argument("model", help="registered zoo model name")
    parser.add_argument("--dataset", default=None,
                        help="harness dataset to draw evaluation batches from (default: synthetic N(0,1) images)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--data-root", "--root", dest="root", default=None, help="dataset root directory")
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--T", type=int, default=None, help="time steps (default: the model card's)")
    parser.add_argument("--checkpoint", default=None, help="state dict or engine checkpoint to load")
    parser.add_argument("--calibrate-bn", action="store_true",
                        help="first set BatchNorm statistics from the same batches (for untrained weights)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the report as JSON to this path")
    args = parser.parse_args(argv)

    import zoo
    from harness.recipe import load_recipe

    torch.manual_seed(args.seed)
    card = zoo.model_card(args.model)
    T = args.T or card.T
    model = zoo.create_model(args.model, T=T)
    weights = "random (seed %d)" % args.seed
    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("model", state))
        weights = args.checkpoint
    if args.dataset:
        batches = dataset_batches(args.dataset, args.split, args.batches, args.batch_size, args.root, T,
                                  load_recipe(card.recipe).data)
        source = f"{args.dataset}/{args.split}"
    elif getattr(model, "input_kind", "static") == "static":
        batches = synthetic_images(card.input_shape, args.batches, args.batch_size, args.seed)
        source = "synthetic N(0,1) images"
    else:
        parser.error(f"{args.model} takes event frames: pass --dataset")
    if args.calibrate_bn:
        calibrate_batch_norm(model, batches)
        weights += ", BatchNorm statistics calibrated on the inputs"
    report = measure_energy(model, batches)
    title = f"{args.model}  T={T}  weights: {weights}  inputs: {source}"
    print(format_audit(report, title, card.claimed_energy_mj))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"model": args.model, "T": T, "weights": weights, "inputs": source,
                       "claimed_energy_mj": card.claimed_energy_mj, **report.as_dict()}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
