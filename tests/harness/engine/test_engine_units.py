"""Engine parts: schedule, optimizers, losses, data order, checkpoints, distributed env, provenance."""

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.engine.checkpoint import CheckpointStore, rng_state, set_rng_state
from harness.engine.data import EpochSampler, SeededSamples, seeded_subset
from harness.engine.distributed import fill_env_from_slurm, first_host, slurm_env
from harness.engine.loss import TrainLoss
from harness.engine.optim import LRSchedule, build_optimizer, param_groups, scaled_lr
from harness.engine.provenance import code_fingerprint, provenance
from harness.engine.spec import TrainSpec
from harness.recipe import OptimRecipe, Recipe, TrainRecipe, list_recipes, load_recipe


def test_schedule_warms_up_linearly_then_follows_a_half_cosine_then_holds_min_lr():
    optim = OptimRecipe(lr=1.0, warmup_epochs=2, warmup_lr=0.1, min_lr=0.01, epochs=10, cooldown_epochs=3)
    lr = LRSchedule.from_recipe(optim, peak=1.0, steps_per_epoch=5)
    assert lr(0) == 0.1
    assert lr(5) == pytest.approx(0.1 + 0.9 * 5 / 10)
    assert lr(10) == 1.0
    assert lr(30) == pytest.approx(0.01 + 0.99 * 0.5)  # half-way through the cosine part (steps 10..50)
    assert lr(49) > lr(50) == 0.01
    assert lr(64) == 0.01  # cooldown
    assert all(lr(s) >= lr(s + 1) for s in range(10, 64))


def _per_epoch(schedule: LRSchedule, epochs: int) -> list[float]:
    return [schedule(e * schedule.steps_per_epoch) for e in range(epochs)]


def test_per_epoch_schedule_is_timms_cosine_scheduler_epoch_by_epoch():
    from timm.scheduler import CosineLRScheduler

    optim = load_recipe("msvit_cifar").optim
    assert optim.lr_step == "epoch" and (optim.epochs, optim.warmup_epochs, optim.cooldown_epochs) == (400, 20, 10)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=optim.lr)
    timm_sched = CosineLRScheduler(opt, t_initial=optim.epochs, lr_min=optim.min_lr, warmup_lr_init=optim.warmup_lr,
                                   warmup_t=int(optim.warmup_epochs))
    ours = LRSchedule.from_recipe(optim, optim.lr, steps_per_epoch=3)
    for epoch in range(optim.epochs + optim.cooldown_epochs):
        timm_sched.step(epoch)
        assert [ours(3 * epoch + i) for i in range(3)] == pytest.approx([opt.param_groups[0]["lr"]] * 3, rel=1e-12)


def test_a_reduced_budget_scales_warmup_and_cooldown_and_ends_at_the_final_lr():
    # 400 epochs + 10 cooldown, warmup 20, stepped per epoch, run for 5: 4 main (warmup 20*5/410 -> 0) + 1 cooldown
    optim = TrainSpec(model="m", dataset="cifar10", recipe="msvit_cifar", epochs=5).resolved_recipe().optim
    assert (optim.epochs, optim.warmup_epochs, optim.cooldown_epochs) == (4, 0, 1)
    peak, low = optim.lr, optim.min_lr
    lrs = _per_epoch(LRSchedule.from_recipe(optim, peak, steps_per_epoch=7), 5)
    cosine = [low + (peak - low) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert lrs == pytest.approx(cosine + [low], rel=1e-12) and lrs[0] == peak
    # 41 epochs (a tenth): warmup 2, 40 main, 1 cooldown; the rate rises, then falls to min_lr
    optim = TrainSpec(model="m", dataset="cifar10", recipe="msvit_cifar", epochs=41).resolved_recipe().optim
    assert (optim.epochs, optim.warmup_epochs, optim.cooldown_epochs) == (40, 2, 1)
    lrs = _per_epoch(LRSchedule.from_recipe(optim, peak, steps_per_epoch=1), 41)
    assert lrs[:3] == pytest.approx([optim.warmup_lr, (optim.warmup_lr + peak) / 2,
                                     low + (peak - low) * (1 + math.cos(math.pi * 2 / 40)) / 2])
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:40])) and lrs[40] == low


