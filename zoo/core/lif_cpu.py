"""Fast mode's LIF on the CPU as two C loops (forward, backward), compiled once per machine and loaded with ctypes.

The blocked ``FusedLIF`` issues several tensor operations per time step, each a pass over its block of neurons;
these loops make one pass over the layer for all T steps, reading a bf16 input and writing bf16 spikes and
gradients directly. The arithmetic is fast mode's (``H = X / tau + (1 - 1/tau) V``, the surrogate's constant
factor applied at the end), so the numbers match ``_forward_block_fast`` / ``_backward_block_fast`` up to
rounding, never exact mode's. The sigmoid's slope is taken as ``e / (1 + e)^2`` with ``e = exp(-alpha |z|)``
(the same value, symmetric in z): with ``-ffast-math`` an overflowing ``exp`` is undefined, and far from the
threshold ``sg (1 - sg)`` turned into NaN. Built with the system C compiler into
``$XDG_CACHE_HOME/spikebench/kernels`` (``~/.cache`` by default), keyed by the source, the compiler and the CPU's
flags; without a compiler the blocked fast path runs instead.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

SOURCE = r"""
#include <stdint.h>
#include <string.h>
#include <math.h>
#define BLOCK 512
static inline float from_bf16(uint16_t v) { uint32_t u = (uint32_t)v << 16; float f; memcpy(&f, &u, 4); return f; }
static inline uint16_t to_bf16(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
void lif_forward(const void *x, int64_t x_row, int bf16, float *h, int64_t h_row, void *s, int64_t s_row,
                 int64_t T, int64_t n, float scale, float leak, float thr, int soft) {
    float v[BLOCK];
    for (int64_t i0 = 0; i0 < n; i0 += BLOCK) {
        int64_t m = n - i0 < BLOCK ? n - i0 : BLOCK;
        for (int64_t i = 0; i < m; i++) v[i] = 0.0f;
        for (int64_t t = 0; t < T; t++) {
            float *ht = h + t * h_row + i0;
            if (bf16) {
                const uint16_t *xt = (const uint16_t *)x + t * x_row + i0;
                uint16_t *st = (uint16_t *)s + t * s_row + i0;
                for (int64_t i = 0; i < m; i++) {
                    float hv = from_bf16(xt[i]) * scale + leak * v[i];
                    float fire = hv >= thr ? 1.0f : 0.0f;
                    ht[i] = hv;
                    st[i] = fire != 0.0f ? (uint16_t)0x3f80 : (uint16_t)0;
                    v[i] = soft ? hv - thr * fire : hv - hv * fire;
                }
            } else {
                const float *xt = (const float *)x + t * x_row + i0;
                float *st = (float *)s + t * s_row + i0;
                for (int64_t i = 0; i < m; i++) {
                    float hv = xt[i] * scale + leak * v[i];
                    float fire = hv >= thr ? 1.0f : 0.0f;
                    ht[i] = hv;
                    st[i] = fire;
                    v[i] = soft ? hv - thr * fire : hv - hv * fire;
                }
            }
        }
    }
}
void lif_backward(const float *h, int64_t h_row, const void *gs, int64_t gs_row, int bf16, void *gx, int64_t gx_row,
                  int64_t T, int64_t n, float thr, float leak, float out_scale, int soft, int atan_surrogate,
                  float alpha) {
    float g[BLOCK];
    const float half_pi_alpha = 1.57079632679489662f * alpha;
    for (int64_t i0 = 0; i0 < n; i0 += BLOCK) {
        int64_t m = n - i0 < BLOCK ? n - i0 : BLOCK;
        for (int64_t i = 0; i < m; i++) g[i] = 0.0f;
        for (int64_t t = T - 1; t >= 0; t--) {
            const float *ht = h + t * h_row + i0;
            for (int64_t i = 0; i < m; i++) {
                float z = ht[i] - thr, d;
                if (atan_surrogate) { float y = half_pi_alpha * z; d = 1.0f / (1.0f + y * y); }
                else { float e = expf(-alpha * fabsf(z)); float q = 1.0f + e; d = e / (q * q); }
                float grad_s = bf16 ? from_bf16(((const uint16_t *)gs + t * gs_row + i0)[i])
                                    : ((const float *)gs + t * gs_row + i0)[i];
                float carry = soft ? leak * g[i] : (z < 0.0f ? leak * g[i] : 0.0f);
                g[i] = d * grad_s + carry;
            }
            if (bf16) {
                uint16_t *out = (uint16_t *)gx + t * gx_row + i0;
                for (int64_t i = 0; i < m; i++) out[i] = to_bf16(g[i] * out_scale);
            } else {
                float *out = (float *)gx + t * gx_row + i0;
                for (int64_t i = 0; i < m; i++) out[i] = g[i] * out_scale;
            }
        }
    }
}
"""

BF16, FP32 = 1, 0
_ARGS = {
    "lif_forward": [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                    ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_float, ctypes.c_float, ctypes.c_float,
                    ctypes.c_int],
    "lif_backward": [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_void_p,
                     ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_float, ctypes.c_float, ctypes.c_float,
                     ctypes.c_int, ctypes.c_int, ctypes.c_float],
}


def kernel_dir() -> Path:
    """Where compiled kernels are kept."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spikebench" / "kernels"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip().lower() in ("flags", "features"):
                return line
    except OSError:
        pass
    return platform.processor()


def _build(compiler: str, path: Path) -> None:
    """Compile ``SOURCE`` into the shared library ``path`` (through a temporary file: never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    source = path.with_name(f".{path.stem}.{os.getpid()}.c")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        source.write_text(SOURCE)
        subprocess.run([compiler, "-O3", "-march=native", "-ffast-math", "-fPIC", "-shared", "-o", str(tmp),
                        str(source), "-lm"], check=True, capture_output=True, timeout=120)
        os.replace(tmp, path)
    finally:
        source.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; None where no C compiler can build them."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
        key = hashlib.sha256("\0".join([SOURCE, version, _cpu_flags(), platform.machine()]).encode()).hexdigest()
        path = kernel_dir() / f"lif-{key[:16]}.so"
        if not path.is_file():
            _build(compiler, path)
        lib = ctypes.CDLL(str(path))
    except (OSError, subprocess.SubprocessError):
        return None
    for name, argtypes in _ARGS.items():
        getattr(lib, name).argtypes = argtypes
    return lib


def applies(*tensors: torch.Tensor) -> bool:
    """Whether the kernels take these ``[T, n]`` views: CPU, fp32 or bf16, neurons at unit stride, and built."""
    return (all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.bfloat16) and t.stride(1) == 1
                for t in tensors) and library() is not None)


def _code(t: torch.Tensor) -> int:
    return BF16 if t.dtype == torch.bfloat16 else FP32


def _columns(fn, count: int) -> None:
    """``fn(start, stop)`` over the neurons ``[0, count)``, split among torch's threads."""
    threads = min(torch.get_num_threads(), max(1, count // 65536))
    if threads == 1:
        fn(0, count)
        return
    bounds = [count * k // threads for k in range(threads + 1)]
    with ThreadPoolExecutor(threads) as pool:  # ctypes releases the GIL during each call
        list(pool.map(fn, bounds[:-1], bounds[1:]))


def forward(x: torch.Tensor, h_seq: torch.Tensor, spikes: torch.Tensor, tau: float, v_threshold: float,
            v_reset: float | None, decay_input: bool) -> None:
    """Fast mode's forward over ``[T, n]`` views: ``h_seq`` (fp32) and ``spikes`` (``x``'s dtype) written."""
    lib, steps = library(), x.shape[0]
    scale, leak = (1.0 / tau if decay_input else 1.0), 1.0 - 1.0 / tau

    def run(start: int, stop: int) -> None:
        lib.lif_forward(x[:, start:].data_ptr(), x.stride(0), _code(x), h_seq[:, start:].data_ptr(),
                        h_seq.stride(0), spikes[:, start:].data_ptr(), spikes.stride(0), steps, stop - start,
                        scale, leak, v_threshold, v_reset is None)
    _columns(run, x.shape[1])


def backward(h_seq: torch.Tensor, grad_spikes: torch.Tensor, grad_x: torch.Tensor, tau: float, v_threshold: float,
             v_reset: float | None, decay_input: bool, surrogate) -> None:
    """Fast mode's backward over ``[T, n]`` views: ``grad_x`` written from ``h_seq`` and the spikes' gradient."""
    lib, steps = library(), h_seq.shape[0]
    is_atan = surrogate.name == "atan"
    factor = surrogate.alpha / 2.0 if is_atan else surrogate.alpha  # the derivative's constant factor
    scale = factor / tau if decay_input else factor
    if grad_spikes.dtype != grad_x.dtype:
        grad_spikes = grad_spikes.to(grad_x.dtype)

    def run(start: int, stop: int) -> None:
        lib.lif_backward(h_seq[:, start:].data_ptr(), h_seq.stride(0), grad_spikes[:, start:].data_ptr(),
                         grad_spikes.stride(0), _code(grad_spikes), grad_x[:, start:].data_ptr(), grad_x.stride(0),
                         steps, stop - start, v_threshold, 1.0 - 1.0 / tau, scale, v_reset is None, is_atan,
                         surrogate.alpha)
    _columns(run, h_seq.shape[1])
