"""What ``python -m harness weights ls | fetch | import | verify`` prints and returns (the parser is in
``harness.cli``). A mistake (a bad flag, file, URL, hash or catalog) raises ``WeightsError`` or ``CatalogError``
with one line; the CLI turns it into exit code 2."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from harness.audit import WeightsError
from harness.data.catalog import resolve_data_root
from harness.weights.catalog import Catalog, active_catalog, load_catalog
from harness.weights.commands import fetch, format_row, import_file, list_rows, verify
from harness.weights.download import DEFAULT_MAX_BYTES


def run_weights_command(args: argparse.Namespace) -> int:
    """Run the subcommand ``args.weights_command`` on the catalog (``--catalog``, else the active one) and the data
    root (``--data-root``, else the default data directory)."""
    catalog = load_catalog(args.catalog) if args.catalog else active_catalog()
    data_root = resolve_data_root(args.data_root)
    return _COMMANDS[args.weights_command](args, catalog, data_root)


def _ls(args: argparse.Namespace, catalog: Catalog, data_root: Path) -> int:
    rows = list_rows(catalog, data_root, args.pattern)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"# released weights under {data_root}/weights ('by hand + import': no direct link, see the source)")
    for row in rows:
        print(format_row(row))
    return 0


def _sha256_flag(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise WeightsError(f"--sha256 {value!r}: expected 64 hex digits")
    return value.lower() if value else None


def _fetch(args: argparse.Namespace, catalog: Catalog, data_root: Path) -> int:
    if args.max_bytes is not None and args.max_bytes < 1:
        raise WeightsError(f"--max-bytes must be >= 1, got {args.max_bytes}")
    path, digests = fetch(catalog, args.model, data_root, url=args.url, sha256=_sha256_flag(args.sha256),
                          max_bytes=args.max_bytes or DEFAULT_MAX_BYTES, progress=not args.quiet)
    print(f"{args.model}: already stored at {path}" if digests is None else
          f"{args.model}: stored {path} ({digests.size:,} bytes, sha256 {digests.sha256})")
    return 0


def _import(args: argparse.Namespace, catalog: Catalog, data_root: Path) -> int:
    path, digests = import_file(catalog, args.model, Path(args.file), data_root, sha256=_sha256_flag(args.sha256))
    print(f"{args.model}: stored {path} ({digests.size:,} bytes, sha256 {digests.sha256})")
    return 0


def _verify(args: argparse.Namespace, catalog: Catalog, data_root: Path) -> int:
    verdicts = verify(catalog, data_root, args.model)
    if not verdicts:
        print(f"nothing stored under {data_root}/weights")
    for verdict in verdicts:
        print(f"{verdict.status:14s} {verdict.path}  {verdict.detail}")
    failed = [v for v in verdicts if not v.ok]
    if failed:
        raise WeightsError(f"{len(failed)} of {len(verdicts)} stored weights files failed verification")
    return 0


_COMMANDS = {"ls": _ls, "fetch": _fetch, "import": _import, "verify": _verify}
