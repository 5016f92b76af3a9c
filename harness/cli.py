"""The spikebench command line. Heavy libraries (torch, mlflow) are imported only inside commands,
so ``--help`` answers at once. User mistakes exit with code 2 and one line, never a traceback."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from harness.argtypes import (LIST_MODELS, OneLineParser, closest, energy_images, fraction, int_range,
                               non_negative_int, positive_int, seed_int, unknown_model)
from harness.names import UnsafePathError

if TYPE_CHECKING:  # annotations only: harness.suite imports pydantic, which --help does not need
    from harness.suite import RunSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT_IDS = ("the data root the suite was run with (default $SPIKEBENCH_DATA): eval-only runs' weights files are "
                 "found under it, and their SHA-256 is part of the run ids")


class UserError(Exception):
    """A mistake in the user's input: reported as one line, exit code 2, no traceback."""


def _read_suite(path: str):
    """The suite file, read and checked against the schema (no model code is imported for it)."""
    from harness.suite import SuiteError, load_suite

    try:
        return load_suite(path)
    except SuiteError as err:
        raise UserError(str(err)) from None


def _load_specs(args: argparse.Namespace, data_root: str | None = None, suite=None):
    """The suite's (``suite``, else read from ``args.suite``) run specs with the command line's budget knobs (and
    ``--only`` filter) applied; eval-only runs' weights files are looked for under ``data_root`` (their hash is
    part of the run id)."""
    from harness.suite import SuiteError, expand

    suite = suite or _read_suite(args.suite)
    try:
        specs = expand(suite, _budget(args), data_root)
    except SuiteError as err:
        raise UserError(str(err)) from None
    return suite, _selected(args, specs)


def _selected(args: argparse.Namespace, specs: list) -> list:
    """The specs the command line asks for: each in fast mode with ``--fast``, those of ``--only`` (all without it);
    an unknown run id is a user error."""
    if getattr(args, "fast", False):
        specs = [_in_fast_mode(spec, args.suite) for spec in specs]
    only = set(getattr(args, "only", None) or [])
    if only:
        unknown = only - {s.run_id for s in specs}
        if unknown:
            raise UserError(f"--only: run ids not in {args.suite}: {', '.join(sorted(unknown))}")
        specs = [s for s in specs if s.run_id in only]
    return specs


FAST_OVERRIDE = "train.fast"  # the recipe field --fast sets for every training run


def _in_fast_mode(spec: RunSpec, suite_path: str) -> RunSpec:
    """``spec`` with ``train.fast: true`` among its recipe overrides (a new run id), unless its recipe already runs
    fast; an eval-only run trains nothing and stays as it is. A recipe that fixes the numerics fast mode chooses
    (precision, channels_last, compile) is the user's mistake: one line naming the run and the fields."""
    from harness.recipe import OverrideError, apply_overrides, load_recipe
    from harness.suite import RunSpec

    if spec.eval_only:
        return spec
    overrides = {**spec.recipe_overrides, FAST_OVERRIDE: True}
    try:
        recipe = apply_overrides(load_recipe(spec.recipe), spec.recipe_overrides)
        apply_overrides(recipe, {FAST_OVERRIDE: True})
    except OverrideError as err:
        raise UserError(f"--fast: {suite_path}: run {spec.model} on {spec.dataset}: "
                        f"{'; '.join(err.problems.values())}") from None
    if recipe.train.fast:
        return spec
    return RunSpec(**{**spec.model_dump(), "recipe_overrides": overrides})


def _fast_line(suite_name: str) -> str:
    """What ``--fast`` runs with on this machine, for the run command's first lines."""
    import torch

    from harness.engine.numerics import fast_choice

    choice = fast_choice("cuda" if torch.cuda.is_available() else "cpu")
    return (f"{suite_name}: fast mode ({choice.case}): {choice.reason}; each run records it as resolved.fast in "
            f"its config.json")


BUDGET_FLAGS = ("epochs", "limit_batches", "subset", "energy_images", "threads")


def _budget(args: argparse.Namespace):
    """The budget knobs given on the command line (each overrides the suite's only when given; their ranges are
    checked when the command line is parsed)."""
    from harness.suite import Budget

    return Budget(**{name: getattr(args, name) for name in BUDGET_FLAGS if getattr(args, name, None) is not None})


def _roots(args: argparse.Namespace) -> tuple[Path, str]:
    from harness.runs import results_root
    from harness.tracking import default_uri

    root = results_root(args.results_dir)
    return root, args.tracking_uri or default_uri(root)


def _cmd_ls(args: argparse.Namespace) -> int:
    if args.what in ("models", "all"):
        import zoo

        print("# models (params: the official code's count; 'derived': ours, built from the paper's text)")
        for name in zoo.list_models(args.pattern):
            card = zoo.model_card(name)
            derived = card.extra.get("derived_params")
            params = (f"{card.code_params:,}" if card.code_params else f"{derived:,} (derived)" if derived else "?")
            print(f"{name:32s} {card.family:11s} T={card.T:<3d} classes={card.num_classes:<5d} params={params}")
    if args.what in ("datasets", "all"):
        print("# datasets (input: the (C, H, W) the model sees per image or frame, under each recipe using it)")
        for line in _dataset_lines():
            print(line)
    if args.what in ("recipes", "all"):
        from harness.recipe import list_recipes, load_recipe

        print("# recipes")
        for name in list_recipes():
            print(f"{name:20s} {load_recipe(name).description.splitlines()[0][:90]}")
    if args.what in ("suites", "all"):
        print("# suites")
        for path in sorted((REPO_ROOT / "suites").glob("*.yaml")):
            print(path.relative_to(REPO_ROOT))
    return 0


