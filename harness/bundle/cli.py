"""What ``python -m harness export | import | verify`` print and return (the parser is in ``harness.cli``). A
mistake raises ``BundleError`` with one line; the CLI turns it into exit code 2."""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
from pathlib import Path

from harness.bundle import BundleError
from harness.bundle.importer import Limits, import_bundle, unpack
from harness.bundle.manifest import RUN_ID, RUNS_DIR
from harness.bundle.origin import VERIFIED, imported_root, imported_runs
from harness.runs import results_root


def run_export(args: argparse.Namespace) -> int:
    """A bundle of the runs ``args.targets`` names, or (``--format``) the same runs in one of the field's formats."""
    from harness.bundle.export import collect, write
    from harness.bundle.formats import export_format
    from harness.bundle.selection import select_runs

    records, skipped = select_runs(results_root(args.results_dir), args.targets)
    for line in skipped:
        print(f"note: {line}")
    if args.format:
        if args.with_weights:
            raise BundleError("--with-weights: only for bundles; drop it or --format")
        for path in export_format(args.format, records, Path(args.out) if args.out else None):
            print(f"wrote {path}")
        return 0
    path, digest = write(collect(records, args.site, args.with_weights), Path(args.out) if args.out else None)
    print(f"bundle: {path} ({len(records)} runs, site {args.site})")
    print(f"digest: {digest} (SHA-256 of its manifest.json)")
    return 0


def _limits(args: argparse.Namespace) -> Limits:
    if args.max_bytes is not None and args.max_bytes < 1:
        raise BundleError(f"--max-bytes {args.max_bytes}: expected a positive number of bytes")
    if args.max_bytes is None:
        return Limits()
    return Limits(member_bytes=args.max_bytes, total_bytes=args.max_bytes)


def run_import(args: argparse.Namespace) -> int:
    """Check the bundle and file its runs (``harness.bundle.importer``)."""
    root = results_root(args.results_dir)
    outcome = import_bundle(Path(args.bundle), root, _limits(args))
    for path in outcome.imported:
        print(f"imported {path}")
    for path in outcome.unchanged:
        print(f"unchanged {path} (already imported)")
    print(f"site {outcome.site}, bundle {outcome.digest[:16]}: {len(outcome.imported)} imported, "
          f"{len(outcome.unchanged)} already there")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """Re-evaluate a bundle's runs, an imported run or a local run; exit 1 when a run does not verify."""
    from harness.bundle.verify import verify_run

    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise BundleError(f"--device {args.device}: torch sees no CUDA device")
    options = dict(images=args.images, weights=args.weights, data_root=args.data_root, device=args.device,
                   tolerance=args.tolerance)
    root = results_root(args.results_dir)
    target = Path(args.target)
    if target.is_file():
        verdicts = _verify_bundle(target, root, options)
    else:
        verdicts = [verify_run(_run_directory(root, args.target), **options)]
    for verdict in verdicts:
        print(verdict.line())
    return 0 if all(v.verdict == VERIFIED for v in verdicts) else 1


def _run_directory(root: Path, target: str) -> Path:
    """A run directory given as a path, or a run id: imported (any site) or local."""
    path = Path(target)
    if (path / "spec.json").is_file():
        return path
    if not re.fullmatch(RUN_ID, target):
        raise BundleError(f"{target}: expected a bundle file, a run directory, or a run id (16 hex digits)")
    found = imported_runs(root, target) + [p.parent for p in root.glob(f"runs/{target}/spec.json")]
    if not found:
        raise BundleError(f"{target}: expected a bundle file, a run directory, or the id of a run under "
                          f"{root / 'runs'} or {imported_root(root)}")
    if len(found) > 1:
        raise BundleError(f"{target}: {len(found)} runs have this id ({', '.join(map(str, found))}); "
                          f"name the run directory")
    return found[0]


def _verify_bundle(bundle: Path, root: Path, options: dict) -> list:
    """Check and unpack the bundle in a temporary folder, re-evaluate each run; record each verdict with the run
    when that bundle's run is imported under ``root``."""
    from harness.bundle.importer import write_origin
    from harness.bundle.origin import ORIGIN_NAME
    from harness.bundle.verify import verify_run, write_verdict
    from harness.runs import read_json

    scratch = Path(tempfile.mkdtemp(prefix="spikebench-verify-"))
    try:
        manifest, digest = unpack(bundle, scratch)
        verdicts = []
        for run in manifest.runs:
            directory = scratch / RUNS_DIR / run.run_id
            write_origin(directory, manifest, run.run_id, digest)
            verdict = verify_run(directory, record=False, **options)
            imported = imported_root(root) / manifest.site / run.run_id
            if (read_json(imported / ORIGIN_NAME) or {}).get("bundle_sha256") == digest:
                write_verdict(imported, verdict)
            verdicts.append(verdict)
        return verdicts
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


COMMANDS = {"export": run_export, "import": run_import, "verify": run_verify}


def run_bundle_command(args: argparse.Namespace) -> int:
    """Run ``args.command`` (export, import or verify)."""
    return COMMANDS[args.command](args)
