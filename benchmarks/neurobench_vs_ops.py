"""NeuroBench's effective ACs/MACs beside our ``ops`` counts on a shrunk Spikformer, with the breakdown.

The setting of tests/harness/metrics/test_metrics_neurobench.py (seed 0, 4 N(0,1) 32x32 images, batch 2,
BatchNorm calibrated on them); figures per image.

    python benchmarks/neurobench_vs_ops.py
"""
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
import zoo
from harness.metrics import measure_energy
from harness.metrics.energy import calibrate_batch_norm
from harness.metrics.neurobench_metrics import neurobench_metrics

torch.set_num_threads(1)
torch.manual_seed(0)
model = zoo.create_model("spikformer_4_384.cifar10", dim=64, depth=1, heads=4)
images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
loader = DataLoader(TensorDataset(images, torch.zeros(4, dtype=torch.long)), batch_size=2)
calibrate_batch_norm(model, (x for x, _ in loader))
binary = {}


def hook(name):
    def rec(m, a):
        x = a[0]
        binary[name] = binary.get(name, True) and bool(((x == 0) | (x == 1) | (x == -1)).all())
    return rec


hs = [m.register_forward_pre_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
with torch.no_grad():
    for x, _ in loader:
        model(x)
for h in hs:
    h.remove()
ours = measure_energy(model, (x for x, _ in loader))
nb = neurobench_metrics(model, loader)
mod = [r for r in ours.rows if r.layer in binary and r.kind in ("conv", "matmul")]
same = sum(r.count for r in mod if r.op_class == "AC" and binary[r.layer])
integer = sum(r.count for r in mod if r.op_class == "AC" and not binary[r.layer])
functional = {}
for r in ours.rows:
    if r.op_class == "AC" and r.layer not in binary:
        functional[r.kind] = functional.get(r.kind, 0) + r.count
print(f"neurobench effective ACs {nb['effective_acs']:.1f}  effective MACs {nb['effective_macs']:.1f}  dense {nb['dense_ops']:.1f}")
print(f"ours ops ACs {ours.acs:.1f} = module layers on binary spikes {same:.1f} + module layers on integer counts {integer:.1f} + functional {functional}")
print(f"ours ops MACs {ours.macs:.1f}; paper: encoding {ours.first_layer_macs:.1f} (once), SOPs {ours.sops:.1f}")
print(f"Conv/Linear modules with non-binary inputs (real or integer counts): {[n for n, b in binary.items() if not b]}")
print({k: nb[k] for k in ('footprint_bytes', 'connection_sparsity', 'activation_sparsity')})
