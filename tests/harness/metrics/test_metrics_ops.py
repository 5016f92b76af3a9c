"""Dispatcher-level op counts: exact on hand-built networks, attributed to layers, MAC vs AC with multiplicity."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.metrics import OpCounter, count_ops, multiplicity
from zoo.core import LIF, TernaryIF, conv_bn


def _spikes(*shape, high=2, seed=0):
    """Random integer spike counts in [0, high)."""
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(seed)).float()


def _conv_acs_by_loops(x, cout, k, pad):
    """Sum over outputs, output channels and taps of |input| (zero outside the image): ACs counted one by one."""
    _, cin, h, w = x.shape
    total = 0.0
    for oh, ow, _, c, i, j in itertools.product(range(h), range(w), range(cout), range(cin), range(k), range(k)):
        r, s = oh + i - pad, ow + j - pad
        if 0 <= r < h and 0 <= s < w:
            total += abs(float(x[0, c, r, s]))
    return total


def test_multiplicity_tells_spikes_from_real_values():
    assert torch.equal(multiplicity(torch.tensor([0.0, 2.0, -1.0])), torch.tensor([0.0, 2.0, 1.0]))
    assert torch.equal(multiplicity(torch.tensor([True, False])), torch.tensor([1.0, 0.0]))
    assert multiplicity(torch.tensor([0.0, 0.5])) is None


def test_conv_on_integer_spike_counts_counts_each_accumulation_with_multiplicity():
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    x = _spikes(1, 2, 4, 4, high=3)  # 0, 1 or 2 spikes per pixel (a spike-add output)
    tally = count_ops(nn.Sequential(conv), [x])[("0", "conv", "AC")]
    assert tally.dense == 3 * 16 * 2 * 9
    assert tally.count == _conv_acs_by_loops(x, 3, 3, 1)


def test_ternary_spikes_count_one_accumulation_per_event_of_either_sign():
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    spikes = TernaryIF()(torch.randn(1, 1, 2, 4, 4, generator=torch.Generator().manual_seed(1)) * 2)[0]
    assert (spikes == -1).any() and (spikes == 1).any()
    tally = count_ops(nn.Sequential(conv), [spikes])[("0", "conv", "AC")]
    assert tally.count == _conv_acs_by_loops(spikes, 3, 3, 1) > 0


def test_real_valued_input_makes_macs_at_the_conventional_flop_count():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 25, 7))
    tallies = count_ops(model, [torch.randn(2, 3, 5, 5)])
    assert tallies[("0", "conv", "MAC")].count == 2 * 4 * 25 * 3 * 9  # padding taps included, as FLOP counts do
    assert tallies[("2", "matmul", "MAC")].count == 2 * 100 * 7
    assert set(tallies) == {("0", "conv", "MAC"), ("2", "matmul", "MAC")}


class FunctionalAttention(nn.Module):
    """Spikformer SSA maths and SDT's column-sum mask with functional ops only: a counter that hooks
    Conv/Linear modules sees none of this block's work."""

    def forward(self, q, k, v):
        attn = q @ k.transpose(-2, -1)            # binary x binary
        y = (attn @ v) * 0.125                    # integer counts x binary; scalar scale is not counted
        kv = (k * v).sum(dim=-2, keepdim=True)    # Hadamard, then column sum over tokens
        return y + q * kv                         # mask-like product, then an addition


class Holder(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = FunctionalAttention()

    def forward(self, x):
        q, k, v = x.unbind(0)
        return self.attn(q, k, v)


def test_functional_attention_ops_are_counted_exactly_and_attributed_to_the_block():
    B, N, D = 2, 5, 3
    x = _spikes(3, B, N, D)
    q, k, v = x.unbind(0)
    counter = OpCounter(Holder())
    with torch.no_grad(), counter:
        counter.model(x)
    t = counter.tallies
    index = list(itertools.product(range(B), range(N), range(N), range(D)))
    qk = sum(float(q[b, i, d] * k[b, j, d]) for b, i, j, d in index)
    attn = q @ k.transpose(-2, -1)
    av = sum(float(attn[b, i, j] * v[b, j, d]) for b, i, j, d in index)
    kv = k * v
    colsum = kv.sum(dim=-2, keepdim=True)
    y = (attn @ v) * 0.125
    mask = q * colsum
    both_nonzero = sum(int(a != 0 and m != 0) for a, m in zip(y.flatten().tolist(), mask.flatten().tolist()))
    assert t[("attn", "matmul", "AC")].calls == 2
    assert t[("attn", "matmul", "AC")].count == qk + av
    assert t[("attn", "matmul", "AC")].dense == 2 * B * N * N * D
    assert t[("attn", "mul", "AC")].count == float(kv.sum()) + float((q * colsum).sum())
    assert t[("attn", "sum", "AC")].count == float(kv.sum())
    assert t[("attn", "add", "AC")].count == both_nonzero
    assert all(key[0] == "attn" for key in t)


def test_neuron_dynamics_and_batch_norm_are_not_counted():
    model = nn.Sequential(conv_bn(2, 4, 1), LIF())
    model.eval()
    tallies = count_ops(model, [_spikes(3, 1, 2, 4, 4)])
    assert list(tallies) == [("0.0", "conv", "AC")]


class SDPABlock(nn.Module):
    def forward(self, x):
        return F.scaled_dot_product_attention(x, x, x)


def test_an_op_the_counter_cannot_model_raises_naming_the_layer():
    with pytest.raises(NotImplementedError, match=r"layer '0'.*scaled_dot_product"):
        count_ops(nn.Sequential(SDPABlock()), [torch.randn(1, 2, 4, 8)])
    with pytest.raises(NotImplementedError, match=r"layer '0'.*transposed"):
        count_ops(nn.Sequential(nn.ConvTranspose2d(2, 2, 2)), [torch.randn(1, 2, 3, 3)])
