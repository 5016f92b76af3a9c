"""Knowledge distillation as the official SDT v2/v3 code trains its kd models (DeiT's DistillationLoss): the loss on
fixed numbers, the recipe's rules, teacher weights read safely, and real tiny kd runs on the digits."""

import json
import math
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

import zoo
from harness.engine import TrainSpec, train
from harness.engine.loss import TrainLoss
from harness.engine.teacher import TeacherError, build_teacher, read_weights, weights_sha256
from harness.recipe import DistillRecipe, OverrideError, TrainRecipe, apply_overrides, load_recipe

# a real E-SpikeFormer Large (kd=True by default), shrunk to digits size
STUDENT = "sdtv3_83m.in1k"
STUDENT_KWARGS = {"dims": [8, 16, 32], "depth": 1}
# a real tiny teacher: E-SpikeFormer Base shrunk the way the smoke suite does
TEACHER = "zoo:sdtv3_5m.in1k"
TEACHER_KWARGS = {"dims": [8, 16, 32, 40], "blocks": [1, 1]}
WEIGHTS = "teachers/tiny.safetensors"


# ----------------------------------------------------------------------------------------- the loss, by hand

def _batch():
    g = torch.Generator().manual_seed(0)
    logits, kd_logits, teacher = (torch.randn(4, 5, generator=g) * 3 for _ in range(3))
    return logits, kd_logits, teacher, torch.tensor([0, 3, 1, 4])


def _log_softmax(row):
    top = max(row)
    total = sum(math.exp(v - top) for v in row)
    return [v - top - math.log(total) for v in row]


def _smoothed_ce(rows, labels, eps):
    """Label-smoothed cross-entropy: (1 - eps) on the label plus eps spread evenly, averaged over the batch."""
    out = 0.0
    for row, label in zip(rows, labels):
        logp = _log_softmax(row)
        out += -(1 - eps) * logp[label] - eps * sum(logp) / len(row)
    return out / len(rows)


def _loss(kind, alpha=0.3, tau=2.0, smoothing=0.1):
    distill = (DistillRecipe(type=kind, alpha=alpha, tau=tau, teacher="timm:resnet18", teacher_weights="t.pt")
               if kind != "none" else DistillRecipe())
    return TrainLoss(TrainRecipe(label_smoothing=smoothing), distill)


@pytest.mark.parametrize("kind", ["soft", "hard"])
def test_distillation_loss_equals_the_formula_by_hand(kind):
    logits, kd_logits, teacher, labels = _batch()
    alpha, tau, eps = 0.3, 2.0, 0.1
    L, K, Tt, y = logits.tolist(), kd_logits.tolist(), teacher.tolist(), labels.tolist()
    base = _smoothed_ce(L, y, eps)
    if kind == "soft":  # KL(teacher || student) at temperature tau, summed, x tau^2, over all B x K logits
        kl = 0.0
        for s_row, t_row in zip(K, Tt):
            ls, lt = _log_softmax([v / tau for v in s_row]), _log_softmax([v / tau for v in t_row])
            kl += sum(math.exp(b) * (b - a) for a, b in zip(ls, lt))
        distill = kl * tau * tau / (len(K) * len(K[0]))
    else:  # cross-entropy of the kd head against the teacher's argmax, no smoothing
        distill = sum(-_log_softmax(row)[t_row.index(max(t_row))] for row, t_row in zip(K, Tt)) / len(K)
    expected = (1 - alpha) * base + alpha * distill
    got = _loss(kind, alpha, tau, eps)((logits, kd_logits), labels, teacher)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_without_distillation_a_kd_model_learns_from_its_class_head_only():
    logits, kd_logits, _, labels = _batch()
    loss = _loss("none")
    got = loss((logits, kd_logits), labels)
    assert float(got) == pytest.approx(_smoothed_ce(logits.tolist(), labels.tolist(), 0.1), rel=1e-6)
    assert float(loss((logits, kd_logits * 5 + 1), labels)) == float(got)


def test_per_step_kd_logits_are_averaged_over_time_before_distilling():
    logits, kd_logits, teacher, labels = _batch()
    steps = torch.stack([kd_logits - 1.0, kd_logits + 1.0])  # mean over T = kd_logits
    loss = _loss("soft")
    assert float(loss.distillation(steps, teacher)) == pytest.approx(float(loss.distillation(kd_logits, teacher)))


def test_distilling_needs_a_kd_head_and_the_teacher():
    logits, _, teacher, labels = _batch()
    with pytest.raises(ValueError, match="distillation head"):
        _loss("hard")(logits, labels, teacher)
    with pytest.raises(ValueError, match="teacher's logits"):
        _loss("hard")((logits, logits), labels)


# ----------------------------------------------------------------------------------------- the recipe

def test_distilling_recipes_need_a_teacher_and_none_drops_it():
    recipe = load_recipe("digits")
    with pytest.raises(OverrideError, match="needs distill.teacher and distill.teacher_weights"):
        apply_overrides(recipe, {"distill.type": "soft"})
    plain = apply_overrides(recipe, {"distill.teacher": TEACHER, "distill.teacher_weights": WEIGHTS,
                                     "distill.alpha": 0.9})
    assert plain.distill == DistillRecipe() and plain.model_dump() == recipe.model_dump()


