"""NeuroBench's metrics of a zoo model, as the ``neurobench`` package (v2.3) computes them.

The model is wrapped in ``neurobench.models.TorchModel`` with the zoo's neurons (``zoo.core.SpikingNeuron``)
registered as an activation module, and run by ``neurobench.benchmarks.Benchmark`` over a real DataLoader.
NeuroBench sees only
``nn.Linear``/``nn.Conv*`` modules (functional attention matmuls, masks and sums are invisible to it), calls an
input spiking when every value is -1, 0 or 1 (an integer count of 2 makes the whole layer MACs) and binarises
both inputs and weights; :mod:`harness.metrics.ops` counts every op with multiplicity. Per image.

:func:`neurobench_metrics` is ``Benchmark.run`` itself: the reference. :class:`NeuroBenchPass` gets the same
numbers inside a forward pass the caller runs anyway (no second pass over the data): the package's own metric
objects give Footprint and ConnectionSparsity (its static manager), :class:`ActivationSparsityOnDevice` gives
ActivationSparsity by the package's definition (zero outputs of its activation layers over all their outputs, per
batch), and :class:`SynapticOperationsOnDevice` gives SynapticOperations by the package's definition
(``neurobench.metrics.utils.layers.single_layer_MACs``): per call of a connection layer, the sum of
the layer's output with non-zero inputs and non-zero weights set to 1 and no bias (effective ops; MACs unless
every input is -1, 0 or 1, then ACs), and with every input and weight set to 1 (dense). The package computes
these by re-running a deep copy of every layer twice per call, which costs more than the evaluation itself;
here they are closed forms on the device (a Linear: column sums of the non-zero mask times the non-zero counts of
the weight columns; a conv: the layer's own convolution of the mask with the weight's non-zero counts summed
per group, one output channel per group; when no weight is zero, the mask's non-zero count, or its sum over each
group's channels through a ones kernel, times the outputs per group; with an input holding no zero, the dense
count). Every count of a tensor another metric of the pass also needs (a neuron's event total, a conv's tap total
over its input) is read from the pass's :class:`~harness.metrics.spikes.TensorStats`. Tests hold the two equal;
the package sums
each layer's float32 output and truncates it to an int, so on large layers it may differ from the exact count in
the last digits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from harness.metrics.spikes import SpikeSources, TensorStats, conv_hits, nonzero_mask, weight_memo, whole_multiple_of
from zoo.core import SpikingNeuron

NEUROBENCH_KEYS = ("footprint_bytes", "connection_sparsity", "activation_sparsity", "effective_macs",
                   "effective_acs")


def neurobench_metrics(model: nn.Module, loader: DataLoader, device: torch.device | str | None = None
                       ) -> dict[str, Any]:
    """Footprint (bytes), connection and activation sparsity, and effective MACs/ACs per image from NeuroBench.

    ``loader`` yields ``(inputs, labels)`` batches, moved to ``device`` (default: where they are); the model
    runs in eval mode without gradients.
    """
    from neurobench.benchmarks import Benchmark

    wrapped = _wrapped(model)
    benchmark = Benchmark(wrapped, loader, [], [], [list(_static_metrics()), list(_workload_metrics())])
    try:
        with torch.no_grad():
            results = benchmark.run(quiet=True, device=None if device is None else str(device))
    finally:
        benchmark.workload_metric_manager.cleanup_hooks(wrapped)
    return _summary(results)


def _summary(results: dict[str, Any]) -> dict[str, Any]:
    """NeuroBench's results under the harness's keys (per image)."""
    synops = results["SynapticOperations"]
    return {
        "footprint_bytes": int(results["Footprint"]),
        "connection_sparsity": float(results["ConnectionSparsity"]),
        "activation_sparsity": float(results["ActivationSparsity"]),
        "effective_macs": float(synops["Effective_MACs"]),
        "effective_acs": float(synops["Effective_ACs"]),
        "dense_ops": float(synops["Dense"]),
    }


def _static_metrics() -> tuple[type, ...]:
    """NeuroBench's static metrics the harness reports (imported lazily: the package is slow to import)."""
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    return Footprint, ConnectionSparsity


def _workload_metrics() -> tuple[type, ...]:
    """NeuroBench's workload metrics the harness reports."""
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    return ActivationSparsity, SynapticOperations


