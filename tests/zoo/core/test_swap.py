"""Component swaps on small hand-built modules: what is carried, what a swap's settings change, what is refused."""

import re

import pytest
import torch
from torch import nn

from zoo.core import IF, LIF, PLIF, MultiSpike, NeuronSwap, SurrogateSwap, SwapError, SwapRule, TernaryIF
from zoo.core import neuron_modules, swap_components
from zoo.core.swap import canonical_swaps, swap_label


class Block(nn.Module):
    """Two neurons of the family's type (one an attention-scale neuron at threshold 0.5) and a structural one."""

    def __init__(self, **lif) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.lif = LIF(**lif)
        self.attn_lif = LIF(v_threshold=0.5, **lif)
        self.haar = nn.Module()
        self.haar.neuron = TernaryIF()

    def forward(self, x):
        return self.haar.neuron(self.attn_lif(self.lif(self.fc(x))))


HAAR = SwapRule(exempt=("haar.*",), exempt_reason="structural")


def _types(model):
    return {name: type(m) for name, m in neuron_modules(model)}


@pytest.mark.parametrize("kind,cls", [("lif", LIF), ("plif", PLIF), ("if", IF), ("multispike", MultiSpike),
                                      ("ternary", TernaryIF)])
def test_every_non_exempt_neuron_becomes_the_new_type_under_its_name(kind, cls):
    model = Block()
    names = swap_components(model, HAAR, neuron=kind)
    assert names == ["lif", "attn_lif"]
    assert _types(model) == {"lif": cls, "attn_lif": cls, "haar.neuron": TernaryIF}


def test_threshold_reset_detach_surrogate_and_time_axis_carry_over():
    model = Block(v_reset=None, detach_reset=False, surrogate="atan", alpha=3.0, time_dim=1, decay_input=False,
                  tau=3.0)
    swap_components(model, HAAR, neuron="plif")
    for lif, threshold in ((model.lif, 1.0), (model.attn_lif, 0.5)):
        assert (lif.v_threshold, lif.v_reset, lif.detach_reset, lif.time_dim, lif.decay_input) == \
            (threshold, None, False, 1, False)
        assert (lif.surrogate.name, lif.surrogate.alpha) == ("atan", 3.0)
        assert lif.tau == 3.0 and torch.isclose(1 / lif.decay(), torch.tensor(3.0))


def test_swap_to_its_own_type_computes_the_same():
    torch.manual_seed(0)
    model = Block()
    x = torch.randn(4, 3, 6) * 3
    before = model(x)
    swap_components(model, HAAR, neuron="lif")
    assert torch.equal(model(x), before)


def test_plif_at_its_initial_tau_computes_as_the_lif():
    model = Block(tau=2.0)
    x = torch.randn(4, 3, 6) * 3
    before = model(x)
    swap_components(model, HAAR, neuron="plif")
    assert isinstance(model.lif, PLIF) and torch.equal(model(x), before)


def test_given_settings_replace_the_carried_ones_on_every_swapped_neuron():
    model = Block()
    swap_components(model, HAAR, neuron={"type": "lif", "tau": 4.0, "v_threshold": 0.75})
    assert [(m.tau, m.v_threshold) for m in (model.lif, model.attn_lif)] == [(4.0, 0.75), (4.0, 0.75)]
    assert model.haar.neuron.v_threshold == 1.0


def test_if_from_a_plif_keeps_neither_tau_nor_decay_input_and_back():
    model = Block(decay_input=False)
    swap_components(model, HAAR, neuron="if")
    assert type(model.lif) is IF and model.lif.tau == float("inf")
    swap_components(model, SwapRule(neuron="if", exempt=HAAR.exempt, exempt_reason="structural"), neuron="lif")
    assert type(model.lif) is LIF and model.lif.tau == 2.0 and model.lif.decay_input is True


def test_multispike_renormalises_a_normalised_count_and_keeps_raw_counts():
    model = nn.Sequential(MultiSpike(D=4), MultiSpike(D=4, norm=1))
    swap_components(model, SwapRule(neuron="multispike"), neuron={"type": "multispike", "D": 8})
    assert [(m.D, m.norm) for m in model] == [(8, 8.0), (8, 1.0)]


def test_a_shared_neuron_stays_shared():
    shared = LIF()
    model = nn.Sequential(nn.Identity(), shared, nn.Identity(), shared)
    swap_components(model, SwapRule(), neuron="if")
    assert type(model[1]) is IF and model[1] is model[3]


def test_surrogate_swap_sets_every_swapped_neuron_and_leaves_exempt_ones():
    model = Block()
    swap_components(model, HAAR, surrogate={"type": "atan", "alpha": 3.0})
    assert [(m.surrogate.name, m.surrogate.alpha) for m in (model.lif, model.attn_lif)] == [("atan", 3.0)] * 2
    assert model.haar.neuron.surrogate.name == "sigmoid"
    swap_components(model, HAAR, surrogate="sigmoid")
    assert model.lif.surrogate.alpha == 4.0, "a named surrogate without alpha takes that surrogate's default"


