"""The shared per-pass statistics that keep the energy pass cheap (firing rates, the hook counter and NeuroBench read
each tensor once): exact totals, sharing and invalidation, copies, weights."""

import pytest
import torch
from torch import nn

from harness.metrics import counter as counter_module
from harness.metrics.counter import LayerCounter
from harness.metrics.firing import FiringRates
from harness.metrics.spikes import (SpikeSources, TensorStats, nonnegative_total, nonzero_count, nonzero_mask,
                                    weight_memo, whole_multiple_of, whole_sum)
from zoo.core import LIF, MultiSpike


def test_whole_sum_stays_exact_where_float32_partial_sums_would_round():
    # 33 values of 2**20 + 1 add up to 34,603,041: above 2**24 float32 spaces numbers 4 apart, so a float32 sum
    # cannot hold it; the bound forbids float32 rows that long and the float64 sum is exact
    x = torch.full((1, 33), 2.0**20 + 1)
    assert x.sum().item() != 33 * (2**20 + 1)
    assert whole_sum(x, bound=2**20 + 1).item() == 33 * (2**20 + 1)
    # per leading block, with float32 rows where they are exact (values <= 2)
    y = torch.randint(0, 3, (4, 5, 6, 7)).float()
    assert whole_sum(y, bound=2, lead=4).tolist() == y.reshape(4, -1).sum(1, dtype=torch.float64).tolist()


def test_nonnegative_total_falls_back_to_float64_when_a_row_reaches_2_to_the_24():
    x = torch.full((33,), 2.0**20 + 1)
    assert nonnegative_total(x).item() == 33 * (2**20 + 1)
    counts = torch.randint(0, 5, (3, 100, 50)).float()
    assert nonnegative_total(counts).item() == counts.sum(dtype=torch.float64).item()


def test_a_statistic_is_computed_once_shared_by_views_and_redone_after_an_in_place_change():
    stats, calls = TensorStats(), []

    def total(t):
        calls.append(1)
        return t.sum(dtype=torch.float64)

    x = torch.arange(24.0).reshape(2, 3, 4)
    assert stats.memo(x, "total", lambda: total(x), order_free=True).item() == 276
    folded = x.flatten(0, 1)  # the [T*B, ...] fold of [T, B, ...]: same elements
    assert stats.memo(folded, "total", lambda: total(folded), order_free=True).item() == 276
    assert len(calls) == 1
    x.add_(1)  # a new version: the old figure no longer holds
    assert stats.memo(x, "total", lambda: total(x), order_free=True).item() == 300
    assert len(calls) == 2
    assert stats.memo(x[:1], "total", lambda: total(x[:1]), order_free=True).item() == 78  # other elements


def test_an_entry_dies_with_its_storage():
    stats = TensorStats()
    x = torch.ones(10)
    stats.memo(x, "n", lambda: 10)
    assert len(stats._entries) == 1
    del x
    assert len(stats._entries) == 0


def test_the_firing_hook_leaves_each_outputs_event_total_for_the_counter():
    neuron = MultiSpike(D=4, norm=4.0)
    stats = TensorStats()
    outputs = []
    neuron.register_forward_hook(lambda m, a, out: outputs.append(out))
    with FiringRates(neuron, T=1, stats=stats), torch.no_grad():
        neuron(torch.tensor([[[1.2, 0.0, 3.0, 9.0]]]))  # counts 1, 0, 3, 4: 8 events
    (out,) = outputs

    def recount():
        raise AssertionError("the event total was summed again")
    assert stats.memo(out, ("events", 0.25), recount, order_free=True).item() == 8
    assert stats.events(out.flatten(), 0.25, False, 4).item() == 8


