"""Parameter counts from the zoo, for every row of a report (runs that failed or never ran included): the model
built on PyTorch's meta device (shapes only: no memory, no initialisation), its parameters counted as the trainer
counts them (``harness.metrics.accuracy.count_params``)."""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

SUITES_DIR = Path(__file__).resolve().parents[2] / "suites"
# How ``harness.tracking.flatten_params`` writes a non-JSON scalar (``str(value)``), read back.
_PYTHON_WORDS = {"True": True, "False": False, "None": None}


def override_value(text: str) -> Any:
    """An override as the runs frame records it (lists as JSON, other values as ``str``) back as a value."""
    if text in _PYTHON_WORDS:
        return _PYTHON_WORDS[text]
    try:
        return json.loads(text)
    except ValueError:
        return text


PARAM_COUNTS = "param-counts"  # the user cache entry (``harness.usercache``) of the counts of this checkout's code


@lru_cache(maxsize=None)
def _count(model: str, overrides_json: str) -> int | None:
    """The count, kept across processes in the user cache while the code (``harness.suite.code_stamps``) and torch
    are as they were: building the models needs torch and the zoo (seconds a report need not wait for)."""
    from harness.usercache import store

    known, name = _stored_counts(), json.dumps([model, overrides_json])
    if name not in known:
        count = _built_count(model, overrides_json)
        if count is None:  # not kept: the next report warns again
            return None
        known[name] = count
        store(PARAM_COUNTS, _counts_key(), known)
    return known[name]


def _counts_key() -> str:
    from importlib import metadata

    from harness.suite import code_stamps

    return f"{code_stamps()}/torch-{metadata.version('torch')}"


@lru_cache(maxsize=1)
def _stored_counts() -> dict[str, int]:
    from harness.usercache import lookup

    def valid(value: Any) -> bool:
        return isinstance(value, dict) and all(isinstance(v, int) and not isinstance(v, bool) for v in value.values())

    return dict(lookup(PARAM_COUNTS, _counts_key(), valid) or {})


def _built_count(model: str, overrides_json: str) -> int | None:
    """The count of ``model`` built on the meta device with the overrides (None, with one warning, when the zoo
    cannot build it)."""
    import torch

    import zoo
    from harness.metrics.accuracy import count_params

    try:
        with torch.device("meta"):
            return count_params(zoo.create_model(model, **json.loads(overrides_json)))
    except Exception as err:  # an unknown name or argument: the row keeps its count empty, the report goes on
        warnings.warn(f"parameter count of {model} with {overrides_json}: {type(err).__name__}: {err}",
                      stacklevel=5)
        return None


def zoo_param_count(model: str, overrides: Mapping[str, Any] | None = None) -> int | None:
    """The parameter count of ``model`` built with ``overrides`` (None when the zoo cannot build it: one
    warning). Cached: a report asks for the same model many times."""
    return _count(model, json.dumps(dict(overrides or {}), sort_keys=True))


def recorded_overrides(config: Mapping[str, str], prefix: str) -> dict[str, Any]:
    """The model overrides of a configuration's ``params.spec.overrides.*`` entries, as values; a swap given with
    settings (``overrides.neuron.type``, ``overrides.neuron.tau``: a mapping flattened by the tracking) is one
    mapping again (constructor arguments have no dots)."""
    overrides: dict[str, Any] = {}
    for key, value in sorted(config.items()):
        if key.startswith(prefix):
            name, _, setting = key.removeprefix(prefix).partition(".")
            if setting:
                overrides.setdefault(name, {})[setting] = override_value(value)
            else:
                overrides[name] = override_value(value)
    return overrides


def overrides_label(recorded: Mapping[str, str]) -> str:
    """Recorded model overrides (``name -> value`` as the runs frame has them, a swap's settings as
    ``neuron.tau``) as a table's Variant shows them: ``dim=64, depth=1, neuron: PLIF`` (constructor arguments as
    recorded, sorted, then each component swap by its label)."""
    from zoo.core.swap import SWAP_FIELDS, swap_label

    def swap(name: str) -> str | None:
        settings = recorded_overrides({k: v for k, v in recorded.items() if k.partition(".")[0] == name}, "")
        return swap_label(name, settings[name]) if name in settings else None

    arguments = [f"{key}={value}" for key, value in sorted(recorded.items())
                 if key.partition(".")[0] not in SWAP_FIELDS]
    return ", ".join(arguments + [label for label in map(swap, SWAP_FIELDS) if label])


@lru_cache(maxsize=1)
def variant_overrides(suites_dir: Path = SUITES_DIR) -> dict[tuple[str, str], dict[str, Any]]:
    """(model, variant name) -> the constructor arguments that variant sets, from the package's suite files
    (a claimed variant nobody ran still gets its parameter count)."""
    from harness.suite import SuiteError, load_suite

    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(suites_dir.glob("*.yaml")):
        try:
            suite = load_suite(path)
        except SuiteError:
            continue
        for entry, _ in suite.grid:
            for variant, extra in (entry.variants or {}).items():
                for model in entry.models:
                    found.setdefault((model, variant), {**entry.overrides, **extra})
        for entry, _ in suite.runs:
            if entry.variant:
                found.setdefault((entry.model, entry.variant), dict(entry.overrides))
    return found
