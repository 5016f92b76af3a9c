"""QKFormer: registered configurations, exact official parameter counts, forward/backward, the SSA quirk switch,
official state_dict import, and the official code's logits reproduced.

Official fingerprints (tests/zoo/data/official_keys_qkformer_msvit.json, no official code needed here): the
official model files (zhouchenlin2096/QKFormer@c2a00e8; CIFAR10, CIFAR100, CIFAR10-DVS, DVS128-Gesture, ImageNet
10-384) were instantiated outside this repository (spikingjelly backend 'torch', float64), given
``official_reference.seeded_state`` of their own state_dict layout, BN-``calibrate``d on ``seeded_input`` and run in
eval mode on that input (batch 2, small T and images); their layouts and ``fingerprint``s are stored per
configuration. ``test_logits_reproduce_the_official_code`` repeats this through ``zoo.load_official_state_dict``.
Procedure and regeneration command: benchmarks/RESULTS.md ("CI fixture").
"""

import pytest
import torch

import zoo
from official_reference import load_references, official_logits_reproduced
from zoo.models.qkformer import QKFormer, SpikingSelfAttention, TokenAttention

# sum(p.numel()) of the official models (zoo-spec.md section 2, re-measured by instantiating the official code)
QKFORMER_PARAMS = {
    "qkformer_4_384.cifar10": 6_706_234,
    "qkformer_4_384.cifar100": 6_740_884,
    "qkformer_2_256.cifar10dvs": 1_504_138,
    "qkformer_2_256.dvs128": 1_999_371,
    "qkformer_10_384.in1k": 16_473_688,
    "qkformer_10_512.in1k": 29_079_336,
    "qkformer_10_768.in1k": 64_962_760,
}
RECIPES = {"qkformer_cifar", "qkformer_cifar10dvs", "qkformer_dvs128", "qkformer_in1k", "qkformer_in1k_768"}
REFERENCES = {k: v for k, v in load_references().items() if k.startswith("qkformer")}
OFFICIAL_LAYOUTS = {spec["zoo"]: spec["keys"] for spec in REFERENCES.values()}  # zoo name -> official layout


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sample_input(model, batch: int = 2, size: int = 32) -> torch.Tensor:
    """Images for static configs, small non-negative integer event counts for DVS configs."""
    gen = torch.Generator().manual_seed(1)
    if model.input_kind == "dvs":
        return torch.randint(0, 3, (batch, model.T, model.in_channels, size, size), generator=gen).float()
    return torch.randn(batch, model.in_channels, size, size, generator=gen)


def make_lively(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random BN affine/statistics: about a fifth of the neurons fire in eval mode (default init is near-silent)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            c = m.num_features
            m.weight.data = 1.0 + 2.0 * torch.rand(c, generator=gen)
            m.bias.data = 0.5 * torch.randn(c, generator=gen) + 0.5
            m.running_mean.data = 0.1 * torch.randn(c, generator=gen)
            m.running_var.data = 0.3 + 0.7 * torch.rand(c, generator=gen)
    return model.eval()


def test_registry_lists_exactly_the_qkformer_configs():
    assert zoo.list_models("qkformer*") == sorted(QKFORMER_PARAMS)


@pytest.mark.parametrize("name", sorted(QKFORMER_PARAMS))
def test_parameter_count_equals_the_official_code(name):
    model = zoo.create_model(name)
    assert n_params(model) == QKFORMER_PARAMS[name] == model.card.code_params


@pytest.mark.parametrize("name", sorted(QKFORMER_PARAMS))
def test_card_describes_the_built_model(name):
    model = zoo.create_model(name)
    card = model.card
    assert card.family == "qkformer" and card.recipe in RECIPES
    assert (card.T, card.num_classes) == (model.T, model.num_classes)
    assert card.input_shape[0] == model.in_channels
    assert card.official_code.startswith("zhouchenlin2096/QKFormer@")
    assert card.claimed_params_m is not None and card.claimed_top1 is not None
    assert card.table in ("table1_imagenet", "table2_small")


@pytest.mark.parametrize("name,size", [("qkformer_4_384.cifar10", 32), ("qkformer_2_256.dvs128", 32),
                                       ("qkformer_10_384.in1k", 32)])
def test_forward_backward_reaches_every_parameter(name, size):
    model = zoo.create_model(name)
    x = sample_input(model, size=size)
    logits = model(x)
    assert logits.shape == (2, model.num_classes) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters outside the forward pass: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.stages[0][0].attn.q.conv_bn[0].weight.grad.abs().sum() > 0


def test_per_step_logits_average_to_the_logits():
    model = zoo.create_model("qkformer_2_256.cifar10dvs", T=4).eval()
    x = sample_input(model, size=32)
    with torch.no_grad():
        steps = model(x, per_step=True)
        assert steps.shape == (4, 2, 10)
        torch.testing.assert_close(steps.mean(0), model(x), rtol=0, atol=1e-6)


def test_build_and_forward_are_deterministic():
    torch.manual_seed(3)
    first = zoo.create_model("qkformer_4_384.cifar10")
    torch.manual_seed(3)
    second = zoo.create_model("qkformer_4_384.cifar10")
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), key
    x = sample_input(first)
    assert torch.equal(first(x), first(x))


def test_wrong_input_shapes_name_the_expected_shape():
    static = zoo.create_model("qkformer_4_384.cifar10")
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        static(torch.zeros(2, 3, 32))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        static(torch.zeros(2, 1, 32, 32))
    dvs = zoo.create_model("qkformer_2_256.dvs128")
    with pytest.raises(ValueError, match=r"T=16, 2, H, W"):
        dvs(torch.zeros(2, 8, 2, 32, 32))
    with pytest.raises(ValueError, match="heads"):
        QKFormer(widths=(96, 192, 384), heads=7)


