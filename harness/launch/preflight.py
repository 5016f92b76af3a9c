"""Checks of what a suite's runs read before any starts: datasets, distillation teachers and eval-only weights.

``harness validate --data-root`` calls ``check_inputs``: it lists every missing dataset, teacher weights file and
released weights file (one line each, with the runs that need it and where to get it) and refuses a weights file that
cannot be loaded. ``harness run`` and ``submit`` refuse a missing teacher or weights file (``check_files``), so that no
worker starts on a file it cannot use; a missing dataset stops a local suite after its first runs fail (the data
may only be on the cluster's filesystem for ``submit``). A weights file's load is checked on the ``meta`` device:
it reads the file and compares every tensor's place and shape, and allocates no model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.suite import RunSpec

RUN_IDS_SHOWN = 5  # run ids named on one missing-input line; the rest are counted


@dataclass
class InputsCheck:
    """What the runs read that is missing (one line per dataset or file) or present but unusable (one line each)."""

    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def check_inputs(specs: list[RunSpec], data_root: str | None) -> InputsCheck:
    """Every dataset, teacher weights file and eval-only weights file ``specs`` need under ``data_root``."""
    files = check_files(specs, data_root)
    return InputsCheck(missing_datasets(specs, data_root) + files.missing, files.problems)


def check_files(specs: list[RunSpec], data_root: str | None) -> InputsCheck:
    """The teacher weights of distilling runs and the weights of eval-only runs under ``data_root``."""
    weights = check_weights(specs, data_root)
    return InputsCheck(missing_teachers(specs, data_root) + weights.missing, weights.problems)


def check_weights(specs: list[RunSpec], data_root: str | None) -> InputsCheck:
    """Check the weights file of every eval-only run among ``specs`` (each model and file once)."""
    if not any(spec.eval_only for spec in specs):  # nothing to check: no model code to import for it
        return InputsCheck()
    from harness.audit import WeightsError
    from harness.data.catalog import resolve_data_root
    from harness.engine.eval_only import build_loaded_model
    from harness.launch.worker import train_spec
    from harness.weights.catalog import RELEASED, CatalogError, active_catalog
    from harness.weights.locate import WeightsLocationError, locate

    root = resolve_data_root(data_root)
    result, seen = InputsCheck(), set()
    try:
        catalog = active_catalog() if any(spec.weights == RELEASED for spec in specs) else None
    except CatalogError as err:  # changed since the suite was expanded
        return InputsCheck(problems=[str(err)])
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


def missing_datasets(specs: list[RunSpec], data_root: str | None) -> list[str]:
    """One line per dataset that is not (completely) under ``data_root``: what was expected where, the runs that
    need it and the download page. Each dataset is looked for as its runs' worker would, reading no sample."""
    from harness.data import DatasetError, check_dataset, dataset_info

    needs: dict[tuple[str, str, int, tuple[str, ...]], list[str]] = {}
    for spec in specs:  # an eval-only run reads the test split alone
        splits = ("test",) if spec.eval_only else ("train", "test")
        key = (spec.dataset, json.dumps(spec.data_options, sort_keys=True), spec.T, splits)
        needs.setdefault(key, []).append(spec.run_id)
    missing: dict[str, tuple[str, list[str]]] = {}  # dataset -> (its first problem, every run it fails)
    for (dataset, options, T, splits), run_ids in needs.items():
        try:
            check_dataset(dataset, data_root, T, splits, **json.loads(options))
        except DatasetError as err:
            found = str(err).splitlines()
            expected = next((line for line in found if line.startswith("expected: ")), "")
            problem, failing = missing.setdefault(dataset, (found[0] + (f" ({expected})" if expected else ""), []))
            failing += run_ids
    return [f"{problem}; {_needed_by(run_ids)}; get it from {dataset_info(dataset)['download']}"
            for dataset, (problem, run_ids) in missing.items()]


def missing_teachers(specs: list[RunSpec], data_root: str | None) -> list[str]:
    """One line per distillation teacher weights file that is not under ``data_root``, with the runs needing it."""
    from harness.data.catalog import resolve_data_root
    from harness.launch.worker import train_spec

    root = resolve_data_root(data_root)
    needs: dict[tuple[Path, str, str], list[str]] = {}
    for spec in specs:
        if spec.eval_only:
            continue
        distill = train_spec(spec, str(root)).resolved_recipe().distill
        if distill.type != "none" and not (root / distill.teacher_weights).is_file():
            needs.setdefault((root / distill.teacher_weights, distill.teacher, spec.recipe), []).append(spec.run_id)
    return [f"teacher weights of {teacher} (recipe {recipe!r}, field distill.teacher_weights): expected {path}; no "
            f"such file; {_needed_by(run_ids)}; {_teacher_source(teacher)}"
            for (path, teacher, recipe), run_ids in needs.items()]


def _teacher_source(teacher: str) -> str:
    """Where a teacher's weights come from: timm's release on the Hugging Face hub, or the zoo's weights command."""
    library, name = teacher.split(":", 1)
    if library == "timm":
        return f"get it from https://huggingface.co/timm (timm's release of {name}: its model.safetensors)"
    return f"get it with `python -m harness weights fetch {name}` (then point distill.teacher_weights at it)"


def _needed_by(run_ids: list[str]) -> str:
    """``needed by 3 runs: a, b, c`` (at most ``RUN_IDS_SHOWN`` ids named, the rest counted)."""
    shown = ", ".join(run_ids[:RUN_IDS_SHOWN])
    more = f" and {len(run_ids) - RUN_IDS_SHOWN} more" if len(run_ids) > RUN_IDS_SHOWN else ""
    return f"needed by {len(run_ids)} run{'s' if len(run_ids) != 1 else ''}: {shown}{more}"