def _dataset_lines() -> list[str]:
    """One line per dataset: kind, classes, and the real input shape under each recipe that trains on it."""
    import zoo
    from harness.data import dataset_info, list_datasets, model_input_shape
    from harness.recipe import list_recipes, load_recipe

    recipes = list_recipes()
    lines = []
    for name in list_datasets():
        info = dataset_info(name)
        users = {zoo.model_card(m).recipe for m in zoo.list_models() if zoo.model_card(m).dataset == name}
        users |= {name} if name in recipes else set()
        shapes: dict[tuple[int, int, int], list[str]] = {}
        for recipe in sorted(users):
            shapes.setdefault(model_input_shape(name, load_recipe(recipe).data), []).append(recipe)
        inputs = "; ".join(f"{shape} [{', '.join(rs)}]" for shape, rs in shapes.items()) or \
            f"{model_input_shape(name)} (no recipe)"
        lines.append(f"{name:12s} {info['kind']:7s} classes={info['num_classes']:<5d} input={inputs}")
    return lines


def _cmd_validate(args: argparse.Namespace) -> int:
    from harness.launch.preflight import InputsCheck, check_inputs

    suite, specs = _load_specs(args, args.data_root)
    inputs = check_inputs(specs, args.data_root) if args.data_root else InputsCheck()
    if inputs.problems:
        raise UserError(_first_of(inputs.problems))
    print(f"{suite.path}: " + (f"{len(specs)} runs; the suite is valid, but what they need is missing under "
                               f"{args.data_root} (listed below)" if inputs.missing else f"valid, {len(specs)} runs"))
    from zoo.core.swap import SWAP_FIELDS, swap_label

    for spec in specs:
        variant = f" [{spec.variant}]" if spec.variant else ""
        swaps = "".join(f" [{swap_label(key, spec.overrides[key])}]" for key in SWAP_FIELDS if key in spec.overrides)
        evaluated = f" eval-only weights={spec.weights}" if spec.eval_only else ""
        print(f"  {spec.run_id} {spec.model} {spec.dataset} T={spec.T} seed={spec.seed} recipe={spec.recipe}"
              f"{variant}{swaps}{evaluated}")
    if inputs.missing:
        _list_missing(suite.path, inputs.missing, args.data_root)
    return 0


def _list_missing(suite_path: str, missing: list[str], data_root: str) -> None:
    """Print what is missing under the data root, one line each, then fail with one line (exit 2)."""
    print(f"missing under {data_root} ({len(missing)}; the runs that need them fail until they are there):")
    for line in missing:
        print(f"  {line}")
    raise UserError(f"{suite_path}: {len(missing)} dataset(s) or file(s) missing under {data_root} (listed above)")


def _refuse_missing_files(specs, root: Path, data_root: str | None) -> None:
    """Before any run starts: every run still to do has its teacher's weights file, every eval-only run its
    weights file, and it loads (``harness.launch.preflight``)."""
    from harness.launch.preflight import check_files
    from harness.runs import DONE_STATES, RunRecord, run_dir

    todo = [spec for spec in specs if RunRecord(run_dir(root, spec)).state not in DONE_STATES]
    files = check_files(todo, data_root)
    if files.problems or files.missing:
        raise UserError(_first_of(files.problems + files.missing))


def _first_of(lines: list[str]) -> str:
    """The first of several one-line problems, saying how many more there are."""
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return lines[0] + more


def _reachable(uri: str) -> str | None:
    """The tracking URI with its store ready, or None after one warning line when it cannot be used: runs
    then stay in their directories until ``harness collect``; training is never held up by tracking."""
    from harness.tracking import SQLITE, TrackingUnavailable, ensure_store

    if uri.startswith(SQLITE) and not Path(uri[len(SQLITE):]).exists():
        print(f"creating the tracking store {uri[len(SQLITE):]} (the first time only: MLflow's database "
              "migrations take seconds)", flush=True)
    try:
        ensure_store(uri)
    except TrackingUnavailable as err:
        print(f"warning: {err}; runs are not logged and no report is rendered now: run `harness collect` "
              f"and `harness report` once it is back", file=sys.stderr, flush=True)
        return None
    return uri


def _tracking(func: Callable, *args, **kwargs):
    """Call a tracking/report function; an unusable tracking store (or an unknown ``--source``) is a one-line
    error. The report package (torch, scipy: seconds) is not imported for it: ``collect`` never loads it, and an
    ``UnknownSource`` can only come from a loaded one."""
    from harness.tracking import TrackingUnavailable

    try:
        return func(*args, **kwargs)
    except Exception as err:
        frame = sys.modules.get("harness.report.frame")
        if isinstance(err, TrackingUnavailable) or (frame is not None and isinstance(err, frame.UnknownSource)):
            raise UserError(str(err)) from None
        raise