@pytest.mark.parametrize("epochs", [2, 3, 7])
@pytest.mark.parametrize("recipe", list_recipes())
def test_every_recipe_scaled_to_a_reduced_budget_ends_at_min_lr(recipe, epochs):
    """Per-step and per-epoch recipes, with or without cooldown: the last step of a reduced run is at min_lr."""
    spec = TrainSpec(model="m", dataset="cifar10", recipe=recipe, epochs=epochs)
    optim = spec.resolved_recipe().optim
    assert spec.reduced_budget() and optim.epochs + optim.cooldown_epochs == epochs
    schedule = LRSchedule.from_recipe(optim, optim.lr, steps_per_epoch=5, ends_at_min=spec.reduced_budget())
    assert schedule(5 * epochs - 1) == optim.min_lr
    assert max(schedule(s) for s in range(5 * epochs)) > optim.min_lr


@pytest.mark.parametrize("lr_step", ["step", "epoch"])
def test_without_cooldown_only_a_reduced_budget_ends_the_cosine_early(lr_step):
    """A full recipe keeps the official schedulers' end (min_lr just after the run); a reduced one ends at it."""
    overrides = {"optim.cooldown_epochs": 0, "optim.lr_step": lr_step}
    full = TrainSpec(model="m", dataset="cifar10", recipe="msvit_cifar", overrides=overrides)
    same_length = full.model_copy(update={"epochs": 400})
    assert not full.reduced_budget() and not same_length.reduced_budget()
    optim = full.resolved_recipe().optim
    official = LRSchedule.from_recipe(optim, optim.lr, steps_per_epoch=2)
    assert official(2 * 400 - 1) > optim.min_lr == official(2 * 400)
    reduced = full.model_copy(update={"epochs": 3})
    optim = reduced.resolved_recipe().optim
    assert optim.cooldown_epochs == 0
    short = LRSchedule.from_recipe(optim, optim.lr, steps_per_epoch=2, ends_at_min=reduced.reduced_budget())
    lrs = [short(s) for s in range(6)]
    assert lrs[-1] == optim.min_lr and lrs[0] == optim.lr and all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_a_reduced_per_step_budget_keeps_a_fraction_of_warmup_in_steps_and_ends_at_min_lr():
    # MAE-style recipe: 200 epochs, warmup 5 (from 0), per step; 10 epochs keep warmup 0.25 epoch = 2 of 8 steps
    spec = TrainSpec(model="m", dataset="imagenet", recipe="qkformer_in1k", epochs=10)
    optim = spec.resolved_recipe().optim
    assert optim.lr_step == "step" and (optim.epochs, optim.warmup_epochs, optim.cooldown_epochs) == (10, 0.25, 0)
    schedule = LRSchedule.from_recipe(optim, 1.0, steps_per_epoch=8, ends_at_min=spec.reduced_budget())
    lrs = [schedule(s) for s in range(80)]
    assert schedule.warmup_steps == 2 and lrs[:3] == [0.0, 0.5, 1.0]
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:]))
    assert lrs[-1] == optim.min_lr and lrs[-2] > optim.min_lr  # the cosine ends at the last step
    unchanged = TrainSpec(model="m", dataset="imagenet", recipe="qkformer_in1k", epochs=200).resolved_recipe()
    assert unchanged.optim == load_recipe("qkformer_in1k").optim


def test_lr_scales_with_effective_batch_when_the_recipe_says_so():
    assert scaled_lr(OptimRecipe(lr=6e-4, lr_base_batch=256), 512) == pytest.approx(1.2e-3)
    assert scaled_lr(OptimRecipe(lr=6e-4), 512) == 6e-4


