"""``python -m harness``: the spikebench command line."""

from harness.cli import main

raise SystemExit(main())
