"""Spikformer: every registered configuration, exact parameter counts, forward/backward, switches, import."""

import pytest
import torch

import zoo
from official_reference import (built_at_official_count, calibrate, load_references, official_layout_loaded,
                                official_logits_reproduced, seeded_state)
from zoo.models.spikformer import Spikformer

# Used parameters of the official code (zoo-spec section 4; the unused LayerNorms/pos_embed excluded).
OFFICIAL_PARAMS = {
    "spikformer_4_384.cifar10": 9_324_730,
    "spikformer_4_384.cifar100": 9_359_380,
    "spikformer_2_256.cifar10dvs": 2_566_666,
    "spikformer_2_256.dvs128": 2_566_923,
    "spikformer_8_384.in1k": 16_816_024,
    "spikformer_8_512.in1k": 29_689_384,
    "spikformer_8_768.in1k": 66_338_632,
}
REFERENCES = {k: v for k, v in load_references().items() if k.startswith("spikformer")}


def test_registered_names_are_exactly_the_spikformer_configs():
    assert zoo.list_models("spikformer*") == sorted(OFFICIAL_PARAMS)


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_parameter_count_matches_official_code(name):
    model = built_at_official_count(name, OFFICIAL_PARAMS[name])
    assert model.card.family == "spikformer" and model.card.recipe.startswith("spikformer_")



def _train_step(model, x):
    model.train()
    out = model(x)
    out.square().mean().backward()
    return out


@pytest.mark.parametrize("name, shape, T", [
    ("spikformer_4_384.cifar10", (2, 3, 32, 32), 4),
    ("spikformer_2_256.dvs128", (2, 2, 2, 128, 128), 2),
    ("spikformer_8_384.in1k", (2, 3, 32, 32), 1),
    ("spikformer_8_512.in1k", (2, 3, 32, 32), 1),
    ("spikformer_8_768.in1k", (2, 3, 32, 32), 1),
])
def test_forward_backward_reaches_every_parameter(name, shape, T):
    model = zoo.create_model(name, T=T)
    x = torch.rand(shape) * (2 if model.input_kind == "dvs" else 1)
    out = _train_step(model, x)
    assert out.shape == (2, model.num_classes) and torch.isfinite(out).all()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == []


def test_eval_is_deterministic_and_per_sample():
    torch.manual_seed(1)
    x = torch.randn(3, 3, 32, 32)
    model = calibrate(zoo.create_model("spikformer_4_384.cifar100"), x)
    with torch.no_grad():
        first, again, alone = model(x), model(x), model(x[1:2])
    assert torch.equal(first, again)
    assert (first[0] - first[1]).abs().max() > 1e-3
    torch.testing.assert_close(alone[0], first[1], rtol=0, atol=1e-5)


def test_per_step_logits_average_to_the_output():
    x = torch.randn(2, 3, 32, 32)
    model = calibrate(zoo.create_model("spikformer_4_384.cifar10"), x)
    with torch.no_grad():
        steps, mean = model(x, per_step=True), model(x)
    assert steps.shape == (4, 2, 10)
    torch.testing.assert_close(steps.mean(0), mean)


@pytest.mark.parametrize("name, shape, match", [
    ("spikformer_4_384.cifar10", (2, 1, 32, 32), r"\[B, 3, H, W\]"),
    ("spikformer_4_384.cifar10", (2, 3, 30, 30), "divisible by 4"),
    ("spikformer_8_384.in1k", (2, 3, 40, 40), "divisible by 16"),
    ("spikformer_2_256.cifar10dvs", (2, 16, 2, 72, 72), "divisible by 16"),
    ("spikformer_2_256.cifar10dvs", (2, 8, 2, 128, 128), r"T=16"),
])
def test_wrong_input_shapes_are_rejected_with_the_expected_shape(name, shape, match):
    with torch.device("meta"):
        model = zoo.create_model(name)
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(shape, device="meta"))


def test_smaller_inputs_and_fewer_pools_for_small_datasets():
    model = zoo.create_model("spikformer_2_256.cifar10dvs", T=2, dim=32, depth=1, heads=2,
                             pools=[False, False, True, True])
    assert model(torch.rand(2, 2, 2, 16, 16)).shape == (2, 10)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.rand(2, 2, 2, 18, 18))


def test_dvs_quarter_scale_is_a_switchable_code_quirk():
    official = zoo.create_model("spikformer_2_256.cifar10dvs", T=2)
    paper = zoo.create_model("spikformer_2_256.cifar10dvs", T=2, official_quirks=False)
    assert official.quarter_scale and not paper.quarter_scale
    assert not zoo.create_model("spikformer_4_384.cifar10").quarter_scale
    assert zoo.create_model("spikformer_2_256.cifar10dvs", official_quirks=False, quarter_scale=True).quarter_scale
    x = torch.poisson(torch.full((2, 2, 2, 128, 128), 0.5))
    paper.load_state_dict(calibrate(official, x).state_dict())
    with torch.no_grad():
        assert not torch.allclose(official(x), paper.eval()(x))


@pytest.mark.parametrize("entry", sorted(REFERENCES))
def test_official_checkpoint_layout_loads_every_tensor(entry):
    dropped = sorted(k for k, v in official_layout_loaded(REFERENCES[entry]).items() if v is None)
    assert all(".norm" in k or k in ("pos_embed", "norm.weight", "norm.bias") for k in dropped)


@pytest.mark.parametrize("entry", sorted(REFERENCES))
def test_logits_reproduce_the_official_code(entry):
    """Seeded weights in the official layout give the official code's eval logits (to 1e-4)."""
    logits = official_logits_reproduced(REFERENCES[entry])
    assert torch.isfinite(logits).all()


def test_official_import_rejects_an_incomplete_checkpoint():
    spec = REFERENCES["spikformer_cifar10"]
    model = zoo.create_model(spec["zoo"])
    state = seeded_state(spec["keys"])
    del state["block.0.attn.q_linear.weight"]
    with pytest.raises(ValueError, match="blocks.0.attn.q.body.linear.weight"):
        zoo.load_official_state_dict(model, state)
    state = seeded_state(spec["keys"])
    state["block.0.attn.talking_heads.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="talking_heads"):
        zoo.load_official_state_dict(model, state)


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="variant"):
        Spikformer("cifar100", dim=64, depth=1, heads=4, num_classes=10, T=1)