@pytest.mark.parametrize("key,value,expected", [
    ("distill.teacher_weights", "/etc/passwd", "relative to the data root"),
    ("distill.teacher_weights", "../outside.pt", "relative to the data root"),
    ("distill.teacher", "resnet18", "'timm:<timm model name>' or 'zoo:<registered zoo model>'"),
    ("distill.alpha", 1.5, "less than or equal to 1"),
    ("distill.tau", 0, "greater than 0"),
])
def test_bad_distillation_settings_name_the_field(key, value, expected):
    good = {"distill.type": "hard", "distill.teacher": TEACHER, "distill.teacher_weights": WEIGHTS}
    with pytest.raises(OverrideError) as err:
        apply_overrides(load_recipe("digits"), {**good, key: value})
    assert list(err.value.problems) == [key] and expected in err.value.problems[key]


@pytest.mark.parametrize("recipe", ["sdtv3_in1k_kd", "sdtv2_in1k_t4_kd"])
def test_the_kd_recipes_state_the_official_distillation(recipe):
    """SDT v3 Model_Large/Train_Large.md and SDT v2 train_finetune_from_t1_to_t4.sh: --kd --distillation_type hard
    --teacher_model caformer_b36_in21ft1k, alpha and tau at main_finetune.py's defaults (0.5, 1.0)."""
    assert load_recipe(recipe).distill.model_dump() == {
        "type": "hard", "alpha": 0.5, "tau": 1.0, "teacher": "timm:caformer_b36", "teacher_kwargs": {},
        "teacher_weights": "teachers/caformer_b36.sail_in22k_ft_in1k.safetensors"}
    import timm

    assert timm.is_model("caformer_b36")


def test_the_sdtv3_large_cards_train_with_the_distillation_stage():
    recipe = load_recipe("sdtv3_in1k_kd")
    assert (recipe.data.mixup_alpha, recipe.data.cutmix_alpha, recipe.train.global_batch) == (0.5, 1.0, 8 * 196)
    assert (recipe.optim.lr, recipe.optim.epochs, recipe.optim.warmup_epochs) == (1e-3, 100, 5)
    assert {zoo.model_card(name).recipe for name in ("sdtv3_83m.in1k", "sdtv3_171m.in1k")} == {"sdtv3_in1k_kd"}


# ----------------------------------------------------------------------------------------- teacher weights

def _tiny_teacher():
    torch.manual_seed(1)
    return zoo.create_model(TEACHER.split(":")[1], num_classes=10, **TEACHER_KWARGS).eval()


def _data_root(tmp_path):
    (tmp_path / "teachers").mkdir(parents=True, exist_ok=True)
    save_file(_tiny_teacher().state_dict(), tmp_path / WEIGHTS)
    return tmp_path


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {_Payload.marker}",))


def test_teacher_weights_are_read_without_running_pickled_code(tmp_path):
    _Payload.marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile.pt"
    with open(hostile, "wb") as fh:
        pickle.dump({"model": {"w": _Payload()}}, fh, protocol=2)
    with pytest.raises(TeacherError, match="not a readable safetensors or weights-only torch file"):
        read_weights(hostile)
    assert not _Payload.marker.exists()
    state = _tiny_teacher().state_dict()
    torch.save({"model": state, "epoch": 3}, tmp_path / "checkpoint.pt")
    assert read_weights(tmp_path / "checkpoint.pt").keys() == state.keys()


def test_the_teacher_is_the_saved_model_frozen_in_eval(tmp_path):
    root = _data_root(tmp_path)
    distill = DistillRecipe(type="soft", teacher=TEACHER, teacher_kwargs=TEACHER_KWARGS, teacher_weights=WEIGHTS)
    teacher = build_teacher(distill, 10, root, torch.device("cpu"))
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), _tiny_teacher()(x))
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(TeacherError, match="do not fit"):
        build_teacher(distill.model_copy(update={"teacher_kwargs": {"dims": [8, 16, 32, 48], "blocks": [1, 1]}}),
                      10, root, torch.device("cpu"))
    with pytest.raises(TeacherError, match="no such file"):
        build_teacher(distill, 10, tmp_path / "elsewhere", torch.device("cpu"))


def test_a_timm_teacher_loads_its_saved_weights(tmp_path):
    import timm

    torch.manual_seed(2)
    saved = timm.create_model("test_resnet", num_classes=10).eval()
    torch.save(saved.state_dict(), tmp_path / "resnet.pt")
    distill = DistillRecipe(type="hard", teacher="timm:test_resnet", teacher_weights="resnet.pt")
    teacher = build_teacher(distill, 10, tmp_path, torch.device("cpu"))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), saved(x))
    with pytest.raises(TeacherError, match="has no model 'no_such_net'"):
        build_teacher(distill.model_copy(update={"teacher": "timm:no_such_net"}), 10, tmp_path, torch.device("cpu"))


