"""SGLFormer: registered configs at the official counts, local/global stages, STB head, quirks, official import."""

import pytest
import torch
from torch import nn

import zoo
from model_checks import assert_trains_every_parameter
from harness.audit import audit_batches
from harness.recipe import list_recipes, load_recipe
from official_reference import (DATA_DIR, built_at_official_count, calibrate, load_references, official_layout_loaded,
                                official_train_step_reproduced)
from zoo.models.sglformer import ConvSSA, LocalStage, SGLFormer, integrate, partition
from zoo.models.spikformer import merge_heads

# Parameters of the official builders as the training scripts call them (ZhangHanN1/SGLFormer@4821b13, on CPU),
# without the ImageNet blocks' LayerNorms, which the forward pass never uses (official totals: 16,248,856,
# 28,671,016 and 64,024,648).
OFFICIAL_PARAMS = {
    "sglformer_4_384.cifar10": 8_852_874,
    "sglformer_4_384.cifar100": 8_887_524,
    "sglformer_3_256.cifar10dvs": 4_066_130,
    "sglformer_3_256_t16.cifar10dvs": 4_164_434,
    "sglformer_3_256.dvs128": 4_066_387,
    "sglformer_3_256_t16.dvs128": 4_164_691,
    "sglformer_8_384.in1k": 16_239_640,
    "sglformer_8_512.in1k": 28_658_728,
    "sglformer_8_512star.in1k": 28_658_728,
    "sglformer_8_768star.in1k": 64_006_216,
}
REFERENCES = load_references(DATA_DIR / "official_keys_sglformer.json")
TINY = dict(dim=48, heads=4)


