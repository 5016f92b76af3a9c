"""The spikebench command line. Heavy libraries (torch, mlflow) are imported only inside commands,
so ``--help`` answers at once. User mistakes exit with code 2 and one line, never a traceback."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parent.parent


class UserError(Exception):
    """A mistake in the user's input: reported as one line, exit code 2, no traceback."""


def _load_specs(args: argparse.Namespace):
    """The suite's run specs with the command line's budget knobs (and ``--only`` filter) applied."""
    from harness.suite import Budget, SuiteError, expand, load_suite

    try:
        suite = load_suite(args.suite)
        budget = Budget(epochs=getattr(args, "epochs", None), limit_batches=getattr(args, "limit_batches", None),
                        subset=getattr(args, "subset", None))
        specs = expand(suite, budget)
    except SuiteError as err:
        raise UserError(str(err)) from None
    only = set(getattr(args, "only", None) or [])
    if only:
        unknown = only - {s.run_id for s in specs}
        if unknown:
            raise UserError(f"--only: run ids not in {args.suite}: {', '.join(sorted(unknown))}")
        specs = [s for s in specs if s.run_id in only]
    return suite, specs


def _roots(args: argparse.Namespace) -> tuple[Path, str]:
    from harness.runs import results_root
    from harness.tracking import default_uri

    root = results_root(args.results_dir)
    return root, args.tracking_uri or default_uri(root)


def _cmd_ls(args: argparse.Namespace) -> int:
    if args.what in ("models", "all"):
        import zoo

        print("# models")
        for name in zoo.list_models(args.pattern):
            card = zoo.model_card(name)
            params = f"{card.code_params:,}" if card.code_params else "?"
            print(f"{name:32s} {card.family:11s} T={card.T:<3d} classes={card.num_classes:<5d} params={params}")
    if args.what in ("datasets", "all"):
        from harness.data import dataset_info, list_datasets

        print("# datasets")
        for name in list_datasets():
            info = dataset_info(name)
            print(f"{name:12s} {info['kind']:7s} classes={info['num_classes']:<5d} shape={tuple(info['input_shape'])}")
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