# ----------------------------------------------------------------------------------------- real runs

def _spec(root, kind, **changes):
    overrides = {"distill.type": kind, "optim.warmup_epochs": 0, "optim.lr": 1e-2}
    if kind != "none":
        overrides.update({"distill.teacher": TEACHER, "distill.teacher_kwargs": TEACHER_KWARGS,
                          "distill.teacher_weights": WEIGHTS})
    base = dict(model=STUDENT, dataset="digits", recipe="digits", T=1, model_kwargs=STUDENT_KWARGS, epochs=1,
                limit_train_batches=3, eval_subset=64, data_root=str(root), device="cpu", overrides=overrides)
    return TrainSpec(**{**base, **changes})


def _initial_student():
    torch.manual_seed(0)  # the engine seeds with spec.seed before building the model
    return zoo.create_model(STUDENT, T=1, num_classes=10, **STUDENT_KWARGS)


def _trained(run_dir):
    return torch.load(run_dir / "checkpoints" / "ckpt-e0001-b000000.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def kd_runs(tmp_path_factory):
    root = _data_root(tmp_path_factory.mktemp("data"))
    runs = {}
    for kind in ("none", "soft", "hard"):
        run_dir = tmp_path_factory.mktemp(f"kd_{kind}")
        changes = {"energy_images": "all"} if kind == "hard" else {}
        runs[kind] = run_dir, train(_spec(root, kind, **changes), run_dir)
    return root, runs


def test_a_kd_model_without_distillation_trains_its_class_head_only(kd_runs):
    _, runs = kd_runs
    run_dir, final = runs["none"]
    assert final["status"] == "finished" and final["global_step"] == 3
    initial, trained = _initial_student().state_dict(), _trained(run_dir)
    assert not torch.equal(trained["head.weight"], initial["head.weight"])
    assert torch.equal(trained["head_kd.weight"], initial["head_kd.weight"])  # no gradient reaches it
    resolved = json.loads((run_dir / "config.json").read_text())["resolved"]
    assert resolved["distill"] == {"type": "none", "teacher": None, "teacher_sha256": None}


@pytest.mark.parametrize("kind", ["soft", "hard"])
def test_distillation_trains_the_kd_head_from_the_teacher(kd_runs, kind):
    root, runs = kd_runs
    run_dir, final = runs[kind]
    assert final["status"] == "finished" and final["global_step"] == 3
    initial, trained = _initial_student().state_dict(), _trained(run_dir)
    assert not torch.equal(trained["head_kd.weight"], initial["head_kd.weight"])
    resolved = json.loads((run_dir / "config.json").read_text())["resolved"]
    assert resolved["distill"] == {"type": kind, "teacher": TEACHER, "teacher_sha256": weights_sha256(root / WEIGHTS)}


def test_a_kd_model_evaluates_on_its_averaged_heads_with_energy_and_neurobench(kd_runs):
    root, runs = kd_runs
    run_dir, final = runs["hard"]
    assert final["energy"]["images"] == 64 and final["energy"]["paper"]["energy_mj"] > 0
    assert final["neurobench"]["effective_acs"] >= 0 and final["neurobench"]["footprint_bytes"] > 0
    model = _initial_student()
    model.load_state_dict(_trained(run_dir))
    model.eval()
    from harness.data import build_dataset
    from harness.engine.data import SeededSamples, seeded_subset

    spec = _spec(root, "hard")
    data = SeededSamples(seeded_subset(build_dataset("digits", "test", T=1, recipe=spec.resolved_recipe().data),
                                       64, 0), 0)
    x = torch.stack([data[i][0] for i in range(len(data))])
    y = torch.tensor([data[i][1] for i in range(len(data))])
    with torch.no_grad():
        cls, kd = model.head_logits(x.unsqueeze(0))
    averaged = ((cls + kd) / 2).mean(0)
    assert final["last"]["eval_loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(averaged, y)), rel=1e-5)
    assert final["last"]["eval_top1"] == pytest.approx(100.0 * float((averaged.argmax(1) == y).float().mean()))


def test_distilling_into_a_model_without_a_kd_head_is_refused(kd_runs, tmp_path):
    root, _ = kd_runs
    with pytest.raises(ValueError, match="has no distillation head; build it with kd=True"):
        train(_spec(root, "soft", model_kwargs={**STUDENT_KWARGS, "kd": False}), tmp_path / "run")


def test_a_run_resumes_only_with_the_same_teacher_weights(tmp_path):
    """The teacher's weights file is part of what a run is: another file under the same name is another run."""
    root = _data_root(tmp_path / "data")
    run_dir = tmp_path / "run"
    spec = _spec(root, "soft", limit_train_batches=1)
    train(spec, run_dir)
    (run_dir / "final.json").unlink()  # as if the run had stopped after its checkpoint
    torch.manual_seed(5)
    other = zoo.create_model(TEACHER.split(":")[1], num_classes=10, **TEACHER_KWARGS)
    save_file(other.state_dict(), root / WEIGHTS)
    with pytest.raises(ValueError, match="holds a different run"):
        train(spec, run_dir)