def test_surrogate_swap_of_a_straight_through_neuron_is_refused():
    rule = SwapRule(neuron="multispike")
    with pytest.raises(SwapError, match="m: override 'surrogate': MultiSpike neurons have a straight-through"):
        swap_components(nn.Sequential(MultiSpike()), rule, surrogate="atan", model_name="m")
    with pytest.raises(SwapError, match="MultiSpike neurons have a straight-through gradient, no surrogate to swap "
                                        r"\(swap the neuron to one of lif, plif, if, ternary as well\)"):
        swap_components(Block(), HAAR, neuron="multispike", surrogate="atan", model_name="m")
    model = nn.Sequential(MultiSpike())
    swap_components(model, rule, neuron="lif", surrogate="atan")
    assert model[0].surrogate.name == "atan"


def test_forbidden_swap_names_the_model_the_reason_and_what_is_allowed():
    rule = SwapRule(forbidden={"ternary": "signed spikes break it"})
    with pytest.raises(SwapError) as err:
        swap_components(Block(), rule, neuron="ternary", model_name="fam_1")
    assert str(err.value) == ("fam_1: override 'neuron': 'ternary' is forbidden by its model card (signed spikes "
                              "break it); allowed: lif, plif, if, multispike")


@pytest.mark.parametrize("value,message", [
    ("relu", "unknown neuron 'relu'; expected one of lif, plif, if, multispike, ternary"),
    ({"tau": 2.0}, "neuron swap must be one of"),
    (3, "neuron swap must be one of"),
    ({"type": "lif", "taus": 2.0}, "neuron 'lif' has no setting 'taus'; its settings: tau, v_threshold"),
    ({"type": "lif", "tau": "2"}, "neuron 'lif' setting 'tau' must be a number, got '2'"),
    ({"type": "lif", "decay_input": 1}, "setting 'decay_input' must be true or false"),
    ({"type": "if", "tau": 2.0}, "neuron 'if' has no setting 'tau'"),
    ({"type": "multispike", "D": 0}, "setting 'D' must be an integer >= 1"),
    ({"type": "multispike", "variant": "huge"}, "setting 'variant' must be one of base, large"),
    ({"type": "ternary", "v_reset": None}, "setting 'v_reset' must be a number, got None"),
])
def test_malformed_neuron_swaps_are_refused_in_one_line(value, message):
    with pytest.raises(SwapError, match="^m: override 'neuron': ") as err:
        swap_components(Block(), HAAR, neuron=value, model_name="m")
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("value,message", [
    ({"type": "lif", "tau": 0.5}, "neuron 'lif': LIF tau must be > 1 (got 0.5): the membrane would not decay"),
    ({"type": "plif", "init_tau": 1.0}, "neuron 'plif': LIF tau must be > 1 (got 1.0): the membrane would not decay"),
    ({"type": "multispike", "norm": 0}, None),
])
def test_a_setting_the_neuron_itself_rejects_is_refused_before_the_model_is_touched(value, message):
    model = Block()
    if message is None:  # a value the neuron accepts
        swap_components(model, HAAR, neuron=value)
        return
    with pytest.raises(SwapError, match=f"^m: override 'neuron': {re.escape(message)}$"):
        swap_components(model, HAAR, neuron=value, model_name="m")
    assert type(model.lif) is LIF


def test_what_cannot_carry_is_refused():
    with pytest.raises(SwapError, match="m: lif: has a soft reset, TernaryIF a hard one only"):
        swap_components(Block(v_reset=None), HAAR, neuron="ternary", model_name="m")
    model = Block(v_reset=None)
    swap_components(model, HAAR, neuron={"type": "ternary", "v_reset": 0.0})
    assert type(model.lif) is TernaryIF
    with pytest.raises(SwapError, match="m: lif: iterates time along axis 1, which TernaryIF cannot"):
        swap_components(Block(time_dim=1), HAAR, neuron="ternary", model_name="m")


def test_a_neuron_of_another_type_than_the_cards_is_refused():
    with pytest.raises(SwapError, match="m: its card's swap rule says its neurons are LIF, but haar.neuron is a "
                                        "TernaryIF: the card must name its own neuron or exempt that one"):
        swap_components(Block(), SwapRule(), neuron="plif", model_name="m")
    with pytest.raises(SwapError, match="but lif is a LIF"):
        swap_components(Block(), SwapRule(neuron="ternary"), neuron="plif", model_name="m")


def test_no_swap_leaves_the_model_alone():
    model = Block()
    before = dict(model.named_modules())
    assert swap_components(model, SwapRule()) == []
    assert dict(model.named_modules()) == before


def test_rules_are_checked_when_a_card_states_them():
    with pytest.raises(ValueError, match="unknown swaps"):
        SwapRule(forbidden={"relu": "x"})
    with pytest.raises(ValueError, match="exempt_reason"):
        SwapRule(exempt=("a.*",))
    with pytest.raises(ValueError, match="SwapRule.neuron must be one of"):
        SwapRule(neuron="LIF")


def test_labels_and_one_spelling_per_swap():
    assert NeuronSwap.parse("plif").label() == "PLIF"
    assert NeuronSwap.parse({"type": "lif", "tau": 3.0}).label() == "LIF (tau=3.0)"
    assert SurrogateSwap.parse({"type": "atan", "alpha": 3}).label() == "atan (alpha=3)"
    assert swap_label("neuron", {"type": "if"}) == "neuron: IF"
    assert canonical_swaps({"neuron": {"type": "plif"}, "surrogate": {"type": "atan"}, "dim": 4}) == \
        {"neuron": "plif", "surrogate": "atan", "dim": 4}
    assert canonical_swaps({"neuron": {"type": "lif", "tau": 3}}) == {"neuron": {"type": "lif", "tau": 3}}
