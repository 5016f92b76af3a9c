"""Run directories: a status.json that is not a status reads as 'corrupt' with why, and is kept (moved aside) when
the status is next written; filesystem errors read as one line naming the path and errno."""

import errno
import json

import pytest

from harness.runs import CORRUPT, RunRecord, describe_os_error, write_status

CORRUPT_STATUSES = {
    "truncated": ('{"state": "runn', "is not valid JSON"),
    "not an object": ("[1, 2]", "expected a JSON object, found list"),
    "unknown state": ('{"state": "done"}', "state 'done' is not one of"),
    "state of the wrong type": ('{"state": 3}', "state 3 is not one of"),
    "reason of the wrong type": ('{"state": "failed", "reason": ["x"]}', "reason is list, expected str"),
    "pid of the wrong type": ('{"state": "running", "pid": "12"}', "pid is str, expected int"),
    "binary": ("\udcff".encode("utf-8", "surrogateescape"), "is not valid JSON"),
}


@pytest.mark.parametrize("content, why", CORRUPT_STATUSES.values(), ids=CORRUPT_STATUSES.keys())
def test_a_status_that_is_not_a_status_reads_corrupt_and_is_set_aside_when_rewritten(tmp_path, content, why):
    original = content if isinstance(content, bytes) else content.encode()
    (tmp_path / "status.json").write_bytes(original)
    record = RunRecord(tmp_path)
    assert record.state == CORRUPT and why in record.status["reason"], record.status
    write_status(tmp_path, "running")
    assert record.status["state"] == "running" and "reason" in record.status
    kept = list(tmp_path.glob("status.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == original, "the corrupt file is kept, never deleted"


def test_a_valid_status_is_read_as_written(tmp_path):
    write_status(tmp_path, "failed", reason="because", error="ValueError: x")
    status = RunRecord(tmp_path).status
    assert (status["state"], status["reason"], status["error"]) == ("failed", "because", "ValueError: x")
    assert json.loads((tmp_path / "status.json").read_text())["pid"] == status["pid"]
    assert not list(tmp_path.glob("status.json.corrupt-*"))


def test_os_errors_read_as_one_line_with_the_path_and_errno(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inside = tmp_path / "results" / "runs" / "x" / "ckpt.pt"
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device", str(inside))) == (
        "no space left on device writing results/runs/x/ckpt.pt (ENOSPC)")
    assert describe_os_error(OSError(errno.EROFS, "Read-only file system", "/elsewhere/status.json")) == (
        "read-only file system writing /elsewhere/status.json (EROFS)")
    assert describe_os_error(OSError(errno.EACCES, "Permission denied", "/etc/shadow")) == (
        "permission denied at /etc/shadow (EACCES)")
