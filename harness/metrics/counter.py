"""The cheap op counter: the numbers of :class:`harness.metrics.ops.OpCounter` from per-layer hooks, on the device.

Where the reference sends every aten op through a Python dispatch mode, syncs to the host per op and replays
each convolution on the spike multiplicities, this counter
- counts ``nn.Conv1d/2d/3d`` and ``nn.Linear`` modules (and the zoo's ``SpikeConv*``/``SpikeLinear``) in forward
  hooks, with closed forms: a convolution's accumulations are a ones-kernel convolution of the per-group
  channel sum of the multiplicities (times the output channels per group), a linear's or matmul's are the dot
  product of the column sums of one operand with the row sums of the other;
- runs the dispatch mode only on the "glue" between layers (attention matmuls, masks, column sums, residual
  additions, which no hook sees): the mode is taken off the stack inside every counted layer, neuron, batch
  norm, pool and dropout, so their internals (the hot path) run at full speed;
- classifies operands as spikes or real values on the device (:func:`harness.metrics.spikes.classify`) and
  adds every op's counts to per-(layer, kind) device tensors with branch-free arithmetic: nothing is read back
  until ``tallies``/``paper_tallies`` are asked for, once, at the end. On the CPU, where a flag is read in place,
  the figures of the class an operand is not (an AC count of a real input, the real-input rate of spikes) are
  skipped rather than computed and multiplied by zero;
- shares every per-tensor figure (classing, event totals, non-zero counts, ones-kernel tap totals) with the
  firing-rate hooks and NeuroBench through the pass's :class:`harness.metrics.spikes.TensorStats`, so a tensor
  read by several layers (q, k, v) or metrics is read once; a clone the dispatcher sees shares its source's.
The classing and counting rules are the reference's (see :mod:`harness.metrics.ops`); tests hold both equal.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode, _pop_mode, _push_mode

from harness.metrics.ops import (_ADDITIONS, _CONVS, _HANDLED, _MATMULS, _PRODUCTS, _REDUCTIONS, ROOT,
                                 ModuleScopedMode, OpTally, PaperTally, _both_tensors, _contraction_operands,
                                 _is_compute, paused)
from harness.metrics.spikes import Operand, classify, conv_hits, nonnegative_total, weight_memo
from zoo.core import SpikingNeuron
from zoo.core.layers import SpikeConv1d, SpikeConv2d, SpikeLinear

aten = torch.ops.aten
CONV_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, SpikeConv1d, SpikeConv2d)
LINEAR_LAYERS = (nn.Linear, SpikeLinear)
# exact types whose forward runs no op the reference counts (batch norm, pools, dropout, reshapes)
OPAQUE_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
                 nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
                 nn.Dropout, nn.Identity, nn.Flatten, nn.Unflatten)
# per (layer, kind): calls, dense, count for MAC then AC
_OPS_SLOTS = 6
# per (layer, kind, steps, stage): calls, dense, sops for real (or image / events), spikes by "nonzero", by "count"
_PAPER_SLOTS = 9


class LayerCounter(ModuleScopedMode):
    """Count synaptic ops like :class:`~harness.metrics.ops.OpCounter`: ``with LayerCounter(model, T) as c:``.

    ``c.tallies`` and ``c.paper_tallies`` are the reference's dictionaries, built from the device accumulators
    when read.
    """

    def __init__(self, model: nn.Module, T: int = 1) -> None:
        super().__init__(model, T)
        self._ops: dict[tuple[str, str], torch.Tensor] = {}
        self._paper: dict[tuple[str, str, int, str], torch.Tensor] = {}
        self._depth = 0

    # ------------------------------------------------------------------ hooks and the dispatch mode's scope

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Run other work (scoring, NeuroBench's replays) between forwards without counting it."""
        with paused(self):
            yield

    def _module_hooks(self, name: str, registered: nn.Module):
        """Pre- and post-hooks of one module; a deep copy of the module (NeuroBench copies layers, hooks
        included) runs them as no-ops."""
        def enter(module: nn.Module, args: Any) -> None:
            if module is registered:
                self._enter_module(name, module, args)

        def leave(module: nn.Module, args: Any, output: Any) -> None:
            if module is registered:
                self._leave_module(module, output)
        return enter, leave

    def _enter_module(self, name: str, module: nn.Module, args: Any) -> None:
        if isinstance(module, SpikingNeuron):
            self._neuron_ran = True
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        counted = x is not None and self._hook_counts(module, x)
        quiet = (counted or isinstance(module, SpikingNeuron) or type(module) in OPAQUE_LAYERS) and self._suspend()
        self._stack.append((name, module, quiet, x if counted and quiet else None))

    def _leave_module(self, module: nn.Module, output: Any) -> None:
        if not self._stack or self._stack[-1][1] is not module:
            return
        name, _, quiet, x = self._stack.pop()
        if x is not None and self._depth == 1 and isinstance(output, torch.Tensor):
            with torch.no_grad():  # while the mode is still off: the counting ops are not counted
                self._count_layer(name, module, x, output)
        if quiet:
            self._resume()

    @staticmethod
    def _hook_counts(module: nn.Module, x: torch.Tensor) -> bool:
        """Whether a hook counts this call exactly as the dispatcher would see it (else the dispatcher does)."""
        if type(module) in CONV_LAYERS:
            return module.padding_mode == "zeros" and not isinstance(module.padding, str)
        if type(module) in LINEAR_LAYERS:  # a strided input with bias runs mm + add, not addmm
            return x.dim() >= 2 and (module.bias is None or x.dim() == 2 or x.is_contiguous())
        return False

    def _suspend(self) -> bool:
        """Take the mode off the dispatch stack (nested calls only deepen); False if another mode is on top."""
        if self._depth == 0:
            if _get_current_dispatch_mode() is not self:
                return False
            _pop_mode()
        self._depth += 1
        return True

    def _resume(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            _push_mode(self)

    # ------------------------------------------------------------------ counting

    def _operand(self, x: torch.Tensor) -> Operand:
        return classify(x, self.sources.candidates(x), self.sources.stats)

    def _weight_operand(self, w: torch.Tensor, module: nn.Module | None = None) -> tuple[Operand, bool]:
        """A weight's classification, decided on the host: a layer's once per weight version (its weights hold still
        while measuring, across passes); a functional op's weight (``module`` None) at each call."""
        def decide() -> tuple[Operand, bool]:
            return _weight_operand(w, self.sources.first_match(w)[0])
        if module is None:
            return decide()
        return weight_memo(module, ("operand", self.sources.candidates(w)), decide)

    def _count_layer(self, name: str, module: nn.Module, x: torch.Tensor, out: torch.Tensor) -> None:
        if type(module) in CONV_LAYERS:
            ox, (ow, w_spikes) = self._operand(x), self._weight_operand(module.weight, module)
            spike, count = _conv_count(ox, ow, w_spikes, module.weight, tuple(module.stride), tuple(module.padding),
                                       tuple(module.dilation), module.groups)
            dense = float(out.numel() * module.weight[0].numel())
            self._add(name, "conv", dense, spike, count)
            self._add_paper(name, "conv", dense, out.shape[0], [ox])
        else:
            a = x.reshape(-1, x.shape[-1])
            oa, (ob, _) = self._operand(x), self._weight_operand(module.weight, module)
            spike, count = _matmul_count(oa, ob, a.shape, (module.in_features, module.out_features), flat=True,
                                         b_transposed=True)
            dense = float(a.numel() * module.out_features)
            self._add(name, "matmul", dense, spike, count)
            self._add_paper(name, "matmul", dense, a.shape[0], [oa, ob])

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        layer = self._stack[-1][0] if self._stack else ROOT
        with torch.no_grad():
            try:
                self._count_glue(func, args, out, layer)
            except (TypeError, ValueError, NotImplementedError) as err:
                raise NotImplementedError(f"layer {layer!r}: cannot count {func}: {err}") from None
        return out

    def _count_glue(self, func, args, out, layer: str) -> None:
        if func is aten.clone.default:
            self.sources.record_copy(args[0], out)
        elif func in _MATMULS:
            a, b = _contraction_operands(func, args)
            oa, ob = self._operand(a), self._operand(b)
            spike, count = _matmul_count(oa, ob, a.shape, b.shape)
            dense = float(a.numel() * b.shape[-1])
            self._add(layer, "matmul", dense, spike, count)
            self._add_paper(layer, "matmul", dense, _rows(out), [oa, ob])
        elif func in _CONVS:
            x, w, _bias, stride, padding, dilation, transposed, _output_padding, groups = args[:9]
            if transposed:
                raise NotImplementedError("transposed convolutions are not modelled")
            ox, (ow, w_spikes) = self._operand(x), self._weight_operand(w)
            spike, count = _conv_count(ox, ow, w_spikes, w, tuple(stride), tuple(padding), tuple(dilation), groups)
            dense = float(out.numel() * w[0].numel())
            self._add(layer, "conv", dense, spike, count)
            self._add_paper(layer, "conv", dense, _rows(out), [ox])
        elif func in _PRODUCTS and _both_tensors(args):
            oa, ob = self._operand(args[0]), self._operand(args[1])
            if oa.known is False and ob.known is False:  # MACs: the count is not read
                count = _zero(out.device)
            else:
                ones = torch.ones((), device=out.device)
                products = torch.where(oa.spike, oa.mult, ones) * torch.where(ob.spike, ob.mult, ones)
                count = nonnegative_total(products)
            self._add(layer, "mul", float(out.numel()), oa.spike | ob.spike, count)
        elif func in _REDUCTIONS:
            ox = self._operand(args[0])
            dense = float(args[0].numel())
            count = _full(dense, out.device) if ox.known is False else torch.where(ox.spike, ox.events, dense)
            self._add(layer, "sum", dense, _true(out.device), count)
        elif func in _ADDITIONS and _both_tensors(args):
            a, b = args[0], args[1]
            oa, ob = self._operand(a), self._operand(b)
            shape = torch.broadcast_shapes(a.shape, b.shape)
            dense = float(torch.Size(shape).numel())
            active = [_nonzero_where_spikes(o, t) for o, t in ((oa, a), (ob, b)) if o.known is not False]
            if not active:  # two real operands: every element adds
                count = _full(dense, out.device)
            else:
                both = active[0] if len(active) == 1 else active[0] & active[1]
                count = torch.count_nonzero(both.expand(shape)).double()
            self._add(layer, "add", dense, _true(out.device), count)
        elif func not in _HANDLED and _is_compute(func):
            raise NotImplementedError(f"layer {layer!r}: op {func} does compute work the op counter does not model")

    def _add(self, layer: str, kind: str, dense: float, spike: torch.Tensor, count: torch.Tensor) -> None:
        """One call: a MAC call at ``dense`` if no operand is spikes, else an AC call of ``count``."""
        s = spike.double()
        r = 1.0 - s
        row = torch.stack([r, r * dense, r * dense, s, s * dense, s * count.double()])
        acc = self._ops.get((layer, kind))
        if acc is None:
            self._ops[(layer, kind)] = row
        else:
            acc.add_(row)

    def _add_paper(self, layer: str, kind: str, dense: float, rows: int, operands: list[Operand]) -> None:
        """One Eq. 18 term: before any neuron the encoding (or event) layer, else real / spikes by rule. ``rows``:
        the leading size of the op's output as the dispatcher sees it (T x batch when it runs over time)."""
        steps = self.T if rows and rows % (self.T * self._batch) == 0 else 1
        zero = torch.zeros((), dtype=torch.float64, device=operands[0].spike.device)
        if not self._neuron_ran:
            stage = "events" if self.events else "image"
            real, by_nonzero, by_count, fr_spikes = torch.ones_like(zero), zero, zero, zero
            fr_real = operands[0].nonzero
        else:
            stage = "after"
            fr_real = zero if operands[0].known else operands[0].nonzero  # read only for a real operand
            any_spike = operands[0].spike
            counted = operands[0].spike & operands[0].count_rule
            fr_spikes = _spike_rate(operands[0])
            for op in operands[1:]:
                any_spike = any_spike | op.spike
                counted = counted | (op.spike & op.count_rule)
                fr_spikes = fr_spikes * _spike_rate(op)
            real = (~any_spike).double()
            by_count = (any_spike & counted).double()
            by_nonzero = (any_spike & ~counted).double()
        row = torch.stack([real, real * dense, real * fr_real * dense,
                           by_nonzero, by_nonzero * dense, by_nonzero * fr_spikes * dense,
                           by_count, by_count * dense, by_count * fr_spikes * dense])
        acc = self._paper.get((layer, kind, steps, stage))
        if acc is None:
            self._paper[(layer, kind, steps, stage)] = row
        else:
            acc.add_(row)

    # ------------------------------------------------------------------ results (one read from the device)

    @property
    def tallies(self) -> dict[tuple[str, str, str], OpTally]:
        """The reference's op tallies: (layer, kind, class) -> :class:`OpTally`, classes that were called."""
        tallies = {}
        for (layer, kind), values in _to_host(self._ops).items():
            for op_class, (calls, dense, count) in (("MAC", values[0:3]), ("AC", values[3:6])):
                if calls:
                    tallies[(layer, kind, op_class)] = OpTally(layer, kind, op_class, round(calls), dense, count)
        return tallies

    @property
    def paper_tallies(self) -> dict[tuple[str, str, str, int, str], PaperTally]:
        """The reference's Eq. 18 tallies: (layer, kind, input, steps, rule) -> :class:`PaperTally`."""
        tallies = {}
        for (layer, kind, steps, stage), values in _to_host(self._paper).items():
            parts = (((stage, "nonzero"), values[0:3]),) if stage != "after" else (
                (("real", "nonzero"), values[0:3]), (("spikes", "nonzero"), values[3:6]),
                (("spikes", "count"), values[6:9]))
            for (source, rule), (calls, dense, sops) in parts:
                if calls:
                    tallies[(layer, kind, source, steps, rule)] = PaperTally(layer, kind, source, steps, rule,
                                                                            round(calls), dense, sops)
        return tallies


def _nonzero_where_spikes(op: Operand, t: torch.Tensor) -> torch.Tensor:
    """Where an addend takes part: everywhere if real, where non-zero if spikes."""
    return t != 0 if op.known else torch.logical_or(~op.spike, t != 0)


def _spike_rate(op: Operand) -> torch.Tensor | float:
    """An operand's factor in a spike term's rate: its rate if spikes, else 1."""
    if op.known is False:
        return 1.0
    return op.fr if op.known else torch.where(op.spike, op.fr, 1.0)


def _zero(device: torch.device) -> torch.Tensor:
    return torch.zeros((), dtype=torch.float64, device=device)


def _full(value: float, device: torch.device) -> torch.Tensor:
    return torch.full((), value, dtype=torch.float64, device=device)


def _rows(out: torch.Tensor) -> int:
    return out.shape[0] if out.dim() > 0 else 0


def _true(device: torch.device) -> torch.Tensor:
    return torch.ones((), dtype=torch.bool, device=device)


def _weight_operand(w: torch.Tensor, mult: torch.Tensor | None) -> tuple[Operand, bool]:
    """A weight as an operand given its multiplicity (None: real), and whether it is spikes."""
    spike = torch.tensor(mult is not None, device=w.device)
    return Operand(w, spike, 1.0, torch.zeros_like(spike), WHOLE_RULES, mult=mult), mult is not None


WHOLE_RULES = frozenset({"nonzero"})


def _to_host(accumulators: dict) -> dict:
    """Every accumulator in one transfer, as lists of floats."""
    if not accumulators:
        return {}
    values = torch.stack(list(accumulators.values())).cpu().tolist()
    return dict(zip(accumulators, values))


def _matmul_count(oa: Operand, ob: Operand, a_shape: torch.Size, b_shape: torch.Size | tuple[int, int],
                  flat: bool = False, b_transposed: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Accumulations of ``a @ b``: sum over k of (column sums of a) x (row sums of b), ones for real operands.
    ``flat``: fold ``a``'s leading axes into rows (a Linear's input); ``b_transposed``: ``ob`` holds ``b``'s
    transpose (a Linear's weight)."""
    if oa.known is False and ob.known is False:  # MACs: the count is not read
        return oa.spike | ob.spike, _zero(oa.spike.device)
    m, n = a_shape[-2], b_shape[-1]
    if oa.known is False:  # a real operand counts as ones: each of its columns sums to m
        columns: torch.Tensor | float = float(m)
    else:
        a_mult = oa.mult.reshape(-1, a_shape[-1]) if flat else oa.mult
        columns = torch.where(oa.spike, a_mult.sum(-2), float(m)).double()
    if ob.known is False:
        rows: torch.Tensor | float = float(n)
    else:
        rows = torch.where(ob.spike, ob.mult.sum(-2 if b_transposed else -1), float(n)).double()
    return oa.spike | ob.spike, (columns * rows).sum()  # both sides [..., k]; not both real (see above)


def _conv_count(ox: Operand, ow: Operand, w_spikes: bool, w: torch.Tensor, stride: tuple, padding: tuple,
                dilation: tuple, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Accumulations of a convolution with a spike input: a ones-kernel convolution of the per-group channel sums
    (times the output channels of a group); a replay on the multiplicities when the weights are spikes too."""
    if ox.known is False:  # MACs: the count is not read
        return ox.spike, _zero(ox.spike.device)
    if not w_spikes:
        hits = conv_hits(ox.stats, ox.x, ox.key, lambda: ox.mult, groups, w.shape[2:], stride, padding, dilation)
        return ox.spike, hits * (w.shape[0] // groups)
    x = ox.mult
    ones = torch.ones_like(x)
    replay = [aten.convolution.default(inp, ow.mult, None, list(stride), list(padding), list(dilation), False,
                                       [0] * len(stride), groups).sum(dtype=torch.float64) for inp in (x, ones)]
    return _true(x.device), torch.where(ox.spike, replay[0], replay[1])
