"""Write errors cost one line: a full disk or a file size limit stops the suite with the path and errno, leaves
no temporary file, keeps finished runs as they were and resumes once writes succeed again; reading commands work
on a read-only results directory; a corrupt status.json marks its run and the suite goes on."""

import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main as cli_main
from harness.launch.local import run_suite
from harness.report.leaderboard import page_rows
from harness.runs import RunRecord, run_dir
from harness.suite import expand, load_suite
from harness.tracking import default_uri, ensure_store, runs_frame

BUDGET = "{epochs: 3, limit_batches: 2, subset: 64, energy_images: 0}"
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a filesystem needs root")


def _cli(*args: str, file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    """``python -m harness ARGS``, under a file size limit (SIGXFSZ ignored, so writes fail with EFBIG)."""
    code = "import sys; from harness.cli import main; sys.exit(main(sys.argv[1:]))"
    if file_size_limit is not None:
        code = (f"import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                f"resource.setrlimit(resource.RLIMIT_FSIZE, ({file_size_limit}, {file_size_limit})); {code}")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=540)


def _one_error_line(stderr: str, pattern: str) -> None:
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert re.fullmatch(pattern, last), stderr


def _temp_files(root: Path) -> list[Path]:
    return list(root.rglob(".*.tmp*"))


def _seeds(tiny_model_entry: str, seeds: range) -> list[str]:
    return [tiny_model_entry[:-1] + f", seed: {seed}}}" for seed in seeds]


def _snapshot(directory: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()}


@contextlib.contextmanager
def _tmpfs(path: Path, size: str):
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@ROOT_ONLY
@pytest.mark.slow  # four launches of the real suite: about two minutes
def test_a_full_disk_stops_the_suite_with_one_line_and_a_rerun_resumes(tmp_path, suite_writer, tiny_model_entry):
    suite = suite_writer(tmp_path, "full", _seeds(tiny_model_entry, range(3)), BUDGET)
    specs = expand(load_suite(suite))
    with _tmpfs(tmp_path / "results", "64m") as root:
        done = _cli("run", str(suite), "--results-dir", str(root), "--no-report", "--only", specs[0].run_id)
        assert done.returncode == 0, done.stderr
        finished = run_dir(root, specs[0])
        before = _snapshot(finished)
        checkpoint_bytes = max(p.stat().st_size for p in finished.glob("checkpoints/ckpt-*.pt"))
        ballast = root / "ballast"
        free = shutil.disk_usage(root).free
        ballast.write_bytes(b"\0" * (free - int(1.5 * checkpoint_bytes)))  # room for one more checkpoint, not two

        full = _cli("run", str(suite), "--results-dir", str(root), "--no-report", "--jobs", "2")
        assert full.returncode == 2, full.stdout + full.stderr
        _one_error_line(full.stderr, rf"error: no space left on device writing {re.escape(str(root))}/runs/\S+ "
                                     r"\(ENOSPC\)")
        assert _temp_files(root) == []
        assert _snapshot(finished) == before and RunRecord(finished).state == "finished"
        stopped = [RunRecord(run_dir(root, spec)) for spec in specs[1:]]
        for record in stopped:
            assert record.state == "interrupted" and "no space left on device" in record.status["reason"]
        resumable = [record.dir for record in stopped if list(record.dir.glob("checkpoints/ckpt-*.pt"))]

        ballast.unlink()
        again = _cli("run", str(suite), "--results-dir", str(root), "--no-report", "--jobs", "2")
        assert again.returncode == 0, again.stdout + again.stderr
        assert all(record.state == "finished" and len(record.epochs) == 3 for record in stopped)
        for directory in resumable:
            assert "resumed from ckpt-" in (directory / "train.log").read_text()


@ROOT_ONLY
def test_a_full_tracking_store_stops_the_suite_with_one_line_and_a_rerun_logs_the_run(tmp_path, suite_writer,
                                                                                     tiny_model_entry):
    suite = suite_writer(tmp_path, "store", [tiny_model_entry], "{epochs: 1, limit_batches: 1, subset: 32, "
                                                                "energy_images: 0}")
    root = tmp_path / "results"
    with _tmpfs(tmp_path / "store", "4m") as store:
        uri = f"sqlite:///{store / 'mlflow.db'}"
        ensure_store(uri)
        ballast = store / "ballast"
        with contextlib.suppress(OSError):  # fills the store's filesystem to the last byte
            with open(ballast, "wb") as fh:
                fh.write(b"\0" * shutil.disk_usage(store).free)
        full = _cli("run", str(suite), "--results-dir", str(root), "--tracking-uri", uri, "--no-report")
        assert full.returncode == 2, full.stdout + full.stderr
        assert full.stderr.strip().splitlines() == [
            f"error: database or disk is full writing {store / 'mlflow.db'} (ENOSPC)"], full.stderr
        record = RunRecord(run_dir(root, expand(load_suite(suite))[0]))
        assert record.state == "finished", "the run itself is done; only its logging waits"
        ballast.unlink()
        again = _cli("run", str(suite), "--results-dir", str(root), "--tracking-uri", uri, "--no-report")
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"{record.dir.name}" in set(runs_frame(uri)["run_id"])


def test_a_file_size_limit_stops_the_run_with_one_line_and_a_rerun_resumes(tmp_path, suite_writer,
                                                                          tiny_model_entry):
    """No root needed: RLIMIT_FSIZE makes the first checkpoint (about 1.8 MB) fail with EFBIG."""
    suite = suite_writer(tmp_path, "limited", [tiny_model_entry], BUDGET)
    spec = expand(load_suite(suite))[0]
    root = tmp_path / "results"
    ensure_store(default_uri(root))  # created unlimited: the launcher only reads it before a run finishes
    limited = _cli("run", str(suite), "--results-dir", str(root), "--no-report", file_size_limit=1_000_000)
    assert limited.returncode == 2, limited.stdout + limited.stderr
    checkpoint = run_dir(root, spec) / "checkpoints" / "ckpt-e0001-b000000.pt"
    _one_error_line(limited.stderr, rf"error: file too large writing {re.escape(str(checkpoint))} \(EFBIG\)")
    assert _temp_files(root) == [] and not checkpoint.exists()
    record = RunRecord(run_dir(root, spec))
    assert record.state == "interrupted" and "(EFBIG)" in record.status["reason"]
    again = _cli("run", str(suite), "--results-dir", str(root), "--no-report")
    assert again.returncode == 0, again.stdout + again.stderr
    assert record.state == "finished" and len(record.epochs) == 3


@contextlib.contextmanager
def _read_only(directory: Path):
    """``directory`` made read-only: a read-only bind mount as root (root writes through permissions), else
    permissions without write access."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(directory)], check=True)
            yield
        finally:
            subprocess.run(["umount", "-l", str(directory)], check=True)
        return
    modes = {p: p.stat().st_mode for p in [directory, *directory.rglob("*")] if p.is_dir()}
    for path in modes:
        path.chmod(0o555)
    try:
        yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def _page_run_ids(page: Path) -> set[str]:
    """The run ids in the provenance of a leaderboard page's rows."""
    return {run[1] for row in page_rows(page.read_text()) for run in row[5][2]}


def test_reading_commands_work_on_a_read_only_results_directory_and_run_says_why_it_cannot(tiny_results_copy,
                                                                                          tmp_path, capsys):
    root, suite = tiny_results_copy["root"], str(tiny_results_copy["suite_path"])
    good = tiny_results_copy["specs"][0]
    (root / "mlflow.db.lock").unlink(missing_ok=True)
    contents = sorted(root.rglob("*"))
    page = tmp_path / "leaderboard.html"
    with _read_only(root):
        assert cli_main(["status", suite, "--results-dir", str(root)]) == 0
        assert f"finished    {good.run_id}" in capsys.readouterr().out
        assert cli_main(["leaderboard", "--results-dir", str(root), "--out", str(page)]) == 0
        assert good.run_id in _page_run_ids(page)
        assert cli_main(["report", suite, "--results-dir", str(root)]) == 2, "report writes its tables under root"
        assert re.fullmatch(r"error: .* (writing|at) \S+/tables \((EROFS|EACCES)\)\n", capsys.readouterr().err)
        assert cli_main(["report", suite, "--results-dir", str(root), "--out", str(tmp_path / "elsewhere")]) == 0
        assert good.run_id in _page_run_ids(tmp_path / "elsewhere" / "leaderboard" / "index.html")
        assert cli_main(["collect", "--results-dir", str(root), "--dry-run"]) == 0
        assert re.search(r"^would collect into \S+: 0 logged, \d+ unchanged", capsys.readouterr().out, re.M)
        assert cli_main(["run", suite, "--results-dir", str(root), "--no-report"]) == 2, "the failed run is rerun"
        assert re.search(r"^error: .* (writing|at) \S+/runs/\S+ \((EROFS|EACCES)\)$", capsys.readouterr().err, re.M)
    assert sorted(root.rglob("*")) == contents, "a reading command created files (a lock?)"


def test_a_corrupt_status_is_shown_set_aside_and_the_run_recomputed(tiny_results_copy, capsys):
    root, suite = tiny_results_copy["root"], str(tiny_results_copy["suite_path"])
    good = tiny_results_copy["specs"][0]
    directory = run_dir(root, good)
    truncated = (directory / "status.json").read_text()[:25]
    (directory / "status.json").write_text(truncated)
    assert cli_main(["status", suite, "--results-dir", str(root)]) == 0
    shown = capsys.readouterr().out
    assert f"corrupt     {good.run_id}" in shown and "status.json is not valid JSON" in shown
    outcome = run_suite([good], root)
    moved = outcome.corrupt[good.run_id]
    assert moved.read_text() == truncated, "the corrupt file is kept for inspection"
    assert f"corrupt   {good.run_id}: status.json is not valid JSON" in capsys.readouterr().out
    assert outcome.states == {good.run_id: "finished"} and RunRecord(directory).state == "finished"