def _cmd_run(args: argparse.Namespace) -> int:
    suite = _read_suite(args.suite)  # a mistake in the file is the one line, printed before anything else
    print(f"{suite.name}: resolving the runs of {args.suite} (loading torch and the model zoo takes a few seconds)",
          flush=True)  # the first line, before any heavy import
    from harness.launch.local import run_suite
    from harness.launch.outlook import plan_line

    suite, specs = _load_specs(args, args.data_root, suite)
    root, uri = _roots(args)
    print(plan_line(suite.name, specs, root, args.jobs, args.keep_stale), flush=True)
    if args.fast:
        print(_fast_line(suite.name), flush=True)
    _refuse_missing_files(specs, root, args.data_root)
    uri = _reachable(uri)
    try:
        outcome = run_suite(specs, root, jobs=args.jobs, tracking_uri=uri, data_root=args.data_root,
                            suite_path=args.suite, keep_stale=args.keep_stale, retries=args.retries)
    except KeyboardInterrupt:
        print("interrupted: the runs stopped; a rerun resumes them from their checkpoints", file=sys.stderr)
        return 130
    print(f"{suite.name}: {outcome.summary()}")
    for message in outcome.tracking_errors:
        print(f"warning: {message}", file=sys.stderr)
    if outcome.aborted:
        raise UserError(f"{suite.name}: stopped, {outcome.aborted}")
    if not args.no_report and uri is not None:
        _report(suite, uri, root, specs)
    return 0 if all(s in ("finished", "diverged") for s in outcome.states.values()) else 1


@contextlib.contextmanager
def _without_cycle_collection():
    """Pause Python's cyclic garbage collector while a report is made: the runs of 10,000 MLflow runs are millions
    of objects that every collection walks again (a third of a report's time), and reports make no cycles worth
    collecting before the command ends."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _report(suite, uri: str, root: Path, specs=None, all_tables: bool = False, out: Path | None = None,
            sources: list[str] | None = None) -> None:
    """The suite's tables and the leaderboard (under ``out``, default the results root), with the suite's verdict
    margins, of the runs of ``sources`` (all when None); then the summary of the runs ``specs`` (after ``run``)
    or the full report. The store is read once: the suite's runs are those tagged with it (``log_run_dir`` names
    a run's experiment and its suite tag from the same suite)."""
    from harness.report import render_leaderboard, render_tables, run_summary
    from harness.tracking import runs_frame

    out = out or root
    with _without_cycle_collection():
        runs = _tracking(runs_frame, uri)
        paths = _tracking(render_tables, runs, suite.name, out / "tables", suite.margins, all_tables, sources)
        page = _tracking(render_leaderboard, runs, out / "leaderboard" / "index.html", suite.margins, suite.name,
                         sources)
    if specs is not None:
        print(_tracking(run_summary, runs, suite.name, specs, root, paths["report.md"], page, suite.margins))
        return
    print(Path(paths["report.md"]).read_text())
    print(f"tables: {paths['report.md'].parent}/ (Markdown, LaTeX, CSV per table)")
    print(f"leaderboard: {page}")


def _cmd_status(args: argparse.Namespace) -> int:
    from harness.runs import RunRecord, live_state, lock_holder, run_dir, stale_code
    from harness.status_index import StatusIndex
    from harness.suite import SuiteError, cached_expansion

    try:  # unchanged suite files and code: the specs of the last expansion
        name, specs = cached_expansion(args.suite, _budget(args), args.data_root)
    except SuiteError as err:
        raise UserError(str(err)) from None
    specs = _selected(args, specs)
    root, _ = _roots(args)
    on_slurm = {}
    index = StatusIndex.load(root)  # unchanged runs are not read again
    records = [RunRecord(run_dir(root, spec)) for spec in specs]
    facts = [index.facts(record) for record in records]
    if args.slurm or (any(fact["status"].get("slurm_job_id") for fact in facts) and shutil.which("squeue")):
        from harness.launch.slurm import slurm_states

        on_slurm = _slurm_call(slurm_states, root, specs)
    states, changed = {}, {}
    for spec, record, fact in zip(specs, records, facts):
        status, slurm = fact["status"], on_slurm.get(spec.run_id)
        state = slurm.state if slurm else (live_state(status, record.dir) if (record.dir / "spec.json").exists()
                                           else "pending")
        holder = lock_holder(record.dir) if state == "running" and not slurm else None
        if state not in ("running", "queued", "requeued") and stale_code(fact["code"], spec.model, spec.recipe):
            state = "stale"  # computed by other code: a rerun recomputes it
        top1 = "-" if fact["top1"] is None else f"{fact['top1']:.2f}"
        job = f" job={slurm.job_id}" if slurm and slurm.job_id else ""
        by = f" by={holder}" if holder else ""
        print(f"{state:11s} {spec.run_id} {spec.model:28s} {spec.dataset:11s} T={spec.T:<3d} seed={spec.seed} "
              f"top1={top1}{job}{by}")
        if state == "stale":
            _print_changed_code(record.config, spec, changed)
        if slurm and slurm.reason and state == "failed":
            print("            " + slurm.reason.strip().splitlines()[-1][:200])
        elif not slurm and state in ("interrupted", "corrupt") and status.get("reason"):
            print("            " + status["reason"].strip().splitlines()[0][:300])
        states[spec.run_id] = state
    index.save()
    print(f"{name}: " + ", ".join(f"{n} {s}" for s, n in sorted(Counter(states.values()).items())))
    return 0


