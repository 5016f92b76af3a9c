"""Fast mode's numerics, chosen for the device a run or benchmark executes on.

Machines differ in what makes a spiking model's step fast: bf16 autocast doubles the convolution and matmul rate
on a CPU with native bf16 instructions (avx512_bf16, amx_bf16, Arm's bf16) but makes the step about 4x slower on
one without them (bf16 is then emulated in fp32 code); channels-last convolutions win on some CPUs and not others.
``choose_fast`` picks from the device's capabilities, and where they leave it open (channels-last on a CPU without
native bf16) from a short timed probe whose result is cached per machine (CPU model, flags, torch version).
Every choice here changes the numbers against exact mode; exact mode never comes through this module.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.atomicfile import atomic_write_text

CPUINFO = Path("/proc/cpuinfo")
PROBE_VERSION = 1  # bump when the probe measures something else: older cache files are then re-probed
CHANNELS_LAST_MIN_GAIN = 1.05  # channels-last must be this much faster in the probe to be chosen


@dataclass(frozen=True)
class FastChoice:
    """What ``--fast`` / ``train.fast`` runs with on one device, and why (``case``)."""

    case: str  # amx-bf16 | native-bf16 | avx512-no-bf16 | avx2-only | cpu-other | cuda-bf16 | cuda-no-bf16
    precision: str  # "bf16" (autocast) or "fp32"
    channels_last: bool
    compile: bool
    lif: str  # the LIF implementation fast mode expects: "fused" (CPU) or "triton" (CUDA)
    reason: str  # one line: why these settings on this device

    def settings(self) -> dict[str, Any]:
        """The choice as plain values, for a run's resolved config, its MLflow params and ``bench``'s JSON."""
        return asdict(self)


def cpu_info(text: str | None = None) -> tuple[str, frozenset[str]]:
    """The CPU's model name and feature flags from ``/proc/cpuinfo`` (x86 ``flags``, Arm ``Features``); an empty
    flag set where the file is missing (not Linux)."""
    if text is None:
        try:
            text = CPUINFO.read_text()
        except OSError:
            return platform.processor() or platform.machine(), frozenset()
    model, flags = platform.processor() or platform.machine(), frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and model == (platform.processor() or platform.machine()):
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def device_case(device_type: str) -> str:
    """The case of this machine's CPU (``device_type`` cpu) or GPU (cuda) in ``choose_fast``'s terms."""
    if device_type == "cuda":
        import torch

        return cuda_choice(torch.cuda.get_device_capability()).case
    return cpu_case(cpu_info()[1])


def cpu_case(flags: frozenset[str]) -> str:
    """Which kind of CPU ``flags`` describe, as far as fast mode is concerned."""
    if "amx_bf16" in flags:
        return "amx-bf16"
    if "avx512_bf16" in flags or "bf16" in flags:  # x86 AVX512-BF16; Arm's BF16 extension is "bf16"
        return "native-bf16"
    if "avx512f" in flags:
        return "avx512-no-bf16"
    if "avx2" in flags:
        return "avx2-only"
    return "cpu-other"


NATIVE_BF16_CASES = ("amx-bf16", "native-bf16")


def cpu_choice(case: str, channels_last_gain: float | None) -> FastChoice:
    """The CPU's fast settings: bf16 autocast and channels-last where bf16 is native; otherwise fp32 (never bf16)
    with channels-last only when the probe found it ``CHANNELS_LAST_MIN_GAIN`` faster. No compile on a CPU:
    inductor's code for the spiking neuron is slower than the blocked fused LIF (benchmarks/RESULTS.md)."""
    if case in NATIVE_BF16_CASES:
        return FastChoice(case, "bf16", True, False, "fused",
                          "the CPU has native bf16 instructions: bf16 autocast, channels-last convolutions")
    wins = channels_last_gain is not None and channels_last_gain >= CHANNELS_LAST_MIN_GAIN
    probed = "" if channels_last_gain is None else f" (probe: channels-last {channels_last_gain:.2f}x)"
    layout = "channels-last convolutions" if wins else "contiguous convolutions"
    return FastChoice(case, "fp32", wins, False, "fused",
                      f"no native bf16 on this CPU (bf16 would be emulated, slower): fp32, {layout}{probed}")


