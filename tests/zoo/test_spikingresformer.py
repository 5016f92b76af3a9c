"""SpikingResformer: registered configs at the official counts, DSSA semantics and quirks, official import."""

import pytest
import torch

import zoo
from model_checks import assert_trains_every_parameter
from harness.recipe import list_recipes, load_recipe
from official_reference import (DATA_DIR, built_at_official_count, calibrate, load_references, official_layout_loaded,
                                official_train_step_reproduced, seeded_state)
from zoo.core import LIF, PLIF
from zoo.models.spikingresformer import DSSA, SpikingResformer

# Parameters of the official builders (zoo-spec-v2: instantiated on CPU; every parameter is used).
OFFICIAL_PARAMS = {
    "spikingresformer_ti.in1k": 11_180_992,
    "spikingresformer_s.in1k": 17_813_824,
    "spikingresformer_m.in1k": 35_601_472,
    "spikingresformer_l.in1k": 60_375_680,
    "spikingresformer_tistar.cifar10": 10_793_152,
    "spikingresformer_tistar.cifar100": 10_827_712,
    "spikingresformer_tistar.cifar10dvs": 10_793_152,
    "spikingresformer_dvsg.dvs128": 2_709_830,
}
REFERENCES = load_references(DATA_DIR / "official_keys_spikingresformer.json")
TINY = dict(planes=[16, 32, 64], heads=[1, 2, 4], group_size=16)


def test_registered_names_are_exactly_the_spikingresformer_configs():
    assert zoo.list_models("spikingresformer*") == sorted(OFFICIAL_PARAMS)


@pytest.mark.parametrize("name, with_bn", [("spikingresformer_ti.in1k", False), ("spikingresformer_s.in1k", False),
                                           ("spikingresformer_m.in1k", False), ("spikingresformer_l.in1k", True)])
def test_the_printed_parameter_counts_are_the_code_counts_with_or_without_batch_norm(name, with_bn):
    """The paper prints Ti/S/M without BN parameters but L with them (60.38M = 60,375,680; 60.27M without BN)."""
    with torch.device("meta"):
        model = zoo.create_model(name)
    bn = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
             for p in m.parameters(recurse=False))
    count = model.card.code_params - (0 if with_bn else bn)
    assert round(count / 1e6, 2) == model.card.claimed_params_m
    assert round((model.card.code_params - (bn if with_bn else 0)) / 1e6, 2) != model.card.claimed_params_m


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_parameter_count_matches_official_code(name):
    model = built_at_official_count(name, OFFICIAL_PARAMS[name])
    assert model.card.family == "spikingresformer" and model.card.recipe.startswith("spikingresformer_")


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_every_config_has_its_official_recipe(name):
    card = zoo.model_card(name)
    assert card.recipe in list_recipes()
    recipe = load_recipe(card.recipe)
    assert "SpikingResformer@3f75127" in recipe.source and recipe.optim.name == "adamw"
    assert (recipe.data.dvs_resize == 64) == (card.dataset in ("cifar10dvs", "dvs128"))


def test_neurons_are_the_official_lif_and_plif():
    lifs = [m for m in zoo.create_model("spikingresformer_tistar.cifar10", **TINY).modules() if isinstance(m, LIF)]
    assert lifs and all(type(m) is LIF and m.surrogate.name == "atan" and m.tau == 2.0 for m in lifs)
    plifs = [m for m in zoo.create_model("spikingresformer_dvsg.dvs128").modules() if isinstance(m, LIF)]
    assert plifs and all(isinstance(m, PLIF) and m.surrogate.name == "atan" for m in plifs)


@pytest.mark.parametrize("name, shape", [
    ("spikingresformer_ti.in1k", (2, 3, 32, 32)),
    ("spikingresformer_dvsg.dvs128", (2, 2, 2, 32, 32)),
])
def test_forward_backward_reaches_every_parameter(name, shape):
    model = zoo.create_model(name, T=2, img_size=32, **({} if "dvsg" in name else TINY))
    x = torch.rand(shape)
    assert_trains_every_parameter(model, x)


def test_firing_rate_buffers_seed_from_the_first_batch_then_move_with_momentum():
    torch.manual_seed(0)
    attn = DSSA(8, 2, 1, "lif", length=None, nan_before_training=True).train()
    x = torch.randn(2, 3, 8, 4, 4) * 2
    attn(x)
    spikes = attn.lif_in(x).flatten(3).unflatten(2, (2, 4))
    first = spikes.mean((0, 1, 3, 4), keepdim=True)
    torch.testing.assert_close(attn.rate_x, first)
    attn(x * 0.5)
    second = attn.lif_in(x * 0.5).flatten(3).unflatten(2, (2, 4)).mean((0, 1, 3, 4), keepdim=True)
    torch.testing.assert_close(attn.rate_x, 0.999 * first + 0.001 * second)
    frozen = attn.rate_x.clone()
    attn.eval()(x)
    assert torch.equal(attn.rate_x, frozen)