def _wrapped(model: nn.Module):
    """``model`` as a NeuroBench ``TorchModel`` whose activation modules are the zoo's neurons."""
    from neurobench.models import TorchModel

    wrapped = TorchModel(model)
    wrapped.add_activation_module(SpikingNeuron)
    return wrapped


class NeuroBenchPass:
    """NeuroBench's metrics of the batches ``model`` runs while :meth:`active`: after each forward, call
    :meth:`batch_done` with the output and the input; :meth:`results` gives :func:`neurobench_metrics`' keys.

    The package's static metric manager gives Footprint and ConnectionSparsity; ActivationSparsity and
    SynapticOperations are the package's definitions computed on the device (:class:`ActivationSparsityOnDevice`,
    :class:`SynapticOperationsOnDevice`), on the activation and connection layers the package itself finds. With
    an op counter's ``sources``, they share the pass's per-tensor statistics with the counter and firing rates.
    """

    def __init__(self, model: nn.Module, sources: SpikeSources | None = None) -> None:
        from neurobench.metrics.manager.static_manager import StaticMetricManager

        self.wrapped = _wrapped(model)
        self.static = StaticMetricManager(list(_static_metrics()))
        stats = sources.stats if sources is not None else TensorStats()
        self.activations = ActivationSparsityOnDevice([a["layer"] for a in self.wrapped.activation_layers()], stats)
        self.synops = SynapticOperationsOnDevice(self.wrapped.connection_layers(), sources)
        self.images = 0

    @contextmanager
    def active(self) -> Iterator["NeuroBenchPass"]:
        with self.activations, self.synops:
            yield self

    def batch_done(self, output: torch.Tensor, inputs: torch.Tensor) -> None:
        """Count the batch just computed (the hooks hold its layers' inputs and outputs)."""
        self.activations.flush(inputs.shape[0])
        self.synops.flush()
        self.images += inputs.shape[0]

    def results(self) -> dict[str, Any]:
        results = dict(self.static.run_metrics(self.wrapped))
        results["ActivationSparsity"] = self.activations.compute(self.images)
        results["SynapticOperations"] = self.synops.compute(self.images)
        return _summary(results)


