"""A timm-style model registry: every configuration is a name with a builder and a model card."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from torch import nn

from zoo.core.swap import SWAP_FIELDS, SwapRule, check_swaps, swap_components


@dataclass(frozen=True)
class ModelCard:
    """What a registered configuration is and what its paper claims about it.

    ``code_params`` is the exact parameter count of the official implementation (used parameters);
    ``claimed_*`` are the paper's printed numbers (``None`` where the paper gives none). ``params`` is the
    exact count of the built model (set by ``create_model``, so it follows overrides such as ``kd=True``;
    ``None`` on the registry's own cards). ``swaps`` is the family's rule for neuron/surrogate swaps (structural
    neurons they leave alone, swaps it forbids and why); ``swapped`` the swaps a built model carries.
    """

    name: str
    family: str
    paper: str
    table: str
    row: str
    dataset: str
    input_shape: tuple[int, ...]
    T: int
    num_classes: int
    recipe: str
    claimed_params_m: float | None = None
    claimed_top1: float | None = None
    claimed_energy_mj: float | None = None
    code_params: int | None = None
    official_code: str | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    swaps: SwapRule = SwapRule()
    swapped: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_CARDS: dict[str, ModelCard] = {}


def register_model(card: ModelCard, builder: Callable[..., nn.Module]) -> None:
    """Register ``builder(**kwargs) -> nn.Module`` under ``card.name``; names are unique."""
    if card.name in _BUILDERS:
        raise ValueError(f"model {card.name!r} is registered twice")
    _BUILDERS[card.name] = builder
    _CARDS[card.name] = card


def _ensure_loaded() -> None:
    import zoo.models  # noqa: F401  (importing the families registers their configurations)


def _check_name(name: str) -> None:
    _ensure_loaded()
    if name not in _BUILDERS:
        close = difflib.get_close_matches(name, list(_BUILDERS), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; see zoo.list_models() ({len(_BUILDERS)} names)"
        raise KeyError(f"unknown model {name!r}{hint}")


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style ``pattern``, sorted."""
    _ensure_loaded()
    return sorted(n for n in _BUILDERS if fnmatch.fnmatchcase(n, pattern))


def model_card(name: str) -> ModelCard:
    """The card of a registered configuration."""
    _check_name(name)
    return _CARDS[name]


def model_parameters(name: str) -> dict[str, inspect.Parameter]:
    """The constructor arguments a configuration accepts as overrides (``T``, ``num_classes``, switches...), each
    with its annotation (evaluated) and this configuration's default: the schema of a model's overrides."""
    _check_name(name)
    parameters = inspect.signature(_BUILDERS[name], eval_str=True).parameters.values()
    # a builder's own ``neuron`` argument is shadowed by the swap of that name (``SWAP_FIELDS``)
    return {p.name: p for p in parameters
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in SWAP_FIELDS}


def model_arguments(name: str) -> list[str]:
    """The names of ``model_parameters(name)``, sorted."""
    return sorted(model_parameters(name))


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered configuration; ``overrides`` (``T=``, ``num_classes=``, switches) replace defaults.

    ``neuron`` and ``surrogate`` are not constructor arguments but component swaps applied to the built model
    (``zoo.core.swap``: ``neuron="plif"``, ``neuron={"type": "lif", "tau": 3.0}``, ``surrogate="atan"``), within
    the card's ``swaps`` rule. The returned module carries its card (with T, classes, the swaps and the exact
    parameter count of this build) as ``model.card``.
    """
    _check_name(name)
    card = _CARDS[name]
    requested = {key: overrides.pop(key, None) for key in SWAP_FIELDS}
    swaps = {key: value for key, value in requested.items() if value is not None}
    check_swaps(name, card.swaps, **swaps)
    model = _BUILDERS[name](**overrides)
    swap_components(model, card.swaps, model_name=name, **swaps)
    model.card = replace(card, T=overrides.get("T", card.T), num_classes=overrides.get("num_classes", card.num_classes),
                         params=sum(p.numel() for p in model.parameters()), swapped=swaps)
    return model


def model_module(name: str) -> str:
    """The dotted name of the module that defines a configuration's builder (its family's model file, e.g.
    ``zoo.models.sdt``): the code a run of it depends on beyond the shared core."""
    _check_name(name)
    builder = _BUILDERS[name]
    return getattr(builder, "func", builder).__module__
