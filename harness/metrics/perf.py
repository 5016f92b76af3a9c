"""Speed and memory: throughput (img/s), latency, peak memory, and whole-model step benchmarks.

``bench_model`` times a zoo model's train or eval step (warm-up, repeated device-synchronised steps,
median and spread), its peak memory and FLOPs, and optionally, alternating in the same process, the same
architecture with spikingjelly's ``LIFNode`` in place of the zoo neuron (fp32, eager): the official codes'
neuron. Speed and memory are reported as ratios against that reference, never asserted in tests.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window (GPU only: the CPU figure is the process's lifetime peak RSS)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch since the last reset, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def training_heads(outputs: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """A model's training outputs as a tuple: one logits tensor, or a kd model's class and distillation heads
    (both take part in a distillation step, so both are timed)."""
    return outputs if isinstance(outputs, tuple) else (outputs,)


def throughput(model: nn.Module, x: torch.Tensor, steps: int = 5, warmup: int = 1, train: bool = False) -> float:
    """Images per second of forward (eval, no grad) or forward+backward (train) passes on batch ``x``."""
    device = x.device
    model.train(train)

    def step() -> None:
        if train:
            model.zero_grad(set_to_none=True)
            sum(logits.float().sum() for logits in training_heads(model(x))).backward()
        else:
            with torch.no_grad():
                model(x)

    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * x.shape[0] / (time.perf_counter() - start)


def latency_ms(model: nn.Module, x: torch.Tensor, repeats: int = 10, warmup: int = 2) -> dict[str, float]:
    """Median and 90th-percentile wall time of one eval forward pass on ``x`` (use batch 1 for latency)."""
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            _sync(x.device)
            start = time.perf_counter()
            model(x)
            _sync(x.device)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[min(len(times) - 1, int(0.9 * len(times)))]}


# ----------------------------------------------------------------------------------------- memory


class LiveTensorMemory(TorchDispatchMode):
    """Peak bytes of tensor storages created inside the context and still alive (CPU or GPU).

    The CPU has no allocator statistics; this follows every storage an operator returns until it is freed,
    so the figure is the step's own peak (activations, saved tensors, gradients), not the process's RSS.
    """

    def __init__(self) -> None:
        super().__init__()
        from torch.multiprocessing.reductions import StorageWeakRef

        self._weakref = StorageWeakRef
        self._live: dict[int, tuple[Any, int]] = {}
        self.current = 0
        self.peak = 0

    def _sweep(self) -> None:
        for key in [k for k, (ref, _) in self._live.items() if ref.expired()]:
            self.current -= self._live.pop(key)[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self._sweep()
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self._live:
                    self._live[key] = (self._weakref(storage), storage.nbytes())
                    self.current += storage.nbytes()
        self.peak = max(self.peak, self.current)
        return out


def step_peak_memory_mb(step: Callable[[], Any], device: torch.device) -> float:
    """Peak memory of one call of ``step`` beyond what existed before it (MiB)."""
    _sync(device)
    if device.type == "cuda":
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    with LiveTensorMemory() as tracker:
        step()
    return tracker.peak / 2**20


# ----------------------------------------------------------------------------------------- FLOPs and peak


class _FlopCount(TorchDispatchMode):
    """Adds up the FLOPs of every executed op that torch's flop counter has a formula for (matmuls, convolutions,
    attention, and their backward). Unlike ``FlopCounterMode`` it tracks no module stack, which costs more than
    a small model's forward itself."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        from torch.utils.flop_counter import flop_registry

        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out


def step_flops(step: Callable[[], Any]) -> int:
    """Matmul and convolution FLOPs of one call of ``step`` (forward and, if it runs one, backward)."""
    with _FlopCount() as counter:
        step()
    return counter.flops


MATMUL_SPREAD_MAX = 1.2  # the probe's median time over its best: above it, other work shared the machine