class ActivationSparsityOnDevice:
    """NeuroBench's ActivationSparsity (``neurobench.metrics.workload.ActivationSparsity``) of the batches run while
    entered: per batch, the zero outputs of the activation layers over all their outputs; the batches weighted by
    their size (as ``Benchmark.run`` accumulates them), divided by the images at the end. The package reads every
    output's non-zero count back to the host; here the counts stay on the device until :meth:`compute`, and a
    binary or ternary neuron's count is its event total, which the firing-rate hook has already summed."""

    def __init__(self, layers: list[nn.Module], stats: TensorStats) -> None:
        self.layers, self.stats = layers, stats
        self._handles: list[Any] = []
        self._pending: list[tuple[nn.Module, torch.Tensor]] = []
        self._batches: list[tuple[torch.Tensor | None, int, int]] = []  # non-zero count, outputs, batch size

    def __enter__(self) -> "ActivationSparsityOnDevice":
        for layer in self.layers:
            self._handles.append(layer.register_forward_hook(self._hook(layer)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._pending.clear()

    def _hook(self, registered: nn.Module):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if module is registered and isinstance(output, torch.Tensor):
                self._pending.append((module, output.detach()))
        return hook

    def flush(self, batch_size: int) -> None:
        """Count the outputs seen since the last flush as one batch of ``batch_size`` samples."""
        with torch.no_grad():
            counts = [self._nonzero(layer, out) for layer, out in self._pending]
        outputs = sum(out.numel() for _, out in self._pending)
        self._batches.append((torch.stack(counts).sum() if counts else None, outputs, batch_size))
        self._pending.clear()

    def _nonzero(self, layer: nn.Module, out: torch.Tensor) -> torch.Tensor:
        if isinstance(layer, SpikingNeuron) and layer.max_count == 1:  # each non-zero output is one event
            return self.stats.events(out, float(layer.spike_unit), bool(layer.signed), 1)
        return self.stats.nonzero(out)

    def compute(self, samples: int) -> float:
        """The package's figure: sum over batches of sparsity x batch size, over ``samples``."""
        if samples == 0:
            return 0.0
        counted = [c for c, _, _ in self._batches if c is not None]
        nonzero = iter(torch.stack(counted).cpu().tolist() if counted else [])
        total = 0.0
        for count, outputs, batch_size in self._batches:
            spikes = round(next(nonzero)) if count is not None else 0
            total += ((outputs - spikes) / outputs if outputs else 0.0) * batch_size
        return total / samples


class SynapticOperationsOnDevice:
    """NeuroBench's SynapticOperations of the connection layers' calls while entered, accumulated on the device
    (see the module docstring). The hooks only keep each call's input; :meth:`flush` counts them (after the
    forward, so that an op counter running during the forward does not see this work); :meth:`compute` gives
    the package's per-sample dictionary. With an op counter's ``sources``, the output of a binary or ternary
    neuron is known to be spikes (values -1, 0, 1) without a check."""

    def __init__(self, layers: list[nn.Module], sources: SpikeSources | None = None) -> None:
        self.layers = layers
        self.sources = sources
        self.stats = sources.stats if sources is not None else TensorStats()
        self._handles: list[Any] = []
        self._totals: torch.Tensor | None = None  # effective MACs, effective ACs, dense
        self._pending: list[tuple[nn.Module, torch.Tensor]] = []

    def __enter__(self) -> "SynapticOperationsOnDevice":
        for layer in self.layers:
            self._handles.append(layer.register_forward_pre_hook(self._hook(layer)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, registered: nn.Module):
        def hook(module: nn.Module, args: Any) -> None:
            if module is registered and len(args) == 1 and isinstance(args[0], torch.Tensor):
                self._pending.append((module, args[0].detach()))
        return hook

    def flush(self) -> None:
        """Count the calls seen since the last flush."""
        with torch.no_grad():
            for layer, x in self._pending:
                self._count(layer, x)
        self._pending.clear()

    def _count(self, layer: nn.Module, x: torch.Tensor) -> None:
        binary = self._binary_neuron_output(x)
        dtype = layer.weight.dtype
        spiking: torch.Tensor | None = None
        if binary is not None and dtype == x.dtype == torch.float32:  # shared with the op counter: x is its events
            key: Any = binary

            def active() -> torch.Tensor:
                return x.abs() if binary[0].signed else x
        else:
            key, spiking = ("active", dtype), self._spiking(x, dtype)

            def active() -> torch.Tensor:
                return self.stats.memo(x, key, lambda: nonzero_mask(x, dtype))
        fan_out, uniform = self._fan_out(layer)
        if isinstance(layer, nn.Linear):
            if uniform is not None:  # every weight non-zero: each active input reaches the same number of outputs
                effective = self._active_count(x, binary) * uniform
            else:
                effective = (active().reshape(-1, x.shape[-1]).sum(0, dtype=torch.float64) * fan_out).sum()
            dense = torch.tensor(float(x.numel() * layer.out_features), dtype=torch.float64, device=x.device)
        else:
            dense = self._dense_conv(layer, x)
            if uniform is not None and dtype == torch.float32 and self._no_zero(x, binary):
                effective = dense  # every input and weight non-zero: each tap is one operation
            else:
                effective = self._effective_conv(layer, x, key, active, fan_out, uniform)
        if spiking is None:
            row = torch.stack([torch.zeros_like(effective), effective, dense])
        else:
            row = torch.stack([torch.where(spiking, 0.0, effective), torch.where(spiking, effective, 0.0), dense])
        self._totals = row if self._totals is None else self._totals.add_(row)

    def _no_zero(self, x: torch.Tensor, binary: tuple | None) -> bool:
        """Whether ``x`` holds no zero, where reading that back costs nothing (on the CPU)."""
        return x.device.type == "cpu" and x.numel() > 0 and int(self._active_count(x, binary)) == x.numel()

    def _active_count(self, x: torch.Tensor, binary: tuple | None) -> torch.Tensor:
        """The non-zero inputs (float64): a binary or ternary neuron's event total, else counted once per tensor."""
        if binary is not None:
            return self.stats.events(x, 1.0, binary[0].signed, 1)
        return self.stats.nonzero(x)

    def _effective_conv(self, layer: nn.Module, x: torch.Tensor, key: Any, active: Callable[[], torch.Tensor],
                        fan_out: torch.Tensor, uniform: float | None) -> torch.Tensor:
        """Active inputs x non-zero weights over every tap a conv computes. With every weight non-zero (``uniform``
        outputs per input and tap), the mask summed over each group's channels through a ones kernel, times
        ``uniform``: the same count at a fraction of the cost of convolving the mask with ``fan_out``, and shared
        with the op counter (and between layers of one geometry) on the same input."""
        if uniform is None:
            return layer._conv_forward(active(), fan_out, None).sum(dtype=torch.float64)
        if layer.padding_mode == "zeros" and not isinstance(layer.padding, str):
            kernel = layer.weight.shape[2:]
            return conv_hits(self.stats, x, key, active, layer.groups, kernel, layer.stride, layer.padding,
                             layer.dilation) * uniform
        groups = layer.groups
        mask = active()
        summed = mask.unflatten(1, (groups, -1)).sum(2)
        ones = torch.ones((groups, 1, *layer.weight.shape[2:]), dtype=mask.dtype, device=mask.device)
        return layer._conv_forward(summed, ones, None).sum(dtype=torch.float64) * uniform

    def _binary_neuron_output(self, x: torch.Tensor) -> tuple | None:
        """The candidates of ``x`` when it is a binary or ternary neuron's output (values -1, 0, 1), else None."""
        candidates = self.sources.candidates(x) if self.sources is not None else ()
        if len(candidates) == 1 and candidates[0].neuron and candidates[0].unit == 1.0 \
                and candidates[0].rule == "nonzero":
            return candidates
        return None

    def _spiking(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Whether every value of ``x`` is -1, 0 or 1 (NeuroBench's test for spikes; inf and nan fail), once per
        tensor."""
        def check() -> torch.Tensor:
            whole = whole_multiple_of(x, 1.0, self.stats)  # shared with the op counter's classing
            if x.numel() == 0 or (whole.device.type == "cpu" and not bool(whole)):
                return whole
            return whole & (x.detach().abs().amax() <= 1)  # whole numbers of magnitude <= 1: -1, 0, 1
        return self.stats.memo(x, "spiking", check, order_free=True)

    @staticmethod
    def _fan_out(layer: nn.Module) -> tuple[torch.Tensor, float | None]:
        """Non-zero weights per input (Linear: per input feature; conv: per input channel and tap of each group,
        ``[groups, Cin / groups, *kernel]``) and, when no weight is zero, their common value (outputs per group);
        once per weight version."""
        def count() -> tuple[torch.Tensor, float | None]:
            connected = (layer.weight != 0).to(layer.weight.dtype)
            if isinstance(layer, nn.Linear):
                fan_out = connected.sum(0)
            else:
                fan_out = connected.unflatten(0, (layer.groups, -1)).sum(1)
            outputs = layer.weight.shape[0] // (1 if isinstance(layer, nn.Linear) else layer.groups)
            return fan_out, float(outputs) if bool((fan_out == outputs).all()) else None
        return weight_memo(layer, "neurobench_fan_out", count)

    @staticmethod
    def _dense_conv(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Every input and weight 1: in-bound taps x input channels per group x output channels, per sample."""
        def taps() -> torch.Tensor:
            g = layer.groups
            ones = torch.ones((1, *x.shape[1:]), dtype=layer.weight.dtype, device=x.device)
            kernel = torch.ones((g, *layer.weight.shape[1:]), dtype=layer.weight.dtype, device=x.device)
            return layer._conv_forward(ones, kernel, None).sum(dtype=torch.float64) * (layer.out_channels // g)
        geometry = (tuple(x.shape[1:]), x.device, layer.stride, layer.padding, layer.dilation, layer.groups,
                    layer.padding_mode)
        return weight_memo(layer, ("neurobench_dense", geometry), taps) * x.shape[0]

    def compute(self, samples: int) -> dict[str, float]:
        """Per-sample effective MACs, effective ACs and dense operations (the package's keys)."""
        if self._totals is None or samples == 0:
            return {"Effective_MACs": 0, "Effective_ACs": 0, "Dense": 0}
        macs, acs, dense = self._totals.cpu().tolist()
        return {"Effective_MACs": macs / samples, "Effective_ACs": acs / samples, "Dense": dense / samples}
