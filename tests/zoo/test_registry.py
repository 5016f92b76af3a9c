"""The registry: names, cards, overrides, and helpful errors for unknown names."""

import re
from pathlib import Path

import pytest

import zoo

FAMILIES = {"msvit", "qkformer", "spikformer", "sdt", "sdt_v2", "sdt_v3", "spikingresformer", "swformer",
            "sglformer", "spikingformer"}


def test_every_family_is_registered_with_cards():
    names = [n for n in zoo.list_models() if zoo.model_card(n).family != "test"]  # engine tests add "test"
    assert {zoo.model_card(n).family for n in names} == FAMILIES
    assert len(names) == 50 + 10 + 13  # SGLFormer: 10, Spikingformer: 13
    for name in names:
        card = zoo.model_card(name)
        assert card.name == name and card.T >= 1 and card.num_classes >= 10 and card.recipe


def test_pattern_filters_names():
    assert zoo.list_models("msvit*") == [n for n in zoo.list_models() if n.startswith("msvit")]
    assert zoo.list_models("*.in1k") and all(n.endswith(".in1k") for n in zoo.list_models("*.in1k"))


def test_unknown_name_suggests_close_names():
    with pytest.raises(KeyError, match="did you mean.*msvit_4_384.cifar100"):
        zoo.create_model("msvit_4_384.cifar1000")


def test_overrides_reach_the_model_and_its_card():
    model = zoo.create_model("qkformer_4_384.cifar10", T=2, num_classes=7)
    assert model.T == 2 and model.card.T == 2 and model.card.num_classes == 7
    assert zoo.model_card("qkformer_4_384.cifar10").T == 4, "the registered card is not changed"


def test_a_built_models_card_counts_its_own_parameters_kd_head_included():
    plain = zoo.create_model("sdtv2_10_512.in1k")
    kd = zoo.create_model("sdtv2_10_512.in1k", kd=True)
    head_kd = sum(p.numel() for p in kd.head_kd.parameters())
    assert plain.card.params == plain.card.code_params == sum(p.numel() for p in plain.parameters())
    assert kd.card.params == sum(p.numel() for p in kd.parameters()) == plain.card.params + head_kd
    assert head_kd == kd.head_kd.in_features * 1000 + 1000
    assert zoo.model_card("sdtv2_10_512.in1k").params is None, "the registered card describes no build"


def test_model_parameters_give_each_overrides_type_and_this_configurations_default():
    parameters = zoo.model_parameters("sdtv3_83m.in1k")
    assert parameters["kd"].annotation is bool and parameters["kd"].default is True  # the Large builders' kd=True
    assert parameters["dims"].default == (128, 256, 512) and "rep_branch" in parameters
    assert zoo.model_arguments("sdtv3_83m.in1k") == sorted(parameters)


def test_the_harness_reads_no_private_name_of_the_registry():
    harness = Path(__file__).resolve().parents[2] / "harness"
    offenders = [str(p) for p in harness.rglob("*.py") if re.search(r"zoo\.registry import _|zoo\.registry\._",
                                                                    p.read_text())]
    assert offenders == []


def test_each_configuration_names_the_model_file_that_builds_it():
    from zoo.registry import model_module

    names = [n for n in zoo.list_models() if zoo.model_card(n).family != "test"]
    modules = {zoo.model_card(n).family: model_module(n) for n in names}
    assert all(module.startswith("zoo.models.") for module in modules.values())
    assert len(set(modules.values())) == len(FAMILIES), "one model file per family"
    small = [n for n in names if n.endswith(".cifar10")]  # quick to build
    assert small
    assert all(type(zoo.create_model(n)).__module__ == model_module(n) for n in small)
