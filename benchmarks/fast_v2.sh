#!/usr/bin/env bash
# Fast mode v2 (issue 24): `--fast` against the reference on the four CIFAR models, train step, batch 16, T 4,
# one thread. Prints the CPU and its bf16 flags, then one Markdown table row per model (median, best-of and
# CPU-time speedups, memory ratio, logit difference against the reference, start time and load average).
# Usage: bash benchmarks/fast_v2.sh [MODEL ...]   (from the repository root; PYTHON overrides the interpreter,
# BENCH_ARGS adds bench flags, e.g. BENCH_ARGS="--set depth=1" for a quick check of the script)
set -euo pipefail
PYTHON=${PYTHON:-python}
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] ||
  MODELS=(msvit_4_384.cifar10 spikformer_4_384.cifar10 sdt_2_512.cifar10 qkformer_4_384.cifar10)
ROW='
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
r["numerics"] = ", ".join([r["precision"], "channels-last" if r["channels_last"] else "contiguous",
                           "compile" if r["compile"] else "no compile"])
print("| {model} | {fast_case} | {numerics} | {step_s_median:.2f} ({step_s_min:.2f}-{step_s_max:.2f}) | "
      "{ref_step_s_median:.2f} | **{speedup:.2f}x** | {speedup_best:.2f}x | {speedup_cpu:.2f}x | {mem_ratio:.2f} | "
      "{max_abs_logit_diff:.1e} | ".format(**r) + sys.argv[2] + " |")
'
flags=$(grep -o -w 'avx512_bf16\|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')
echo "CPU: $(lscpu | grep 'Model name' | sed 's/.*: *//'); bf16 flags: ${flags:-none}"
echo -n "| model | case | numerics | ours median s (min-max) | reference median s | speedup (medians) | best-of "
echo "| CPU time | mem_ratio | max logit diff | start (UTC), load |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for model in "${MODELS[@]}"; do
  start="$(date -u +%H:%M:%S), $(uptime | sed 's/.*load average: \([^,]*\),.*/\1/')"
  $PYTHON -m harness bench "$model" --mode train --batch 16 --T 4 --device cpu --fast --against reference --json \
    --threads 1 --warmup 1 --repeats 3 ${BENCH_ARGS:-} > "$out"
  $PYTHON -c "$ROW" "$out" "$start"
done
