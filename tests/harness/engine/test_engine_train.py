"""Real training runs on the embedded digits datasets: learning, run files, divergence, idempotence."""

import json
import re

import pytest
import torch

import engine_nets
import zoo
from harness.engine import TIMING_KEYS, TrainSpec, train
from harness.engine.evaluate import evaluate
from harness.engine.data import SeededSamples, epoch_loader
from harness.engine.trainer import gradient_norm_failure
from harness.data import build_dataset
from harness.launch.worker import train_spec
from harness.suite import expand, load_suite


def _spec(**changes):
    base = dict(model=engine_nets.STATIC, dataset="digits", recipe="digits", seed=0, epochs=2,
                model_kwargs={"width": 32}, overrides={"optim.lr": 1e-2, "optim.warmup_epochs": 0},
                energy_images="all")
    return TrainSpec(**{**base, **changes})


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("digits_run")
    return run_dir, train(_spec(), run_dir)


def test_a_short_run_on_digits_learns(digits_run):
    run_dir, final = digits_run
    assert final["status"] == "finished" and final["epochs_completed"] == 2
    assert final["eval_batch"] == 32 and final["batch_dependent"] is False  # digits recipe batch; no coupling
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    assert final["best_top1"] >= 60.0  # chance is 10%
    assert final["last"] == lines[-1] and final["global_step"] == 2 * (1438 // 32)
    assert final["last"]["eval_images"] == 359  # the digits test split: the n of the top-1's sampling error


def test_the_run_directory_holds_config_checkpoints_log_and_energy(digits_run):
    run_dir, final = digits_run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["recipe"]["name"] == "digits" and config["recipe"]["optim"]["lr"] == 1e-2
    assert config["seed"] == 0 and config["resolved"]["steps_per_epoch"] == 1438 // 32
    assert config["provenance"]["versions"]["timm"] and "commit" in config["provenance"]["git"]
    assert config["model_card"]["name"] == engine_nets.STATIC
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["best.pt", "ckpt-e0001-b000000.pt", "ckpt-e0002-b000000.pt"]
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert best["progress"]["best_epoch"] == final["best_epoch"]
    assert "epoch 1 done" in (run_dir / "train.log").read_text()
    audit = json.loads((run_dir / "energy.json").read_text())
    energy = final["energy"]
    assert energy["images"] == audit["images"] == 359  # the whole digits test split
    assert energy["paper"] == {"energy_mj": audit["paper_energy_mj"], "first_layer_macs": audit["first_layer_macs"],
                               "sops": audit["sops"], "firing_rate": audit["firing_overall"]}
    assert energy["ops"] == {"energy_mj": audit["energy_mj"], "macs": audit["macs"], "acs": audit["acs"],
                             "firing_rate": audit["firing_overall"]}
    assert 0 < energy["paper"]["energy_mj"] < energy["ops"]["energy_mj"]  # encoding conv once, not T times
    assert set(final["neurobench"]) == {"footprint_bytes", "connection_sparsity", "activation_sparsity",
                                        "effective_macs", "effective_acs"}
    assert final["neurobench"] == {k: audit["neurobench"][k] for k in final["neurobench"]}


def test_best_checkpoint_reproduces_its_recorded_accuracy(digits_run):
    run_dir, final = digits_run
    model = engine_nets.TinySpikingNet(2, 10, 3, "static", width=32)
    model.load_state_dict(torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)["model"])
    from harness.recipe import load_recipe

    samples = SeededSamples(build_dataset("digits", "test", recipe=load_recipe("digits").data), seed=0)
    result = evaluate(model, epoch_loader(samples, 32, 0, 0, False, 0, 1))
    assert result["top1"] == final["best_top1"]


def test_a_finished_run_is_returned_not_retrained_and_a_different_spec_is_refused(digits_run, tmp_path):
    run_dir, final = digits_run
    before = (run_dir / "metrics.jsonl").stat().st_mtime_ns
    assert train(_spec(), run_dir) == json.loads((run_dir / "final.json").read_text())
    assert (run_dir / "metrics.jsonl").stat().st_mtime_ns == before
    other = tmp_path / "run"
    other.mkdir()
    (other / "config.json").write_text((run_dir / "config.json").read_text())
    with pytest.raises(ValueError, match="holds a different run"):
        train(_spec(seed=1), other)


def test_nan_loss_stops_the_run_as_diverged_at_its_step(tmp_path):
    spec = _spec(epochs=1, energy_images=0, overrides={"optim.lr": 1e37, "optim.warmup_epochs": 0})
    final = train(spec, tmp_path)
    assert final["status"] == "diverged"
    assert final["message"].startswith("diverged at step 2 ")
    assert final["global_step"] == 1 and final["epochs_completed"] == 0
    assert json.loads((tmp_path / "final.json").read_text())["status"] == "diverged"
    assert (tmp_path / "metrics.jsonl").read_text() == ""


