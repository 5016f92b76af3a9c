"""Which tensors hold spikes, and how many synaptic events each value is: the semantics both op counters share.

A value ``v`` of a spike tensor is ``|v| / unit`` events (its multiplicity). The unit is the spike value of the
neuron that produced the tensor (``SpikingNeuron.spike_unit``): 1 for LIF, PLIF and TernaryIF (a -1 spike is
one event), ``1 / norm`` for MultiSpike, whose output ``k / D`` is ``k`` spikes (E-SpikeFormer's spike-driven
inference emits an integer activation ``k`` as ``k`` binary spikes over ``D`` virtual time steps, so each is a
synaptic event). A tensor is traced to its neuron through its storage (views keep it); a tensor no neuron
produced (event frames, sums of spikes, products of spike matrices) is spikes when it is integer-valued (unit
1), else when it is a whole multiple of a fractional unit of the model's neurons, else real-valued.

The ``paper`` convention's firing rate of a spike operand follows a named rule: ``"count"`` (events per
element: a MultiSpike count k is k events, as E-SpikeFormer counts it) for the output of a neuron that emits
counts (``max_count > 1``) or a tensor of fractional unit; ``"nonzero"`` (the fraction of non-zero elements, the
definition of the Spike-driven Transformer, NeurIPS 2023, supplementary "Energy Consumption Analysis Details")
for everything else, event frames included. For binary spikes both rules give the same number.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from functools import cached_property
from typing import Literal, NamedTuple, TypeVar

import torch
from torch import nn

from zoo.core import SpikingNeuron, neuron_modules

FrRule = Literal["nonzero", "count"]
Value = TypeVar("Value")
# float32 adds whole numbers exactly while every partial sum stays below 2**24
FLOAT32_EXACT = 2.0 ** 24


class Candidate(NamedTuple):
    """A way to read a tensor as spikes: one event per ``unit``, rated by ``rule``; ``neuron``: known to be a
    neuron's output (no check needed), ``signed``: may hold negative spikes, ``max_count``: the most events of one
    value (a neuron's; 0: unknown)."""

    unit: float
    rule: FrRule
    neuron: bool = False
    signed: bool = True
    max_count: int = 0


WHOLE: tuple[Candidate, ...] = (Candidate(1.0, "nonzero"),)


def multiplicity(x: torch.Tensor, unit: float = 1.0) -> torch.Tensor | None:
    """``|x| / unit`` as float32 if every value of ``x`` is a whole number of ``unit``, ``None`` if not (real)."""
    if x.is_complex():
        raise TypeError(f"complex tensor of shape {list(x.shape)} cannot be classed as spikes or real values")
    if not x.is_floating_point():
        return x.float().abs() / unit if unit != 1.0 else x.float().abs()
    scaled = x.detach().abs().float()
    if unit != 1.0:
        scaled = scaled / unit
    return scaled if bool(_whole(scaled).all()) else None


def _whole(scaled: torch.Tensor) -> torch.Tensor:
    """Which values are whole numbers (inf and nan are not: ``inf - inf`` is nan)."""
    return torch.eq(scaled - torch.round(scaled), 0)


def whole_sum(x: torch.Tensor, bound: float, lead: int = 1) -> torch.Tensor:
    """The float64 sums of ``x`` over each of its ``lead`` leading blocks, exact when every value is a whole number of
    magnitude at most ``bound``: float32 sums over trailing rows short enough that no partial sum reaches 2**24,
    then float64 over the rows (a float64 sum of the whole tensor first copies it to float64)."""
    blocks = x.reshape(lead, -1)
    width = 1
    for size in reversed(x.shape[1:]):
        if width * size * bound >= FLOAT32_EXACT:
            break
        width *= size
    if width == 1 or blocks.shape[1] % width:
        return blocks.sum(1, dtype=torch.float64)
    return blocks.reshape(lead, -1, width).sum(-1).sum(1, dtype=torch.float64)


def nonnegative_total(t: torch.Tensor) -> torch.Tensor:
    """The float64 sum of a float32 tensor of non-negative whole numbers, exact. On the CPU, where a float64 sum
    first copies the tensor to float64, it sums rows in float32 and keeps them when every row total is below
    2**24 (a partial sum of non-negative values never exceeds its row's total, so none lost a digit); else, and on
    other devices, it sums in float64."""
    if t.device.type != "cpu" or t.dtype != torch.float32 or t.dim() == 0 or t.numel() == 0:
        return t.sum(dtype=torch.float64)
    width = 1
    for size in reversed(t.shape):
        if width >= 1024:
            break
        width *= size
    rows = t.reshape(-1, width).sum(-1)
    if float(rows.max()) < FLOAT32_EXACT:
        return rows.sum(dtype=torch.float64)
    return t.sum(dtype=torch.float64)


def nonzero_count(x: torch.Tensor) -> torch.Tensor:
    """``count_nonzero(x)`` as float64. On the CPU as the exact total of ``|sign(x)|``, several times faster than
    torch's ``count_nonzero`` there, when every value is finite (``sign(nan)`` is 0; a plain sum, far cheaper
    still, tells); else by ``count_nonzero``."""
    if x.device.type != "cpu" or not x.is_floating_point() or x.numel() == 0 \
            or not bool(torch.isfinite(x.detach().sum())):
        return torch.count_nonzero(x).double()
    return nonnegative_total(torch.sign(x.detach()).abs_())


def nonzero_mask(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(x != 0).to(dtype)``; for a finite float32 tensor on the CPU as ``|sign(x)|``, which is faster there."""
    if x.device.type == "cpu" and x.dtype == dtype == torch.float32 and bool(torch.isfinite(x.detach().sum())):
        return torch.sign(x.detach()).abs_()
    return (x != 0).to(dtype)


class TensorStats:
    """Statistics of the tensors one forward pass produces, each computed once and shared by every consumer (firing
    rates, the op counter, the NeuroBench adapters): a neuron's output feeds several layers (attention's q, k, v)
    and is read by all three metrics, which would otherwise each classify and count it.

    A statistic is keyed by the tensor's data (storage, offset, size, layout and version: an in-place change makes
    a new entry) and by its name; an order-free statistic (a total) of a contiguous tensor is shared by every
    contiguous view of the same elements (``[T, B, ...]`` and its ``[T*B, ...]`` fold). Entries die with their
    storage (a freed and reused buffer is never mistaken for the old tensor) and are dropped by :meth:`clear`, at
    the start of each forward.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple, tuple[weakref.ref, dict[Hashable, object]]] = {}
        self._copies: dict[int, tuple[weakref.ref, int, weakref.ref, int]] = {}  # copy storage: it, source, versions

    def memo(self, x: torch.Tensor, name: Hashable, compute: Callable[[], Value], order_free: bool = False) -> Value:
        """``name``'s value for ``x``, computed by ``compute`` the first time it is asked for. The value must not
        hold ``x``'s storage (the entry would keep it alive)."""
        if x.is_inference():  # no version counter: an in-place change could not be told apart
            return compute()
        values = self._values(x, order_free)
        if name not in values:
            values[name] = compute()
        return values[name]  # type: ignore[return-value]

    def events(self, x: torch.Tensor, unit: float, signed: bool, bound: float) -> torch.Tensor:
        """``sum |x| / unit`` (float64, on the device): the spike events of a tensor of whole multiples of ``unit``
        of at most ``bound`` events each, exact (see :func:`whole_sum`)."""
        def total() -> torch.Tensor:
            magnitude = x.detach().abs() if signed else x.detach()
            return whole_sum(magnitude if unit == 1.0 else magnitude / unit, bound)[0]
        return self.memo(x, ("events", unit), total, order_free=True)

    def nonzero(self, x: torch.Tensor) -> torch.Tensor:
        """``x``'s non-zero values (float64), counted once per pass."""
        return self.memo(x, "nonzero", lambda: nonzero_count(x), order_free=True)

    def put_events(self, x: torch.Tensor, unit: float, total: torch.Tensor) -> None:
        """Record ``x``'s event total computed elsewhere (the firing-rate hook sums it per time step)."""
        if not x.is_inference():
            self._values(x, True)[("events", unit)] = total

    def record_copy(self, source: torch.Tensor, copy: torch.Tensor) -> None:
        """``copy`` (a fresh contiguous tensor) holds ``source``'s values: its order-free statistics (classing,
        totals, non-zero count) are ``source``'s, as long as neither changes (attention and strided linears clone
        the same input once per projection)."""
        if copy.is_contiguous() and copy.numel() == source.numel() and not (copy.is_inference() or
                                                                               source.is_inference()):
            storage = copy.untyped_storage()
            self._copies[storage.data_ptr()] = (weakref.ref(storage), copy._version, weakref.ref(source),
                                                source._version)

    def _original(self, x: torch.Tensor) -> torch.Tensor:
        """The tensor ``x`` is a whole copy of, if one is on record and both still hold the same values."""
        storage = x.untyped_storage()
        entry = self._copies.get(storage.data_ptr())
        if entry is None or entry[0]() is not storage or entry[1] != x._version or x.storage_offset() \
                or x.numel() * x.element_size() != storage.nbytes() or not x.is_contiguous():
            return x
        source = entry[2]()
        return x if source is None or source._version != entry[3] else source

    def _values(self, x: torch.Tensor, order_free: bool) -> dict[Hashable, object]:
        if order_free and self._copies:
            x = self._original(x)
        storage = x.untyped_storage()
        layout: tuple = (x.numel(),) if order_free and x.is_contiguous() else (tuple(x.shape), x.stride())
        key = (storage.data_ptr(), x.storage_offset(), x.dtype, x._version, *layout)
        entry = self._entries.get(key)
        if entry is None or entry[0]() is not storage:
            entry = (weakref.ref(storage, self._forget(key)), {})
            self._entries[key] = entry
        return entry[1]

    def _forget(self, key: tuple) -> Callable[[weakref.ref], None]:
        """Drop ``key``'s entry when its storage is freed (unless a new storage took the key meanwhile)."""
        owner = weakref.ref(self)

        def forget(dead: weakref.ref) -> None:
            stats = owner()
            if stats is not None and key in stats._entries and stats._entries[key][0] is dead:
                del stats._entries[key]
        return forget

    def clear(self) -> None:
        self._entries.clear()
        self._copies.clear()


