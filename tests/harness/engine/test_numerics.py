"""Fast mode's choice of numerics per device (harness.engine.numerics): the case from the CPU flags or the GPU's
capability, never bf16 without native support, the channels-last probe cached per machine, and what runs record."""

import json

import pytest
from pydantic import ValidationError

from harness.engine import numerics
from harness.recipe import TrainRecipe

X86 = "processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: fpu\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd {flags}\nCPU implementer\t: 0x41\n"


def _never_probe() -> float:
    raise AssertionError("the CPU's flags settle it: no probe")


@pytest.mark.parametrize("flags, case", [
    ("sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile", "amx-bf16"),
    ("sse avx2 avx512f avx512_bf16", "native-bf16"),
    ("sse avx2 avx512f avx512bw", "avx512-no-bf16"),
    ("sse sse4_2 avx avx2 fma", "avx2-only"),
    ("sse sse2", "cpu-other"),
])
def test_cpu_case_from_x86_flags(flags, case):
    model, parsed = numerics.cpu_info(X86.format(flags=flags))
    assert model == "Some CPU 9000" and "fpu" not in parsed  # the first processor's line
    assert numerics.cpu_case(parsed) == case


def test_arm_bf16_feature_is_native_bf16():
    assert numerics.cpu_case(numerics.cpu_info(ARM.format(flags="bf16 sve"))[1]) == "native-bf16"
    assert numerics.cpu_case(numerics.cpu_info(ARM.format(flags="sve"))[1]) == "cpu-other"


@pytest.mark.parametrize("flags, case", [("avx512f avx512_bf16 amx_bf16", "amx-bf16"),
                                         ("avx2 avx512f avx512_bf16", "native-bf16")])
def test_native_bf16_cpu_gets_bf16_and_channels_last_without_compile_or_probe(flags, case, tmp_path):
    choice = numerics.choose_fast("cpu", cpuinfo_text=X86.format(flags=flags), cache_dir=tmp_path,
                                  probe=_never_probe)
    assert (choice.case, choice.precision, choice.channels_last, choice.compile, choice.lif) == (
        case, "bf16", True, False, "fused")


@pytest.mark.parametrize("flags", ["sse avx avx2 fma", "avx2 avx512f avx512bw", "sse2"])
@pytest.mark.parametrize("gain, channels_last", [(1.3, True), (1.0, False), (0.7, False)])
def test_cpu_without_native_bf16_never_gets_bf16_and_takes_channels_last_only_if_it_wins(flags, gain,
                                                                                       channels_last, tmp_path):
    choice = numerics.choose_fast("cpu", cpuinfo_text=X86.format(flags=flags), cache_dir=tmp_path,
                                  probe=lambda: gain)
    assert choice.precision == "fp32" and not choice.compile
    assert choice.channels_last is channels_last
    assert f"{gain:.2f}x" in choice.reason and "bf16" in choice.reason


@pytest.mark.parametrize("capability, precision", [((9, 0), "bf16"), ((8, 0), "bf16"), ((7, 5), "fp32")])
def test_gpu_gets_compile_and_the_triton_lif_and_bf16_from_ampere_on(capability, precision):
    choice = numerics.choose_fast("cuda", cuda_capability=capability, probe=_never_probe)
    assert (choice.precision, choice.compile, choice.lif, choice.channels_last) == (precision, True, "triton", False)
    assert choice.case == ("cuda-bf16" if precision == "bf16" else "cuda-no-bf16")


def test_probe_is_written_once_and_reused(tmp_path):
    calls = []

    def probe() -> float:
        calls.append(1)
        return 1.25

    text = X86.format(flags="avx2")
    first = numerics.choose_fast("cpu", cpuinfo_text=text, cache_dir=tmp_path, probe=probe)
    second = numerics.choose_fast("cpu", cpuinfo_text=text, cache_dir=tmp_path, probe=probe)
    assert first == second and first.channels_last and len(calls) == 1
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == [f"fast-probe-{numerics.probe_key('Some CPU 9000', frozenset({'avx2'}))}.json"]
    assert json.loads(files[0].read_text())["channels_last_gain"] == 1.25
    other = numerics.choose_fast("cpu", cpuinfo_text=X86.format(flags="avx2 fma"), cache_dir=tmp_path, probe=probe)
    assert len(calls) == 2 and other.channels_last  # other flags: another machine, probed on its own


def test_probe_key_changes_with_model_flags_and_torch(monkeypatch):
    import torch

    key = numerics.probe_key("A", frozenset({"avx2"}))
    assert key != numerics.probe_key("B", frozenset({"avx2"}))
    assert key != numerics.probe_key("A", frozenset({"avx2", "fma"}))
    monkeypatch.setattr(torch, "__version__", "0.0.0-other")
    assert key != numerics.probe_key("A", frozenset({"avx2"}))


@pytest.mark.parametrize("content", ["{not json", "[]", '{"channels_last_gain": "fast"}', "",
                                     '{"key": "KEY", "channels_last_gain": NaN}',
                                     '{"key": "KEY", "channels_last_gain": -1}',
                                     '{"key": "another machine", "channels_last_gain": 2.0}'])
def test_corrupt_cache_is_ignored_and_replaced_by_a_new_probe(content, tmp_path):
    key = numerics.probe_key("Some CPU 9000", frozenset({"avx2"}))
    path = tmp_path / f"fast-probe-{key}.json"
    path.write_text(content.replace("KEY", key))
    choice = numerics.choose_fast("cpu", cpuinfo_text=X86.format(flags="avx2"), cache_dir=tmp_path,
                                  probe=lambda: 0.9)
    assert not choice.channels_last and "0.90x" in choice.reason
    assert json.loads(path.read_text()) == {"key": key, "channels_last_gain": 0.9}
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left


def test_unwritable_cache_still_chooses(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    choice = numerics.choose_fast("cpu", cpuinfo_text=X86.format(flags="avx2"), cache_dir=blocker / "sub",
                                  probe=lambda: 1.5)
    assert choice.channels_last


def test_channels_last_probe_measures_a_positive_ratio():
    assert numerics.channels_last_probe(repeats=1) > 0


def test_recipe_fast_refuses_settings_it_chooses():
    assert TrainRecipe(fast=True).fast
    with pytest.raises(ValidationError, match="train.fast chooses .* drop precision: bf16, compile: true"):
        TrainRecipe(fast=True, precision="bf16", compile=True)


def test_run_fast_choice_only_in_fast_mode(monkeypatch):
    monkeypatch.setattr(numerics, "fast_choice", lambda device_type: f"choice for {device_type}")
    assert numerics.run_fast_choice(TrainRecipe(), "cpu") is None
    assert numerics.run_fast_choice(TrainRecipe(fast=True), "cpu") == "choice for cpu"
