"""The spikebench command line. Heavy libraries (torch, mlflow) are imported only inside commands,
so ``--help`` answers at once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parent.parent


class UserError(Exception):
    """A mistake in the user's input: reported as one line, exit code 2, no traceback."""


def _cmd_ls(args: argparse.Namespace) -> int:
    if args.what in ("models", "all"):
        import zoo

        for name in zoo.list_models(args.pattern):
            card = zoo.model_card(name)
            params = f"{card.code_params:,}" if card.code_params else "?"
            print(f"{name:32s} {card.family:11s} T={card.T:<3d} classes={card.num_classes:<5d} params={params}")
    if args.what in ("recipes", "all"):
        from harness.recipe import list_recipes

        print("\n".join(list_recipes()))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import runpy

    script = REPO_ROOT / "benchmarks" / f"{args.name}.py"
    if not script.is_file():
        known = sorted(p.stem for p in (REPO_ROOT / "benchmarks").glob("*.py"))
        raise UserError(f"unknown benchmark {args.name!r}; available: {', '.join(known)}")
    sys.argv = [str(script), *args.bench_args]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=(
        "spikebench: reproduce and compare spiking vision transformers (MSViT, QKFormer, Spikformer, SDT v1/v2)."))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = sub.add_parser("ls", help="list models, datasets, recipes or suites")
    ls.add_argument("what", nargs="?", default="all", choices=["models", "recipes", "all"])
    ls.add_argument("--pattern", default="*", help="shell-style filter for model names")
    ls.set_defaults(func=_cmd_ls)

    bench = sub.add_parser("bench", help="run a benchmark script from benchmarks/ (e.g. lif_speed)")
    bench.add_argument("name", help="benchmark name: a file benchmarks/NAME.py")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
