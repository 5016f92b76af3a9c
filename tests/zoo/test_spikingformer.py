"""Spikingformer: registered configs at the official counts, spike-driven residuals, head order, quirk, import."""

import pytest
import torch

import zoo
from model_checks import assert_trains_every_parameter
from harness.recipe import list_recipes, load_recipe
from official_reference import (DATA_DIR, built_at_official_count, calibrate, load_references, official_layout_loaded,
                                official_train_step_reproduced)
from zoo.core import LIF, time_major
from zoo.models.spikingformer import Block, Spikingformer

# Parameters the official forward uses (its model.py built as the train scripts build it, on CPU, backend torch;
# the unused norm1/norm2 LayerNorms, 4 * dim per block, left out: benchmarks/RESULTS.md has both counts).
OFFICIAL_PARAMS = {
    "spikingformer_4_384.cifar10": 9_320_122,
    "spikingformer_4_384.cifar100": 9_354_772,
    "spikingformer_4_256.cifar10": 4_152_106,
    "spikingformer_4_256.cifar100": 4_175_236,
    "spikingformer_2_384.cifar10": 5_762_746,
    "spikingformer_2_384.cifar100": 5_797_396,
    "spikingformer_2_256.cifar10dvs": 2_566_666,
    "spikingformer_2_256_t10.cifar10dvs": 2_566_666,
    "spikingformer_2_256.dvs128": 2_566_923,
    "spikingformer_2_256_t10.dvs128": 2_566_923,
    "spikingformer_8_384.in1k": 16_816_024,
    "spikingformer_8_512.in1k": 29_689_384,
    "spikingformer_8_768.in1k": 66_338_632,
}
REFERENCES = load_references(DATA_DIR / "official_keys_spikingformer.json")
TINY = dict(dim=32, depth=1, heads=2)


def test_registered_names_are_exactly_the_spikingformer_configs():
    assert zoo.list_models("spikingformer*") == sorted(OFFICIAL_PARAMS)


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_parameter_count_matches_official_code(name):
    model = built_at_official_count(name, OFFICIAL_PARAMS[name])
    card = model.card
    # the README prints one count per row, the 10-class build's (the ImageNet ones truncated to 0.01M)
    tolerance = 0.01 if card.num_classes in (10, 1000) else 0.05
    assert card.family == "spikingformer"
    assert card.claimed_params_m == pytest.approx(OFFICIAL_PARAMS[name] / 1e6, abs=tolerance)


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_every_config_has_its_official_recipe(name):
    card = zoo.model_card(name)
    assert card.recipe in list_recipes()
    recipe = load_recipe(card.recipe)
    assert "zhouchenlin2096/Spikingformer@4378623" in recipe.source
    assert recipe.data.input_size == (None if card.dataset in ("cifar10dvs", "dvs128") else card.input_shape[-1])
    assert recipe.data.dvs_resize is None  # the official event tokenizer needs the native 128x128 frames


def test_time_steps_of_the_event_rows_follow_the_table():
    assert zoo.model_card("spikingformer_2_256.cifar10dvs").T == 16
    assert zoo.model_card("spikingformer_2_256_t10.cifar10dvs").T == 10
    assert zoo.create_model("spikingformer_2_256_t10.dvs128", **TINY).T == 10


@pytest.mark.parametrize("name, tau", [("spikingformer_4_384.cifar10", 2.0), ("spikingformer_8_512.in1k", 2.0),
                                       ("spikingformer_2_256.dvs128", 1.5)])
def test_neurons_are_the_official_lifs(name, tau):
    model = zoo.create_model(name, **TINY)
    lifs = {n: m for n, m in model.named_modules() if isinstance(m, LIF)}
    assert {m.tau for m in lifs.values()} == {tau}
    assert all(m.detach_reset and m.surrogate.name == "sigmoid" and m.v_reset == 0.0 for m in lifs.values())
    thresholds = {n: m.v_threshold for n, m in lifs.items()}
    assert thresholds.pop("blocks.0.attn.attn_lif") == 0.5 and set(thresholds.values()) == {1.0}
    # 4 tokenizer LIFs (none before the first conv), 5 in attention, 2 in the MLP, none after any block
    assert len(lifs) == 4 + 7
    assert [n for n in lifs if n.startswith("patch_embed")] == [f"patch_embed.lifs.{i}" for i in range(4)]
    assert zoo.create_model(name, tau=3.0, **TINY).blocks[0].mlp.fc1_lif.tau == 3.0


@pytest.mark.parametrize("name, grid", [("spikingformer_4_384.cifar10", 8), ("spikingformer_8_384.in1k", 2)])
def test_tokenizer_pools_follow_the_code_variant(name, grid):
    model = zoo.create_model(name, T=1, **TINY)
    tokens = model.patch_embed(torch.randn(1, 1, 3, 32, 32))
    assert tokens.shape == (1, 1, 32, grid, grid)
    assert tokens.unique().numel() > 2  # a BN output (membrane), not spikes: the residual stream is float


def test_pools_override_sets_the_token_grid():
    model = zoo.create_model("spikingformer_2_256.cifar10dvs", T=2, pools=[False, False, True, True],
                             official_quirks=False, **TINY)
    assert model.patch_embed(torch.rand(2, 1, 2, 16, 16)).shape == (2, 1, 32, 4, 4)
    assert model(torch.rand(1, 2, 2, 16, 16)).shape == (1, 10)
    with pytest.raises(ValueError, match="one flag per tokenizer stage"):
        zoo.create_model("spikingformer_4_384.cifar10", pools=[True, True], **TINY)