def conv_hits(stats: TensorStats, x: torch.Tensor, key: Hashable, values: Callable[[], torch.Tensor], groups: int,
              kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...],
              dilation: tuple[int, ...]) -> torch.Tensor:
    """The sum of ``values`` (``x`` as read under ``key``) over every tap a zero-padded convolution of this
    geometry computes, float64: its accumulations per output channel of a group when ``values`` are the events of a
    spike input. A ones-kernel convolution of the per-group channel sums; once per tensor and geometry in a pass
    (q, k and v read the same spikes through the same 1x1 convolution)."""
    def compute() -> torch.Tensor:
        v = values()
        grouped = v.reshape(v.shape[0], groups, v.shape[1] // groups, *v.shape[2:]).sum(2)
        ones = torch.ones((groups, 1, *kernel), dtype=grouped.dtype, device=grouped.device)
        hits = torch.ops.aten.convolution.default(grouped, ones, None, list(stride), list(padding), list(dilation),
                                                  False, [0] * len(stride), groups)
        return nonnegative_total(hits)
    geometry = (groups, tuple(kernel), tuple(stride), tuple(padding), tuple(dilation))
    return stats.memo(x, ("conv_hits", key, *geometry), compute)


_WEIGHT_MEMO: weakref.WeakKeyDictionary[nn.Module, dict[Hashable, tuple]] = weakref.WeakKeyDictionary()


def weight_memo(layer: nn.Module, name: Hashable, compute: Callable[[], Value]) -> Value:
    """``name``'s value for ``layer``'s weight, computed once per weight (object, data and version) across passes and
    measurements: a layer's weights hold still while its energy is measured, batch after batch."""
    weight = layer.weight
    memo = _WEIGHT_MEMO.setdefault(layer, {})
    stamp = (weight.data_ptr(), weight._version)
    entry = memo.get(name)
    if entry is None or entry[0] is not weight or entry[1] != stamp:
        entry = (weight, stamp, compute())
        memo[name] = entry
    return entry[2]


class SpikeSources:
    """The spike candidates of a tensor: the neuron that produced it (traced by storage), else the model's units.

    ``record`` is a neuron forward hook; entries die with their storage, so a freed and reused buffer is never
    mistaken for a neuron's output.
    """

    def __init__(self, model: nn.Module) -> None:
        units = {float(n.spike_unit) for _, n in neuron_modules(model)}
        fractional = sorted((u for u in units if u != 1.0), reverse=True)
        self.default: tuple[Candidate, ...] = (*WHOLE, *(Candidate(u, "count") for u in fractional))
        self._outputs: dict[int, tuple[weakref.ref, Candidate]] = {}
        self._parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.stats = TensorStats()

    def record(self, neuron: nn.Module, args: object, output: object) -> None:
        if isinstance(output, torch.Tensor) and isinstance(neuron, SpikingNeuron):
            storage = output.untyped_storage()
            rule: FrRule = "count" if neuron.max_count > 1 else "nonzero"
            candidate = Candidate(float(neuron.spike_unit), rule, True, bool(neuron.signed), int(neuron.max_count))
            self._outputs[storage.data_ptr()] = (weakref.ref(storage), candidate)

    def record_copy(self, source: torch.Tensor, copy: torch.Tensor) -> None:
        """``copy`` holds ``source``'s values (a clone the dispatcher made): it shares their statistics, and if those
        are a binary or ternary neuron's spikes, so are its. Only those: their value check (every value -1, 0 or 1,
        of unit 1) gives the neuron's own
        unit and rule, where a count neuron's copy may read differently by value (a copy of counts 0..D of unit 1
        is rated "nonzero")."""
        self.stats.record_copy(source, copy)
        (candidate, *more) = self.candidates(source)
        if not more and candidate.neuron and candidate.unit == 1.0 and candidate.rule == "nonzero":
            storage = copy.untyped_storage()
            self._outputs[storage.data_ptr()] = (weakref.ref(storage), candidate)

    def candidates(self, x: torch.Tensor) -> tuple[Candidate, ...]:
        """The (unit, rule) pairs to try on ``x``, in order: its neuron's; a weight's (whole numbers only: the
        fractional units are the neurons'); else the defaults."""
        storage = x.untyped_storage()
        entry = self._outputs.get(storage.data_ptr())
        if entry is not None and entry[0]() is storage:
            return (entry[1],)
        if storage.data_ptr() in self._parameters:
            return WHOLE
        return self.default

    def first_match(self, x: torch.Tensor) -> tuple[torch.Tensor | None, FrRule]:
        """``x``'s events per value and its rule, decided on the host (a sync), or ``(None, "nonzero")`` if real."""
        for unit, rule, *_ in self.candidates(x):
            mult = multiplicity(x, unit)
            if mult is not None:
                return mult, rule
        return None, "nonzero"

    def clear(self) -> None:
        """A new forward: forget the neurons' outputs and the statistics of the last pass."""
        self._outputs.clear()
        self.stats.clear()


class Operand:
    """One operand classified on its device: ``spike`` (0-d bool), and, computed only when asked for, ``mult``
    (|x| / unit, meaningful where ``spike``), ``events`` (the sum of ``mult``), ``fr`` (its paper firing rate by
    its rule, meaningful where ``spike``) and ``nonzero`` (its fraction of non-zero elements). ``count_rule``
    (0-d bool): the rule is ``count``. A neuron's own output (``from_neuron``, of at most ``max_count`` events a
    value) is spikes without a check, and a binary neuron's rate is its mean magnitude (equal to its non-zero
    fraction). ``stats`` (with ``key``: what decided the classing) shares every figure between the consumers of
    the same tensor in a pass."""

    def __init__(self, x: torch.Tensor, spike: torch.Tensor, unit: float | torch.Tensor, count_rule: torch.Tensor,
                 rules: frozenset[str], from_neuron: bool = False, signed: bool = True,
                 mult: torch.Tensor | None = None, max_count: int = 0, stats: TensorStats | None = None,
                 key: Hashable = None) -> None:
        self.x, self.spike, self.unit, self.count_rule = x, spike, unit, count_rule
        self.rules, self.from_neuron, self.signed = rules, from_neuron, signed
        self.max_count, self.stats, self.key = max_count, stats if stats is not None else TensorStats(), key
        self._numel = max(x.numel(), 1)
        if mult is not None:
            self.mult = mult

    @cached_property
    def known(self) -> bool | None:
        """Whether ``x`` is spikes, where that needs no device sync: a neuron's output, or any tensor on the CPU
        (whose flag is read in place); None on an accelerator. The counters skip the figures of the other class."""
        if self.from_neuron:
            return True
        return bool(self.spike) if self.spike.device.type == "cpu" else None

    @cached_property
    def mult(self) -> torch.Tensor:
        magnitude = self.x.detach()
        if not self.signed and self.x.dtype == torch.float32 and isinstance(self.unit, float) and self.unit == 1.0:
            return magnitude  # no copy to share

        def scaled() -> torch.Tensor:
            absolute = (magnitude.abs() if self.signed else magnitude).float()
            return absolute if isinstance(self.unit, float) and self.unit == 1.0 else absolute / self.unit
        if not magnitude.is_contiguous():
            return self.stats.memo(self.x, ("mult", self.key), scaled)
        # element-wise of a contiguous tensor: shared by its contiguous views ([T, B, ...] and [T*B, ...])
        return self.stats.memo(self.x, ("mult", self.key), scaled, order_free=True).view(self.x.shape)

    @cached_property
    def events(self) -> torch.Tensor:
        """``sum(mult)`` in float64; exact from float32 partial sums for a neuron's output, whose values are
        bounded by its ``max_count``."""
        if self.from_neuron and self.max_count:
            return self.stats.events(self.x, float(self.unit), self.signed, self.max_count)
        return self.stats.memo(self.x, ("events", self.key), lambda: nonnegative_total(self.mult))

    @cached_property
    def nonzero(self) -> torch.Tensor:
        if self.from_neuron and self.max_count == 1:  # every non-zero value is one event
            return self.events / self._numel
        return self.stats.nonzero(self.x) / self._numel

    @cached_property
    def fr(self) -> torch.Tensor:
        if self.rules == {"nonzero"} and not self.from_neuron:
            return self.nonzero
        rate = self.events / self._numel
        return rate if self.from_neuron or self.rules == {"count"} else torch.where(self.count_rule, rate, self.nonzero)


def classify(x: torch.Tensor, candidates: tuple[Candidate, ...], stats: TensorStats | None = None) -> Operand:
    """Classify ``x`` without leaving the device: a neuron's output is spikes of its unit; otherwise the first
    candidate whose unit divides every value wins (none: real). With ``stats``, the checks and figures of a tensor
    are made once per pass and shared."""
    if x.is_complex():
        raise TypeError(f"complex tensor of shape {list(x.shape)} cannot be classed as spikes or real values")
    rules = frozenset(c.rule for c in candidates)
    if len(candidates) == 1 and candidates[0].neuron:
        unit, rule, _, signed, max_count = candidates[0]
        true = torch.ones((), dtype=torch.bool, device=x.device)
        return Operand(x, true, unit, true if rule == "count" else ~true, rules, True, signed, max_count=max_count,
                       stats=stats, key=candidates)
    if stats is None:
        return Operand(x, *_whole_multiple(x, candidates, TensorStats()), rules)
    return Operand(x, *stats.memo(x, ("class", candidates), lambda: _whole_multiple(x, candidates, stats),
                                  order_free=True), rules, stats=stats, key=candidates)


def whole_multiple_of(x: torch.Tensor, unit: float, stats: TensorStats) -> torch.Tensor:
    """Whether every value of ``x`` is a whole multiple of ``unit`` (0-d bool on the device; inf and nan are
    not), once per tensor and unit in a pass."""
    def check() -> torch.Tensor:
        if not x.is_floating_point():
            return torch.ones((), dtype=torch.bool, device=x.device)
        if x.device.type == "cpu" and x.dim() and not bool(_multiples(x[(0,) * (x.dim() - 1)][:64], unit).all()):
            return torch.zeros((), dtype=torch.bool)  # a real value in the first row settles it: no full pass
        return _multiples(x, unit).all()
    return stats.memo(x, ("whole", unit), check, order_free=True)


def _multiples(x: torch.Tensor, unit: float) -> torch.Tensor:
    """Which values are whole multiples of ``unit`` (``frac(inf)`` is nan: inf and nan are not)."""
    return torch.eq(torch.frac(x if unit == 1.0 else x / unit), 0)


def _whole_multiple(x: torch.Tensor, candidates: tuple[Candidate, ...], stats: TensorStats
                    ) -> tuple[torch.Tensor, float | torch.Tensor, torch.Tensor]:
    """(spike, unit, count rule) of ``x``: the first candidate whose unit divides every value, as device tensors."""
    spike = torch.zeros((), dtype=torch.bool, device=x.device)
    unit_now: float | torch.Tensor | None = None
    count_rule = spike
    for unit, rule, *_ in reversed(candidates):
        fits = whole_multiple_of(x, unit, stats)
        unit_now = unit if unit_now is None else torch.where(fits, unit, unit_now)
        count_rule = torch.where(fits, rule == "count", count_rule)
        spike = spike | fits
    return spike, unit_now if unit_now is not None else 1.0, count_rule
