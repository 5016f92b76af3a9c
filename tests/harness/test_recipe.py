"""Recipes: the global batch kept at launch, paper-vs-code deviations, the paper's values in MSViT's recipes."""

import pytest
import torch

from harness.data.transforms import dvs_transform
from harness.engine.optim import scaled_lr
import yaml

from harness.configfile import load_yaml
from harness.recipe import DataRecipe, Recipe, TrainRecipe, accumulation_steps, list_recipes, load_recipe


def parse_recipe(raw: dict, tmp_path) -> Recipe:
    """A recipe file with ``raw`` content, read as the harness reads recipes."""
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_yaml(path, Recipe, "recipe")


def test_accumulation_keeps_the_global_batch_on_any_device_count():
    train = TrainRecipe(batch_size=32, global_batch=512)
    assert [accumulation_steps(train, n) for n in (1, 2, 8, 16)] == [16, 8, 2, 1]
    with pytest.raises(ValueError, match=r"train.global_batch 512 is not divisible by train.batch_size 32 x 3 "
                                         r"devices = 96") as err:
        accumulation_steps(train, 3)
    assert "\n" not in str(err.value)
    assert accumulation_steps(TrainRecipe(batch_size=32, accum_steps=3), 8) == 3  # no global batch: as given


def test_global_batch_and_accum_steps_exclude_each_other_and_must_fit_the_batch(tmp_path):
    base = {"name": "r", "description": "d", "source": "s"}
    with pytest.raises(ValueError, match="train.global_batch.*or train.accum_steps"):
        parse_recipe({**base, "train": {"global_batch": 64, "accum_steps": 2}}, tmp_path)
    with pytest.raises(ValueError, match="r.yaml: line 5: field train: .*not a multiple of train.batch_size 48"):
        parse_recipe({**base, "train": {"global_batch": 64, "batch_size": 48}}, tmp_path)


def test_a_deviation_must_name_the_value_the_recipe_uses(tmp_path):
    base = {"name": "r", "description": "d", "source": "s", "train": {"batch_size": 64}}
    deviation = {"field": "train.batch_size", "paper": 128, "code": 64, "chosen": "paper", "source": "x"}
    with pytest.raises(ValueError, match="train.batch_size chooses the paper's value 128 but the recipe has 64"):
        parse_recipe({**base, "deviations": [deviation]}, tmp_path)
    assert parse_recipe({**base, "deviations": [{**deviation, "chosen": "code"}]}, tmp_path).deviations[0].code == 64
    with pytest.raises(ValueError, match="deviations.0.chosen"):
        parse_recipe({**base, "deviations": [{**deviation, "chosen": "both"}]}, tmp_path)


def test_every_shipped_deviation_names_both_values_and_its_source():
    recorded = {name: load_recipe(name).deviations for name in list_recipes()}
    assert all(d.source and d.paper != d.code for ds in recorded.values() for d in ds)
    assert {d.field for d in recorded["msvit_in1k"]} == {"train.global_batch", "peak_lr"}


def test_msvit_imagenet_trains_at_the_papers_global_batch_and_lr():
    recipe = load_recipe("msvit_in1k")
    train = recipe.train
    for devices in (1, 8):
        effective = train.batch_size * accumulation_steps(train, devices) * devices
        assert effective == 512 and scaled_lr(recipe.optim, effective) == pytest.approx(1.2e-3)
    assert accumulation_steps(train, 8) == 2
    peak = next(d for d in recipe.deviations if d.field == "peak_lr")
    assert (peak.paper, peak.code, peak.chosen) == (1.2e-3, pytest.approx(6e-4 * 96 / 256), "paper")


def test_msvit_cifar_batch_128_and_dvs_three_channels_follow_the_paper():
    assert load_recipe("msvit_cifar").train.global_batch == 128
    for name in ("msvit_dvs128", "msvit_cifar10dvs"):
        recipe = load_recipe(name)
        assert recipe.data.dvs_channels == 3
        assert [(d.field, d.chosen) for d in recipe.deviations] == [("data.dvs_channels", "paper")]


def test_three_channel_event_input_adds_the_polarity_sum_after_augmentation():
    clip = torch.randint(0, 5, (4, 2, 8, 8)).float()
    torch.manual_seed(0)
    two = dvs_transform(DataRecipe(dvs_hflip=1.0), train=True)(clip)
    three = dvs_transform(DataRecipe(dvs_hflip=1.0, dvs_channels=3), train=True)(clip)
    assert three.shape == (4, 3, 8, 8) and torch.equal(three[:, :2], two) and torch.equal(three[:, 2], two.sum(1))