def test_overflowing_gradients_stop_the_run_as_diverged(tmp_path):
    """SDT v2 shrunk to digit size: silent attention spikes make its BatchNorms amplify gradients past
    float32 (Adam would then silently stop updating); the run stops at its first step instead."""
    spec = TrainSpec(model="sdtv2_10_384.in1k", dataset="digits", recipe="digits", T=2, epochs=1,
                     model_kwargs={"dims": (16, 32, 64, 80)}, limit_train_batches=2, limit_eval_batches=1)
    final = train(spec, tmp_path)
    assert final["status"] == "diverged"
    message = final["message"]
    assert message.startswith("diverged at step 1 (non-finite gradient norm inf: every gradient is finite but "
                              "their norm overflows float32; largest |gradient| ")
    largest, name = re.fullmatch(r".*largest \|gradient\| (\S+) in (\S+)\)", message).groups()
    assert float(largest) > 1e19 and name in dict(zoo.create_model(spec.model, **spec.model_kwargs).named_parameters())


@pytest.mark.parametrize("dataset", ["digits", "digits_dvs"])
def test_the_smoke_sdt_v2_runs_train_past_their_first_steps(dataset, tmp_path):
    """suites/smoke.yaml shrinks SDT v2 so that its attention still fires (see the comment there): its first
    training steps keep a finite gradient norm, unlike the digit-size setting above."""
    runs = expand(load_suite("suites/smoke.yaml"))
    (spec,) = [s for s in runs if s.model.startswith("sdtv2") and s.dataset == dataset]
    short = train_spec(spec).model_copy(update={"epochs": 1, "limit_train_batches": 3, "limit_eval_batches": 1,
                                                "energy_images": 0})
    final = train(short, tmp_path)
    assert final["status"] == "finished", final.get("message")


def test_a_non_finite_gradient_is_named_in_the_divergence_reason():
    grads = {"a.weight": torch.ones(3), "b.bias": torch.tensor([1.0, float("nan")]), "c.weight": torch.ones(2)}
    reason = gradient_norm_failure(grads, float("nan"))
    assert reason == "non-finite gradient norm nan: the gradient of b.bias is not finite"


def test_event_data_with_tet_lamb_ema_accumulation_mixup_and_clipping(tmp_path):
    overrides = {"train.loss": "tet", "optim.name": "lamb", "train.ema_decay": 0.9, "train.global_batch": 64,
                 "data.mixup_alpha": 0.5, "optim.grad_clip": 1.0, "optim.cooldown_epochs": 1, "data.dvs_channels": 3}
    spec = TrainSpec(model=engine_nets.DVS, dataset="digits_dvs", recipe="digits_dvs", epochs=2,
                     overrides=overrides, limit_train_batches=6, limit_eval_batches=2)  # 1 main + 1 cooldown
    final = train(spec, tmp_path / "run")
    assert final["status"] == "finished" and final["global_step"] == 2 * 3
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]
    assert (resolved["accum_steps"], resolved["effective_batch"]) == (2, 64)  # batch 32 on one device
    assert torch.load(tmp_path / "run" / "checkpoints" / "best.pt")["model"]["stem.0.weight"].shape[1] == 3
    last = final["last"]
    assert {"ema_eval_top1", "ema_eval_loss", "eval_top5"} <= set(last) and last["lr"] == 1e-5  # cooldown at min_lr
    assert TIMING_KEYS & set(last) == {"train_img_s", "eval_img_s", "ema_eval_img_s", "epoch_time_s"}


def test_final_records_the_eval_batch_and_that_an_ssa_quirk_model_depends_on_it(tmp_path):
    spec = TrainSpec(model="qkformer_4_384.cifar10", dataset="digits", recipe="digits", T=2, epochs=1,
                     model_kwargs={"widths": [8, 16, 16], "depths": [1, 1, 1], "heads": 2},
                     overrides={"train.eval_batch_size": 8}, limit_train_batches=1, limit_eval_batches=1)
    final = train(spec, tmp_path)
    assert (final["eval_batch"], final["batch_dependent"]) == (8, True)


def test_energy_on_a_seeded_subset_of_n_images_records_n(tmp_path):
    spec = _spec(epochs=1, eval_split="train", energy_images=1000, limit_train_batches=2, limit_eval_batches=1)
    final = train(spec, tmp_path)
    assert final["energy"]["images"] == 1000  # of the 1438 training digits, seeded by the run's seed


