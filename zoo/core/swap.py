"""Component swaps: a built model's spiking neurons replaced by another neuron type, or their surrogate by another.

One place for every family: ``swap_components`` walks the model, replaces each spiking neuron the family's card does
not exempt (``SwapRule``) by the requested type under the same name, and carries over what each neuron was built
with -- threshold, reset (hard value or soft), ``detach_reset``, ``decay_input`` and ``tau`` (a PLIF's initial one),
surrogate, time axis, implementation path -- wherever the new type has that setting. Parameters given with the swap
replace the carried ones on every swapped neuron.

The one accepted form of each swap (a model override, a suite's ``overrides``)::

    neuron="plif"                                     # the type, every setting carried
    neuron={"type": "lif", "tau": 3.0}                # the type and the settings it changes
    surrogate="atan"  /  surrogate={"type": "atan", "alpha": 3.0}
"""

from __future__ import annotations

import fnmatch
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from torch import nn

from zoo.core.if_neuron import IF
from zoo.core.lif import LIF, PATHS, PLIF
from zoo.core.multispike import VARIANTS, MultiSpike
from zoo.core.neuron import SpikingNeuron, neuron_modules
from zoo.core.surrogate import SURROGATES, make_surrogate
from zoo.core.ternary import TERNARY_PATHS, TernaryIF

NEURON_TYPES: dict[str, type[SpikingNeuron]] = {"lif": LIF, "plif": PLIF, "if": IF, "multispike": MultiSpike,
                                                "ternary": TernaryIF}
LABELS = {"lif": "LIF", "plif": "PLIF", "if": "IF", "multispike": "MultiSpike", "ternary": "TernaryIF"}
SWAP_FIELDS = ("neuron", "surrogate")  # the model overrides that are swaps, not constructor arguments


def _real(value: Any) -> str | None:
    return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"


def _real_or_none(value: Any) -> str | None:
    return None if value is None else _real(value) and "a number or null (soft reset)"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _count(value: Any) -> str | None:
    return None if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else "an integer >= 1"


def _variant(value: Any) -> str | None:
    return None if value in VARIANTS else f"one of {', '.join(VARIANTS)}"


_RESET = {"v_threshold": _real, "v_reset": _real_or_none, "detach_reset": _boolean}
# the settings a swap may give per type, each with its check (what was expected, None when fine)
NEURON_PARAMETERS: dict[str, dict[str, Callable[[Any], str | None]]] = {
    "lif": {"tau": _real, **_RESET, "decay_input": _boolean},
    "plif": {"init_tau": _real, **_RESET, "decay_input": _boolean},
    "if": dict(_RESET),
    "multispike": {"D": _count, "norm": _real, "variant": _variant},
    "ternary": {"v_threshold": _real, "neg_threshold": _real, "v_reset": _real, "detach_reset": _boolean},
}


class SwapError(ValueError):
    """A swap that is malformed, forbidden by the model's card, or that a neuron cannot take (one line)."""


@dataclass(frozen=True)
class SwapRule:
    """What a configuration's card says about swaps: ``neuron`` is its own neuron type, the exact type of every
    neuron a swap touches; ``exempt`` (shell patterns of neuron module names) are structural neurons no swap
    touches, for ``exempt_reason``; ``forbidden`` maps a neuron type (or ``"surrogate"``) the family refuses to
    why."""

    neuron: str = "lif"
    exempt: tuple[str, ...] = ()
    exempt_reason: str = ""
    forbidden: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.neuron not in NEURON_TYPES:
            raise ValueError(f"SwapRule.neuron must be one of {', '.join(NEURON_TYPES)}, got {self.neuron!r}")
        unknown = set(self.forbidden) - {*NEURON_TYPES, "surrogate"}
        if unknown:
            raise ValueError(f"SwapRule.forbidden names unknown swaps {sorted(unknown)}")
        if self.exempt and not self.exempt_reason:
            raise ValueError("SwapRule.exempt needs an exempt_reason saying why those neurons are structural")

    def allowed_neurons(self) -> list[str]:
        return [name for name in NEURON_TYPES if name not in self.forbidden]

    def swapped(self, model: nn.Module) -> list[tuple[str, SpikingNeuron]]:
        """The neurons of ``model`` a swap replaces: all but the exempt ones."""
        return [(name, module) for name, module in neuron_modules(model)
                if not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.exempt)]


