"""`harness bench MODEL`: step timing against the spikingjelly-neuron reference, memory and FLOPs (tiny models;
the figures themselves are benchmarks, never asserted here)."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import zoo
from harness.cli import main
from harness.metrics import perf
from harness.metrics.perf import (BenchConfig, LiveTensorMemory, SpikingJellyLIF, StepRunner, bench_model, format_bench,
                                  record_bench, step_flops, with_reference_neurons)
from zoo.core import IF, LIF, PLIF

pytest.importorskip("spikingjelly")

TINY = ["spikformer_4_384.cifar10", "--size", "16", "--batch", "2", "--T", "2", "--warmup", "0", "--repeats", "1",
        "--set", "dim=32", "depth=1", "heads=2"]


def test_live_memory_follows_allocations_and_frees():
    with LiveTensorMemory() as tracker:
        a = torch.ones(1024, 256)  # 1 MiB
        b = torch.ones(1024, 512)  # 2 MiB, 3 MiB live
        del a, b
        c = torch.ones(1024, 128)  # 0.5 MiB after both were freed
    assert tracker.peak == 3 * 2**20
    assert tracker.current == c.nbytes


def test_step_flops_counts_a_linear_forward_and_backward():
    layer = nn.Linear(8, 4)
    x = torch.randn(3, 8, requires_grad=True)
    assert step_flops(lambda: layer(x).sum().backward()) == 3 * (2 * 3 * 8 * 4)


def test_step_flops_equal_torch_flop_counter_on_a_spiking_transformer():
    """Convolutions, linear layers and the attention matmuls, forward and backward, as FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    model = zoo.create_model("qkformer_4_384.cifar10", T=2, widths=[16, 32, 64], depths=[1, 1, 1], heads=2)
    x = torch.randn(2, 3, 16, 16)
    with FlopCounterMode(display=False) as reference:
        model(x).sum().backward()
    assert step_flops(lambda: model(x).sum().backward()) == reference.get_total_flops() > 0