def _print_changed_code(config: dict, spec, known: dict[str, list[str] | None]) -> None:
    """Under a stale run in ``status``: the modules (and recipe) that changed since it was computed, found once per
    model, recipe, teacher and recorded module hashes (``known``: 10,000 stale runs share a few dozen)."""
    from harness.engine.provenance import changed_modules

    recipe = config.get("recipe")
    distill = recipe.get("distill") if isinstance(recipe, dict) else None
    provenance = config.get("provenance")
    recorded = provenance.get("code_modules") if isinstance(provenance, dict) else None
    key = json.dumps([spec.model, spec.recipe, distill, recorded], sort_keys=True, default=str)
    if key not in known:
        known[key] = changed_modules(config, spec.model, spec.recipe)
    changed = known[key]
    if changed:
        print("            changed: " + ", ".join(changed))


def _cmd_collect(args: argparse.Namespace) -> int:
    from harness.tracking import collect

    root, uri = _roots(args)
    counts = _tracking(collect, root, uri, dry_run=args.dry_run)
    done = "would collect into" if args.dry_run else "collected into"
    print(f"{done} {uri}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.suite import SuiteError, cached_heading

    root, uri = _roots(args)
    try:  # the suite's name and margins: kept while its files and the code are unchanged
        heading = cached_heading(args.suite)
    except SuiteError as err:
        raise UserError(str(err)) from None
    _report(heading, uri, root, all_tables=args.all, out=Path(args.out) if args.out else None, sources=args.source)
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from harness.report import render_leaderboard

    root, uri = _roots(args)
    out = Path(args.out) if args.out else root / "leaderboard" / "index.html"
    with _without_cycle_collection():
        page = _tracking(render_leaderboard, uri, out, sources=args.source)
    print(f"leaderboard: {page}")
    return 0


def _slurm_call(func: Callable, *args, **kwargs):
    """Call into the SLURM launcher, turning profile and SLURM command errors into one-line user errors."""
    from harness.launch.slurm import ProfileError, SlurmError

    try:
        return func(*args, **kwargs)
    except (ProfileError, SlurmError) as err:
        raise UserError(str(err)) from None


def _cmd_submit(args: argparse.Namespace) -> int:
    from harness.launch.slurm import submit_suite

    _, specs = _load_specs(args, args.data_root)
    root, uri = _roots(args)
    _refuse_missing_files(specs, root, args.data_root)
    jobs = _slurm_call(submit_suite, specs, args.cluster, root, failed_only=args.failed, tracking_uri=uri,
                       data_root=args.data_root, keep_stale=args.keep_stale)
    print(f"submitted {len(jobs)} job(s): {' '.join(jobs)}" if jobs else "nothing to submit: every run is "
          "finished, queued or running")
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    from harness.launch.slurm import cancel_suite

    _, specs = _load_specs(args, args.data_root)
    root, _ = _roots(args)
    print(f"cancelled {_slurm_call(cancel_suite, root, specs)} job(s)")
    return 0


def _cmd_energy(args: argparse.Namespace) -> int:
    from harness.metrics.energy import main as energy_main

    return energy_main(args.extra)


def _audit_inputs(args: argparse.Namespace, card, T: int):
    """The seeded images (and labels) the audit compares: a dataset's eval split, or synthetic inputs."""
    import torch

    from harness.data import DatasetError, build_dataset, dataset_info

    gen = torch.Generator().manual_seed(args.seed)
    if args.random and dataset_info(card.dataset)["kind"] == "dvs":
        events = torch.randint(0, 3, (args.images, T, *card.input_shape), generator=gen).float()
        return events, None, "random event counts in 0..2"
    if args.random:
        return torch.randn(args.images, *card.input_shape, generator=gen), None, "random N(0,1) images"
    from harness.engine.data import seeded_subset
    from harness.recipe import list_recipes, load_recipe

    dataset = args.dataset or card.dataset
    try:
        info = dataset_info(dataset)
    except KeyError as err:
        raise UserError(str(err.args[0])) from None
    recipe = card.recipe if dataset == card.dataset else dataset if dataset in list_recipes() else None
    if recipe is None:
        raise UserError(f"--dataset {dataset}: no recipe for {card.name} on it; use its own dataset "
                        f"({card.dataset}) or one with a recipe ({', '.join(list_recipes())})")
    split = "val" if "val" in info["splits"] else "test"
    try:
        data = build_dataset(dataset, split, root=args.data_root, T=T, recipe=load_recipe(recipe).data)
    except DatasetError as err:
        raise UserError(f"{str(err).splitlines()[0]} (pass --data-root, another --dataset, or --random)") from None
    subset = seeded_subset(data, min(args.images, len(data)), args.seed)
    x, y = zip(*(subset[i] for i in range(len(subset))))
    return torch.stack(x), torch.tensor(y), f"{dataset}/{split} ({recipe} eval pipeline)"


def _cmd_audit(args: argparse.Namespace) -> int:
    import json

    import torch
    import yaml

    import zoo
    from harness.audit import WeightsError, audit_batches, load_weights
    from harness.metrics.energy import silent_network_warning
    from harness.data import dataset_info
    from harness.recipe import load_recipe, model_input_kwargs

    problem = unknown_model(args.model)
    if problem:
        raise UserError(problem)
    card = zoo.model_card(args.model)
    overrides = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set {item!r}: expected KEY=VALUE (a model argument)")
        overrides[key] = yaml.safe_load(value)
    unknown = sorted(set(overrides) - set(_override_names(args.model)))
    if unknown:
        raise UserError(f"--set: {', '.join(unknown)} not arguments of {args.model}; "
                        f"valid: {', '.join(_override_names(args.model))}")
    _check_swaps(args.model, overrides)
    T = args.T or card.T
    torch.manual_seed(args.seed)
    dataset = args.dataset or card.dataset
    kwargs = {} if args.random or dataset != card.dataset else model_input_kwargs(
        load_recipe(card.recipe).data, dataset_info(dataset)["kind"])
    model = zoo.create_model(args.model, T=T, **{**kwargs, **overrides})
    weights = f"random (seed {args.seed})"
    if args.checkpoint:
        try:
            load_weights(model, args.checkpoint)
        except WeightsError as err:
            raise UserError(f"--checkpoint {err}") from None
        weights = args.checkpoint
    device = args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    images, labels, source = _audit_inputs(args, card, T)
    report = {"model": args.model, "weights": weights, "inputs": source,
              **audit_batches(model, images, labels, (1, args.batch))}
    print(f"{args.model}  T={T}  weights: {weights}  inputs: {source}, {report['images']} images")
    print(f"batch_dependent (model structure): {report['batch_dependent']}")
    if "top1_diff" in report:
        print(f"top-1 at batch 1: {report['top1_batch1']:.2f}%   at batch {args.batch}: "
              f"{report[f'top1_batch{args.batch}']:.2f}%   difference {report['top1_diff']:+.2f} points")
    print(f"predictions changed: {report['prediction_changes_pct']:.2f}%   logit difference max "
          f"{report['max_logit_diff']:.3g}  mean {report['mean_logit_diff']:.3g}")
    warning = silent_network_warning(report["firing_rate"], "an unchanged prediction says nothing about batch "
                                     "invariance")
    if warning:
        print(warning)
    if args.json:
        print(json.dumps(report))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    script = REPO_ROOT / "benchmarks" / f"{args.name}.py"
    scripts = sorted(p.stem for p in (REPO_ROOT / "benchmarks").glob("*.py"))
    if args.name in scripts:  # a name, never a path to some other script
        import runpy

        sys.argv = [str(script), *args.bench_args]
        runpy.run_path(str(script), run_name="__main__")
        return 0
    if unknown_model(args.name):
        import zoo

        close = closest(args.name, scripts + zoo.list_models())
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UserError(f"unknown benchmark {args.name!r}: neither a zoo model nor a script benchmarks/NAME.py; "
                        f"{hint}scripts: {', '.join(scripts)}; models: {LIST_MODELS}")
    return _bench_model(args.name, args.bench_args)


def _bench_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m harness bench MODEL", description=(
        "time a zoo model's train or eval step: median of device-synchronised steps, img/s, peak memory, FLOPs; "
        "--mode energy: the energy measurement pass against a plain evaluation pass (energy_over_eval)"))
    p.add_argument("--mode", choices=["train", "eval", "energy"], default="train")
    p.add_argument("--batch", type=positive_int, default=16)
    p.add_argument("--T", type=positive_int, help="time steps (default: the model's)")
    p.add_argument("--size", type=positive_int, help="input height = width (default: the model's)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--fast", action="store_true",
                   help="fast mode: the numerics that win on this device (bf16 only where it is native; "
                        "harness/engine/numerics.py), and the zoo's fast paths")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: autocast (AMP)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--channels-last", action="store_true",
                   help="channels-last weights and images (changes the convolutions' rounding, so the numbers)")
    p.add_argument("--against", choices=["reference"],
                   help="also time, alternating, the same model with spikingjelly's LIFNode (fp32, eager); with "
                        "--mode energy, the old measurement path (dispatcher counter + a second NeuroBench pass)")
    p.add_argument("--set", nargs="+", default=[], metavar="ARG=VALUE",
                   help="model constructor overrides, values in YAML (e.g. widths=[32,32,64] heads=2)")
    p.add_argument("--warmup", type=non_negative_int, default=2)
    p.add_argument("--repeats", type=positive_int, default=5)
    p.add_argument("--threads", type=positive_int, help="torch threads (default: torch's own choice)")
    p.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    p.add_argument("--record", action="store_true", help="append the result to benchmarks/RESULTS.md")
    return p


