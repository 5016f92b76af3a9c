"""Accuracy parity of fast mode against exact mode on a suite's entries (issue 24, item 2).

``suites`` writes two suites generated from one (default ``suites/smoke.yaml``, every entry unless ``--models``
names some): ``exact.yaml`` with its entries as they are and ``fast.yaml`` with fast mode (``--fast-overrides``,
default ``train.fast: true``: the settings ``harness.engine.numerics`` chooses for the device the run executes on)
added to every entry's ``recipe_overrides``, both over ``--seeds``.
``table`` reads the finished runs of both results directories and prints the fast settings the fast runs resolved
(their ``config.json``), then per configuration each seed's best top-1, the means, the same-seed differences and
``harness.report.verdict`` of the fast seeds against the exact mean with a margin of 1 point (the report's
equivalence test of a claim: the 95% interval of the fast mean, floored by the sampling error of a top-1 on the
test split, must lie inside exact mean +- 1).

    python benchmarks/parity.py suites --out /tmp/parity --seeds 0 1 2 [--models msvit_4_384.cifar10 ...]
    python -m harness run /tmp/parity/exact.yaml --results-dir /tmp/parity/res_exact --no-report --jobs 1
    python -m harness run /tmp/parity/fast.yaml --results-dir /tmp/parity/res_fast --no-report --jobs 1
    python benchmarks/parity.py table /tmp/parity/res_exact /tmp/parity/res_fast
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from harness.argtypes import OneLineParser, seed_int
from harness.configfile import ConfigError, read_yaml
from harness.report.aggregate import Stat, verdict
from harness.suite import expand, load_suite

FAST_OVERRIDES = {"train.fast": True}
MARGIN = 1.0
Seeds = dict[int, float]


def parity_suites(source: dict[str, Any], seeds: list[int], models: list[str] | None,
                  fast: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The exact and fast suites generated from the suite mapping ``source``: its entries (only the zoo configs
    in ``models`` when given) over ``seeds``, the fast one with ``fast`` added to every entry's recipe overrides."""
    entries = []
    for entry in source.get("grid", []):
        kept = [m for m in entry["models"] if models is None or m in models]
        if kept:
            entries.append({**entry, "models": kept})
    base = {key: value for key, value in source.items() if key not in ("grid", "include")}
    name = source.get("name") or "suite"
    exact = {**base, "name": f"{name}-exact", "seeds": list(seeds), "grid": entries}
    fast_entries = [{**e, "recipe_overrides": {**e.get("recipe_overrides", {}), **fast}} for e in entries]
    return {"exact": exact, "fast": {**exact, "name": f"{name}-fast", "grid": fast_entries}}


def finished_runs(results: Path) -> dict[tuple[str, str], Seeds]:
    """``(model, dataset) -> {seed: best top-1}`` of the runs under ``results/runs`` that ended (finished or
    diverged; a diverged seed, or one without a best top-1, counts as NaN)."""
    table: dict[tuple[str, str], Seeds] = {}
    for final_path in sorted((results / "runs").glob("*/final.json")):
        final = json.loads(final_path.read_text())
        spec = json.loads((final_path.parent / "spec.json").read_text())
        best = final.get("best_top1") if final.get("status") == "finished" else None
        table.setdefault((spec["model"], spec["dataset"]), {})[spec["seed"]] = math.nan if best is None else best
    return table


def eval_images(results: Path) -> dict[str, int]:
    """``dataset -> images evaluated`` per the finished runs' records (the verdict's sampling-error floor)."""
    sizes = {}
    for final_path in (results / "runs").glob("*/final.json"):
        images = (json.loads(final_path.read_text()).get("last") or {}).get("eval_images")
        if images:
            spec = json.loads((final_path.parent / "spec.json").read_text())
            sizes[spec["dataset"]] = int(images)
    return sizes


def resolved_fast(results: Path) -> dict[str, int]:
    """How many of the runs under ``results/runs`` that ended resolved each fast setting, from their ``config.json``
    (the trainer's ``resolved.fast``: the case and settings fast mode chose on the run's device); "none" for a run
    outside fast mode."""
    counts: dict[str, int] = {}
    for final_path in sorted((results / "runs").glob("*/final.json")):
        fast = (json.loads((final_path.parent / "config.json").read_text()).get("resolved") or {}).get("fast")
        described = "none" if not fast else ", ".join(f"{key} {value}" for key, value in fast.items())
        counts[described] = counts.get(described, 0) + 1
    return counts


def fast_lines(results: Path) -> list[str]:
    """The fast settings of the fast results directory's runs, one line per distinct setting, most runs first."""
    counts = sorted(resolved_fast(results).items(), key=lambda item: -item[1])
    return [f"{count} of the fast runs resolved fast mode as: {described}" for described, count in counts]


def parity_verdict(exact: Seeds, fast: Seeds, n_test: int | None) -> str:
    """``harness.report.verdict`` of the fast seeds against the mean of the exact ones, margin ``MARGIN``."""
    exact_mean = Stat.of(exact.values()).mean
    if not fast or exact_mean is None:
        return "not run"
    return verdict(fast.values(), exact_mean, MARGIN, n_test)