def test_ssa_projection_quirk_couples_the_samples_of_a_batch():
    torch.manual_seed(0)
    quirky = make_lively(SpikingSelfAttention(64, 8, proj_over_tb=True))
    fixed = SpikingSelfAttention(64, 8, proj_over_tb=False).eval()
    fixed.load_state_dict(quirky.state_dict())
    x = torch.randint(0, 3, (4, 4, 64, 4, 4)).float()  # [T, B, C, H, W]
    with torch.no_grad():
        assert not torch.equal(quirky(x[:, -1:]), quirky(x)[:, -1:])
        assert torch.equal(fixed(x[:, -1:]), fixed(x)[:, -1:])
        assert fixed(x).mean() > 0.05


def test_model_output_depends_on_batch_company_only_with_the_quirk():
    quirky = make_lively(zoo.create_model("qkformer_2_256.cifar10dvs", T=4))
    fixed = make_lively(zoo.create_model("qkformer_2_256.cifar10dvs", T=4, official_quirks=False))
    fixed.load_state_dict(quirky.state_dict())
    x = sample_input(quirky, batch=3, size=32)
    with torch.no_grad():
        assert (quirky(x[-1:]) - quirky(x)[-1:]).abs().max() > 1e-3
        torch.testing.assert_close(fixed(x[-1:]), fixed(x)[-1:], rtol=0, atol=1e-5)


def test_quirk_flags_resolve_from_official_quirks_unless_given():
    def ssa_flags(model):
        return {m.proj_over_tb for m in model.modules() if isinstance(m, SpikingSelfAttention)}

    assert ssa_flags(zoo.create_model("qkformer_4_384.cifar10")) == {True}
    assert ssa_flags(zoo.create_model("qkformer_4_384.cifar10", official_quirks=False)) == {False}
    assert ssa_flags(zoo.create_model("qkformer_4_384.cifar10", official_quirks=False, ssa_proj_over_tb=True)) == {True}
    thresholds = {m.attn_lif.v_threshold for m in zoo.create_model("qkformer_4_384.cifar10").modules()
                  if isinstance(m, (TokenAttention, SpikingSelfAttention))}
    assert thresholds == {0.5}


def official_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Random tensors under the official keys and shapes of ``name``."""
    gen = torch.Generator().manual_seed(0)
    return {key: torch.tensor(5) if key.endswith("num_batches_tracked") else torch.randn(shape, generator=gen)
            for key, shape in OFFICIAL_LAYOUTS[name].items()}


@pytest.mark.parametrize("name", sorted(OFFICIAL_LAYOUTS))
def test_official_state_dict_fills_every_tensor(name):
    official = official_state_dict(name)
    model = zoo.load_official_state_dict(zoo.create_model(name), official)
    key_map = model.official_key_map(list(official))
    ours = model.state_dict()
    assert len(key_map) == len(official) == len(ours) and set(key_map.values()) == set(ours)
    for key, value in official.items():
        assert torch.equal(ours[key_map[key]], value.to(ours[key_map[key]].dtype)), key


@pytest.mark.parametrize("name,official_key,our_key", [
    ("qkformer_4_384.cifar10", "stage3.1.ssa.v_conv.weight", "stages.2.1.attn.v.conv_bn.0.weight"),
    ("qkformer_4_384.cifar10", "stage1.0.tssa.proj_bn.running_var", "stages.0.0.attn.proj.conv_bn.1.running_var"),
    ("qkformer_4_384.cifar10", "patch_embed2.proj4_conv.weight", "embeds.1.layers.1.conv_bn.0.weight"),
    ("qkformer_2_256.cifar10dvs", "patch_embed1.proj3_bn.bias", "embeds.0.layers.3.conv_bn.1.bias"),
    ("qkformer_2_256.cifar10dvs", "patch_embed2.proj_conv.weight", "embeds.1.layers.0.conv_bn.0.weight"),
    ("qkformer_10_384.in1k", "stage3.6.attn.q_bn.weight", "stages.2.6.attn.q.conv_bn.1.weight"),
    ("qkformer_10_384.in1k", "stage2.1.mlp.fc2_conv.bias", "stages.1.1.mlp.fc2.conv_bn.0.bias"),
    ("qkformer_10_384.in1k", "patch_embed1.proj_res_conv.weight", "embeds.0.shortcut.conv_bn.0.weight"),
])
def test_official_keys_land_on_the_matching_module(name, official_key, our_key):
    model = zoo.create_model(name)
    assert model.official_key_map(list(OFFICIAL_LAYOUTS[name]))[official_key] == our_key


@pytest.mark.parametrize("entry", sorted(REFERENCES))
def test_logits_reproduce_the_official_code(entry):
    """Seeded weights in the official layout give the official code's eval logits (to 1e-4)."""
    logits = official_logits_reproduced(REFERENCES[entry])
    assert torch.isfinite(logits).all()


def test_official_import_rejects_missing_extra_and_misshapen_tensors():
    name = "qkformer_4_384.cifar10"
    model = zoo.create_model(name)
    missing = official_state_dict(name)
    del missing["stage3.0.ssa.k_conv.weight"]
    with pytest.raises(ValueError, match="does not provide.*stages.2.0.attn.k.conv_bn.0.weight"):
        zoo.load_official_state_dict(model, missing)
    extra = official_state_dict(name) | {"stage3.0.ssa.pos_embed": torch.zeros(3)}
    with pytest.raises(ValueError, match="no place in the model.*pos_embed"):
        zoo.load_official_state_dict(model, extra)
    wrong = official_state_dict(name) | {"head.weight": torch.zeros(100, 384)}
    with pytest.raises(ValueError, match=r"head.weight.*\(100, 384\)"):
        zoo.load_official_state_dict(model, wrong)