def cuda_choice(capability: tuple[int, int]) -> FastChoice:
    """A GPU: bf16 autocast from compute capability 8.0 (Ampere) on, torch.compile, the Triton LIF."""
    if capability >= (8, 0):
        return FastChoice("cuda-bf16", "bf16", False, True, "triton",
                          f"GPU capability {capability[0]}.{capability[1]}: bf16 autocast, torch.compile, Triton LIF")
    return FastChoice("cuda-no-bf16", "fp32", False, True, "triton",
                      f"GPU capability {capability[0]}.{capability[1]} has no native bf16: fp32, torch.compile, "
                      f"Triton LIF")


def probe_cache_dir() -> Path:
    """Where probe results are kept: ``$XDG_CACHE_HOME/spikebench`` or ``~/.cache/spikebench``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "spikebench"


def probe_key(model: str, flags: frozenset[str]) -> str:
    """This machine's cache key: CPU model, flags, torch version and the probe's version."""
    import torch

    text = json.dumps([model, sorted(flags), torch.__version__, PROBE_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def channels_last_probe(repeats: int = 5) -> float:
    """How much faster a spiking 3x3 convolution's fp32 forward + backward runs channels-last than contiguous
    on this CPU (best of ``repeats``, alternating; about a second)."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    spikes = (torch.rand(32, 64, 16, 16, generator=gen) < 0.2).float()
    weight = torch.randn(64, 64, 3, 3, generator=gen)

    def timed(fmt: torch.memory_format) -> Callable[[], float]:
        x = spikes.contiguous(memory_format=fmt)
        w = weight.contiguous(memory_format=fmt).requires_grad_()

        def run() -> float:
            start = time.perf_counter()
            F.conv2d(x, w, padding=1).sum().backward()
            return time.perf_counter() - start
        return run

    plain, last = timed(torch.contiguous_format), timed(torch.channels_last)
    plain(), last()  # warm-up: oneDNN primitive creation
    times = [(plain(), last()) for _ in range(repeats)]
    return min(t[0] for t in times) / min(t[1] for t in times)


def cached_probe(key: str, probe: Callable[[], float], cache_dir: Path | None = None) -> float:
    """``probe()``'s result for this machine, from ``<cache_dir>/fast-probe-<key>.json`` when it holds a valid one;
    else probed now and written atomically. An unreadable or corrupt cache file is ignored (and replaced)."""
    path = (cache_dir or probe_cache_dir()) / f"fast-probe-{key}.json"
    try:
        stored = json.loads(path.read_text())
        gain = float(stored["channels_last_gain"])
        if stored.get("key") == key and math.isfinite(gain) and gain > 0:
            return gain
    except (OSError, ValueError, KeyError, TypeError):
        pass
    gain = probe()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json.dumps({"key": key, "channels_last_gain": gain}), path)
    except OSError:
        pass  # a read-only cache only costs a probe per process
    return gain


def choose_fast(device_type: str = "cpu", cuda_capability: tuple[int, int] | None = None,
                cpuinfo_text: str | None = None, cache_dir: Path | None = None,
                probe: Callable[[], float] | None = None) -> FastChoice:
    """Fast mode's settings for a device of type ``device_type`` (``cpu`` or ``cuda``) on this machine; ``probe``
    (default ``channels_last_probe``) runs only where the CPU's flags leave channels-last open and no cache holds
    its result."""
    if device_type == "cuda":
        if cuda_capability is None:
            import torch

            cuda_capability = torch.cuda.get_device_capability()
        return cuda_choice(cuda_capability)
    model, flags = cpu_info(cpuinfo_text)
    case = cpu_case(flags)
    if case in NATIVE_BF16_CASES:
        return cpu_choice(case, None)
    return cpu_choice(case, cached_probe(probe_key(model, flags), probe or channels_last_probe, cache_dir))


@functools.cache
def fast_choice(device_type: str) -> FastChoice:
    """``choose_fast`` for this machine's ``device_type``, once per process (the probe's cache spans processes)."""
    return choose_fast(device_type)


def run_fast_choice(train_cfg: Any, device_type: str) -> FastChoice | None:
    """The fast settings a recipe's ``train`` section runs with on ``device_type``: None outside fast mode."""
    return fast_choice(device_type) if getattr(train_cfg, "fast", False) else None
