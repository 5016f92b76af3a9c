"""Does a weights file fit the zoo configuration it is filed under? Read weights-only, every tensor mapped."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from harness.audit import load_state, read_weights_file
from harness.weights.catalog import WeightsEntry


def build_model(entry: WeightsEntry) -> nn.Module:
    """The zoo model the checkpoint of ``entry`` loads into: built as its recipe feeds it (e.g. the input
    channels of event data) with the constructor arguments the checkpoint needs (``model_args``)."""
    import zoo
    from harness.data import dataset_info
    from harness.recipe import load_recipe, model_input_kwargs

    card = zoo.model_card(entry.model)
    inputs = model_input_kwargs(load_recipe(card.recipe).data, dataset_info(card.dataset)["kind"])
    return zoo.create_model(entry.model, **{**inputs, **entry.model_args})


def check_fits(entry: WeightsEntry, path: Path) -> nn.Module:
    """Load ``path`` into the model of ``entry`` (spikebench layout, or the official one through
    ``zoo.load_official_state_dict``) and return it; a WeightsError in one line says why it does not fit."""
    state = read_weights_file(path)
    model = build_model(entry)
    load_state(model, state, path)
    return model
