"""Spike-driven Transformer v1: every configuration, exact counts, TET per-step logits, switches, import."""

import pytest
import torch

import zoo
from model_checks import assert_trains_every_parameter
from official_reference import (built_at_official_count, calibrate, load_references, official_layout_loaded,
                                official_logits_reproduced, seeded_state)
from zoo.models.sdt import erode

# Official code counts minus the unused talking-heads Conv1d (64 parameters per block; zoo-spec section 5).
OFFICIAL_PARAMS = {
    "sdt_2_512.cifar10": 10_233_418,
    "sdt_2_512.cifar100": 10_279_588,
    "sdt_2_256.dvs128": 2_566_923,
    "sdt_2_256.cifar10dvs": 2_566_666,
    "sdt_8_384.in1k": 16_816_024,
    "sdt_8_512.in1k": 29_689_384,
    "sdt_8_768.in1k": 66_338_632,
}
REFERENCES = {k: v for k, v in load_references().items() if k.startswith("sdt_")}



def test_registered_names_are_exactly_the_sdt_configs():
    assert zoo.list_models("sdt_*") == sorted(OFFICIAL_PARAMS)


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_parameter_count_matches_official_code(name):
    model = built_at_official_count(name, OFFICIAL_PARAMS[name])
    assert model.card.family == "sdt" and model.card.recipe.startswith("sdt_")


@pytest.mark.parametrize("name, shape, T", [
    ("sdt_2_512.cifar10", (2, 3, 32, 32), 4),
    ("sdt_2_256.cifar10dvs", (2, 2, 2, 64, 64), 2),
    ("sdt_2_256.dvs128", (2, 2, 2, 128, 128), 2),
    ("sdt_8_384.in1k", (2, 3, 32, 32), 1),
    ("sdt_8_512.in1k", (2, 3, 32, 32), 1),
    ("sdt_8_768.in1k", (2, 3, 32, 32), 1),
])
def test_forward_backward_reaches_every_parameter(name, shape, T):
    model = zoo.create_model(name, T=T).train()
    x = torch.rand(shape) * (2 if model.input_kind == "dvs" else 1)
    assert_trains_every_parameter(model, x)


def test_per_step_logits_for_tet_average_to_the_output():
    x = torch.poisson(torch.full((2, 3, 2, 64, 64), 0.5))
    model = calibrate(zoo.create_model("sdt_2_256.cifar10dvs", T=3), x)
    with torch.no_grad():
        steps, mean = model(x, per_step=True), model(x)
    assert steps.shape == (3, 2, 10)
    torch.testing.assert_close(steps.mean(0), mean)
    assert (steps[0] - steps[-1]).abs().max() > 0


def test_eval_is_deterministic_and_per_sample():
    torch.manual_seed(2)
    x = torch.randn(3, 3, 32, 32)
    model = calibrate(zoo.create_model("sdt_2_512.cifar100"), x)
    with torch.no_grad():
        first, again, alone = model(x), model(x), model(x[2:])
    assert torch.equal(first, again)
    assert (first[0] - first[1]).abs().max() > 1e-3
    torch.testing.assert_close(alone[0], first[2], rtol=0, atol=1e-5)


def test_quirk_switches_change_behaviour():
    official = zoo.create_model("sdt_2_256.cifar10dvs", T=2)
    paper = zoo.create_model("sdt_2_256.cifar10dvs", T=2, official_quirks=False)
    assert official.erode and official.head.pool_then_neuron
    assert not paper.erode and not paper.head.pool_then_neuron
    assert not zoo.create_model("sdt_2_256.dvs128").erode  # the Gesture config has no Erode
    only_erode_off = zoo.create_model("sdt_2_256.cifar10dvs", T=2, erode=False)
    assert only_erode_off.head.pool_then_neuron and not only_erode_off.erode
    x = torch.poisson(torch.full((2, 2, 2, 64, 64), 0.5))
    calibrate(official, x)
    outputs = []
    for model in (official, paper, only_erode_off):
        model.load_state_dict(official.state_dict())
        with torch.no_grad():
            outputs.append(model.eval()(x))
    assert not torch.allclose(outputs[0], outputs[1])
    assert not torch.allclose(outputs[0], outputs[2])


def test_erode_is_a_3x3_max_over_the_last_two_axes():
    x = torch.zeros(1, 1, 1, 5, 5)
    x[..., 2, 2] = 1.0
    expected = torch.zeros(1, 1, 1, 5, 5)
    expected[..., 1:4, 1:4] = 1.0
    assert torch.equal(erode(x), expected)


@pytest.mark.parametrize("name, shape, match", [
    ("sdt_2_512.cifar10", (2, 2, 32, 32), r"\[B, 3, H, W\]"),
    ("sdt_2_512.cifar10", (2, 3, 34, 34), "divisible by 4"),
    ("sdt_8_384.in1k", (2, 3, 56, 56), "divisible by 16"),
    ("sdt_2_256.dvs128", (2, 16, 2, 100, 100), "divisible by 8"),
    ("sdt_2_256.dvs128", (2, 10, 2, 128, 128), r"T=16"),
])
def test_wrong_input_shapes_are_rejected_with_the_expected_shape(name, shape, match):
    with torch.device("meta"):
        model = zoo.create_model(name)
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(shape, device="meta"))


@pytest.mark.parametrize("entry", sorted(REFERENCES))
def test_official_checkpoint_layout_loads_every_tensor(entry):
    key_map = official_layout_loaded(REFERENCES[entry])
    assert sorted(k for k, v in key_map.items() if v is None) == sorted(k for k in key_map if "talking_heads" in k)


@pytest.mark.parametrize("entry", sorted(REFERENCES))
def test_logits_reproduce_the_official_code(entry):
    """Seeded weights in the official layout give the official code's eval logits (to 1e-4)."""
    logits = official_logits_reproduced(REFERENCES[entry])
    assert torch.isfinite(logits).all()


def test_official_import_rejects_a_wrong_config():
    spec = REFERENCES["sdt_cifar10_2_512"]
    model = zoo.create_model("sdt_2_512.cifar100")
    shapes = r"head\.weight -> head\.fc\.weight: official \(10, 512\) vs model \(100, 512\)"
    with pytest.raises(ValueError, match=shapes):
        zoo.load_official_state_dict(model, seeded_state(spec["keys"]))
