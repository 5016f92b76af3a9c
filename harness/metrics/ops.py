"""Synaptic operation counts measured at the PyTorch dispatcher, attributed to layers, classed MAC or AC: the
reference implementation. :mod:`harness.metrics.counter` computes the same numbers from per-layer hooks at a
fraction of the cost; tests hold the two equal on every zoo family.

Every aten op a forward pass dispatches is seen (``TorchDispatchMode``), so functional matmuls in attention,
Hadamard masks, column sums and residual additions are counted, not only Conv/Linear modules. A module
stack kept by forward pre/post hooks attributes each op to the innermost module running it.

Counted ops and how (``dense`` is the conventional count a dense processor performs, padding included):
- contractions (``mm``, ``addmm``, ``bmm``, ``baddbmm``, ``convolution``): one term per scalar product.
  With only real-valued operands every term is a MAC (``count = dense``). With a spike operand (see
  :mod:`harness.metrics.spikes`: neuron outputs, event frames, integer-valued tensors) a product becomes
  accumulations of the other operand: ``count`` = the sum over all products of the spike operands'
  multiplicities (a count of 2 is 2 ACs, a MultiSpike output ``k / D`` is ``k`` ACs, a 0 costs nothing),
  computed here by replaying the op on the multiplicities with ones for real operands.
- element-wise products of two tensors (Hadamard masks): as contractions, one term per output element.
- reductions (``sum``, ``mean``): ACs, one per input event (``sum |x|``; every element of a real input).
- additions / subtractions of two tensors: one AC per output element where both operands are non-zero.
Not counted: ops inside spiking neurons (neuron dynamics), batch norm (folded into the preceding conv at
inference), scaling by a scalar (folded into the next threshold), pooling, copies and views.

Beside these "as executed" tallies the counter keeps the terms of the MSViT paper's Eq. 18 (``paper_tallies``),
for contractions only (conv, linear, matmul: the layers whose FLOPs the papers count): each call's dense FLOPs,
the time steps it covers and its input firing rate under a named rule (``nonzero`` or ``count``, see
:mod:`harness.metrics.spikes`). :mod:`harness.metrics.energy` turns both into energy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode, _get_current_dispatch_mode, _pop_mode, _push_mode
from torch.utils.flop_counter import flop_registry

from harness.metrics.spikes import FrRule, SpikeSources
from zoo.core import SpikingNeuron

aten = torch.ops.aten
OpClass = Literal["MAC", "AC"]

_MATMULS = {aten.mm.default: "matmul", aten.addmm.default: "matmul", aten.bmm.default: "matmul",
            aten.baddbmm.default: "matmul"}
_CONVS = {aten.convolution.default, aten._convolution.default}
_PRODUCTS = {aten.mul.Tensor, aten.mul_.Tensor}
_REDUCTIONS = {aten.sum.default, aten.sum.dim_IntList, aten.mean.default, aten.mean.dim}
_ADDITIONS = {aten.add.Tensor, aten.add_.Tensor, aten.sub.Tensor, aten.sub_.Tensor}
_HANDLED = set(_MATMULS) | _CONVS
# name parts of aten ops that multiply-accumulate: any such op not handled above is an error, never a silent 0
_COMPUTE_PARTS = {"mm", "bmm", "addmm", "baddbmm", "addbmm", "mv", "addmv", "dot", "vdot", "inner", "outer", "ger",
                  "addr", "matmul", "linear", "bilinear", "einsum", "tensordot", "convolution", "conv", "conv1d",
                  "conv2d", "conv3d", "attention"}
ROOT = "<model>"


@dataclass
class OpTally:
    """Accumulated counts of one (layer, op kind, class) over every call."""

    layer: str
    kind: str
    op_class: OpClass
    calls: int = 0
    dense: float = 0.0
    count: float = 0.0

    @property
    def density(self) -> float:
        """count / dense: the fraction of the dense work an event-driven processor performs."""
        return self.count / self.dense if self.dense else 0.0


# what feeds a contraction, for Eq. 18: the encoding layer on the image, event frames, spikes, or real values
# (time-averaged spikes, BN outputs) after the first neuron
InputKind = Literal["image", "events", "spikes", "real"]


@dataclass
class PaperTally:
    """One (layer, op kind, input kind) term of Eq. 18, summed over calls.

    ``dense``: FLOPs as executed (every time step); ``steps``: time steps one call covers (T when the op runs on
    the ``T x B`` leading axis, else 1); ``sops``: sum over calls of fr x dense, fr being the product of the
    firing rates of the call's spike operands under ``rule`` (``count`` if any operand is counted by events,
    else ``nonzero``; the first operand's non-zero fraction for a real-valued contraction or the encoding layer).
    """

    layer: str
    kind: str
    source: InputKind
    steps: int
    rule: FrRule = "nonzero"
    calls: int = 0
    dense: float = 0.0
    sops: float = 0.0

    @property
    def fr(self) -> float:
        """The dense-weighted input non-zero fraction over all calls."""
        return self.sops / self.dense if self.dense else 0.0


class ModuleScopedMode(TorchDispatchMode):
    """A dispatch mode that knows which module runs each op: hooks on every module of ``model`` call
    ``_module_hooks(name, module)``'s enter/leave pair, a forward of the model itself starts a new image batch
    (its size locates the time axis), and neurons record their outputs in ``sources`` (what is a spike)."""

    def __init__(self, model: nn.Module, T: int = 1) -> None:
        super().__init__()
        self.model = model
        self.T = T
        self.events = getattr(model, "input_kind", "static") == "dvs"
        self.sources = SpikeSources(model)
        self._stack: list[Any] = []
        self._handles: list[Any] = []
        self._batch = 1
        self._neuron_ran = False

    def _module_hooks(self, name: str, module: nn.Module) -> tuple[Any, Any]:
        """The forward pre-hook and forward hook that keep ``_stack`` for ``module`` (named ``name``)."""
        raise NotImplementedError

    def __enter__(self) -> "ModuleScopedMode":
        self._handles.append(self.model.register_forward_pre_hook(self._start_forward))
        for name, module in self.model.named_modules():
            enter, leave = self._module_hooks(name or ROOT, module)
            self._handles.append(module.register_forward_pre_hook(enter))
            self._handles.append(module.register_forward_hook(leave, always_call=True))
            if isinstance(module, SpikingNeuron):
                self._handles.append(module.register_forward_hook(self.sources.record))
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._stack.clear()
        super().__exit__(*exc)

    def _start_forward(self, module: nn.Module, args: Any) -> None:
        """A new image batch: remember its size (to find the time axis) and that no neuron has run yet."""
        if not self._stack:
            self._batch = args[0].shape[0] if args and isinstance(args[0], torch.Tensor) else 1
            self._neuron_ran = False
            self.sources.clear()


class OpCounter(ModuleScopedMode):
    """Count the synaptic ops of every forward run inside ``with OpCounter(model) as counter:``.

    ``counter.tallies`` maps (layer, kind, class) to an :class:`OpTally`, in order of first appearance.
    An op the counter cannot account for raises ``NotImplementedError`` naming the layer.
    """

    def __init__(self, model: nn.Module, T: int = 1) -> None:
        super().__init__(model, T)
        self.tallies: dict[tuple[str, str, str], OpTally] = {}
        self.paper_tallies: dict[tuple[str, str, str, int, str], PaperTally] = {}

    def _module_hooks(self, name: str, module: nn.Module) -> tuple[Any, Any]:
        return self._push(name, module), self._pop(module)

    def _push(self, name: str, registered: nn.Module):
        """The pre-hook of one module (a no-op on a deep copy of it: NeuroBench copies layers, hooks included)."""
        def hook(module: nn.Module, args: Any) -> None:
            if module is not registered:
                return
            self._stack.append((name, module))
            if isinstance(module, SpikingNeuron):
                self._neuron_ran = True
        return hook

    def _pop(self, registered: nn.Module):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if module is registered and self._stack and self._stack[-1][1] is module:
                self._stack.pop()
        return hook

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Run other work (scoring, NeuroBench's replays) between forwards without counting it."""
        with paused(self):
            yield

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        layer, module = self._stack[-1] if self._stack else (ROOT, None)
        if isinstance(module, SpikingNeuron):
            return out
        with torch.no_grad():
            counted = self._count(func, args, out, layer)
        if counted is not None:
            self._add(layer, *counted)
            if counted[0] in ("conv", "matmul"):
                self._add_paper(layer, counted[0], counted[2], *self._paper_term(func, args, out))
        return out

    def multiplicity(self, x: torch.Tensor) -> tuple[torch.Tensor | None, FrRule]:
        """``x``'s events per value and its firing-rate rule, or ``(None, "nonzero")`` if it is real-valued."""
        return self.sources.first_match(x)

    def _paper_term(self, func, args, out: torch.Tensor) -> tuple[InputKind, int, float, FrRule]:
        """(input kind, time steps of one call, fr, fr rule) of a contraction, per Eq. 18's rules."""
        operands = _contraction_operands(func, args)
        first = out.dim() > 0 and out.shape[0] % (self.T * self._batch) == 0
        steps = self.T if first else 1
        if not self._neuron_ran:
            return ("events" if self.events else "image"), steps, _nonzero_fraction(operands[0]), "nonzero"
        spikes = [(x, *self.multiplicity(x)) for x in operands]
        spikes = [(x, mult, rule) for x, mult, rule in spikes if mult is not None]
        if not spikes:
            return "real", steps, _nonzero_fraction(operands[0]), "nonzero"
        fr = 1.0
        for x, mult, rule in spikes:
            fr *= float(mult.sum(dtype=torch.float64)) / x.numel() if rule == "count" else _nonzero_fraction(x)
        return "spikes", steps, fr, "count" if any(rule == "count" for *_, rule in spikes) else "nonzero"

    def _add_paper(self, layer: str, kind: str, dense: float, source: InputKind, steps: int, fr: float,
                   rule: FrRule) -> None:
        key = (layer, kind, source, steps, rule)
        tally = self.paper_tallies.setdefault(key, PaperTally(layer, kind, source, steps, rule))
        tally.calls += 1
        tally.dense += dense
        tally.sops += fr * dense

    def _add(self, layer: str, kind: str, op_class: OpClass, dense: float, count: float) -> None:
        tally = self.tallies.setdefault((layer, kind, op_class), OpTally(layer, kind, op_class))
        tally.calls += 1
        tally.dense += dense
        tally.count += count

    def _count(self, func, args, out, layer: str) -> tuple[str, OpClass, float, float] | None:
        mult = self._mult
        try:
            if func in _MATMULS:
                return _matmul(func, args, mult)
            if func in _CONVS:
                return _conv(args, out, mult)
            if func in _PRODUCTS and _both_tensors(args):
                return _elementwise_product(args[0], args[1], out, mult)
            if func in _REDUCTIONS:
                return _reduction(args[0], mult)
            if func in _ADDITIONS and _both_tensors(args):
                return _addition(args[0], args[1], mult)
        except (TypeError, ValueError, NotImplementedError) as err:
            raise NotImplementedError(f"layer {layer!r}: cannot count {func}: {err}") from None
        if func not in _HANDLED and _is_compute(func):
            raise NotImplementedError(f"layer {layer!r}: op {func} does compute work the op counter does not model")
        return None

    def _mult(self, x: torch.Tensor) -> torch.Tensor | None:
        return self.multiplicity(x)[0]