def sane_peak_fraction(fraction: float, spread: float) -> float | None:
    """The step's share of the measured matmul peak, or None when that peak was not measured sanely: a
    fraction above 1 (the probe ran slower than the step's own matmuls: the machine was busy) or a probe whose
    timings spread by more than ``MATMUL_SPREAD_MAX``."""
    return fraction if fraction <= 1.0 and spread <= MATMUL_SPREAD_MAX else None


def matmul_probe(device: torch.device, dtype: torch.dtype = torch.float32) -> tuple[Callable[[], Any], int]:
    """A dense square matmul and its FLOPs: timed between the steps, its best rate is the machine's peak."""
    n = 4096 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return (lambda: a @ b), 2 * n**3


# ----------------------------------------------------------------------------------------- reference neuron


class SpikingJellyLIF(nn.Module):
    """spikingjelly's multi-step ``LIFNode`` with a zoo ``LIF``'s settings (``ParametricLIFNode`` with the learnt
    ``w`` for a zoo ``PLIF``, ``IFNode`` for a zoo ``IF``), state reset after every call."""

    def __init__(self, lif: nn.Module) -> None:
        super().__init__()
        from spikingjelly.activation_based import neuron, surrogate

        from zoo.core import IF

        maker = {"sigmoid": surrogate.Sigmoid, "atan": surrogate.ATan}[lif.surrogate.name]
        settings = dict(v_threshold=lif.v_threshold, v_reset=lif.v_reset,
                        surrogate_function=maker(alpha=lif.surrogate.alpha), detach_reset=lif.detach_reset,
                        step_mode="m")
        if isinstance(lif, IF):  # no leak: no tau, no decay_input
            self.node = neuron.IFNode(**settings)
        elif lif.decay() is None:
            self.node = neuron.LIFNode(tau=lif.tau, decay_input=lif.decay_input, **settings)
        else:
            self.node = neuron.ParametricLIFNode(init_tau=lif.tau, decay_input=lif.decay_input, **settings)
            with torch.no_grad():
                self.node.w.copy_(lif.w)
        self.time_dim = lif.time_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes = self.node(x.movedim(self.time_dim, 0))
        self.node.reset()
        return spikes.movedim(0, self.time_dim)


