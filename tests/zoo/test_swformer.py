"""SWformer: registered configs at the official counts, FATM semantics and quirks, official import."""

import pytest
import torch

import zoo
from model_checks import assert_trains_every_parameter
from harness.recipe import list_recipes, load_recipe
from official_reference import (DATA_DIR, built_at_official_count, calibrate, load_references, official_layout_loaded,
                                official_train_step_reproduced)
from zoo.core import LIF, TernaryIF
from zoo.models.swformer import FATM, SWformer, haar_matrix

# Parameters of the official builders (zoo-spec-v2: instantiated on CPU; every parameter is used).
OFFICIAL_PARAMS = {
    "swformer_6_512.in1k": 21_806_632,
    "swformer_8_512.in1k": 27_600_424,
    "swformer_4_384.cifar10": 7_479_226,
    "swformer_4_384.cifar100": 7_513_876,
    "swformer_2_256.cifar10dvs": 2_157_834,
    "swformer_2_256.dvs128": 2_158_091,
}
REFERENCES = load_references(DATA_DIR / "official_keys_swformer.json")
TINY = dict(dim=32, depths=1)


def test_registered_names_are_exactly_the_swformer_configs():
    assert zoo.list_models("swformer*") == sorted(OFFICIAL_PARAMS)


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_parameter_count_matches_official_code(name):
    model = built_at_official_count(name, OFFICIAL_PARAMS[name])
    assert model.card.family == "swformer" and model.card.recipe.startswith("swformer_")


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_every_config_has_its_official_recipe(name):
    card = zoo.model_card(name)
    assert card.recipe in list_recipes()
    recipe = load_recipe(card.recipe)
    assert "Spiking-Wavelet-Transformer@da8c644" in recipe.source
    assert recipe.data.input_size == (None if card.dataset in ("cifar10dvs", "dvs128") else card.input_shape[-1])
    assert recipe.data.dvs_resize is None  # the event stem needs the native 128x128 frames


def test_haar_matrix_is_orthonormal_and_rejects_other_sizes():
    for n in (1, 2, 8, 16):
        h = haar_matrix(n).double()
        torch.testing.assert_close(h @ h.T, torch.eye(n, dtype=torch.float64), atol=1e-6, rtol=0)
    assert haar_matrix(4)[1].tolist() == [0.5, 0.5, -0.5, -0.5]
    with pytest.raises(ValueError, match="power-of-two"):
        haar_matrix(6)


def test_haar_transforms_use_ternary_neurons_and_the_rest_lif():
    model = zoo.create_model("swformer_4_384.cifar10", **TINY)
    mixer = model.blocks[0].mixer
    ternary = [n for n, m in model.named_modules() if isinstance(m, TernaryIF)]
    assert ternary == ["blocks.0.mixer.haar_forward.col_neuron", "blocks.0.mixer.haar_inverse.row_neuron",
                       "blocks.0.mixer.haar_inverse.col_neuron"]
    assert all(m.v_threshold == 1.0 and not m.detach_reset for m in mixer.modules() if isinstance(m, TernaryIF))
    lifs = [m for m in model.modules() if isinstance(m, LIF)]
    assert lifs and all(m.tau == 2.0 and m.surrogate.name == "sigmoid" and m.detach_reset for m in lifs)
    vth = zoo.create_model("swformer_6_512.in1k", haar_vth=0.5, **TINY)
    assert {m.v_threshold for m in vth.modules() if isinstance(m, TernaryIF)} == {0.5}


def test_wavelet_branch_is_the_spiking_haar_transform_of_the_spikes():
    torch.manual_seed(0)
    mixer = FATM(8, 2, 1.0, "spatial", cached_haar=False).eval()
    x = torch.randn(2, 1, 8, 4, 4) * 2
    h = haar_matrix(4)
    seen = {}
    mixer.haar_forward.register_forward_hook(lambda m, a, out: seen.setdefault("fwd", out))
    with torch.no_grad():
        mixer(x)
        s = mixer.x_neuron(x)
        expected = h @ TernaryIF()(s @ h.T)
    torch.testing.assert_close(seen["fwd"], expected)


def test_conv_branches_are_shared_across_channel_blocks():
    mixer = FATM(16, 4, 1.0, "spatial", cached_haar=False)
    assert mixer.conv1.weight.shape == (4, 4, 1, 1) and mixer.conv2.weight.shape == (4, 4, 3, 3)
    x = torch.zeros(1, 1, 16, 4, 4)
    x[..., 4:8, :, :] = torch.randn(4, 4, 4)  # only the second channel block has input
    y = mixer._shared_conv(mixer.conv2, torch.nn.Identity(), x)
    reference = mixer.conv2(x[0, :, 4:8])
    torch.testing.assert_close(y[0, :, 4:8], reference)
    torch.testing.assert_close(y[0, :, :4], mixer.conv2(torch.zeros(1, 4, 4, 4)))  # bias only


