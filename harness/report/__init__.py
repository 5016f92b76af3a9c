"""Reports from MLflow runs: the papers' tables with claims beside measurements (Markdown, LaTeX, CSV), and
the static leaderboard page. Every number comes from ``harness.tracking.runs_frame`` or
``results/paper_claims.yaml``."""

from harness.report.aggregate import verdict
from harness.report.leaderboard import render_leaderboard
from harness.report.summary import run_summary
from harness.report.tables import render_tables

__all__ = ["render_leaderboard", "render_tables", "run_summary", "verdict"]