def _model_overrides(name: str, pairs: list[str]) -> dict[str, object]:
    """``ARG=VALUE`` pairs (values parsed as YAML) checked against the model's constructor arguments and swaps."""
    import yaml

    allowed = _override_names(name)
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in allowed:
            raise UserError(f"bench: --set {pair!r}: expected ARG=VALUE with ARG one of {', '.join(allowed)}")
        overrides[key] = yaml.safe_load(value)
    _check_swaps(name, overrides)
    return overrides


def _override_names(name: str) -> list[str]:
    """What ``--set`` may name: the model's constructor arguments and the component swaps (``zoo.core.swap``)."""
    import zoo
    from zoo.core import SWAP_FIELDS

    return [*zoo.model_arguments(name), *SWAP_FIELDS]


def _check_swaps(name: str, overrides: dict[str, object]) -> None:
    """The swaps among ``overrides`` are well formed and allowed by the model's card (else one line)."""
    import zoo
    from zoo.core import SWAP_FIELDS, SwapError
    from zoo.core.swap import check_swaps

    try:
        check_swaps(name, zoo.model_card(name).swaps, **{k: v for k, v in overrides.items() if k in SWAP_FIELDS})
    except SwapError as err:
        raise UserError(f"--set: {err}") from None


def _bench_model(name: str, argv: list[str]) -> int:
    import json

    opts = _bench_parser().parse_args(argv)
    overrides = _model_overrides(name, opts.set)
    import torch

    from harness.metrics.perf import BenchConfig, bench_model, format_bench, record_bench

    if opts.device == "cuda" and not torch.cuda.is_available():
        raise UserError("bench: --device cuda, but torch sees no CUDA device")
    if opts.mode == "energy":
        numerics = [flag for flag, on in (("--fast", opts.fast), ("--compile", opts.compile),
                                          ("--precision bf16", opts.precision == "bf16"),
                                          ("--channels-last", opts.channels_last)) if on]
        if numerics:
            raise UserError(f"bench: --mode energy times fp32 eager passes; drop {', '.join(numerics)}")
    elif opts.against == "reference":
        try:
            import spikingjelly  # noqa: F401
        except ImportError:
            raise UserError("bench: --against reference needs spikingjelly (pip install -e '.[dev]')") from None
    if opts.threads:
        torch.set_num_threads(opts.threads)
    numerics = dict(precision=opts.precision, compile=opts.compile, channels_last=opts.channels_last)
    if opts.fast:
        numerics = _fast_numerics(opts)
    cfg = BenchConfig(model=name, mode=opts.mode, batch=opts.batch, T=opts.T, size=opts.size, device=opts.device,
                      **numerics, fast=opts.fast, against=opts.against, warmup=opts.warmup, repeats=opts.repeats,
                      overrides=tuple(overrides.items()))
    result = bench_model(cfg)
    print(format_bench(result))
    if opts.record:
        command = "python -m harness bench " + " ".join([name, *argv])
        record_bench(result, command, REPO_ROOT / "benchmarks" / "RESULTS.md")
    if opts.json:
        print(json.dumps(result))
    return 0