Multiplicity = Callable[[torch.Tensor], "torch.Tensor | None"]


def _matmul(func, args, mult: Multiplicity) -> tuple[str, OpClass, float, float]:
    a, b = _contraction_operands(func, args)
    dense = float(a.numel() * b.shape[-1])
    ma, mb = mult(a), mult(b)
    if ma is None and mb is None:
        return "matmul", "MAC", dense, dense
    product = torch.bmm if a.dim() == 3 else torch.mm
    return "matmul", "AC", dense, float(product(_or_ones(ma, a), _or_ones(mb, b)).sum(dtype=torch.float64))


def _conv(args, out: torch.Tensor, mult: Multiplicity) -> tuple[str, OpClass, float, float]:
    x, w, _bias, stride, padding, dilation, transposed, output_padding, groups = args[:9]
    if transposed:
        raise NotImplementedError("transposed convolutions are not modelled")
    dense = float(out.numel() * w[0].numel())
    mx, mw = mult(x), mult(w)
    if mx is None and mw is None:
        return "conv", "MAC", dense, dense
    replay = aten.convolution.default(_or_ones(mx, x), _or_ones(mw, w), None, stride, padding, dilation,
                                      False, output_padding, groups)
    return "conv", "AC", dense, float(replay.sum(dtype=torch.float64))


