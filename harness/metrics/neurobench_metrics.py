"""NeuroBench's metrics of a zoo model, computed by the ``neurobench`` package itself (v2.3).

The model is wrapped in ``neurobench.models.TorchModel`` with the zoo's neurons (``zoo.core.SpikingNeuron``) registered as an activation
module, and run by ``neurobench.benchmarks.Benchmark`` over a real DataLoader. NeuroBench sees only
``nn.Linear``/``nn.Conv*`` modules (functional attention matmuls, masks and sums are invisible to it), calls an
input spiking when every value is -1, 0 or 1 (an integer count of 2 makes the whole layer MACs) and binarises
both inputs and weights; :mod:`harness.metrics.ops` counts every op with multiplicity. Per image.

:class:`NeuroBenchPass` drives the package's own metric objects (its static and workload metric managers, as
``Benchmark.run`` does) inside a forward pass the caller runs anyway, so the energy measurement gets NeuroBench's
numbers without a second pass over the data; :func:`neurobench_metrics` is ``Benchmark.run`` itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

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

    The package's metric managers run exactly as ``Benchmark.run`` runs them, except that ActivationSparsity's
    batch weights (``batch_size / dataset_len``) are applied once at the end, the dataset length being unknown
    until the last batch.
    """

    def __init__(self, model: nn.Module) -> None:
        from neurobench.metrics.manager.static_manager import StaticMetricManager
        from neurobench.metrics.manager.workload_manager import WorkloadMetricManager

        self.wrapped = _wrapped(model)
        self.static = StaticMetricManager(list(_static_metrics()))
        self.workload = WorkloadMetricManager(list(_workload_metrics()))
        self.images = 0

    @contextmanager
    def active(self) -> Iterator["NeuroBenchPass"]:
        self.workload.register_hooks(self.wrapped)
        self.workload.initialize_metrics()
        try:
            yield self
        finally:
            self.workload.cleanup_hooks(self.wrapped)

    def batch_done(self, output: torch.Tensor, inputs: torch.Tensor) -> None:
        """Run the workload metrics on the batch just computed (its hooks hold the layers' inputs and outputs)."""
        labels = torch.zeros(inputs.shape[0], dtype=torch.long, device=inputs.device)  # no metric here reads them
        self.workload.run_metrics(self.wrapped, output, (inputs, labels), inputs.shape[0], 1)
        self.workload.reset_hooks(self.wrapped)
        self.images += inputs.shape[0]

    def results(self) -> dict[str, Any]:
        from neurobench.metrics.abstract.workload_metric import AccumulatedMetric

        results = dict(self.static.run_metrics(self.wrapped))
        for name, value in self.workload.results.items():
            accumulated = isinstance(self.workload.metrics[name], AccumulatedMetric)
            results[name] = value if accumulated else value / self.images
        return _summary(results)