def _fast_numerics(opts: argparse.Namespace) -> dict[str, object]:
    """``--fast``'s precision, compile and layout for ``opts.device`` on this machine; they are its to choose."""
    from harness.engine.numerics import fast_choice

    given = [flag for flag, on in (("--compile", opts.compile), ("--precision", opts.precision != "fp32"),
                                   ("--channels-last", opts.channels_last)) if on]
    if given:
        raise UserError(f"bench: --fast chooses precision, compile and layout for the device; drop {', '.join(given)}")
    choice = fast_choice(opts.device)
    return dict(precision=choice.precision, compile=choice.compile, channels_last=choice.channels_last)


def _cmd_weights(args: argparse.Namespace) -> int:
    """``harness.weights.cli``; its one-line errors (bad file, URL, hash, flag, catalog) exit 2."""
    from harness.audit import WeightsError
    from harness.weights import CatalogError
    from harness.weights.cli import run_weights_command

    try:
        return run_weights_command(args)
    except (WeightsError, CatalogError) as err:
        raise UserError(str(err)) from None
    except OSError as err:  # a local file or folder that cannot be read or written (full disk, permissions)
        raise UserError(f"{err.filename or 'weights'}: {err.strerror or err}") from None


def _cmd_bundle(args: argparse.Namespace) -> int:
    """``harness.bundle.cli`` (export, import, verify); its one-line errors (bundle, weights, files) exit 2."""
    from harness.audit import WeightsError
    from harness.bundle import BundleError
    from harness.bundle.cli import run_bundle_command

    try:
        return run_bundle_command(args)
    except (BundleError, WeightsError) as err:
        raise UserError(str(err)) from None
    except OSError as err:  # a file or folder that cannot be read or written (full disk, permissions)
        raise UserError(f"{err.filename or args.command}: {err.strerror or err}") from None