def parity_rows(exact: dict[tuple[str, str], Seeds], fast: dict[tuple[str, str], Seeds],
                n_test: dict[str, int]) -> list[str]:
    """The parity table in markdown: per configuration, each mode's seeds and mean, their difference, the verdict."""
    rows = ["| model | dataset | exact best top-1 (seed) | fast best top-1 (seed) | exact mean | fast mean | "
            "fast - exact | same-seed pairs: mean difference [95% CI] | verdict (margin 1) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(set(exact) | set(fast)):
        ex, fa = exact.get(key, {}), fast.get(key, {})
        ex_mean, fa_mean = Stat.of(ex.values()).mean, Stat.of(fa.values()).mean
        gap = None if ex_mean is None or fa_mean is None else fa_mean - ex_mean
        rows.append(f"| {key[0]} | {key[1]} | {_per_seed(ex)} | {_per_seed(fa)} | {_number(ex_mean)} | "
                    f"{_number(fa_mean)} | {_number(gap, '+.2f')} | {paired_difference(ex, fa)} | "
                    f"{parity_verdict(ex, fa, n_test.get(key[1]))} |")
    return rows


def paired_difference(exact: Seeds, fast: Seeds) -> str:
    """Fast minus exact over the seeds run in both modes (a seed fixes the initial weights and the batch order
    in both), with the 95% t-interval of its mean: "+1.39 [-13.2, +16.0] (n=3)"; "-" below two pairs."""
    stat = Stat.of(fast[s] - exact[s] for s in sorted(set(exact) & set(fast)))
    if stat.ci_low is None:
        return "-"
    return f"{stat.mean:+.2f} [{stat.ci_low:+.1f}, {stat.ci_high:+.1f}] (n={stat.n})"


def _per_seed(values: Seeds) -> str:
    return ", ".join(f"{values[s]:.2f} ({s})" for s in sorted(values)) or "-"


def _number(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def _overrides(text: str) -> dict[str, Any]:
    """``--fast-overrides``: a JSON object of dotted recipe keys."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object of recipe overrides, got {text!r} ({err.msg})")
    if not isinstance(value, dict) or not value:
        raise argparse.ArgumentTypeError(f"expected a non-empty JSON object of recipe overrides, got {text!r}")
    return value


def _results_dir(text: str) -> Path:
    path = Path(text)
    if not (path / "runs").is_dir():
        raise argparse.ArgumentTypeError(f"expected a results directory holding runs/, got {text!r}")
    return path


def write_suites(source: Path, out: Path, seeds: list[int], models: list[str] | None,
                 fast: dict[str, Any]) -> list[Path]:
    """Write ``exact.yaml`` and ``fast.yaml`` into ``out``: both are staged and resolved (recipe overrides
    included, as ``harness validate`` checks them) before either replaces a file, so no half pair is left."""
    load_suite(source)
    suites = parity_suites(read_yaml(source, "suite"), seeds, models, fast)
    if not suites["exact"]["grid"]:
        raise ConfigError(f"{source}: no grid entry holds any of the models {models}")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".staged-") as staging:
        staged = {mode: Path(staging) / f"{mode}.yaml" for mode in suites}
        for mode, suite in suites.items():
            staged[mode].write_text(yaml.safe_dump(suite, sort_keys=False))
            try:
                expand(load_suite(staged[mode]))
            except ConfigError as err:
                raise ConfigError(str(err).replace(str(staged[mode]), f"generated {out / staged[mode].name}")) from None
        for path in staged.values():
            path.replace(out / path.name)
    return [out / path.name for path in staged.values()]


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="parity.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("suites", help="write exact.yaml and fast.yaml")
    gen.add_argument("--source", type=Path, default=Path("suites/smoke.yaml"))
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1, 2])
    gen.add_argument("--models", nargs="+", default=None, help="only these zoo configs (default: every entry)")
    gen.add_argument("--fast-overrides", type=_overrides, default=FAST_OVERRIDES,
                     help=f"JSON recipe overrides of fast mode (default {json.dumps(FAST_OVERRIDES)})")
    table = commands.add_parser("table", help="the parity table of two results directories")
    table.add_argument("exact", type=_results_dir)
    table.add_argument("fast", type=_results_dir)
    args = parser.parse_args(argv)
    if args.command == "suites":
        try:
            written = write_suites(args.source, args.out, args.seeds, args.models, args.fast_overrides)
        except ConfigError as err:
            print(f"error: parity.py: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        print("\n".join(str(p) for p in written))
        return
    sizes = {**eval_images(args.exact), **eval_images(args.fast)}
    rows = parity_rows(finished_runs(args.exact), finished_runs(args.fast), sizes)
    print("\n".join(fast_lines(args.fast) + [""] + rows))


if __name__ == "__main__":
    main()
