"""A run's expected training cost, estimated without training, so that the local launcher starts the longest runs
first: with N workers, a long run started last keeps one worker busy while the others idle.

The estimate is the model's forward FLOPs on one sample of the dataset's input (its T steps included) times the
training images the run sees (train split, subset and batch limit, times its epochs). Python and data-loading
overheads are not modelled: the estimate orders runs, it does not predict their wall time.

The FLOPs are counted on the meta device: the model is built without weights (no initialisation work) and the
forward computes shapes only. Neurons and plain batch norms keep their input's shape and hold no counted op, so
they are skipped (on the meta device each costs more than every convolution together); a model that cannot run
on the meta device is counted on the CPU as before. Both count the same ops, so the order is unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from harness.data import dataset_info, model_input_shape
from harness.engine.spec import TrainSpec
from harness.launch.worker import train_spec
from harness.metrics.perf import step_flops
from harness.recipe import Recipe
from harness.suite import RunSpec
from zoo.core.neuron import SpikingNeuron


def forward_flops(run: TrainSpec, recipe: Recipe) -> int:
    """FLOPs of one forward pass of the run's model (random weights, eval mode) on one sample of the input
    ``recipe`` feeds it (dataset options such as a sensor size are not looked at): counted on the meta device,
    on the CPU for a model that cannot run there."""
    try:
        return _counted_forward(run, recipe, torch.device("meta"))
    except Exception:  # an op without a meta kernel, or a model that makes CPU tensors in its forward
        return _counted_forward(run, recipe, torch.device("cpu"))


def _counted_forward(run: TrainSpec, recipe: Recipe, device: torch.device) -> int:
    """The counted forward of the run's model, built on ``device`` (the CPU generator it draws from is restored)."""
    with torch.random.fork_rng(devices=[]), device:
        model = run.create_model(recipe).eval()
    if device.type == "meta":
        _skip_shape_preserving_layers(model)
    frame = model_input_shape(run.dataset, recipe.data)
    dvs = dataset_info(run.dataset)["kind"] == "dvs"
    sample = torch.zeros((1, run.time_steps(), *frame) if dvs else (1, *frame), device=device)
    with torch.no_grad():
        return step_flops(lambda: model(sample))


def _skip_shape_preserving_layers(model: nn.Module) -> None:
    """Make every spiking neuron and every plain batch norm of a meta-device model return an empty tensor of its
    input's shape: their ops are elementwise (no FLOPs counted) and their output has the input's shape, dtype and
    device, so the counted FLOPs stay those of the full forward. A batch-norm subclass with its own forward (one
    that pads, say) runs as it is."""
    for module in model.modules():
        if isinstance(module, SpikingNeuron) or type(module).forward is nn.modules.batchnorm._BatchNorm.forward:
            module.forward = torch.empty_like


def training_images(run: TrainSpec, recipe: Recipe) -> int:
    """Images the run trains on over all its epochs: its train split, cut by its subset and batch limit."""
    per_epoch = min(dataset_info(run.dataset)["train_samples"], run.train_subset or math.inf,
                    (run.limit_train_batches or math.inf) * recipe.train.batch_size)
    return int(per_epoch) * (recipe.optim.epochs + recipe.optim.cooldown_epochs)


def expected_cost(spec: RunSpec) -> float:
    """Forward FLOPs per sample x training images: proportional to a run's training compute. A run whose model
    cannot even be built costs infinity: it fails at once, and first, where the launcher notices failures."""
    run = train_spec(spec)
    try:
        recipe = run.resolved_recipe()
        return float(forward_flops(run, recipe)) * training_images(run, recipe)
    except Exception:  # the worker reports the reason as the run's failure; an estimate must not stop the suite
        return math.inf


def expected_costs(specs: list[RunSpec]) -> list[float]:
    """The expected cost of each spec, in order; runs that differ only in their seed share one estimate. One CPU
    thread: the CPU fallback's batch-1 forwards gain nothing from more, and on a busy machine OpenMP's waiting
    threads make them many times slower."""
    costs: dict[str, float] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for spec in specs:
            key = _architecture(spec)
            if key not in costs:
                costs[key] = expected_cost(spec)
    finally:
        torch.set_num_threads(threads)
    return [costs[_architecture(spec)] for spec in specs]


def _architecture(spec: RunSpec) -> str:
    """What the estimate depends on: everything in the spec but its seed (and suite name)."""
    return spec.model_dump_json(exclude={"seed", "suite"})