def _bundle_args(command: Callable[..., argparse.ArgumentParser]) -> None:
    """The result-bundle commands: export, import, verify."""
    def results_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--results-dir", help="results root (default $SPIKEBENCH_RESULTS or ./results)")

    p = command("export", _cmd_bundle, "export runs into one verifiable bundle (.tar.gz), or into the field's formats")
    p.add_argument("targets", nargs="+", metavar="SUITE|RUN_ID", help="a suite file (its runs) or run ids")
    results_dir(p)
    p.add_argument("--site", default="local", help="the site label the runs carry (a plain name, default local)")
    p.add_argument("--with-weights", action="store_true", help="include each run's checkpoint (always: its SHA-256)")
    p.add_argument("--format", choices=["hf", "timm-csv", "neurobench"],
                   help="instead of a bundle: Hugging Face model cards (a folder), timm's results CSV, NeuroBench JSON")
    p.add_argument("--out", help="the bundle file (default ./spikebench-<site>-<digest>.tar.gz) or format output")
    p = command("import", _cmd_bundle, "check a bundle and file its runs under <results>/imported/<site>/")
    p.add_argument("bundle", help="a .tar.gz written by `harness export`")
    results_dir(p)
    p.add_argument("--max-bytes", type=positive_int,
                   help="refuse a member, or members in all, above this size (default 8 GiB a checkpoint, "
                        "256 MiB any other member, 32 GiB in all)")
    p = command("verify", _cmd_bundle, "re-evaluate a run's checkpoint and compare its predictions image by image")
    p.add_argument("target", metavar="BUNDLE|RUN", help="a bundle file, a run directory or a run id")
    results_dir(p)
    p.add_argument("--images", type=positive_int, help="compare the first N evaluation images (default: all recorded)")
    p.add_argument("--weights", help="the checkpoint, when neither bundled nor local (its SHA-256 must match)")
    p.add_argument("--data-root", help="where the datasets live (default $SPIKEBENCH_DATA)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1... (default cpu)")
    p.add_argument("--tolerance", type=fraction, help="share of images allowed to differ outside exact mode "
                                                   "(default 0.01; exact mode: 0)")