@pytest.mark.parametrize("name,overrides", [
    ("msvit_4_384.cifar10", dict(widths=[16, 16, 32], depths=[1, 1, 1], heads=2)),
    ("sdt_2_512.cifar10", dict(dim=32, depth=1)),
    ("spikformer_4_384.cifar10", dict(dim=32, depth=1, heads=2)),
    ("spikformer_4_384.cifar10", dict(dim=32, depth=1, heads=2, neuron="if")),  # zoo IF -> spikingjelly IFNode
    ("sdt_2_512.cifar10", dict(dim=32, depth=1, neuron="plif")),
])
def test_reference_copy_swaps_every_neuron_and_computes_the_same(name, overrides):
    torch.manual_seed(0)
    model = zoo.create_model(name, **overrides).train()
    ref = with_reference_neurons(model)
    lifs = [m for m in model.modules() if isinstance(m, LIF)]
    assert not any(isinstance(m, LIF) for m in ref.modules())
    assert len([m for m in ref.modules() if isinstance(m, SpikingJellyLIF)]) == len(lifs)
    layers = [type(m) for m in ref.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    assert layers and set(layers) <= {nn.Conv1d, nn.Conv2d, nn.Linear}, "the reference runs plain (official) layers"
    x = torch.randn(2, 3, 16, 16)
    ours, theirs = model(x), ref(x)
    assert torch.allclose(ours, theirs, atol=1e-5)
    ours.sum().backward()
    theirs.sum().backward()
    for (n, p), q in zip(model.named_parameters(), ref.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), n
    assert all(id(p) != id(q) for p, q in zip(model.parameters(), ref.parameters()))


def test_bench_json_reports_speed_memory_and_the_reference(capsys):
    assert main(["bench", *TINY, "--against", "reference", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    for key in ("model", "mode", "batch", "T", "step_s_median", "img_per_s", "peak_mem_mb", "ref_step_s_median",
                "speedup", "mem_ratio", "gflop_per_step", "peak_fraction"):
        assert key in result, key
    assert (result["model"], result["mode"], result["batch"], result["T"]) == ("spikformer_4_384.cifar10", "train", 2, 2)
    assert result["input_shape"] == [3, 16, 16]
    assert result["peak_mem_mb"] > 0 and result["ref_peak_mem_mb"] > 0 and result["gflop_per_step"] > 0
    assert result["speedup"] == pytest.approx(result["ref_step_s_median"] / result["step_s_median"])
    assert result["mem_ratio"] == pytest.approx(result["peak_mem_mb"] / result["ref_peak_mem_mb"])
    assert result["max_abs_logit_diff"] < 1e-5
    assert "speedup" in out[-2] or any("speedup" in line for line in out[:-1])


def test_bench_eval_mode_without_reference():
    result = bench_model(BenchConfig("sdt_2_512.cifar10", mode="eval", batch=2, T=2, size=16, warmup=0, repeats=2,
                                     overrides=(("dim", 32), ("depth", 1))))
    assert result["mode"] == "eval" and "speedup" not in result
    assert result["step_s_min"] <= result["step_s_median"] <= result["step_s_max"]


def test_bench_channels_last_converts_ours_and_leaves_the_reference(monkeypatch):
    seen = []

    class Recording(StepRunner):
        def __init__(self, model, x, *args, **kwargs):
            super().__init__(model, x, *args, **kwargs)
            weights = [p for p in model.parameters() if p.dim() == 4]
            seen.append((x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous(),
                         all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)))

    monkeypatch.setattr("harness.metrics.perf.StepRunner", Recording)
    result = bench_model(BenchConfig("sdt_2_512.cifar10", batch=2, T=2, size=16, warmup=0, repeats=1,
                                     channels_last=True, against="reference", overrides=(("dim", 32), ("depth", 1))))
    assert result["channels_last"] is True
    assert seen[0] == (True, True)  # ours
    assert seen[1][0] is False  # the reference keeps contiguous images


def test_bench_trains_a_kd_model_through_both_heads():
    """A distillation model returns (logits, kd_logits) in training: the train step backpropagates through both."""
    config = BenchConfig("sdtv3_83m.in1k", mode="train", batch=2, T=1, size=16, warmup=0, repeats=1,
                         overrides=(("dims", (8, 16, 32)), ("depth", 1)))
    result = bench_model(config)
    assert result["mode"] == "train" and result["step_s_median"] > 0
    model = zoo.create_model("sdtv3_83m.in1k", num_classes=10, dims=(8, 16, 32), depth=1)
    x, y = torch.randn(2, 3, 16, 16), torch.tensor([1, 2])
    StepRunner(model, x, y, "train")()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_gpu_check_amp_steps_train_a_kd_model_through_both_heads():
    """benchmarks/amp_steps.py (the GPU check's 50 AMP steps of every ImageNet config) takes a kd model's tuple."""
    spec = importlib.util.spec_from_file_location("amp_steps", Path(__file__).parents[3] / "benchmarks/amp_steps.py")
    amp_steps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(amp_steps)
    result = amp_steps.amp_run("sdtv3_83m.in1k", 2, 1, torch.device("cpu"), dims=(8, 16, 32), depth=1)
    assert result["steps"] == 2 and result["diverged"] is None and result["last_loss"] != result["first_loss"]


def test_record_appends_date_machine_and_command(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Measured results\n\nearlier text\n")
    result = {"machine": "a test machine", "step_s_median": 0.5, "img_per_s": 4.0, "peak_mem_mb": 10.0,
              "ref_step_s_median": 1.0, "ref_peak_mem_mb": 20.0, "speedup": 2.0, "mem_ratio": 0.5}
    record_bench(result, "python -m harness bench x --record", path)
    record_bench(result, "python -m harness bench y --record", path)
    text = path.read_text()
    assert text.startswith("# Measured results\n\nearlier text\n")
    assert text.count("## `harness bench` records") == 1
    assert "a test machine: `python -m harness bench x --record`" in text and "bench y" in text
    assert "speedup 2.00x, memory ratio 0.50" in text


def test_bench_energy_mode_times_the_measurement_against_a_plain_evaluation(capsys):
    assert main(["bench", *TINY, "--mode", "energy", "--against", "reference", "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["mode"] == "energy" and "energy_over_eval" in out and "old path" in out
    assert result["energy_over_eval"] == result["energy_s_median"] / result["eval_s_median"]
    assert result["counting_over_eval"] == result["counting_s_median"] / result["eval_s_median"]
    assert result["old_over_eval"] == result["old_s_median"] / result["eval_s_median"]
    assert len(result["energy_s_all"]) == len(result["eval_s_all"]) == 1
    assert result["eval_cpu_s_median"] > 0 and result["energy_over_eval_cpu"] > 0 and "energy_over_eval_cpu" in out


def test_record_of_an_energy_bench_carries_its_ratio(tmp_path):
    path = tmp_path / "RESULTS.md"
    result = {"mode": "energy", "machine": "m", "eval_s_median": 1.0, "energy_s_median": 1.25,
              "counting_s_median": 1.1, "energy_over_eval": 1.25, "counting_over_eval": 1.1}
    record_bench(result, "python -m harness bench x --mode energy --record", path)
    assert "energy_over_eval 1.25**, without NeuroBench 1.100 s (counting_over_eval 1.10)" in path.read_text()


def test_bench_fast_runs_what_the_machine_case_chose_and_says_so(capsys, monkeypatch):
    from harness.engine import numerics

    chosen = numerics.FastChoice("avx2-only", "fp32", True, False, "fused", "a test machine")
    monkeypatch.setattr(numerics, "fast_choice", lambda device_type: chosen)
    marked = []
    monkeypatch.setattr("zoo.core.use_fast_paths", lambda model, enabled=True: marked.append(enabled) or model)
    assert main(["bench", *TINY, "--fast", "--against", "reference", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert result["fast"] is True and result["fast_case"] == numerics.device_case("cpu")
    assert result["cpu_case"] == numerics.device_case("cpu")
    assert (result["precision"], result["channels_last"], result["compile"]) == ("fp32", True, False)
    assert marked == [True, False]  # ours; the FLOP count's eager copy without
    assert any("--fast on a" in line and "fp32, channels-last, no compile" in line for line in out)
    assert result["speedup_cpu"] == pytest.approx(result["ref_step_cpu_s_median"] / result["step_cpu_s_median"])


def test_bench_without_fast_names_the_cpu_case(capsys):
    from harness.engine import numerics

    assert main(["bench", *TINY, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1])["cpu_case"] == numerics.device_case("cpu") and "fast_case" not in out[-1]
    assert any(f"this CPU's case for --fast: {numerics.device_case('cpu')}" in line for line in out)


@pytest.mark.parametrize("args,message", [
    (["--mode", "energy", "--fast"], "--mode energy times fp32 eager passes; drop --fast"),
    (["--fast", "--precision", "bf16", "--compile"], "--fast chooses precision, compile and layout for the device; "
                                                    "drop --compile, --precision"),
    (["--fast", "--channels-last"], "drop --channels-last"),
    (["--set", "no_such_arg=1"], "--set 'no_such_arg=1'"),
])
def test_bench_user_mistakes_are_one_line(capsys, args, message):
    assert main(["bench", "spikformer_4_384.cifar10", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bench_still_runs_benchmark_scripts(capsys):
    main(["bench", "lif_speed", "--repeats", "1", "--shape", "2", "8", "16"])
    assert "speed vs spikingjelly" in capsys.readouterr().out


def test_reference_copy_of_an_if_is_spikingjellys_ifnode():
    model = nn.Sequential(IF(v_threshold=0.5, surrogate="atan"))
    ref = with_reference_neurons(model)
    x = torch.rand(4, 3, 5)
    assert type(ref[0].node).__name__ == "IFNode"
    assert torch.equal(model(x), ref(x))


def test_reference_copy_keeps_a_plif_learnt_time_constant():
    plif = PLIF(init_tau=2.0, surrogate="atan")
    with torch.no_grad():
        plif.w.fill_(1.5)  # learnt away from the initial tau: 1 / tau = sigmoid(1.5)
    model = nn.Sequential(plif)
    ref = with_reference_neurons(model)
    x = torch.rand(4, 3, 5) * 2
    assert type(ref[0].node).__name__ == "ParametricLIFNode"
    assert torch.equal(model(x), ref(x))


def _bench_result(fraction: float | None, spread: float) -> dict:
    return {"model": "m", "mode": "train", "batch": 2, "T": 2, "input_shape": [3, 16, 16], "device": "cpu",
            "precision": "fp32", "compile": False, "channels_last": False, "repeats": 5, "warmup": 2,
            "step_s_median": 0.1, "step_s_min": 0.1, "step_s_max": 0.1, "img_per_s": 20.0, "peak_mem_mb": 10.0,
            "gflop_per_step": 1.0, "matmul_peak_gflops": 1.0, "matmul_spread": spread, "peak_fraction": fraction,
            "machine": "cpu"}


@pytest.mark.parametrize("fraction, spread, shown", [
    (0.3, 1.05, 0.3),  # a stable probe, a plausible share: shown
    (2.599, 1.05, None),  # above 100% of the peak: the probe ran slower than the step (a busy machine)
    (0.3, 1.5, None),  # the probe's times spread: the peak itself is not known
])
def test_the_peak_share_is_shown_only_when_the_peak_was_measured_sanely(fraction, spread, shown):
    assert perf.sane_peak_fraction(fraction, spread) == shown
    line = format_bench(_bench_result(perf.sane_peak_fraction(fraction, spread), spread)).splitlines()[2]
    assert ("30.0% of the measured matmul peak (1 GFLOP/s)" in line) == (shown is not None), line
    assert "%" not in line or shown is not None, line
