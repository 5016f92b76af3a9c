"""NeuroBench's metrics of a zoo model, computed by the ``neurobench`` package itself (v2.3).

The model is wrapped in ``neurobench.models.TorchModel`` with the zoo's neurons (``zoo.core.SpikingNeuron``) registered as an activation
module, and run by ``neurobench.benchmarks.Benchmark`` over a real DataLoader. NeuroBench sees only
``nn.Linear``/``nn.Conv*`` modules (functional attention matmuls, masks and sums are invisible to it), calls an
input spiking when every value is -1, 0 or 1 (an integer count of 2 makes the whole layer MACs) and binarises
both inputs and weights; :mod:`harness.metrics.ops` counts every op with multiplicity. Per image.
"""

from __future__ import annotations

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
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import TorchModel

    wrapped = TorchModel(model)
    wrapped.add_activation_module(SpikingNeuron)
    benchmark = Benchmark(wrapped, loader, [], [],
                          [[Footprint, ConnectionSparsity], [ActivationSparsity, SynapticOperations]])
    try:
        with torch.no_grad():
            results = benchmark.run(quiet=True, device=None if device is None else str(device))
    finally:
        benchmark.workload_metric_manager.cleanup_hooks(wrapped)
    synops = results["SynapticOperations"]
    return {
        "footprint_bytes": int(results["Footprint"]),
        "connection_sparsity": float(results["ConnectionSparsity"]),
        "activation_sparsity": float(results["ActivationSparsity"]),
        "effective_macs": float(synops["Effective_MACs"]),
        "effective_acs": float(synops["Effective_ACs"]),
        "dense_ops": float(synops["Dense"]),
    }