def _cmd_validate(args: argparse.Namespace) -> int:
    suite, specs = _load_specs(args)
    print(f"{suite.path}: valid, {len(specs)} runs")
    for spec in specs:
        variant = f" [{spec.variant}]" if spec.variant else ""
        print(f"  {spec.run_id} {spec.model} {spec.dataset} T={spec.T} seed={spec.seed} recipe={spec.recipe}{variant}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.launch.local import run_suite

    suite, specs = _load_specs(args)
    root, uri = _roots(args)
    outcome = run_suite(specs, root, jobs=args.jobs, tracking_uri=uri, data_root=args.data_root,
                        suite_path=args.suite)
    print(f"{suite.name}: {len(outcome.skipped)} already finished, "
          + ", ".join(f"{n} {s}" for s, n in Counter(outcome.states.values()).items()))
    for message in outcome.tracking_errors:
        print(f"warning: {message}", file=sys.stderr)
    if not args.no_report:
        _report(suite.name, uri, root)
    return 0 if all(s in ("finished", "diverged") for s in outcome.states.values()) else 1


def _report(suite_name: str, uri: str, root: Path) -> None:
    from harness.report import render_leaderboard, render_tables

    paths = render_tables(uri, suite_name, root / "tables")
    page = render_leaderboard(uri, root / "leaderboard" / "index.html")
    print(Path(paths["report.md"]).read_text())
    print("tables: " + ", ".join(str(p) for p in paths.values()))
    print(f"leaderboard: {page}")


def _cmd_status(args: argparse.Namespace) -> int:
    from harness.runs import RunRecord, run_dir
    from harness.tracking import final_metrics

    suite, specs = _load_specs(args)
    root, _ = _roots(args)
    on_slurm = {}
    submitted = any(RunRecord(run_dir(root, spec)).status.get("slurm_job_id") for spec in specs)
    if args.slurm or (submitted and shutil.which("squeue")):
        from harness.launch.slurm import slurm_states

        on_slurm = _slurm_call(slurm_states, root, specs)
    states = {}
    for spec in specs:
        record = RunRecord(run_dir(root, spec))
        slurm = on_slurm.get(spec.run_id)
        state = slurm.state if slurm else (record.state if (record.dir / "spec.json").exists() else "pending")
        final = final_metrics(record.final or {})
        top1 = f"{final['top1']:.2f}" if "top1" in final else "-"
        job = f" job={slurm.job_id}" if slurm and slurm.job_id else ""
        print(f"{state:11s} {spec.run_id} {spec.model:28s} {spec.dataset:11s} T={spec.T:<3d} seed={spec.seed} "
              f"top1={top1}{job}")
        if slurm and slurm.reason and state == "failed":
            print("            " + slurm.reason.strip().splitlines()[-1][:200])
        states[spec.run_id] = state
    print(f"{suite.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(Counter(states.values()).items())))
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    from harness.tracking import collect

    root, uri = _roots(args)
    counts = collect(root, uri)
    print(f"collected into {uri}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.suite import SuiteError, load_suite

    root, uri = _roots(args)
    try:
        name = load_suite(args.suite).name
    except SuiteError as err:
        raise UserError(str(err)) from None
    _report(name, uri, root)
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from harness.report import render_leaderboard

    root, uri = _roots(args)
    print(f"leaderboard: {render_leaderboard(uri, Path(args.out) if args.out else root / 'leaderboard' / 'index.html')}")
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

    _, specs = _load_specs(args)
    root, uri = _roots(args)
    jobs = _slurm_call(submit_suite, specs, args.cluster, root, failed_only=args.failed, tracking_uri=uri,
                       data_root=args.data_root)
    print(f"submitted {len(jobs)} job(s): {' '.join(jobs)}" if jobs else "nothing to submit: every run is "
          "finished, queued or running")
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    from harness.launch.slurm import cancel_suite

    _, specs = _load_specs(args)
    root, _ = _roots(args)
    print(f"cancelled {_slurm_call(cancel_suite, root, specs)} job(s)")
    return 0


def _cmd_energy(args: argparse.Namespace) -> int:
    from harness.metrics.energy import main as energy_main

    return energy_main(args.extra)


def _cmd_bench(args: argparse.Namespace) -> int:
    script = REPO_ROOT / "benchmarks" / f"{args.name}.py"
    if script.is_file():
        import runpy

        sys.argv = [str(script), *args.bench_args]
        runpy.run_path(str(script), run_name="__main__")
        return 0
    import zoo

    if args.name not in zoo.list_models():
        scripts = sorted(p.stem for p in (REPO_ROOT / "benchmarks").glob("*.py"))
        raise UserError(f"unknown benchmark {args.name!r}: neither a zoo model (`python -m harness ls models`) "
                        f"nor a script benchmarks/NAME.py; scripts: {', '.join(scripts)}")
    return _bench_model(args.name, args.bench_args)


def _bench_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness bench MODEL", description=(
        "time a zoo model's train or eval step: median of device-synchronised steps, img/s, peak memory, FLOPs"))
    p.add_argument("--mode", choices=["train", "eval"], default="train")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--T", type=int, help="time steps (default: the model's)")
    p.add_argument("--size", type=int, help="input height = width (default: the model's)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--fast", action="store_true", help="fast mode: --precision bf16 --compile")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: autocast (AMP)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--against", choices=["reference"],
                   help="also time, alternating, the same model with spikingjelly's LIFNode (fp32, eager)")
    p.add_argument("--set", nargs="+", default=[], metavar="ARG=VALUE",
                   help="model constructor overrides, values in YAML (e.g. widths=[32,32,64] heads=2)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    p.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    p.add_argument("--record", action="store_true", help="append the result to benchmarks/RESULTS.md")
    return p


def _model_overrides(name: str, pairs: list[str]) -> dict[str, object]:
    """``ARG=VALUE`` pairs (values parsed as YAML) checked against the model's constructor arguments."""
    import yaml
    import zoo

    allowed = zoo.model_arguments(name)
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in allowed:
            raise UserError(f"bench: --set {pair!r}: expected ARG=VALUE with ARG one of {', '.join(allowed)}")
        overrides[key] = yaml.safe_load(value)
    return overrides


def _bench_model(name: str, argv: list[str]) -> int:
    import json

    opts = _bench_parser().parse_args(argv)
    for flag in ("batch", "T", "size", "repeats", "threads"):
        value = getattr(opts, flag)
        if value is not None and value < 1:
            raise UserError(f"bench: --{flag} must be >= 1, got {value}")
    if opts.warmup < 0:
        raise UserError(f"bench: --warmup must be >= 0, got {opts.warmup}")
    overrides = _model_overrides(name, opts.set)
    import torch

    from harness.metrics.perf import BenchConfig, bench_model, format_bench, record_bench

    if opts.device == "cuda" and not torch.cuda.is_available():
        raise UserError("bench: --device cuda, but torch sees no CUDA device")
    if opts.against == "reference":
        try:
            import spikingjelly  # noqa: F401
        except ImportError:
            raise UserError("bench: --against reference needs spikingjelly (pip install -e '.[dev]')") from None
    if opts.threads:
        torch.set_num_threads(opts.threads)
    cfg = BenchConfig(model=name, mode=opts.mode, batch=opts.batch, T=opts.T, size=opts.size, device=opts.device,
                      precision="bf16" if opts.fast else opts.precision, compile=opts.fast or opts.compile,
                      against=opts.against, warmup=opts.warmup, repeats=opts.repeats,
                      overrides=tuple(overrides.items()))
    result = bench_model(cfg)
    print(format_bench(result))
    if opts.record:
        command = "python -m harness bench " + " ".join([name, *argv])
        record_bench(result, command, REPO_ROOT / "benchmarks" / "RESULTS.md")
    if opts.json:
        print(json.dumps(result))
    return 0


def _suite_args(parser: argparse.ArgumentParser, budget: bool = False) -> None:
    parser.add_argument("suite", help="a suite file, e.g. suites/smoke.yaml")
    if budget:
        parser.add_argument("--epochs", type=int, help="train this many epochs (part of the run id)")
        parser.add_argument("--limit-batches", type=int, help="at most N batches per epoch (part of the run id)")
        parser.add_argument("--subset", type=int, help="use N samples per split (part of the run id)")
        parser.add_argument("--only", nargs="+", metavar="RUN_ID", help="only these run ids")


def _store_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-dir", help="results root (default $SPIKEBENCH_RESULTS or ./results)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///<results>/mlflow.db)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=(
        "spikebench: reproduce and compare spiking vision transformers (MSViT, QKFormer, Spikformer, SDT v1/v2)."))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = command("ls", _cmd_ls, "list models, datasets, recipes and suites")
    p.add_argument("what", nargs="?", default="all", choices=["models", "datasets", "recipes", "suites", "all"])
    p.add_argument("--pattern", default="*", help="shell-style filter for model names")

    p = command("validate", _cmd_validate, "validate a suite file and list its runs")
    _suite_args(p, budget=True)

    p = command("run", _cmd_run, "run a suite locally (unfinished runs only), then render tables and leaderboard")
    _suite_args(p, budget=True)
    _store_args(p)
    p.add_argument("--jobs", "-j", type=int, default=1, help="runs in parallel (one subprocess each)")
    p.add_argument("--data-root", help="where the real datasets live (default $SPIKEBENCH_DATA)")
    p.add_argument("--no-report", action="store_true", help="skip rendering tables and leaderboard")

    p = command("status", _cmd_status, "show each run's state (finished / running / failed / pending)")
    _suite_args(p, budget=True)
    _store_args(p)
    p.add_argument("--slurm", action="store_true",
                   help="merge the states SLURM reports (automatic once a run was submitted and squeue exists)")

    p = command("collect", _cmd_collect, "import run directories into MLflow (idempotent)")
    _store_args(p)

    p = command("report", _cmd_report, "render the paper tables for a suite (Markdown, LaTeX, CSV)")
    p.add_argument("suite", help="a suite file")
    _store_args(p)

    p = command("leaderboard", _cmd_leaderboard, "render the leaderboard page from MLflow")
    _store_args(p)
    p.add_argument("--out", help="output HTML path (default <results>/leaderboard/index.html)")

    p = command("submit", _cmd_submit, "submit a suite's unfinished runs to SLURM through submitit")
    _suite_args(p, budget=True)
    _store_args(p)
    p.add_argument("--cluster", required=True, help="a cluster profile: a name in slurm/ (e.g. local) or a path")
    p.add_argument("--failed", action="store_true", help="resubmit only the failed runs")
    p.add_argument("--data-root", help="where the real datasets live on the cluster's shared filesystem")

    p = command("cancel", _cmd_cancel, "cancel a suite's queued and running SLURM jobs")
    _suite_args(p, budget=True)
    _store_args(p)

    # every argument after `energy` goes to harness.metrics.energy (its own --help lists them)
    p = sub.add_parser("energy", add_help=False, help="print a model's per-layer energy audit and total (mJ)")
    p.set_defaults(func=_cmd_energy)

    p = command("bench", _cmd_bench, "time a zoo model's step (bench MODEL --help) or run a benchmark script "
                "from benchmarks/ (e.g. lif_speed)")
    p.add_argument("name", help="a zoo model name, or a benchmark script benchmarks/NAME.py")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "energy":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
