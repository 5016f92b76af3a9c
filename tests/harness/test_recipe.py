"""Recipes: the global batch kept at launch, paper-vs-code deviations, the paper's values in MSViT's recipes."""

import re

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


# a URL, or a file of the official code (a path with an extension: imagenet/train.py, event/cifar10dvs.yaml)
SOURCE_FILE = re.compile(r"https?://\S+|(?:[\w.-]+/)*[\w.-]+\.(?:py|ya?ml|md|sh|txt|json)\b")


@pytest.mark.parametrize("name", list_recipes())
def test_every_deviation_names_where_its_values_are_stated(name):
    """A deviation is checkable: its source names a URL or a file of the official code, never private notes."""
    for deviation in load_recipe(name).deviations:
        assert SOURCE_FILE.search(deviation.source), f"{name}: deviation {deviation.field}: {deviation.source!r}"
        assert "zoo-spec" not in deviation.source and "shared/" not in deviation.source


def test_a_deviation_source_without_a_file_is_caught():
    assert not SOURCE_FILE.search("lr = blr 6e-4 x global batch / 256 in both")
    assert SOURCE_FILE.search("paper Sec. 4; imagenet/train.py defaults") and SOURCE_FILE.search("https://x.org/a")


@pytest.mark.parametrize("name", ["sdtv2_in1k", "sdtv2_in1k_t4_kd", "sdtv3_in1k", "sdtv3_in1k_kd"])
def test_the_official_sdt_v2_v3_lamb_clips_its_trust_ratio_and_timms_default_stays_selectable(name):
    from harness.engine.optim import build_optimizer
    from harness.recipe import apply_overrides

    model = torch.nn.Linear(4, 2)
    recipe = load_recipe(name)
    assert recipe.optim.name == "lamb"
    assert build_optimizer(model, recipe.optim, 1e-3).defaults["trust_clip"] is True
    timm_default = apply_overrides(recipe, {"optim.lamb_trust_clip": False})
    assert build_optimizer(model, timm_default.optim, 1e-3).defaults["trust_clip"] is False
    assert timm_default.identity_json() != recipe.identity_json()


def test_a_field_added_later_leaves_the_identity_of_recipes_that_keep_its_default():
    from harness.recipe import apply_overrides

    plain = load_recipe("sdt_in1k")  # timm's LAMB default, as before the field existed
    assert "lamb_trust_clip" not in plain.identity_json()
    assert "lamb_trust_clip" in apply_overrides(plain, {"optim.lamb_trust_clip": True}).identity_json()


@pytest.mark.parametrize("name", [n for n in list_recipes() if n.startswith("spikingresformer_")])
def test_spikingresformer_steps_its_cosine_once_per_epoch_as_its_main_py(name):
    """main.py steps timm's cosine scheduler after each epoch (lr_scheduler.step(epoch + 1)): one rate per
    epoch, the cosine counting from epoch 0; per-step stepping stays selectable."""
    from timm.scheduler import CosineLRScheduler

    from harness.engine.optim import LRSchedule

    optim = load_recipe(name).optim
    assert optim.lr_step == "epoch" and optim.cooldown_epochs == 0
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=optim.lr)
    official = CosineLRScheduler(opt, t_initial=optim.epochs, lr_min=optim.min_lr, warmup_lr_init=optim.warmup_lr,
                                 warmup_t=int(optim.warmup_epochs))
    ours = LRSchedule.from_recipe(optim, optim.lr, steps_per_epoch=2)
    for epoch in range(optim.epochs):
        expected = opt.param_groups[0]["lr"]
        assert [ours(2 * epoch), ours(2 * epoch + 1)] == pytest.approx([expected, expected], rel=1e-12)
        official.step(epoch + 1)


@pytest.mark.parametrize("name, batch", [("msvit_in1k", 4), ("msvit_cifar", 64)])
def test_batch_dependent_msvit_evaluates_at_its_official_eval_batch(name, batch):
    """MSViT's SSA neuron couples the samples of a batch: it is evaluated at the batch its official scripts
    use (imagenet/train.py: 4 per GPU; cifar10.yml / cifar100.yml: val_batch_size 64), not its training batch."""
    train = load_recipe(name).train
    assert train.eval_batch_size == batch != train.batch_size


@pytest.mark.parametrize("name", ["swformer_cifar10dvs", "swformer_dvs128"])
def test_swformer_dvs_averages_the_per_step_cross_entropies_as_its_train_py(name):
    """event/train.py applies SoftTargetCrossEntropy to the per-step logits [T, N, K]: the mean over steps of each
    step's cross-entropy (TET with lambda 0), not the cross-entropy of the time-averaged logits."""
    from harness.engine.loss import TrainLoss

    loss = TrainLoss(load_recipe(name).train)
    assert loss.per_step
    logits = torch.randn(4, 3, 10, generator=torch.Generator().manual_seed(0))
    soft = torch.softmax(torch.randn(3, 10, generator=torch.Generator().manual_seed(1)), dim=-1)
    per_step = torch.sum(-soft * torch.log_softmax(logits, dim=-1), dim=-1).mean()
    assert float(loss(logits, soft)) == pytest.approx(float(per_step), rel=1e-6)
    averaged = torch.sum(-soft * torch.log_softmax(logits.mean(0), dim=-1), dim=-1).mean()
    assert float(per_step) != pytest.approx(float(averaged), rel=1e-3)