def _attention_scores(attn: DSSA, x: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = attn.lif_attn.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    with torch.no_grad():
        attn(x)
    handle.remove()
    return seen[0]


def test_eval_before_training_divides_by_zero_only_with_the_quirk():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 4, 4) * 2
    official = DSSA(8, 2, 1, "lif", length=None, nan_before_training=True).eval()
    fixed = DSSA(8, 2, 1, "lif", length=None, nan_before_training=False).eval()
    fixed.load_state_dict(official.state_dict())
    assert not torch.isfinite(_attention_scores(official, x)).all()
    scores = _attention_scores(fixed, x)
    assert torch.isfinite(scores).all() and not fixed.rate_x.any()  # the batch's own rate, nothing stored
    official.train()(x)  # one training step seeds the rates
    assert torch.isfinite(_attention_scores(official.eval(), x)).all()


def test_fixed_token_length_comes_from_img_size_and_rejects_other_inputs():
    model = zoo.create_model("spikingresformer_ti.in1k", T=1, img_size=64, **TINY)
    lengths = {b.length for s in model.stages for b in s.blocks if isinstance(b, DSSA)}
    assert lengths == {(64 // 4 // 4) ** 2}
    with pytest.raises(ValueError, match="img_size=64"):
        model(torch.randn(1, 3, 32, 32))
    free = zoo.create_model("spikingresformer_ti.in1k", T=1, fixed_length=False, **TINY)
    assert free(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


def test_dvs_models_append_the_polarity_sum_channel():
    model = zoo.create_model("spikingresformer_dvsg.dvs128", T=2, img_size=16)
    assert model.in_channels == 2 and model.stem[0].in_channels == 3
    x = torch.rand(1, 2, 2, 16, 16)
    raw = zoo.create_model("spikingresformer_dvsg.dvs128", T=2, img_size=16, polarity_sum=False)
    raw.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(calibrate(model, x)(x), calibrate(raw, torch.cat([x, x.sum(2, keepdim=True)], 2))(
            torch.cat([x, x.sum(2, keepdim=True)], 2)))


def test_per_step_head_is_averaged_over_time():
    x = torch.randn(2, 3, 16, 16)
    model = calibrate(zoo.create_model("spikingresformer_tistar.cifar100", T=3, img_size=16, **TINY), x)
    with torch.no_grad():
        steps, mean = model(x, per_step=True), model(x)
    assert steps.shape == (3, 2, 100)
    torch.testing.assert_close(steps.mean(0), mean)


@pytest.mark.parametrize("entry", sorted(REFERENCES))
def test_official_checkpoint_layout_loads_every_tensor(entry):
    assert None not in official_layout_loaded(REFERENCES[entry]).values()


@pytest.mark.parametrize("entry", sorted(REFERENCES))
def test_logits_and_gradients_reproduce_the_official_code(entry):
    """Seeded official weights: eval logits, train-mode logits and every gradient equal the official code's."""
    model = official_train_step_reproduced(REFERENCES[entry])
    assert all(p.grad is not None for p in model.parameters())


def test_official_import_rejects_a_missing_firing_rate():
    spec = REFERENCES["spikingresformer_cifar100_16"]
    model = zoo.create_model(spec["zoo"], **spec["overrides"])
    state = seeded_state(spec["keys"], spec["bias_mean"])
    del state["layers.0.0.firing_rate_attn"]
    with pytest.raises(ValueError, match="stages.0.blocks.0.rate_attn"):
        zoo.load_official_state_dict(model, state)


def test_bad_configurations_are_rejected():
    with pytest.raises(ValueError, match="one entry per stage"):
        SpikingResformer(planes=[16, 32], heads=[1, 2, 4], num_classes=10, T=1)
    with pytest.raises(ValueError, match="divisible by 3 heads"):
        SpikingResformer(planes=[16, 32, 64], heads=[1, 3, 4], num_classes=10, T=1, group_size=16)
    with pytest.raises(ValueError, match="neuron"):
        SpikingResformer(planes=[16, 32, 64], heads=[1, 2, 4], num_classes=10, T=1, group_size=16, neuron="if")