class Zero(nn.Module):
    """A sub-layer that contributes nothing (isolates one residual of a stage)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def test_registered_names_are_exactly_the_sglformer_configs():
    assert zoo.list_models("sglformer*") == sorted(OFFICIAL_PARAMS)


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_parameter_count_matches_official_code(name):
    model = built_at_official_count(name, OFFICIAL_PARAMS[name])
    card = model.card
    assert card.family == "sglformer" and card.claimed_params_m and card.claimed_top1
    assert "interleaved_windows" in card.notes and "double_residual" in card.notes


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_every_config_has_its_official_recipe(name):
    card = zoo.model_card(name)
    assert card.recipe in list_recipes()
    recipe = load_recipe(card.recipe)
    assert "ZhangHanN1/SGLFormer@4821b13" in recipe.source
    assert recipe.train.loss == "ce"  # the STB head has no per-step logits
    dvs = card.dataset in ("cifar10dvs", "dvs128")
    assert recipe.data.input_size == (None if dvs else card.input_shape[-1])


def test_stb_kernel_spans_the_token_grid_and_time():
    assert zoo.create_model("sglformer_3_256_t16.dvs128").stb_conv.weight.shape == (256, 1, 64, 16)
    assert zoo.create_model("sglformer_4_384.cifar10", T=2, **TINY).stb_conv.weight.shape == (48, 1, 64, 2)
    assert zoo.create_model("sglformer_4_384.cifar10", img_size=16, **TINY).stb_conv.weight.shape == (48, 1, 16, 4)


def test_interleaved_partition_groups_tokens_by_position_modulo_two():
    x = torch.arange(16.0).reshape(1, 1, 1, 4, 4)
    groups = partition(x, 2, interleaved=True)
    assert groups[0, :, 0].tolist() == [[[0, 2], [8, 10]], [[1, 3], [9, 11]], [[4, 6], [12, 14]], [[5, 7], [13, 15]]]
    windows = partition(x, 2, interleaved=False)
    assert windows[0, :, 0].tolist() == [[[0, 1], [4, 5]], [[2, 3], [6, 7]], [[8, 9], [12, 13]], [[10, 11], [14, 15]]]
    y = torch.randn(2, 3, 5, 6, 8)
    for interleaved in (True, False):
        assert torch.equal(integrate(partition(y, 2, interleaved), 2, interleaved, y.shape), y)


@pytest.mark.parametrize("interleaved", [True, False])
def test_local_attention_mixes_tokens_only_within_their_group(interleaved):
    torch.manual_seed(0)
    attn = ConvSSA(8, 2, window=2, interleaved=interleaved).eval()
    for unit in (attn.q, attn.k, attn.v):
        unit.lif.v_threshold = 0.05  # most tokens fire, so every attention score is non-zero
    products = []
    attn.attn_lif.register_forward_hook(lambda m, args, out: products.append(args[0]))
    x = torch.rand(1, 1, 8, 4, 4) * 3
    moved = x.clone()
    moved[..., 0, 0] += 5.0  # one token of the group holding position (0, 0)
    with torch.no_grad():
        attn(x), attn(moved)
    grids = [integrate(merge_heads(p, (1, 4, 8, 2, 2)), 2, interleaved, x.shape) for p in products]
    changed = (grids[0] != grids[1]).any(2)[0, 0]  # [4, 4]: token positions whose attention output changed
    same_group = torch.zeros(4, 4, dtype=torch.bool)
    if interleaved:
        same_group[0::2, 0::2] = True
    else:
        same_group[:2, :2] = True
    assert changed[same_group].all() and not changed[~same_group].any()


@pytest.mark.parametrize("doubled", [True, False])
def test_local_stage_adds_the_conv_block_input_twice_only_with_the_quirk(doubled):
    torch.manual_seed(0)
    stage = LocalStage(8, 2, 4, interleaved=True, double_residual=doubled).eval()
    stage.attn, stage.mlp = Zero(), Zero()
    x = torch.rand(2, 1, 8, 4, 4)
    with torch.no_grad():
        local = stage.local(x)
        torch.testing.assert_close(stage(x), local + x if doubled else local, rtol=0, atol=0)
    quirky, free = zoo.create_model("sglformer_4_384.cifar10", **TINY), zoo.create_model(
        "sglformer_4_384.cifar10", official_quirks=False, **TINY)
    assert (quirky.blocks[0].double_residual, quirky.blocks[0].attn.interleaved) == (True, True)
    assert (free.blocks[0].double_residual, free.blocks[0].attn.interleaved) == (False, False)
    mixed = zoo.create_model("sglformer_4_384.cifar10", official_quirks=False, double_residual=True, **TINY)
    assert (mixed.blocks[0].double_residual, mixed.blocks[0].attn.interleaved) == (True, False)


def test_stb_head_is_a_depthwise_conv_over_tokens_and_time_then_bn_and_linear():
    model = zoo.create_model("sglformer_4_384.cifar10", T=3, **TINY)
    x = torch.rand(2, 3, 32, 32)
    model = calibrate(model, x)
    with torch.no_grad():
        feats = model.features(zoo.core.time_major(x, 3, "static", 3))  # [T, B, C, 8, 8]
        weights = model.stb_conv.weight[:, 0]  # [C, 64 tokens, T]
        mixed = torch.einsum("tbcn,cnt->bc", feats.flatten(3), weights) + model.stb_conv.bias
        want = model.head(model.stb_bn(mixed[..., None, None]).flatten(1))
        torch.testing.assert_close(model(x), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="no per-step logits"):
        model(x, per_step=True)


def test_a_resolution_the_stb_head_was_not_built_for_is_a_one_line_error():
    model = zoo.create_model("sglformer_4_384.cifar10", T=1, **TINY)
    with pytest.raises(ValueError, match=r"8x8 token grid \(32x32 input\), got 4x4 from a 16x16 input") as err:
        model(torch.rand(1, 3, 16, 16))
    assert "\n" not in str(err.value)
    resized = zoo.create_model("sglformer_4_384.cifar10", T=1, img_size=16, **TINY).eval()
    assert resized(torch.rand(1, 3, 16, 16)).shape == (1, 10)


def test_imagenet_head_averages_over_time_before_the_linear():
    model = zoo.create_model("sglformer_8_512.in1k", T=2, dim=32, heads=2, depths=3)
    assert [type(b).__name__ for b in model.blocks] == ["LocalStage", "TokenBlock"]
    x = torch.rand(2, 3, 32, 32)
    model = calibrate(model, x)
    with torch.no_grad():
        pooled = model.features(zoo.core.time_major(x, 2, "static", 3)).flatten(3).mean(3)
        torch.testing.assert_close(model(x), model.head(pooled.mean(0)), rtol=0, atol=0)
        torch.testing.assert_close(model(x, per_step=True), model.head(pooled), rtol=0, atol=0)


def _active(name: str, **overrides) -> nn.Module:
    """A shrunk model whose BatchNorms let spikes reach the last stage (random init is nearly silent)."""
    torch.manual_seed(0)
    model = zoo.create_model(name, T=2, **TINY, **overrides)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.weight.data.uniform_(0.5, 8.0)
            module.bias.data.uniform_(0.2, 1.2)
    return model


@pytest.mark.parametrize("name, overrides, dependent", [
    ("sglformer_8_512.in1k", dict(depths=3), True),  # ima2: the stem's first LIF and the SSA proj over T*B
    ("sglformer_8_512.in1k", dict(depths=3, ssa_proj_over_tb=False), True),  # the stem's alone
    ("sglformer_8_512.in1k", dict(depths=3, stem_lif_over_tb=False), True),  # the SSA proj's alone
    ("sglformer_8_768star.in1k", dict(depths=3), True),  # ima stem: the SSA proj only
    ("sglformer_4_384.cifar10", {}, False),
])
def test_batch_dependence_comes_from_the_t_b_neurons_and_goes_with_the_quirks(name, overrides, dependent):
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    official = audit_batches(_active(name, **overrides), images, batches=(1, 4))
    paper = audit_batches(_active(name, official_quirks=False), images, batches=(1, 4))
    # without a T*B neuron, batches of 1 and 4 differ by float32 rounding at most (kernels chosen by batch size)
    assert official["batch_dependent"] is dependent and (official["max_logit_diff"] > 1e-3) is dependent
    assert paper["batch_dependent"] is False and paper["max_logit_diff"] < 1e-5


@pytest.mark.parametrize("name, overrides, shape", [
    ("sglformer_4_384.cifar100", dict(img_size=16), (2, 3, 16, 16)),
    ("sglformer_3_256.dvs128", dict(img_size=32, T=2), (2, 2, 2, 32, 32)),
    ("sglformer_8_768star.in1k", dict(depths=3, T=2), (2, 3, 32, 32)),
])
def test_forward_backward_reaches_every_parameter(name, overrides, shape):
    model = zoo.create_model(name, **TINY, **overrides)
    assert_trains_every_parameter(model, torch.rand(shape))


@pytest.mark.parametrize("entry", sorted(REFERENCES))
def test_official_checkpoint_layout_loads_every_tensor(entry):
    key_map = official_layout_loaded(REFERENCES[entry], wrap=lambda state: {"model": state})
    dropped = sorted(k for k, v in key_map.items() if v is None)
    assert all(".norm1." in k or ".norm2." in k for k in dropped)
    assert bool(dropped) == REFERENCES[entry]["zoo"].endswith(".in1k")


@pytest.mark.parametrize("entry", sorted(REFERENCES))
def test_logits_and_gradients_reproduce_the_official_code(entry):
    """Seeded official weights: eval logits, train-mode logits and every gradient equal the official code's."""
    model = official_train_step_reproduced(REFERENCES[entry])
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("quirk, entry", [
    ("interleaved_windows", "sglformer_cifar100_t2"), ("interleaved_windows", "sglformer_ima_96_d3"),
    ("double_residual", "sglformer_dvs128_t4_64"), ("double_residual", "sglformer_ima2_64_d4"),
    ("ssa_proj_over_tb", "sglformer_ima2_64_d4"), ("stem_lif_over_tb", "sglformer_ima2_64_d4"),
])
def test_the_official_fingerprint_tells_each_quirk_from_the_paper_variant(quirk, entry):
    spec = REFERENCES[entry]
    with pytest.raises(AssertionError):
        official_train_step_reproduced({**spec, "overrides": {**spec["overrides"], quirk: False}})


def test_bad_configurations_are_rejected():
    with pytest.raises(ValueError, match="arch 'vit'"):
        SGLFormer(dim=48, depths=1, heads=4, num_classes=10, T=1, arch="vit")
    with pytest.raises(ValueError, match="needs depths >= 2"):
        SGLFormer(dim=48, depths=1, heads=4, num_classes=10, T=1, arch="imagenet")
    with pytest.raises(ValueError, match="not divisible by 5 heads"):
        SGLFormer(dim=48, depths=1, heads=5, num_classes=10, T=1)
    with pytest.raises(ValueError, match="stem 'ima3'"):
        SGLFormer(dim=48, depths=1, heads=4, num_classes=10, T=1, stem="ima3")