def test_blocks_are_spike_driven_residuals_on_the_membrane_stream():
    torch.manual_seed(0)
    block = Block(16, 2, 2.0).eval()
    x = torch.randn(2, 3, 16, 4, 4) * 2
    with torch.no_grad():
        mid = x + block.attn(x)
        torch.testing.assert_close(block(x), mid + block.mlp(mid), rtol=0, atol=0)
        seen = {}
        block.attn.q[0].register_forward_hook(lambda m, a, out: seen.__setitem__("q_in", a[0]))
        block.mlp.fc1[0].register_forward_hook(lambda m, a, out: seen.__setitem__("fc1_in", a[0]))
        block(x)
    for key in ("q_in", "fc1_in"):  # every projection multiplies spikes only
        assert set(seen[key].unique().tolist()) <= {0.0, 1.0}, key


def test_head_averages_features_over_time_before_the_linear():
    x = torch.rand(2, 3, 32, 32)
    model = calibrate(zoo.create_model("spikingformer_4_384.cifar10", T=3, **TINY), x)
    with torch.no_grad():
        feats = model.features(time_major(x, 3, "static", 3))
        steps, logits = model(x, per_step=True), model(x)
    torch.testing.assert_close(logits, model.head(feats.mean(0)), rtol=0, atol=0)
    torch.testing.assert_close(steps, model.head(feats), rtol=0, atol=0)
    assert steps.shape == (3, 2, 10)


def test_official_event_grid_rejects_other_sizes_only_with_the_quirk():
    official = zoo.create_model("spikingformer_2_256.dvs128", T=2, **TINY)
    assert official.fixed_event_grid
    with pytest.raises(ValueError, match=r"hard-codes 128x128 frames, got 64x64") as err:
        official(torch.rand(1, 2, 2, 64, 64))
    assert "\n" not in str(err.value)
    assert official(torch.rand(1, 2, 2, 128, 128)).shape == (1, 11)
    free = zoo.create_model("spikingformer_2_256.dvs128", T=2, official_quirks=False, **TINY)
    assert free(torch.rand(1, 2, 2, 64, 48)).shape == (1, 11)
    assert not zoo.create_model("spikingformer_2_256.dvs128", fixed_event_grid=False, **TINY).fixed_event_grid
    assert not zoo.create_model("spikingformer_4_384.cifar10", **TINY).fixed_event_grid  # static code has no grid


@pytest.mark.parametrize("name, shape, message", [
    ("spikingformer_4_384.cifar10", (1, 3, 30, 30), "divisible by 4"),
    ("spikingformer_8_384.in1k", (1, 3, 40, 40), "divisible by 16"),
    ("spikingformer_4_384.cifar10", (1, 2, 32, 32), r"\[B, 3, H, W\]"),
    ("spikingformer_2_256.cifar10dvs", (1, 3, 2, 128, 128), "T=2"),
])
def test_bad_inputs_get_one_line_errors(name, shape, message):
    model = zoo.create_model(name, T=2, **TINY)
    with pytest.raises(ValueError, match=message) as err:
        model(torch.rand(shape))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name, shape", [("spikingformer_4_384.cifar10", (2, 3, 32, 32)),
                                         ("spikingformer_8_512.in1k", (2, 3, 32, 32)),
                                         ("spikingformer_2_256.cifar10dvs", (2, 2, 2, 128, 128))])
def test_forward_backward_reaches_every_parameter(name, shape):
    model = zoo.create_model(name, T=2, **TINY)
    assert_trains_every_parameter(model, torch.rand(shape))


@pytest.mark.parametrize("entry", sorted(REFERENCES))
def test_official_checkpoint_layout_loads_every_tensor(entry):
    key_map = official_layout_loaded(REFERENCES[entry])
    dropped = sorted(k for k, v in key_map.items() if v is None)
    assert dropped and all(".norm1." in k or ".norm2." in k for k in dropped)  # only the unused LayerNorms


def test_a_released_checkpoint_dict_with_module_prefixes_loads():
    spec = REFERENCES["spikingformer_cifar10_4_384"]
    wrapped = official_layout_loaded(spec, wrap=lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}})
    assert set(wrapped) == set(spec["keys"])


@pytest.mark.parametrize("entry", sorted(REFERENCES))
def test_logits_and_gradients_reproduce_the_official_code(entry):
    """Seeded official weights: eval logits, train-mode logits and every gradient equal the official code's."""
    model = official_train_step_reproduced(REFERENCES[entry])
    assert all(p.grad is not None for p in model.parameters())


def test_bad_configurations_are_rejected():
    with pytest.raises(ValueError, match="not divisible by 3 heads"):
        Spikingformer("cifar", dim=32, depth=1, heads=3, num_classes=10, T=1)
    with pytest.raises(ValueError, match="divisible by 8"):
        Spikingformer("cifar", dim=36, depth=1, heads=2, num_classes=10, T=1)
    with pytest.raises(ValueError, match="unknown Spikingformer variant"):
        Spikingformer("svhn", dim=32, depth=1, heads=2, num_classes=10, T=1)