@contextmanager
def paused(mode: TorchDispatchMode) -> Iterator[None]:
    """Take ``mode`` off the dispatch stack for the block (it must be on top: between forwards)."""
    if _get_current_dispatch_mode() is not mode:
        raise RuntimeError(f"{type(mode).__name__} is not the innermost dispatch mode: it cannot be paused")
    _pop_mode()
    try:
        yield
    finally:
        _push_mode(mode)


def _contraction_operands(func, args) -> tuple[torch.Tensor, ...]:
    """The activation operands of a contraction: a conv's input; both factors of a matmul."""
    if func in _CONVS:
        return (args[0],)
    return (args[1], args[2]) if func in (aten.addmm.default, aten.baddbmm.default) else (args[0], args[1])


def _nonzero_fraction(x: torch.Tensor) -> float:
    """The fraction of non-zero elements (a spike count of 2 counts once, as the papers' counters do)."""
    return float(torch.count_nonzero(x)) / x.numel() if x.numel() else 0.0


def _is_compute(func) -> bool:
    """Whether an aten op multiplies and accumulates (per torch's FLOP registry or its name)."""
    name = func.overloadpacket.__name__
    return func.overloadpacket in flop_registry or bool(_COMPUTE_PARTS & set(name.strip("_").split("_")))