@pytest.mark.parametrize("name, head", [("swformer_6_512.in1k", "spike"), ("swformer_4_384.cifar10", "mean"),
                                        ("swformer_2_256.dvs128", "per_step")])
def test_head_orders_follow_the_official_code(name, head):
    model = zoo.create_model(name, T=3, **TINY)
    assert model.head_order == head and (model.head_lif is not None) == (head == "spike")
    shape = (2, 3, 2, 32, 32) if "dvs" in name else (2, 3, 64, 64)
    x = torch.rand(shape)
    model = calibrate(model, x)
    with torch.no_grad():
        feats = model.features(zoo.core.time_major(x, 3, model.input_kind, model.in_channels))
        steps, mean = model(x, per_step=True), model(x)
    if head == "spike":
        want = model.head(model.head_lif(feats)).mean(0)
    elif head == "mean":
        want = model.head(feats.mean(0))
    else:
        want = model.head(feats).mean(0)
    assert steps.shape == (3, 2, model.num_classes)
    torch.testing.assert_close(mean, want, rtol=0, atol=0)


def test_eroded_mixer_feeds_the_convs_the_eroded_wavelet_output_only():
    torch.manual_seed(0)
    mixer = FATM(8, 2, 1.0, "eroded", cached_haar=False).eval()
    x = torch.randn(2, 1, 8, 4, 4) * 2
    with torch.no_grad():
        s = mixer.erode(mixer.x_neuron(x))
        src = mixer.erode(mixer._wavelet(s))
        want = (mixer._shared_conv(mixer.conv1, mixer.conv1_bn, src)
                + mixer._shared_conv(mixer.conv2, mixer.conv2_bn, src))
        torch.testing.assert_close(mixer(x), want)


def test_token_grid_must_be_a_power_of_two_with_a_one_line_error():
    model = zoo.create_model("swformer_6_512.in1k", T=1, **TINY)
    with pytest.raises(ValueError, match=r"power-of-two token grid.*14x14 from a 224x224 input.*use e.g. 256") as err:
        model(torch.randn(1, 3, 224, 224))
    assert "\n" not in str(err.value)


def test_cached_haar_matrix_rejects_a_new_resolution_only_with_the_quirk():
    official = zoo.create_model("swformer_4_384.cifar10", T=1, **TINY).eval()
    official(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="built for a 8x8 token grid"):
        official(torch.randn(1, 3, 64, 64))
    free = zoo.create_model("swformer_4_384.cifar10", T=1, official_quirks=False, **TINY).eval()
    free.load_state_dict(official.state_dict())
    free(torch.randn(1, 3, 32, 32))
    assert free(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    assert free(torch.randn(1, 3, 32, 64)).shape == (1, 10)  # non-square grids too


@pytest.mark.parametrize("name, shape", [("swformer_6_512.in1k", (2, 3, 32, 32)),
                                         ("swformer_2_256.cifar10dvs", (2, 2, 2, 32, 32))])
def test_forward_backward_reaches_every_parameter(name, shape):
    model = zoo.create_model(name, T=2, **TINY)
    assert_trains_every_parameter(model, torch.rand(shape))


@pytest.mark.parametrize("entry", sorted(REFERENCES))
def test_official_checkpoint_layout_loads_every_tensor(entry):
    assert None not in official_layout_loaded(REFERENCES[entry]).values()


@pytest.mark.parametrize("entry", sorted(REFERENCES))
def test_logits_and_gradients_reproduce_the_official_code(entry):
    """Seeded official weights: eval logits, train-mode logits and every gradient equal the official code's."""
    model = official_train_step_reproduced(REFERENCES[entry])
    assert all(p.grad is not None for p in model.parameters())


def test_bad_configurations_are_rejected():
    with pytest.raises(ValueError, match="not divisible by FL_blocks=3"):
        SWformer(dim=32, depths=1, num_classes=10, T=1, FL_blocks=3)
    with pytest.raises(ValueError, match="head order"):
        SWformer(dim=32, depths=1, num_classes=10, T=1, head="cls")
    with pytest.raises(ValueError, match="FATM variant"):
        SWformer(dim=32, depths=1, num_classes=10, T=1, variant="dilated")
