"""Fast mode's channels-last model on a CPU: convolution weights in channels-last layout, a model holding a 5-D
tensor (SpikingResformer's rates) accepted, and the same layout as ``Module.to`` wherever that works."""

import copy
import json

import pytest
import torch

import zoo
from harness.engine import TrainSpec, train
from zoo.core import to_channels_last

SMOKE_RESFORMER = dict(planes=[16, 32, 64], heads=[1, 2, 4], depths=[1, 1, 1], group_size=16, img_size=16)


def _tensors(model):
    return [*model.parameters(), *model.buffers()]


def test_a_model_with_a_5d_parameter_gets_channels_last_convolutions():
    model = zoo.create_model("spikingresformer_tistar.cifar10", T=2, num_classes=10, **SMOKE_RESFORMER)
    with pytest.raises(RuntimeError, match="rank 4"):
        copy.deepcopy(model).to(memory_format=torch.channels_last)
    before = {name: t.clone() for name, t in model.state_dict().items()}
    to_channels_last(model)
    four = [t for t in _tensors(model) if t.dim() == 4]
    assert four and all(t.is_contiguous(memory_format=torch.channels_last) for t in four)
    assert all(isinstance(p, torch.nn.Parameter) for p in model.parameters())
    assert all(torch.equal(before[name], t) for name, t in model.state_dict().items()), "values unchanged"


@pytest.mark.parametrize("name", ["qkformer_4_384.cifar10", "spikformer_4_384.cifar10"])
def test_the_layout_is_module_tos_where_that_works(name):
    model = zoo.create_model(name, T=2, num_classes=10)
    reference = copy.deepcopy(model).to(memory_format=torch.channels_last)
    to_channels_last(model)
    assert [t.stride() for t in _tensors(model)] == [t.stride() for t in _tensors(reference)]


def test_a_channels_last_run_trains_a_model_with_a_5d_parameter(tmp_path):
    """The trainer's channels-last layout (fast mode on a CPU with native bf16) no longer fails on SpikingResformer."""
    spec = TrainSpec(model="spikingresformer_tistar.cifar10", dataset="digits", recipe="digits", T=2, epochs=1,
                     model_kwargs=SMOKE_RESFORMER, limit_train_batches=1, limit_eval_batches=1, energy_images=0,
                     overrides={"train.channels_last": True, "optim.warmup_epochs": 0})
    assert train(spec, tmp_path)["status"] == "finished"
    assert json.loads((tmp_path / "config.json").read_text())["resolved"]["channels_last"] is True
