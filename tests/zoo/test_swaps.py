"""``zoo.create_model(name, neuron=..., surrogate=...)`` for every family of the registry (a family added later is
covered as soon as it registers and has its shrunk static entry in suites/smoke.yaml)."""

from pathlib import Path

import pytest
import torch
import yaml

import zoo
import zoo.core
from zoo.core import NEURON_TYPES, SwapError, neuron_modules
from zoo.registry import _BUILDERS

SMOKE = Path(__file__).resolve().parents[2] / "suites" / "smoke.yaml"


def _families() -> dict[str, str]:
    """family -> one of its configurations."""
    found: dict[str, str] = {}
    for name in zoo.list_models():
        family = zoo.model_card(name).family
        if family != "test":  # the engine tests' tiny models (tests/harness/engine/engine_nets.py)
            found.setdefault(family, name)
    return found


def _small_configs() -> dict[str, tuple[str, int, dict, int]]:
    """family -> (model, T, overrides, image side) of its shrunk static digits entry in the smoke suite."""
    configs = {}
    for entry in yaml.safe_load(SMOKE.read_text())["grid"]:
        if entry["datasets"] == ["digits"]:
            model = entry["models"][0]
            side = (entry.get("recipe_overrides") or {}).get("data.input_size", 16)
            configs.setdefault(zoo.model_card(model).family, (model, entry["T"][0], entry["overrides"], side))
    return configs


FAMILIES = sorted(_families())
SMALL = _small_configs()


def _build(family: str, seed: int = 0, **swaps):
    model, T, overrides, side = SMALL[family]
    torch.manual_seed(seed)
    built = zoo.create_model(model, T=T, num_classes=10, **overrides, **swaps)
    return built, torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))


def _logits(out):
    return out[0] if isinstance(out, tuple) else out


def _own_type(model) -> type:
    types = {type(m) for _, m in model.card.swaps.swapped(model)}
    assert len(types) == 1
    return types.pop()


def test_every_family_has_a_shrunk_static_smoke_entry():
    assert set(SMALL) >= set(FAMILIES), f"families without a static digits entry in smoke.yaml: " \
                                        f"{sorted(set(FAMILIES) - set(SMALL))}"


@pytest.mark.parametrize("kind", list(NEURON_TYPES))
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_trains_with_every_allowed_neuron(family, kind):
    card = zoo.model_card(SMALL[family][0])
    if kind in card.swaps.forbidden:
        with pytest.raises(SwapError) as err:
            _build(family, neuron=kind)
        assert f"forbidden by its model card ({card.swaps.forbidden[kind]})" in str(err.value)
        return
    model, x = _build(family, neuron=kind)
    exempt = {name: type(m) for name, m in neuron_modules(model) if (name, m) not in card.swaps.swapped(model)}
    swapped = card.swaps.swapped(model)
    assert swapped and all(type(m) is NEURON_TYPES[kind] for _, m in swapped)
    fresh, _ = _build(family)
    assert exempt == {name: type(m) for name, m in neuron_modules(fresh) if name in exempt}, "exempt ones untouched"
    model.train()
    logits = _logits(model(x))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "the gradient reaches the weights"
    assert model.card.swapped == {"neuron": kind}
    assert model.card.params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("family", FAMILIES)
def test_default_model_is_untouched_and_its_own_neuron_swap_is_the_identity(family):
    model_name, T, overrides, _ = SMALL[family]
    default, x = _build(family)
    torch.manual_seed(0)
    direct = _BUILDERS[model_name](T=T, num_classes=10, **overrides)
    own = next(k for k, cls in NEURON_TYPES.items() if cls is _own_type(default))
    same, _ = _build(family, neuron=own)
    for other in (direct, same):
        assert list(other.state_dict()) == list(default.state_dict())
        for module in (default, other):
            module.eval()
        assert torch.equal(_logits(other(x)), _logits(default(x)))


@pytest.mark.parametrize("family", FAMILIES)
def test_a_swap_carries_each_neurons_threshold(family):
    default, _ = _build(family)
    target = "plif" if _own_type(default).__name__ != "PLIF" else "if"
    swapped, _ = _build(family, neuron=target)
    before = {n: getattr(m, "v_threshold", 1.0) for n, m in default.card.swaps.swapped(default)}
    assert {n: m.v_threshold for n, m in swapped.card.swaps.swapped(swapped)} == before


def test_attention_scale_neurons_keep_their_threshold_and_given_settings_apply_to_all():
    model, _ = _build("qkformer", neuron={"type": "lif", "tau": 3.0})
    lifs = [m for _, m in neuron_modules(model)]
    assert {m.v_threshold for m in lifs} == {1.0, 0.5} and {m.tau for m in lifs} == {3.0}
    model, _ = _build("qkformer", neuron={"type": "if", "v_threshold": 0.75})
    assert {m.v_threshold for _, m in neuron_modules(model)} == {0.75}


def test_plif_swap_of_a_lif_family_equals_it_at_initialisation_and_learns_its_tau():
    default, x = _build("spikformer")
    plif, _ = _build("spikformer", neuron="plif")
    assert torch.equal(plif(x), default(x))
    assert sum(p.numel() for p in plif.parameters()) == sum(p.numel() for p in default.parameters()) + \
        len(neuron_modules(plif))
    plif(x).sum().backward()
    assert all(m.w.grad is not None for _, m in neuron_modules(plif))


def test_swformer_haar_neurons_are_exempt_and_its_card_says_why():
    card = zoo.model_card(SMALL["swformer"][0])
    assert card.swaps.exempt and "Haar" in card.swaps.exempt_reason
    model, _ = _build("swformer", neuron="if", surrogate="atan")
    haar = [m for n, m in neuron_modules(model) if ".haar_forward." in n or ".haar_inverse." in n]
    assert haar and all(type(m).__name__ == "TernaryIF" and m.surrogate.name == "sigmoid" for m in haar)
    assert {type(m).__name__ for n, m in neuron_modules(model) if m not in haar} == {"IF"}


def test_spikingresformer_refuses_signed_spikes_with_its_reason():
    with pytest.raises(SwapError) as err:
        _build("spikingresformer", neuron={"type": "ternary"})
    assert str(err.value).startswith(f"{SMALL['spikingresformer'][0]}: override 'neuron': 'ternary' is forbidden")
    assert "1/sqrt(firing rate)" in str(err.value) and "allowed: lif, plif, if, multispike" in str(err.value)


def test_surrogate_swap_needs_a_surrogate_neuron():
    with pytest.raises(SwapError, match="MultiSpike neurons have a straight-through gradient"):
        _build("sdt_v3", surrogate="atan")
    model, _ = _build("sdt_v3", neuron="lif", surrogate={"type": "atan", "alpha": 3.0})
    assert {(m.surrogate.name, m.surrogate.alpha) for _, m in neuron_modules(model)} == {("atan", 3.0)}


def test_a_swap_left_none_is_no_swap():
    default, x = _build("spikingresformer")
    none, _ = _build("spikingresformer", neuron=None, surrogate=None)
    assert none.card.swapped == {} and torch.equal(none.eval()(x), default.eval()(x))


def test_swaps_are_not_constructor_arguments():
    assert "neuron" not in zoo.model_arguments("spikingresformer_tistar.cifar10")
    assert zoo.core.SWAP_FIELDS == ("neuron", "surrogate")


def test_a_swap_builds_on_the_meta_device():
    model_name, T, overrides, _ = SMALL["spikformer"]
    with torch.device("meta"):
        model = zoo.create_model(model_name, T=T, **overrides, neuron="plif")
    assert all(p.is_meta for p in model.parameters())