def _both_tensors(args: tuple) -> bool:
    return (len(args) >= 2 and all(isinstance(a, torch.Tensor) for a in args[:2])
            and args[0].dim() > 0 and args[1].dim() > 0)


def _or_ones(mult: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.ones(like.shape, dtype=torch.float32, device=like.device) if mult is None else mult


def _elementwise_product(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor,
                         mult: Multiplicity) -> tuple[str, OpClass, float, float]:
    ma, mb = mult(a), mult(b)
    dense = float(out.numel())
    if ma is None and mb is None:
        return "mul", "MAC", dense, dense
    return "mul", "AC", dense, float((_or_ones(ma, a) * _or_ones(mb, b)).sum(dtype=torch.float64))


def _reduction(x: torch.Tensor, mult: Multiplicity) -> tuple[str, OpClass, float, float]:
    mx = mult(x)
    dense = float(x.numel())
    return "sum", "AC", dense, dense if mx is None else float(mx.sum(dtype=torch.float64))


def _addition(a: torch.Tensor, b: torch.Tensor, mult: Multiplicity) -> tuple[str, OpClass, float, float]:
    ma, mb = mult(a), mult(b)
    active_a = torch.ones((), dtype=torch.bool, device=a.device) if ma is None else ma != 0
    active_b = torch.ones((), dtype=torch.bool, device=b.device) if mb is None else mb != 0
    shape = torch.broadcast_shapes(a.shape, b.shape)
    dense = float(torch.Size(shape).numel())
    both = (active_a & active_b).expand(shape)
    return "add", "AC", dense, float(both.sum(dtype=torch.float64))


def count_ops(model: nn.Module, inputs: list[torch.Tensor]) -> dict[tuple[str, str, str], OpTally]:
    """Run ``model`` on each input (eval, no grad) and return the op tallies summed over all of them."""
    model.eval()
    with torch.no_grad(), OpCounter(model) as counter:
        for x in inputs:
            model(x)
    return counter.tallies