@dataclass(frozen=True)
class NeuronSwap:
    """A requested neuron type with the settings it changes (``params``; every other setting is carried)."""

    type: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: Any) -> NeuronSwap:
        """``"plif"`` or ``{"type": "lif", "tau": 3.0, ...}``, checked against ``NEURON_PARAMETERS``."""
        kind, params = _type_and_params(value, "neuron", NEURON_TYPES)
        accepted = NEURON_PARAMETERS[kind]
        for key, setting in params.items():
            if key not in accepted:
                raise SwapError(f"neuron {kind!r} has no setting {key!r}; its settings: {', '.join(accepted)}")
            problem = accepted[key](setting)
            if problem:
                raise SwapError(f"neuron {kind!r} setting {key!r} must be {problem}, got {setting!r}")
        try:  # the neuron's own checks of its values (tau > 1, ...), on a neuron with these settings
            NEURON_TYPES[kind](**params)
        except ValueError as err:
            raise SwapError(f"neuron {kind!r}: {err}") from None
        return cls(kind, dict(params))

    def label(self) -> str:
        """``PLIF`` or ``LIF (tau=3.0)``: the Variant a table shows."""
        settings = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return LABELS[self.type] + (f" ({settings})" if settings else "")

    def canonical(self) -> str | dict[str, Any]:
        """The one spelling of this swap (so that equal swaps share a run id): the bare type without settings."""
        return {"type": self.type, **self.params} if self.params else self.type


@dataclass(frozen=True)
class SurrogateSwap:
    """A requested surrogate and its sharpness (``None``: that surrogate's default)."""

    type: str
    alpha: float | None = None

    @classmethod
    def parse(cls, value: Any) -> SurrogateSwap:
        """``"atan"`` or ``{"type": "atan", "alpha": 3.0}``."""
        kind, params = _type_and_params(value, "surrogate", SURROGATES)
        extra = set(params) - {"alpha"}
        if extra:
            raise SwapError(f"surrogate {kind!r} has no setting {sorted(extra)[0]!r}; its setting: alpha")
        alpha = params.get("alpha")
        if alpha is not None and (_real(alpha) or alpha <= 0):
            raise SwapError(f"surrogate {kind!r} setting 'alpha' must be a number > 0, got {alpha!r}")
        return cls(kind, None if alpha is None else float(alpha))

    def label(self) -> str:
        return self.type + ("" if self.alpha is None else f" (alpha={self.alpha:g})")

    def canonical(self) -> str | dict[str, Any]:
        return self.type if self.alpha is None else {"type": self.type, "alpha": self.alpha}


