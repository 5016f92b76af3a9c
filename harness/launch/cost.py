"""A run's expected training cost, estimated without training, so that the local launcher starts the longest runs
first: with N workers, a long run started last keeps one worker busy while the others idle.

The estimate is the model's forward FLOPs on one sample of the dataset's input (its T steps included) times the
training images the run sees (train split, subset and batch limit, times its epochs). Python and data-loading
overheads are not modelled: the estimate orders runs, it does not predict their wall time.
"""

from __future__ import annotations

import math

import torch

from harness.data import dataset_info, model_input_shape
from harness.engine.spec import TrainSpec
from harness.launch.worker import train_spec
from harness.metrics.perf import step_flops
from harness.recipe import Recipe
from harness.suite import RunSpec


def forward_flops(run: TrainSpec, recipe: Recipe) -> int:
    """FLOPs of one forward pass of the run's model (random weights, eval mode) on one sample of the input
    ``recipe`` feeds it (dataset options such as a sensor size are not looked at)."""
    with torch.random.fork_rng(devices=[]):  # building the model (on the CPU) draws from the CPU generator: restored
        model = run.create_model(recipe).eval()
    frame = model_input_shape(run.dataset, recipe.data)
    dvs = dataset_info(run.dataset)["kind"] == "dvs"
    sample = torch.zeros((1, run.time_steps(), *frame) if dvs else (1, *frame))
    with torch.no_grad():
        return step_flops(lambda: model(sample))


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
    thread: these batch-1 forwards gain nothing from more, and on a busy machine OpenMP's waiting threads make
    them many times slower."""
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