def with_reference_neurons(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (same weights) run as the official code runs it: every zoo LIF becomes spikingjelly's
    ``LIFNode`` (a PLIF its ``ParametricLIFNode``, an IF its ``IFNode``) and every zoo convolution or linear layer
    a plain ``nn.Conv1d``/``nn.Conv2d``/``nn.Linear`` (no compact saved inputs)."""
    from zoo.core import LIF
    from zoo.core.layers import SpikeConv1d, SpikeConv2d, SpikeLinear

    plain = {SpikeConv1d: nn.Conv1d, SpikeConv2d: nn.Conv2d, SpikeLinear: nn.Linear}
    ref = copy.deepcopy(model)
    for parent in list(ref.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LIF):
                setattr(parent, name, SpikingJellyLIF(child))
            elif type(child) in plain:
                child.__class__ = plain[type(child)]
    return ref


# ----------------------------------------------------------------------------------------- model bench

Mode = Literal["train", "eval", "energy"]


@dataclass(frozen=True)
class BenchConfig:
    """What to time: a zoo model name and the step's shape, device and numerics."""

    model: str
    mode: Mode = "train"
    batch: int = 16
    T: int | None = None  # None: the card's T
    size: int | None = None  # input height = width; None: the card's input size
    device: str = "cpu"
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast (fast mode: bf16 + compile)
    compile: bool = False
    channels_last: bool = False  # our model and its input in channels-last (the reference stays contiguous)
    fast: bool = False  # fast mode: numerics from harness.engine.numerics and the zoo's fast paths (use_fast_paths)
    against: str | None = None  # "reference": also time the spikingjelly-neuron copy
    warmup: int = 2
    repeats: int = 5
    seed: int = 0
    overrides: tuple[tuple[str, Any], ...] = ()  # model constructor arguments (e.g. smaller widths)


def random_batch(model: nn.Module, cfg: BenchConfig, T: int,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random batch in the model's input format (static images or DVS event counts) with labels."""
    card = model.card
    channels, height, width = card.input_shape
    if cfg.size is not None:
        height = width = cfg.size
    gen = torch.Generator().manual_seed(cfg.seed)
    if model.input_kind == "dvs":
        x = torch.randint(0, 3, (cfg.batch, T, channels, height, width), generator=gen).float()
    else:
        x = torch.randn(cfg.batch, channels, height, width, generator=gen)
    y = torch.randint(0, card.num_classes, (cfg.batch,), generator=gen)
    return x.to(device), y.to(device)


class StepRunner:
    """One model's train step (cross-entropy, backward, AdamW) or eval step (no-grad forward)."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, mode: Mode, precision: str = "fp32",
                 compile: bool = False) -> None:
        self.model, self.x, self.y, self.mode = model, x, y, mode
        self.model.train(mode == "train")
        self.net = torch.compile(model) if compile else model
        self.dtype = torch.bfloat16 if precision == "bf16" else None
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5) if mode == "train" else None

    def forward(self) -> torch.Tensor:
        if self.dtype is None:
            return self.net(self.x)
        with torch.autocast(self.x.device.type, dtype=self.dtype):
            return self.net(self.x)

    def __call__(self) -> torch.Tensor:
        if self.optimizer is None:
            with torch.no_grad():
                return self.forward()
        self.optimizer.zero_grad(set_to_none=True)
        heads = training_heads(self.forward())
        sum(F.cross_entropy(logits.float(), self.y) for logits in heads).backward()
        self.optimizer.step()
        return heads[0].detach()


def time_alternating(steps: dict[str, Callable[[], Any]], device: torch.device, warmup: int,
                     repeats: int) -> dict[str, list[float]]:
    """Wall time of each step, the steps interleaved round by round (shared-machine noise hits all alike)."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def machine_description(device: torch.device) -> str:
    """CPU model and core count (and the GPU's name on CUDA), torch version and thread count."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    if device.type == "cuda":
        text = f"{torch.cuda.get_device_name(device)}; {text}"
    return text


def bench_energy(cfg: BenchConfig) -> dict[str, Any]:
    """Time a plain evaluation pass and the measurement pass (energy in both conventions, firing rates and
    NeuroBench, :func:`~harness.metrics.energy.measure_energy`) over the same batch, alternating; the ratio is
    ``energy_over_eval`` (``counting_over_eval``: the same pass without NeuroBench). With ``against='reference'``
    also the old path: the dispatcher counter, then NeuroBench's own ``Benchmark.run`` pass. BatchNorms are first
    calibrated on the batch, so that neurons fire."""
    import zoo
    from harness.metrics.energy import calibrate_batch_norm, measure_energy
    from harness.metrics.neurobench_metrics import neurobench_metrics

    device = torch.device(cfg.device)
    T = cfg.T or zoo.model_card(cfg.model).T
    torch.manual_seed(cfg.seed)
    model = zoo.create_model(cfg.model, **{"T": T, **dict(cfg.overrides)}).to(device)
    x, y = random_batch(model, cfg, T, device)
    calibrate_batch_norm(model, [x])

    def evaluate() -> None:
        with torch.no_grad():
            model(x)

    steps: dict[str, Callable[[], Any]] = {"eval": evaluate,
                                          "energy": lambda: measure_energy(model, [x], T, neurobench=True),
                                          "counting": lambda: measure_energy(model, [x], T)}
    if cfg.against == "reference":
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=cfg.batch)

        def old_path() -> None:
            measure_energy(model, [x], T, counter="reference")
            neurobench_metrics(model, loader)
        steps["old"] = old_path
    cpu: dict[str, list[float]] = {name: [] for name in steps}
    times = time_alternating({name: _cpu_timed(step, cpu[name]) for name, step in steps.items()}, device,
                             cfg.warmup, cfg.repeats)
    cpu_medians = {name: statistics.median(t[cfg.warmup:]) for name, t in cpu.items()}
    medians = {name: statistics.median(t) for name, t in times.items()}
    result: dict[str, Any] = {
        **{k: v for k, v in asdict(cfg).items() if k not in ("T", "against", "overrides")}, "T": T,
        "overrides": dict(cfg.overrides), "input_shape": list(x.shape[1:]), "machine": machine_description(device),
        "eval_s_median": medians["eval"], "energy_s_median": medians["energy"],
        "eval_s_all": times["eval"], "energy_s_all": times["energy"],
        "counting_s_median": medians["counting"], "counting_s_all": times["counting"],
        "energy_over_eval": medians["energy"] / medians["eval"],
        "counting_over_eval": medians["counting"] / medians["eval"],
        # this process's CPU time per step: on a CPU shared with other jobs, steadier than wall time
        "eval_cpu_s_median": cpu_medians["eval"], "energy_over_eval_cpu": cpu_medians["energy"] / cpu_medians["eval"],
        "counting_over_eval_cpu": cpu_medians["counting"] / cpu_medians["eval"],
    }
    if "old" in medians:
        result.update({"against": "reference", "old_s_median": medians["old"], "old_s_all": times["old"],
                       "old_over_eval": medians["old"] / medians["eval"],
                       "old_over_energy": medians["old"] / medians["energy"]})
    return result


def _cpu_timed(step: Callable[[], Any], record: list[float]) -> Callable[[], None]:
    """``step``, appending the CPU time this process spends in it to ``record``."""
    def run() -> None:
        start = time.process_time()
        step()
        record.append(time.process_time() - start)
    return run


def bench_model(cfg: BenchConfig) -> dict[str, Any]:
    """Time ``cfg``'s step; with ``against='reference'`` also the spikingjelly-neuron copy, alternating.
    ``mode='energy'`` times the energy measurement against a plain evaluation (:func:`bench_energy`)."""
    import zoo
    from harness.engine.numerics import device_case
    from zoo.core import to_channels_last, use_fast_paths

    if cfg.mode == "energy":
        return bench_energy(cfg)
    device = torch.device(cfg.device)
    T = cfg.T or zoo.model_card(cfg.model).T
    torch.manual_seed(cfg.seed)
    model = zoo.create_model(cfg.model, **{"T": T, **dict(cfg.overrides)}).to(device)
    models = {"ours": model}
    if cfg.against == "reference":
        models["reference"] = with_reference_neurons(model)
    x, y = random_batch(model, cfg, T, device)
    ours_x = x
    if cfg.fast:
        use_fast_paths(model)
    if cfg.channels_last:
        to_channels_last(model)
        ours_x = x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
    runners = {name: StepRunner(m, ours_x, y, cfg.mode, cfg.precision, cfg.compile) if name == "ours"
               else StepRunner(m, x, y, cfg.mode) for name, m in models.items()}
    first = {name: runner() for name, runner in runners.items()}  # before any update: same weights
    probe, probe_flops = matmul_probe(device, torch.bfloat16 if cfg.precision == "bf16" else torch.float32)
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    timed = {name: _cpu_timed(runner, cpu[name]) for name, runner in runners.items()}
    times = time_alternating({**timed, "matmul": probe}, device, cfg.warmup, cfg.repeats)
    cpu_median = {name: statistics.median(t[cfg.warmup:]) for name, t in cpu.items()}
    peak = {name: step_peak_memory_mb(runner, device) for name, runner in runners.items()}
    eager = StepRunner(use_fast_paths(copy.deepcopy(model), enabled=False), x, y, cfg.mode)
    flops = step_flops(eager)
    median = statistics.median(times["ours"])
    peak_rate = probe_flops / min(times["matmul"])
    spread = statistics.median(times["matmul"]) / min(times["matmul"])
    result: dict[str, Any] = {
        **{k: v for k, v in asdict(cfg).items() if k not in ("T", "against", "overrides")}, "T": T,
        "overrides": dict(cfg.overrides),
        "input_shape": list(x.shape[1:]), "machine": machine_description(device),
        "cpu_case": device_case("cpu"), **({"fast_case": device_case(device.type)} if cfg.fast else {}),
        "step_s_median": median, "step_s_min": min(times["ours"]), "step_s_max": max(times["ours"]),
        "step_cpu_s_median": cpu_median["ours"],  # this process's CPU time: steadier on a shared machine
        "img_per_s": cfg.batch / median, "peak_mem_mb": peak["ours"], "gflop_per_step": flops / 1e9,
        "matmul_peak_gflops": peak_rate / 1e9, "matmul_spread": spread,
        "peak_fraction": sane_peak_fraction(flops / median / peak_rate, spread),
    }
    if "reference" in models:
        ref_median = statistics.median(times["reference"])
        result.update({
            "against": "reference", "ref_step_s_median": ref_median, "ref_step_s_min": min(times["reference"]),
            "ref_step_s_max": max(times["reference"]), "ref_peak_mem_mb": peak["reference"],
            "speedup": ref_median / median, "speedup_best": min(times["reference"]) / min(times["ours"]),
            "ref_step_cpu_s_median": cpu_median["reference"],
            "speedup_cpu": cpu_median["reference"] / cpu_median["ours"],
            "mem_ratio": peak["ours"] / peak["reference"],
            "max_abs_logit_diff": (first["ours"].float() - first["reference"].float()).abs().max().item(),
        })
    return result


def format_bench(result: dict[str, Any]) -> str:
    """Human-readable lines for one ``bench_model`` result."""
    if result.get("mode") == "energy":
        return _format_energy_bench(result)
    lines = [
        f"{result['model']} {result['mode']} batch={result['batch']} T={result['T']} input={result['input_shape']} "
        f"device={result['device']} precision={result['precision']} compile={result['compile']} "
        f"channels_last={result['channels_last']} "
        f"({result['repeats']} timed steps after {result['warmup']} "
        f"warm-up, alternating)",
        *([f"  numerics:  {_numerics_text(result)}"] if "cpu_case" in result else []),
        f"  ours:      step median {result['step_s_median']:.3f} s (min {result['step_s_min']:.3f}, max "
        f"{result['step_s_max']:.3f}), {result['img_per_s']:.1f} img/s, peak memory {result['peak_mem_mb']:.0f} MiB",
        f"  compute:   {result['gflop_per_step']:.1f} GFLOP/step{_peak_text(result)}",
    ]
    if "speedup" in result:
        lines += [
            f"  reference: step median {result['ref_step_s_median']:.3f} s (min {result['ref_step_s_min']:.3f}, max "
            f"{result['ref_step_s_max']:.3f}), peak memory {result['ref_peak_mem_mb']:.0f} MiB",
            f"  speedup {result['speedup']:.2f}x (medians; {result['speedup_best']:.2f}x best-of; "
            f"{result['speedup_cpu']:.2f}x in this process's CPU time), "
            f"memory ratio {result['mem_ratio']:.2f}, max |logit diff| "
            f"{result['max_abs_logit_diff']:.2e}",
        ]
    lines.append(f"  machine: {result['machine']}")
    return "\n".join(lines)


def _numerics_text(result: dict[str, Any]) -> str:
    """Which case the machine is in and, in fast mode, what that chose."""
    if not result.get("fast"):
        return f"as asked; this CPU's case for --fast: {result['cpu_case']}"
    chosen = ["bf16 autocast" if result["precision"] == "bf16" else "fp32",
              "channels-last" if result["channels_last"] else "contiguous",
              "torch.compile" if result["compile"] else "no compile", "zoo fast paths"]
    return f"--fast on a {result['fast_case']} machine: {', '.join(chosen)}"


def _peak_text(result: dict[str, Any]) -> str:
    """The step's share of the matmul peak; without a sane peak, why there is no share (never a wrong one)."""
    if result["peak_fraction"] is None:
        return (f" (no share of the matmul peak: the peak probe was not stable, its times spread "
                f"{result['matmul_spread']:.2f}x, or it ran slower than the step; is the machine busy?)")
    return (f", {result['peak_fraction'] * 100:.1f}% of the measured matmul peak "
            f"({result['matmul_peak_gflops']:.0f} GFLOP/s)")


def _format_energy_bench(result: dict[str, Any]) -> str:
    lines = [
        f"{result['model']} energy measurement vs evaluation, batch={result['batch']} T={result['T']} "
        f"input={result['input_shape']} device={result['device']} ({result['repeats']} timed rounds after "
        f"{result['warmup']} warm-up, alternating)",
        f"  eval:    median {result['eval_s_median']:.3f} s per batch",
        f"  energy:  median {result['energy_s_median']:.3f} s per batch (hook counter, firing rates, NeuroBench in "
        f"the same pass)",
        f"  counting: median {result['counting_s_median']:.3f} s per batch (the same without NeuroBench)",
        f"  energy_over_eval {result['energy_over_eval']:.2f}, counting_over_eval {result['counting_over_eval']:.2f}",
        f"  in this process's CPU time: energy_over_eval_cpu {result['energy_over_eval_cpu']:.2f}, "
        f"counting_over_eval_cpu {result['counting_over_eval_cpu']:.2f}",
    ]
    if "old_s_median" in result:
        lines.append(f"  old path (dispatcher counter + NeuroBench's own pass): median {result['old_s_median']:.3f} s, "
                     f"old_over_eval {result['old_over_eval']:.2f}, {result['old_over_energy']:.1f}x the new path")
    lines.append(f"  machine: {result['machine']}")
    return "\n".join(lines)


RECORD_HEADER = "## `harness bench` records"


def record_bench(result: dict[str, Any], command: str, path: Path) -> None:
    """Append one result (date, machine, command, figures) to the records section of ``path``."""
    text = path.read_text() if path.is_file() else "# Measured results\n"
    if RECORD_HEADER not in text:
        text = text.rstrip("\n") + (
            f"\n\n{RECORD_HEADER}\n\nAppended by `python -m harness bench MODEL ... --record`. Times are medians of "
            "steps alternating with the reference in one process (the machine may be shared).\n")
    figures = _record_figures(result)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    entry = f"\n- {stamp}, {result['machine']}: `{command}`\n  {figures}\n"
    path.write_text(text.rstrip("\n") + "\n" + entry)


def _record_figures(result: dict[str, Any]) -> str:
    """The one-line figures of a record."""
    if result.get("mode") == "energy":
        figures = (f"eval {result['eval_s_median']:.3f} s, energy {result['energy_s_median']:.3f} s per batch: "
                   f"**energy_over_eval {result['energy_over_eval']:.2f}**, without NeuroBench "
                   f"{result['counting_s_median']:.3f} s (counting_over_eval {result['counting_over_eval']:.2f})")
        if "old_s_median" in result:
            figures += f"; old path {result['old_s_median']:.3f} s (old_over_eval {result['old_over_eval']:.2f})"
        return figures
    figures = (f"step {result['step_s_median']:.3f} s, {result['img_per_s']:.1f} img/s, "
               f"peak {result['peak_mem_mb']:.0f} MiB")
    if "speedup" in result:
        figures += (f"; reference {result['ref_step_s_median']:.3f} s, peak {result['ref_peak_mem_mb']:.0f} MiB; "
                    f"**speedup {result['speedup']:.2f}x, memory ratio {result['mem_ratio']:.2f}**")
    return figures