def test_a_suites_small_energy_budget_measures_that_many_images(tmp_path):
    """A suite's ``budget.energy_images: 16`` reaches the engine, which measures exactly 16 eval images."""
    suite = tmp_path / "s.yaml"
    suite.write_text(f"budget: {{epochs: 1, limit_batches: 2, energy_images: 16}}\nruns:\n"
                     f"  - {{model: {engine_nets.STATIC}, dataset: digits, T: 2, recipe: digits, "
                     f"overrides: {{width: 8}}}}\n")
    with pytest.warns(UserWarning, match="a sample of 16 images"):
        (spec,) = expand(load_suite(suite))
    final = train(train_spec(spec), tmp_path / "run")
    audit = json.loads((tmp_path / "run" / "energy.json").read_text())
    assert final["energy"]["images"] == audit["images"] == 16


def test_bf16_precision_runs_under_cpu_autocast_and_is_recorded(tmp_path):
    spec = _spec(epochs=1, energy_images=0, limit_train_batches=2, limit_eval_batches=1,
                 overrides={"train.precision": "bf16", "optim.warmup_epochs": 0})
    final = train(spec, tmp_path)
    assert final["status"] == "finished"
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["recipe"]["train"]["precision"] == "bf16"
    assert "bfloat16" in json.dumps(config)


def test_channels_last_applies_on_cpu_too(tmp_path):
    """Fast mode on CPU: ``train.channels_last`` puts the weights and images channels-last there as well."""
    spec = _spec(epochs=1, energy_images=0, limit_train_batches=2, limit_eval_batches=1,
                 overrides={"train.channels_last": True, "train.precision": "bf16", "optim.warmup_epochs": 0})
    final = train(spec, tmp_path)
    assert final["status"] == "finished"
    derived = json.loads((tmp_path / "config.json").read_text())["resolved"]
    assert derived["channels_last"] is True and derived["device"] == "cpu"


def digits_energy_run(run_dir):
    """An exact-mode run of the fast-mode test's budget, for its energy audit."""
    train(_spec(epochs=1, energy_images=8, limit_train_batches=2, limit_eval_batches=1,
                overrides={"optim.warmup_epochs": 0}), run_dir)
    return run_dir


@pytest.mark.parametrize("flags, gain, precision, amp, channels_last", [
    ("avx2 avx512f avx512_bf16", None, "bf16", "torch.bfloat16", True),
    ("avx2 fma", 0.8, "fp32", None, False),
])
def test_fast_mode_runs_and_records_what_it_chose_for_the_cpu(flags, gain, precision, amp, channels_last, tmp_path,
                                                              monkeypatch):
    """``train.fast``: the numerics chosen from the CPU (bf16 only where native; a cached probe's verdict on
    channels-last elsewhere) run with the zoo's fast paths, and config.json records the choice."""
    from harness.engine import numerics, trainer

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"model name\t: Test CPU\nflags\t\t: {flags}\n")
    monkeypatch.setattr(numerics, "CPUINFO", cpuinfo)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if gain is not None:  # this machine's probe result, cached
        key = numerics.probe_key("Test CPU", frozenset(flags.split()))
        (tmp_path / "cache" / "spikebench").mkdir(parents=True)
        (tmp_path / "cache" / "spikebench" / f"fast-probe-{key}.json").write_text(
            json.dumps({"key": key, "channels_last_gain": gain}))
    numerics.fast_choice.cache_clear()
    marked, use_fast_paths = [], trainer.use_fast_paths
    monkeypatch.setattr(trainer, "use_fast_paths",
                        lambda model, enabled=True: marked.append((model, enabled)) or use_fast_paths(model, enabled))
    spec = _spec(epochs=1, energy_images=8, limit_train_batches=2, limit_eval_batches=1,
                 overrides={"train.fast": True, "optim.warmup_epochs": 0})
    try:
        final = train(spec, tmp_path / "run")
    finally:
        numerics.fast_choice.cache_clear()
    assert final["status"] == "finished" and [enabled for _, enabled in marked] == [True, False]
    assert marked[0][0] is marked[1][0]  # on for training, off for the energy measurement
    exact = json.loads((digits_energy_run(tmp_path / "exact") / "energy.json").read_text())
    audit = json.loads((tmp_path / "run" / "energy.json").read_text())
    assert audit["first_layer_macs"] == exact["first_layer_macs"]  # the first layer counted T times, as in exact mode
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]
    assert resolved["fast"]["case"] == ("native-bf16" if gain is None else "avx2-only")
    assert resolved["fast"]["precision"] == precision and resolved["amp_dtype"] == amp
    assert resolved["fast"]["channels_last"] is resolved["channels_last"] is channels_last
