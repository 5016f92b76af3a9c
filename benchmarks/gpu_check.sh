#!/usr/bin/env bash
# GPU checks for issue 13, one JSON object per line, under 10 minutes on one modern GPU:
#  1. the Triton LIF kernel against the fused CPU path on CUDA, every neuron setting the zoo uses;
#  2. `bench` of the four CIFAR models (train and eval) against the spikingjelly-neuron reference with AMP (bf16);
#  3. 50 AMP train steps of every ImageNet config at 224x224, batch 4: divergence and peak memory.
# Usage: benchmarks/gpu_check.sh [PYTHON]   (run from the repository root; default python: .venv/bin/python)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
$PY -c 'import torch, json; print(json.dumps({"check": "device", "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}))'
timeout 120 $PY benchmarks/triton_check.py
for model in msvit_4_384.cifar10 qkformer_4_384.cifar10 spikformer_4_384.cifar10 sdt_2_512.cifar10; do
  for mode in train eval; do
    timeout 90 $PY -m harness bench "$model" --device cuda --mode "$mode" --batch 64 --precision bf16 \
      --against reference --warmup 3 --repeats 10 --json | tail -n 1
  done
done
timeout 330 $PY benchmarks/amp_steps.py --pattern '*.in1k' --steps 50 --batch 4 --device cuda