def _weights_args(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="weights_command", required=True, metavar="SUBCOMMAND")

    def subcommand(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--data-root", help="where weights are stored, under weights/<model>/ (default "
                                           "$SPIKEBENCH_DATA or ~/.cache/spikebench)")
        p.add_argument("--catalog", help="a catalog file to use instead of $SPIKEBENCH_WEIGHTS_CATALOG or the "
                                         "packaged harness/weights/catalog.yaml (e.g. a local mirror's URLs)")
        return p

    p = subcommand("ls", "list the catalog: each release, whether its file is stored and its hash matches")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter for model names")
    p.add_argument("--json", action="store_true", help="the rows as JSON")
    p = subcommand("fetch", "download a release (direct link, or --url), check its hash and fit, store it")
    p.add_argument("model", help="registered zoo model name")
    p.add_argument("--url", help="download from this http(s) URL instead of the catalog's")
    p.add_argument("--sha256", help="expected SHA-256 (default: the catalog's, when the authors publish one)")
    p.add_argument("--max-bytes", type=positive_int, help="refuse a larger file (default 2 GiB)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = subcommand("import", "store a file downloaded by hand once it loads weights-only and fits the model")
    p.add_argument("model", help="registered zoo model name")
    p.add_argument("file", help="the downloaded checkpoint")
    p.add_argument("--sha256", help="expected SHA-256 of the file")
    p = subcommand("verify", "re-hash and re-load the stored files; exit 2 if any fails")
    p.add_argument("model", nargs="?", help="only this model (default: every stored file)")


def _suite_args(parser: argparse.ArgumentParser, budget: bool = False) -> None:
    parser.add_argument("suite", help="a suite file, e.g. suites/smoke.yaml")
    if budget:
        parser.add_argument("--epochs", type=positive_int, help="train this many epochs (part of the run id)")
        parser.add_argument("--limit-batches", type=positive_int,
                            help="at most N batches per epoch (part of the run id)")
        parser.add_argument("--subset", type=positive_int, help="use N samples per split (part of the run id)")
        parser.add_argument("--threads", type=positive_int,
                            help="CPU threads of each run, default 1 (part of the run id: it changes the numbers)")
        parser.add_argument("--energy-images", type=energy_images, metavar="N|all",
                            help="measure energy on N seeded eval images, 'all' or 0 = off (default: the suite's "
                                 "budget, else all; part of the run id)")
        parser.add_argument("--fast", action="store_true",
                            help="fast mode for every training run: train.fast: true, the numerics that win on "
                                 "this device (its case is printed and recorded; part of the run id)")
        parser.add_argument("--only", nargs="+", metavar="RUN_ID", help="only these run ids")


def _store_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-dir", help="results root (default $SPIKEBENCH_RESULTS or ./results)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///<results>/mlflow.db)")


def _source_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", action="append", metavar="SOURCE",
                        help="only the runs of this source: local (this results directory's), an imported site's "
                             "name, or '<site> (imported)'; repeat for several (default: every source)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m harness", description=(
        "spikebench: reproduce and compare spiking vision transformers (MSViT, QKFormer, Spikformer, SDT v1/v2)."))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func, parser=p)
        return p

    p = command("ls", _cmd_ls, "list models, datasets, recipes and suites")
    p.add_argument("what", nargs="?", default="all", choices=["models", "datasets", "recipes", "suites", "all"])
    p.add_argument("--pattern", default="*", help="shell-style filter for model names")

    p = command("validate", _cmd_validate, "validate a suite file and list its runs; without --data-root only the "
                "suite itself is checked (its schema, names and values), no dataset or file")
    _suite_args(p, budget=True)
    p.add_argument("--data-root", help="also check that every dataset, distillation teacher's weights file and "
                                       "eval-only weights file the runs need is under this data root: each missing "
                                       "one is listed with the runs needing it and where to get it (exit 2)")

    p = command("run", _cmd_run, "run a suite locally (unfinished runs only), then render tables and leaderboard")
    _suite_args(p, budget=True)
    _store_args(p)
    p.add_argument("--jobs", "-j", type=positive_int, default=1, help="runs in parallel (one subprocess each)")
    p.add_argument("--retries", type=non_negative_int, default=1, metavar="N",
                   help="retry a run whose worker a signal killed (SIGKILL, OOM killer) up to N times (default 1)")
    p.add_argument("--data-root", help="where the real datasets live (default $SPIKEBENCH_DATA)")
    p.add_argument("--no-report", action="store_true", help="skip rendering tables and leaderboard")
    p.add_argument("--keep-stale", action="store_true",
                   help="keep runs computed by other code (default: move them to <results>/stale/ and recompute)")

    p = command("status", _cmd_status, "show each run's state (finished / running / failed / pending)")
    _suite_args(p, budget=True)
    _store_args(p)
    p.add_argument("--slurm", action="store_true",
                   help="merge the states SLURM reports (automatic once a run was submitted and squeue exists)")
    p.add_argument("--data-root", help=DATA_ROOT_IDS)

    p = command("collect", _cmd_collect, "import run directories into MLflow (idempotent)")
    _store_args(p)
    p.add_argument("--dry-run", action="store_true", help="count what would be logged; write nothing")

    p = command("report", _cmd_report, "render the paper tables for a suite (Markdown, LaTeX, CSV)")
    p.add_argument("suite", help="a suite file")
    p.add_argument("--all", action="store_true", help="show every paper table, also those without a run")
    p.add_argument("--out", metavar="DIR", help="write tables/ and leaderboard/ under DIR (default: the results "
                                               "directory; give one when that is read-only)")
    _store_args(p)
    _source_arg(p)

    p = command("leaderboard", _cmd_leaderboard, "render the leaderboard page from MLflow")
    _store_args(p)
    _source_arg(p)
    p.add_argument("--out", help="output HTML path (default <results>/leaderboard/index.html)")

    p = command("submit", _cmd_submit, "submit a suite's unfinished runs to SLURM through submitit")
    _suite_args(p, budget=True)
    _store_args(p)
    p.add_argument("--cluster", required=True, help="a cluster profile: a name in slurm/ (e.g. local) or a path")
    p.add_argument("--failed", action="store_true", help="resubmit only the failed runs")
    p.add_argument("--keep-stale", action="store_true",
                   help="keep runs computed by other code (default: move them to <results>/stale/ and recompute)")
    p.add_argument("--data-root", help="where the real datasets live on the cluster's shared filesystem")

    p = command("cancel", _cmd_cancel, "cancel a suite's queued and running SLURM jobs")
    _suite_args(p, budget=True)
    _store_args(p)
    p.add_argument("--data-root", help=DATA_ROOT_IDS)

    # every argument after `energy` goes to harness.metrics.energy (its own --help lists them)
    p = sub.add_parser("energy", add_help=False, help="print a model's per-layer energy audit and total (mJ)")
    p.set_defaults(func=_cmd_energy, parser=p)

    p = command("audit", _cmd_audit, "evaluate a model at batch 1 and batch 32 on the same images and report "
                "the top-1 and logit differences (batch-size invariance)")
    p.add_argument("model", help="registered zoo model name")
    p.add_argument("--checkpoint", help="engine checkpoint, state dict, or official checkpoint to load")
    p.add_argument("--dataset", help="dataset whose eval split gives the images (default: the model's own)")
    p.add_argument("--data-root", help="where the real datasets live (default $SPIKEBENCH_DATA)")
    p.add_argument("--random", action="store_true", help="seeded synthetic inputs instead of a dataset (no top-1)")
    p.add_argument("--images", type=positive_int, default=64, help="number of images (a seeded subset)")
    p.add_argument("--batch", type=int_range(2), default=32, help="the large eval batch compared with batch 1")
    p.add_argument("--T", type=positive_int, help="time steps (default: the model card's)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="model argument override (repeatable)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1... (auto: the GPU if there is one)")
    p.add_argument("--json", action="store_true", help="also print the report as one JSON object on the last line")

    p = command("weights", _cmd_weights, "released weights: list the catalog, fetch, import and verify files")
    _weights_args(p)

    _bundle_args(command)

    p = command("bench", _cmd_bench, "time a zoo model's step (bench MODEL --help) or run a benchmark script "
                "from benchmarks/ (e.g. lif_speed)")
    p.add_argument("name", help="a zoo model name, or a benchmark script benchmarks/NAME.py")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as the terminal shows them: one line, no source excerpt."""
    return f"warning: {message}\n"


def _validation_problem(err: Exception) -> str | None:
    """A pydantic ValidationError as one line naming the model and field (None for any other exception):
    whatever input a command validates, the user never gets its traceback."""
    pydantic = sys.modules.get("pydantic")  # not imported: the error cannot be one of its
    if pydantic is None or not isinstance(err, pydantic.ValidationError):
        return None
    errors = err.errors()
    field = ".".join(str(part) for part in errors[0]["loc"]) or "input"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{err.title}: field {field}: {errors[0]['msg']}{more}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "energy":
        args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    warnings.formatwarning = _one_line_warning
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # not its INFO lines (database tables, migrations)
    try:
        return args.func(args)
    except (UserError, UnsafePathError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader closed early (`validate suites/x.yaml | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:  # the storage refused a read or write (full disk, read-only, permissions): one line
        from harness.runs import describe_os_error

        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except Exception as err:
        problem = _validation_problem(err)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return 2