def test_a_clone_of_binary_spikes_is_the_neurons_and_a_clone_of_counts_is_read_by_value():
    lif, counts = LIF(), MultiSpike(D=4, norm=1.0)
    model = nn.Sequential(lif, counts)
    sources = SpikeSources(model)
    spikes, integers = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 3.0]])
    sources.record(lif, (), spikes)
    sources.record(counts, (), integers)
    spike_copy, count_copy = spikes.clone(), integers.clone()
    sources.record_copy(spikes, spike_copy)
    sources.record_copy(integers, count_copy)
    assert sources.candidates(spike_copy) == sources.candidates(spikes)
    # the reference reads a copy of counts 0..D by value: unit 1 first, rated "nonzero", not the neuron's "count"
    assert sources.candidates(count_copy) == sources.default


def test_a_copy_shares_its_sources_statistics_until_either_changes():
    stats = TensorStats()
    source = torch.tensor([[0.0, 1.0], [2.0, 0.0]]).t()  # strided, as a transposed input is
    copy = source.clone(memory_format=torch.contiguous_format)
    stats.record_copy(source, copy)
    first = whole_multiple_of(source, 1.0, stats)
    assert whole_multiple_of(copy, 1.0, stats) is first
    copy.add_(0.5)
    assert not bool(whole_multiple_of(copy, 1.0, stats))


def test_the_first_row_shortcut_never_changes_the_whole_number_check():
    stats = TensorStats()
    later = torch.zeros(4, 100)
    later[3, 99] = 0.5  # first row whole, a real value at the very end
    assert not bool(whole_multiple_of(later, 1.0, stats))
    assert bool(whole_multiple_of(torch.randint(0, 3, (4, 100)).float(), 1.0, stats))
    assert not bool(whole_multiple_of(torch.randn(4, 100), 1.0, stats))
    assert not bool(whole_multiple_of(torch.tensor([[1.0, float("inf")]]), 1.0, stats))
    assert bool(whole_multiple_of(torch.tensor([[0.25, 0.5]]), 0.25, stats))


def test_a_weight_figure_is_kept_across_measurements_until_the_weight_changes():
    layer, calls = nn.Linear(3, 2), []

    def norm():
        calls.append(1)
        return float(layer.weight.detach().abs().sum())

    first = weight_memo(layer, "norm", norm)
    assert weight_memo(layer, "norm", norm) == first and len(calls) == 1
    with torch.no_grad():
        layer.weight.mul_(2)
    assert weight_memo(layer, "norm", norm) == pytest.approx(2 * first) and len(calls) == 2
    layer.weight = nn.Parameter(torch.zeros(2, 3))  # a new weight object
    assert weight_memo(layer, "norm", norm) == 0.0 and len(calls) == 3


def test_a_real_input_conv_skips_the_accumulation_count_on_the_cpu(monkeypatch):
    # a conv on real values is MACs: its AC count would never be read, so the CPU path does not compute it
    def no_hits(*args, **kwargs):
        raise AssertionError("counted accumulations of a real-valued input")
    monkeypatch.setattr(counter_module, "conv_hits", no_hits)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    with torch.no_grad(), LayerCounter(model, 1) as counter:
        model(torch.randn(2, 3, 8, 8))
    (tally,) = counter.tallies.values()
    assert tally.op_class == "MAC" and tally.count == tally.dense == 2 * 4 * 64 * 27


def test_the_fast_nonzero_count_is_count_nonzero_with_negatives_zeros_inf_and_nan():
    x = torch.tensor([[0.0, -0.0, -2.0, 0.25], [float("inf"), 0.0, 1.0, -float("inf")]])
    assert nonzero_count(x).item() == torch.count_nonzero(x).item() == 5
    x[1, 1] = float("nan")  # sign(nan) is nan: counted by count_nonzero itself
    assert nonzero_count(x).item() == torch.count_nonzero(x).item() == 6
    assert nonzero_count(torch.zeros(0)).item() == 0


def test_the_fast_nonzero_mask_is_the_not_zero_mask():
    finite = torch.tensor([[0.0, -0.0, -2.0, 0.25], [3.0, 0.0, 1.0, -1e-30]])
    assert torch.equal(nonzero_mask(finite, torch.float32), (finite != 0).float())
    finite[0, 0] = float("nan")
    assert torch.equal(nonzero_mask(finite, torch.float32), (finite != 0).float())
