"""Recipes, input pipelines and mixing: every recipe validates, DVS augmentation is identical over T frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data.auto_augment import RandAugment

import zoo

from harness.data import build_dataset, mixup_fn, update_mixup_for_epoch
from harness.data.catalog import get_info
from harness.data.transforms import SNNAugmentWide, apply_geometric, dvs_transform, static_transform
from harness.recipe import DataRecipe, list_recipes, load_recipe

# every recipe a registered configuration names, the embedded-data ones, and the distillation stages (a suite entry
# picks those with `recipe:`, e.g. SDT v2's T=4 kd fine-tuning): no more, no fewer
DISTILLATION_STAGES = {name for name in list_recipes() if load_recipe(name).distill.type != "none"}
REQUIRED = {zoo.model_card(name).recipe for name in zoo.list_models()} | {"digits", "digits_dvs"} | DISTILLATION_STAGES
DVS_ONLY = ("dvs_hflip", "dvs_augment", "dvs_cutout", "dvs_resize", "dvs_channels")
STATIC_ONLY = ("randaugment", "random_erasing", "hflip", "random_resized_crop", "cutmix_alpha")


def test_exactly_the_required_recipes_exist_and_validate():
    assert set(list_recipes()) == REQUIRED
    for name in REQUIRED:
        recipe = load_recipe(name)
        assert recipe.name == name and recipe.source and len(recipe.description) > 40


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_recipe_fields_fit_the_data_kind(name):
    data = load_recipe(name).data
    defaults = DataRecipe()
    dvs = "dvs" in name
    forbidden = STATIC_ONLY if dvs else DVS_ONLY
    assert all(getattr(data, f) == getattr(defaults, f) for f in forbidden), f"{name} sets fields of the other data kind"
    if data.mix_off_epoch is not None:
        assert data.mixup_alpha > 0 and data.mix_off_epoch < load_recipe(name).optim.epochs


def test_spikformer_randaugment_uses_its_five_ops():
    recipe = load_recipe("spikformer_cifar").data
    pipeline = static_transform(get_info("cifar10"), recipe, train=True, native_size=32)
    ra = next(t for t in pipeline.transforms if isinstance(t, RandAugment))
    assert sorted(op.name for op in ra.ops) == ["Equalize", "Rotate", "ShearX", "TranslateXRel", "TranslateYRel"]
    full = static_transform(get_info("cifar10"), load_recipe("qkformer_cifar").data, train=True, native_size=32)
    assert len(next(t for t in full.transforms if isinstance(t, RandAugment)).ops) == 15


def test_eval_pipeline_resizes_and_centre_crops():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    recipe = load_recipe("sdt_in1k").data  # crop_pct 0.95: resize shorter side to 235, crop 224
    pipeline = static_transform(get_info("imagenet"), recipe, train=False, native_size=None)
    names = [type(t).__name__ for t in pipeline.transforms]
    assert names == ["Resize", "CenterCrop", "ToTensor", "Normalize"] and pipeline.transforms[0].size == 235
    assert pipeline(img).shape == (3, 224, 224)


def _clip_of_identical_frames(T: int = 5) -> torch.Tensor:
    torch.manual_seed(1)
    frame = (torch.rand(1, 2, 32, 32) > 0.7).float() * torch.randint(1, 5, (1, 2, 32, 32))
    return frame.repeat(T, 1, 1, 1)


def test_dvs_augmentation_is_identical_over_frames():
    recipe = DataRecipe(dvs_hflip=0.5, dvs_augment="snn_augment_wide", dvs_cutout=8)
    pipeline = dvs_transform(recipe, train=True)
    clip = _clip_of_identical_frames()
    changed = 0
    for seed in range(40):
        torch.manual_seed(seed)
        out = pipeline(clip)
        assert out.shape == clip.shape
        assert all(torch.equal(out[0], out[t]) for t in range(1, 5))
        changed += not torch.equal(out, clip)
    assert changed >= 35


def test_snn_augment_wide_ops():
    clip = _clip_of_identical_frames()
    shifted = apply_geometric(clip, "TranslateX", 3.0)
    assert torch.equal(shifted[..., 3:], clip[..., :-3]) and shifted[..., :3].abs().sum() == 0
    assert torch.equal(apply_geometric(clip, "Rotate", 0.0), clip)
    seen = set()
    aug = SNNAugmentWide()
    for seed in range(60):
        torch.manual_seed(seed)
        out = aug(clip)
        seen.add("identity" if torch.equal(out, clip) else "changed")
    assert seen == {"identity", "changed"}


def test_eval_dvs_pipeline_only_resizes():
    recipe = load_recipe("sdt_cifar10dvs").data
    clip = _clip_of_identical_frames()
    out = dvs_transform(recipe, train=False)(clip)
    assert out.shape == (5, 2, 64, 64) and not torch.equal(out.round(), out)  # antialiased: non-integer counts
    assert torch.equal(dvs_transform(load_recipe("qkformer_cifar10dvs").data, train=False)(clip), clip)


def test_mixup_from_recipe_and_switch_off():
    assert mixup_fn(load_recipe("sdt_dvs128").data, 11) is None
    recipe = load_recipe("qkformer_cifar10dvs").data
    mix = mixup_fn(recipe, 10, label_smoothing=0.1)
    assert (mix.mixup_alpha, mix.cutmix_alpha, mix.mix_prob, mix.label_smoothing) == (0.5, 0.0, 0.5, 0.1)
    x = torch.rand(4, 3, 2, 8, 8)  # a DVS batch [B, T, C, H, W]
    y = torch.tensor([0, 1, 2, 3])
    update_mixup_for_epoch(mix, recipe, 75)
    x_off, y_off = mix(x.clone(), y)
    assert torch.equal(x_off, x) and torch.allclose(y_off.sum(1), torch.ones(4))
    assert y_off[0, 0].item() == pytest.approx(0.9 + 0.01)  # smoothing stays on when mixing is off
    update_mixup_for_epoch(mix, recipe, 74)
    assert mix.mixup_enabled
    spikformer = mixup_fn(load_recipe("spikformer_in1k").data, 1000, 0.1)
    assert (spikformer.mixup_alpha, spikformer.cutmix_alpha, spikformer.switch_prob) == (0.8, 1.0, 0.5)


def test_digits_recipe_sets_the_input_size():
    recipe = load_recipe("digits").data
    assert build_dataset("digits", "train", recipe=recipe)[0][0].shape == (3, recipe.input_size, recipe.input_size)


@pytest.mark.parametrize("name,data", [
    ("digits", DataRecipe(input_size=16)), ("digits", DataRecipe()), ("digits_dvs", DataRecipe(input_size=16)),
    ("digits_dvs", DataRecipe(input_size=16, dvs_channels=3, dvs_resize=8)),
])
def test_model_input_shape_is_the_shape_a_built_sample_has(name, data):
    from harness.data import model_input_shape

    sample = build_dataset(name, "test", T=4, recipe=data)[0][0]
    assert tuple(sample.shape[-3:]) == model_input_shape(name, data)