def test_no_decay_for_biases_and_norms_and_both_optimizers_step():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    groups = param_groups(model, 0.05, no_decay_1d=True)
    assert [len(g["params"]) for g in groups] == [1, 3] and groups[1]["weight_decay"] == 0.0
    assert len(param_groups(model, 0.05, no_decay_1d=False)) == 1
    for name in ("adamw", "lamb"):
        opt = build_optimizer(model, OptimRecipe(name=name, lr=0.1, weight_decay=0.01), 0.1)
        before = model[0].weight.detach().clone()
        model(torch.randn(5, 3)).sum().backward()
        opt.step()
        assert not torch.equal(before, model[0].weight)
    assert type(build_optimizer(model, OptimRecipe(name="lamb"), 0.1)).__name__ == "Lamb"


def test_losses_smoothed_ce_soft_targets_and_tet():
    logits, y = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    smooth = TrainLoss(TrainRecipe(label_smoothing=0.1))
    assert smooth(logits, y) == pytest.approx(float(F.cross_entropy(logits, y, label_smoothing=0.1)))
    soft = F.one_hot(y, 5).float() * 0.9 + 0.02
    assert smooth(logits, soft) == pytest.approx(float(-(soft * logits.log_softmax(-1)).sum(-1).mean()))
    steps = torch.randn(3, 4, 5)
    tet = TrainLoss(TrainRecipe(loss="tet", tet_lambda=0.2, tet_means=1.0))
    expected = 0.8 * sum(float(F.cross_entropy(s, y)) for s in steps) / 3 + 0.2 * float(((steps - 1) ** 2).mean())
    assert tet.per_step and tet(steps, y) == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"per-step logits \[T, B, K\]"):
        tet(logits, y)


def test_epoch_order_depends_on_seed_and_epoch_only_and_resumes_at_an_offset():
    full = list(EpochSampler(20, seed=3, epoch=1, shuffle=True))
    assert sorted(full) == list(range(20))
    assert full == list(EpochSampler(20, seed=3, epoch=1, shuffle=True))
    assert full != list(EpochSampler(20, seed=3, epoch=2, shuffle=True))
    assert list(EpochSampler(20, seed=3, epoch=1, shuffle=True, start=7)) == full[7:]
    shards = [list(EpochSampler(21, 3, 1, True, rank=r, world=4)) for r in range(4)]
    assert all(len(s) == 5 for s in shards) and len(set(sum(shards, []))) == 20


class RandomView(torch.utils.data.Dataset):
    """A dataset whose items draw from all three global RNGs, like augmentations do."""

    def __len__(self):
        return 6

    def __getitem__(self, i):
        return torch.rand(1).item(), random.random(), float(np.random.rand())


def test_augmentation_randomness_comes_from_seed_epoch_and_index_and_spares_global_rngs():
    samples = SeededSamples(RandomView(), seed=5)
    before = rng_state()
    first = samples[2]
    after = rng_state()
    assert torch.equal(before["torch"], after["torch"]) and before["python"] == after["python"]
    assert torch.equal(before["numpy"][1], after["numpy"][1])
    assert samples[2] == first and samples[3] != first
    samples.epoch = 1
    assert samples[2] != first
    assert len(seeded_subset(RandomView(), 4, seed=0)) == 4


def test_loading_a_sample_leaves_accelerator_rngs_alone():
    """Only the CPU generator is seeded per sample: torch.manual_seed would also reseed every accelerator's, never
    restored, and before CUDA starts it queues that reseed with a formatted stack trace (slow, once per sample)."""
    queued = torch.cuda._lazy_seed_tracker.get_calls()
    SeededSamples(RandomView(), seed=5)[2]
    assert torch.cuda._lazy_seed_tracker.get_calls() == queued


