"""Checks of eval-only runs before any starts: is each weights file present, and does it load into its model?

Both ``harness validate`` and ``harness run`` call ``check_weights``: validation lists the missing files (with where
to get them) and refuses a file that cannot be loaded; ``run`` refuses both, so that no worker starts on a file it
cannot use. The load is checked on the ``meta`` device: it reads the file and compares every tensor's place and
shape, and allocates no model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.suite import RunSpec


@dataclass
class WeightsCheck:
    """The eval-only runs' weights files that are missing (one line each) or unusable (one line each)."""

    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def check_weights(specs: list[RunSpec], data_root: str | None) -> WeightsCheck:
    """Check the weights file of every eval-only run among ``specs`` (each model and file once)."""
    from harness.audit import WeightsError
    from harness.data.catalog import resolve_data_root
    from harness.engine.eval_only import build_loaded_model
    from harness.launch.worker import train_spec
    from harness.weights.catalog import RELEASED, CatalogError, active_catalog
    from harness.weights.locate import WeightsLocationError, locate

    root = resolve_data_root(data_root)
    result, seen = WeightsCheck(), set()
    try:
        catalog = active_catalog() if any(spec.weights == RELEASED for spec in specs) else None
    except CatalogError as err:  # changed since the suite was expanded
        return WeightsCheck(problems=[str(err)])
    for spec in specs:
        key = (spec.model, str(spec.overrides), spec.dataset, spec.weights_file)
        if not spec.eval_only or key in seen:
            continue
        seen.add(key)
        try:
            located = locate(spec.model, spec.weights, root, catalog)
        except WeightsLocationError as err:  # changed since the suite was expanded
            result.problems.append(f"{spec.model}: {err}")
            continue
        if not located.present:
            result.missing.append(located.missing_line(spec.model))
            continue
        try:
            build_loaded_model(train_spec(spec, str(root)), "meta")
        except WeightsError as err:
            result.problems.append(f"{spec.model}: {err}")
    return result