def _type_and_params(value: Any, what: str, types: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    expected = f"one of {', '.join(types)}, or a mapping with 'type' and its settings"
    if isinstance(value, str):
        kind, params = value, {}
    elif isinstance(value, Mapping) and "type" in value:
        params = dict(value)
        kind = params.pop("type")
    else:
        raise SwapError(f"{what} swap must be {expected}; got {value!r}")
    if kind not in types:
        raise SwapError(f"unknown {what} {kind!r}; expected {expected}")
    return kind, params


def swap_label(field_name: str, value: Any) -> str:
    """``neuron: PLIF``: how a table names a swap override (its value as given when it does not parse)."""
    parser = NeuronSwap if field_name == "neuron" else SurrogateSwap
    try:
        return f"{field_name}: {parser.parse(value).label()}"
    except SwapError:
        return f"{field_name}: {value}"


def canonical_swaps(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` with each swap in its one spelling (``{"type": "plif"}`` becomes ``"plif"``); raises
    ``SwapError`` on a malformed swap."""
    parsers = {"neuron": NeuronSwap.parse, "surrogate": SurrogateSwap.parse}
    return {key: parsers[key](value).canonical() if key in parsers else value for key, value in overrides.items()}


def check_swaps(model_name: str, rule: SwapRule, neuron: Any = None, surrogate: Any = None) -> None:
    """Raise ``SwapError`` (one line naming the model, the field and what is allowed) for a malformed swap or one
    the card forbids; the checks that need the built model are ``swap_components``'."""
    if neuron is not None:
        kind = _parsed(model_name, NeuronSwap.parse, neuron, "neuron").type
        if kind in rule.forbidden:
            raise SwapError(f"{model_name}: override 'neuron': {kind!r} is forbidden by its model card "
                            f"({rule.forbidden[kind]}); allowed: {', '.join(rule.allowed_neurons())}")
    if surrogate is not None:
        _parsed(model_name, SurrogateSwap.parse, surrogate, "surrogate")
        if "surrogate" in rule.forbidden:
            raise SwapError(f"{model_name}: override 'surrogate' is forbidden by its model card "
                            f"({rule.forbidden['surrogate']})")
        kind = rule.neuron if neuron is None else NeuronSwap.parse(neuron).type
        with_surrogate = [name for name, cls in NEURON_TYPES.items() if "surrogate" in _constructor_arguments(cls)]
        if kind not in with_surrogate:
            raise SwapError(f"{model_name}: override 'surrogate': {LABELS[kind]} neurons have a straight-through "
                            f"gradient, no surrogate to swap (swap the neuron to one of {', '.join(with_surrogate)} "
                            f"as well)")


def _parsed(model_name: str, parse: Callable[[Any], Any], value: Any, what: str) -> Any:
    try:
        return parse(value)
    except SwapError as err:
        raise SwapError(f"{model_name}: override {what!r}: {err}") from None


def swap_components(model: nn.Module, rule: SwapRule, neuron: Any = None, surrogate: Any = None,
                    model_name: str = "model") -> list[str]:
    """Apply the swaps to ``model`` in place; return the qualified names of the neurons they touched.

    ``neuron`` replaces every non-exempt neuron by the requested type under its own name (a neuron shared by two
    parents stays shared); ``surrogate`` then sets the surrogate of every non-exempt neuron.
    """
    check_swaps(model_name, rule, neuron, surrogate)
    if neuron is None and surrogate is None:
        return []
    targets = rule.swapped(model)
    own = NEURON_TYPES[rule.neuron]
    other = next(((name, module) for name, module in targets if type(module) is not own), None)
    if other is not None:
        raise SwapError(f"{model_name}: its card's swap rule says its neurons are {own.__name__}, but {other[0]} is "
                        f"a {type(other[1]).__name__}: the card must name its own neuron or exempt that one")
    if neuron is not None:
        request = NeuronSwap.parse(neuron)
        replacements = {id(old): _rebuilt(old, request, f"{model_name}: {name}") for name, old in targets}
        _replace(model, replacements)
        targets = rule.swapped(model)
    if surrogate is not None:
        _set_surrogate(targets, SurrogateSwap.parse(surrogate))
    return [name for name, _ in targets]


def _replace(model: nn.Module, replacements: dict[int, SpikingNeuron]) -> None:
    """Put each replacement where its original sat, under every name that held it."""
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):  # named_children() would skip a second name
            if id(child) in replacements:
                setattr(parent, name, replacements[id(child)])


def _set_surrogate(targets: list[tuple[str, SpikingNeuron]], request: SurrogateSwap) -> None:
    surrogate = make_surrogate(request.type, request.alpha)
    for _, module in targets:
        module.surrogate = surrogate


def carried_settings(old: SpikingNeuron) -> dict[str, Any]:
    """The settings of ``old`` that a replacement keeps where its type has them (by constructor argument name)."""
    names = ("v_threshold", "v_reset", "detach_reset", "decay_input", "time_dim", "path", "store_v_seq",
             "neg_threshold", "inhibit", "D", "norm", "variant")
    settings = {name: getattr(old, name) for name in names if hasattr(old, name)}
    if isinstance(old, IF):  # no leak: neither tau nor decay_input to carry
        settings.pop("decay_input")
    elif isinstance(old, LIF):  # a PLIF's tau is its initial tau
        settings["tau"] = settings["init_tau"] = old.tau
    if hasattr(old, "surrogate"):
        settings["surrogate"], settings["alpha"] = old.surrogate.name, old.surrogate.alpha
    return settings


def _rebuilt(old: SpikingNeuron, request: NeuronSwap, where: str) -> SpikingNeuron:
    """A neuron of the requested type with ``old``'s carried settings and the request's own."""
    cls = NEURON_TYPES[request.type]
    accepted = _constructor_arguments(cls)
    settings = {k: v for k, v in carried_settings(old).items() if k in accepted}
    if isinstance(old, MultiSpike) and "D" in request.params and "norm" not in request.params and old.norm == old.D:
        settings.pop("norm", None)  # a normalised count stays normalised by the new D
    settings.update(request.params)
    _check_layout(old, cls, accepted, settings, where)
    try:
        return cls(**settings)
    except (TypeError, ValueError) as err:
        raise SwapError(f"{where}: cannot become {LABELS[request.type]}: {err}") from None


def _constructor_arguments(cls: type[SpikingNeuron]) -> set[str]:
    """The keyword arguments ``cls`` takes (a PLIF: the LIF's, its ``init_tau`` standing for ``tau``)."""
    if cls is PLIF:
        return _constructor_arguments(LIF) - {"tau"} | {"init_tau"}
    return set(inspect.signature(cls).parameters)


def _check_layout(old: SpikingNeuron, cls: type, accepted: set[str], settings: dict[str, Any],
                  where: str) -> None:
    """Refuse what cannot carry (a moved time axis, a soft reset onto a hard-reset-only type); drop an
    implementation path the new type does not have."""
    if getattr(old, "time_dim", 0) != 0 and "time_dim" not in accepted and cls is not MultiSpike:
        raise SwapError(f"{where}: iterates time along axis {old.time_dim}, which {cls.__name__} cannot")
    if cls is TernaryIF and "v_reset" in settings and settings["v_reset"] is None:
        raise SwapError(f"{where}: has a soft reset, {cls.__name__} a hard one only (give it a v_reset)")
    if "path" in settings and settings["path"] not in (TERNARY_PATHS if cls is TernaryIF else PATHS):
        settings.pop("path")