def test_rng_state_roundtrip():
    state = rng_state()
    a = (torch.rand(3), random.random(), np.random.rand())
    set_rng_state(state)
    b = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_checkpoints_are_atomic_pruned_to_last_k_plus_best_and_a_damaged_one_is_skipped(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints", keep_last=2)
    for epoch, batch, best in [(0, 4, False), (1, 0, True), (1, 4, False), (2, 0, False)]:
        store.save({"where": torch.tensor([epoch, batch])}, epoch, batch, best=best)
    names = sorted(p.name for p in store.dir.iterdir())
    assert names == ["best.pt", "ckpt-e0001-b000004.pt", "ckpt-e0002-b000000.pt"]
    assert torch.equal(torch.load(store.dir / "best.pt")["where"], torch.tensor([1, 0]))
    assert store.load_latest()["loaded_from"] == "ckpt-e0002-b000000.pt"
    (store.dir / "ckpt-e0002-b000000.pt").write_bytes(b"truncated")
    latest = store.load_latest()
    assert latest["loaded_from"] == "ckpt-e0001-b000004.pt" and "ckpt-e0002-b000000.pt" in latest["skipped"][0]


def test_slurm_variables_give_the_torch_distributed_env():
    assert first_host("gpu[03-05,9],cpu1") == "gpu03" and first_host("node7") == "node7"
    env = {"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_JOB_NODELIST": "n[12-13]",
           "SLURM_JOB_ID": "4242", "MASTER_PORT": "1234"}
    assert slurm_env(env) == {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "n12",
                              "MASTER_PORT": "24242"}
    fill_env_from_slurm(env)
    assert env["RANK"] == "3" and env["MASTER_PORT"] == "1234"  # already-set variables win
    assert slurm_env({}) == {}


def test_spec_overrides_are_validated_and_named():
    recipe = Recipe(name="r", description="d", source="s")
    spec = TrainSpec(model="m", dataset="digits", recipe=recipe, epochs=3, overrides={"optim.lr": 0.5})
    resolved = spec.resolved_recipe()
    assert (resolved.optim.epochs, resolved.optim.lr) == (3, 0.5)
    with pytest.raises(ValueError, match="override 'optim.lrr'"):
        TrainSpec(model="m", dataset="d", recipe=recipe, overrides={"optim.lrr": 1}).resolved_recipe()
    with pytest.raises(ValueError, match="optim.name"):
        TrainSpec(model="m", dataset="d", recipe=recipe, overrides={"optim.name": "sgd"}).resolved_recipe()


def test_provenance_names_library_versions_and_git_state():
    import timm

    prov = provenance("qkformer_4_384.cifar10", "qkformer_cifar")
    assert prov["versions"]["torch"] == torch.__version__ and prov["versions"]["timm"] == timm.__version__
    assert prov["code_fingerprint"] == code_fingerprint("qkformer_4_384.cifar10", "qkformer_cifar")
    assert {"zoo/models/qkformer.py", "harness/recipes/qkformer_cifar.yaml"} <= set(prov["code_modules"])
    git = prov["git"]
    assert (len(git["commit"]) == 40 and git["dirty"] in (True, False)) or (git["commit"] is None and git["reason"])


def test_progress_is_a_bar_on_a_terminal_and_log_lines_otherwise(tmp_path):
    import io
    import os
    import pty

    from harness.engine.progress import EpochProgress, RunLog

    master, slave = pty.openpty()
    with os.fdopen(slave, "w") as tty:
        bar = EpochProgress(RunLog(tmp_path / "a.log", stream=tty), epoch=3, total=4, start=0, enabled=True)
        bar.update(2, {"loss": 1.25, "top1": 50.0})
        bar.close()
    chunks = []
    while True:  # a pty hands its output over in pieces; read until the closed end reports EIO
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    shown = b"".join(chunks).decode()
    assert "epoch 3" in shown and "loss=1.25" in shown and "2/4" in shown
    plain = io.StringIO()
    lines = EpochProgress(RunLog(tmp_path / "b.log", stream=plain), epoch=0, total=4, start=0, enabled=True,
                          log_every=2)
    for position in range(1, 5):
        lines.update(position, {"loss": 0.5})
    assert plain.getvalue().count("epoch 0 [") == 2 and "[4/4] loss=0.5" in plain.getvalue()
    assert (tmp_path / "b.log").read_text() == plain.getvalue()
