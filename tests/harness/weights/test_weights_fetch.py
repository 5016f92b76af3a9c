"""`weights fetch` against a loopback HTTP server: full download, resume, hash and size refusals, dead URLs.
Every refusal is one line with exit code 2 and leaves nothing under the final name (nor a stray temporary)."""

from __future__ import annotations

import hashlib
import json
import socket

import pytest
from conftest import FILE, MODEL, write_catalog

from harness.cli import main


def fetch(tmp_path, *flags: str) -> int:
    return main(["weights", "fetch", MODEL, "--catalog", str(tmp_path / "catalog.yaml"),
                 "--data-root", str(tmp_path / "data"), "--quiet", *flags])


def stored_folder(tmp_path):
    return tmp_path / "data" / "weights" / MODEL


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture
def release(tmp_path, checkpoint, server):
    """The checkpoint served at ``<base>/ckpt/checkpoint-7.pth`` and a catalog entry pinning its sha256."""
    base, served = server
    data = checkpoint.read_bytes()
    served.files["/ckpt/" + FILE] = data
    sha256 = hashlib.sha256(data).hexdigest()
    write_catalog(tmp_path / "catalog.yaml", url=f"{base}/ckpt/{FILE}", sha256=sha256)
    return data, sha256, served


def test_full_download_is_verified_stored_and_recorded(tmp_path, release, capsys):
    data, sha256, served = release
    assert fetch(tmp_path) == 0
    dest = stored_folder(tmp_path) / FILE
    assert dest.read_bytes() == data and served.requests == [("/ckpt/" + FILE, None)]
    record = json.loads((dest.parent / (FILE + ".sha256")).read_text())
    assert record["sha256"] == sha256 and record["size"] == len(data)
    assert record["mtime_ns"] == dest.stat().st_mtime_ns and record["md5"] == hashlib.md5(data).hexdigest()
    assert sorted(p.name for p in dest.parent.iterdir()) == [FILE, FILE + ".sha256"]
    assert f"sha256 {sha256}" in capsys.readouterr().out
    assert fetch(tmp_path) == 0 and len(served.requests) == 1  # stored and recorded: nothing downloaded again
    assert "already stored" in capsys.readouterr().out


def test_truncated_partial_download_resumes_with_a_range_request(tmp_path, release):
    data, _, served = release
    folder = stored_folder(tmp_path)
    folder.mkdir(parents=True)
    half = len(data) // 2
    (folder / (FILE + ".part")).write_bytes(data[:half])
    assert fetch(tmp_path) == 0
    assert served.requests == [("/ckpt/" + FILE, f"bytes={half}-")]
    assert (folder / FILE).read_bytes() == data and not (folder / (FILE + ".part")).exists()


def test_connection_closed_early_keeps_the_partial_file_for_the_next_fetch(tmp_path, release, capsys):
    data, _, served = release
    served.truncate = 1000
    assert fetch(tmp_path) == 2
    assert "connection closed after 1,000 of" in one_error_line(capsys)
    part = stored_folder(tmp_path) / (FILE + ".part")
    assert part.read_bytes() == data[:1000] and not (stored_folder(tmp_path) / FILE).exists()
    served.truncate = None
    assert fetch(tmp_path) == 0 and served.requests[-1][1] == "bytes=1000-"
    assert (stored_folder(tmp_path) / FILE).read_bytes() == data


def test_wrong_sha256_deletes_the_download(tmp_path, release, capsys):
    assert fetch(tmp_path, "--sha256", "0" * 64) == 2
    line = one_error_line(capsys)
    assert "does not match the expected " + "0" * 64 in line and "the download was deleted" in line
    assert not stored_folder(tmp_path).exists()


def test_unreachable_url_is_one_line(tmp_path, release, capsys):
    with socket.socket() as probe:  # a loopback port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert fetch(tmp_path, "--url", f"http://127.0.0.1:{port}/x.pth") == 2
    assert f"http://127.0.0.1:{port}/x.pth: cannot connect" in one_error_line(capsys)
    assert not stored_folder(tmp_path).exists()


def test_missing_file_on_the_server_is_one_line(tmp_path, release, server, capsys):
    assert fetch(tmp_path, "--url", f"{server[0]}/nothing.pth") == 2
    assert "HTTP 404" in one_error_line(capsys)


@pytest.mark.parametrize("send_length", [True, False], ids=["announced", "streamed"])
def test_oversized_file_is_refused_and_removed(tmp_path, release, capsys, send_length):
    release[2].send_length = send_length
    assert fetch(tmp_path, "--max-bytes", "4096") == 2
    assert "more than the limit of 4,096" in one_error_line(capsys)
    assert not stored_folder(tmp_path).exists()


def test_served_file_that_does_not_load_is_deleted(tmp_path, release, server, capsys):
    """A download whose hash is right but which is no weights file is not stored."""
    served = release[2]
    served.files["/junk.pth"] = b"not a checkpoint" * 10
    junk_sha = hashlib.sha256(served.files["/junk.pth"]).hexdigest()
    assert fetch(tmp_path, "--url", f"{server[0]}/junk.pth", "--sha256", junk_sha) == 2
    line = one_error_line(capsys)
    assert f"error: {server[0]}/junk.pth: not a readable safetensors or weights-only torch file" in line
    assert line.endswith("the download was deleted")
    assert not stored_folder(tmp_path).exists()


def test_release_without_a_direct_link_says_where_to_download_and_how_to_import(tmp_path, capsys):
    write_catalog(tmp_path / "catalog.yaml", download_page="https://drive.example.org/file/abc")
    assert fetch(tmp_path) == 2
    line = one_error_line(capsys)
    assert "https://drive.example.org/file/abc" in line and f"python -m harness weights import {MODEL} FILE" in line
    assert not (tmp_path / "data").exists()


def test_not_an_http_url_is_refused(tmp_path, release, capsys):
    assert fetch(tmp_path, "--url", "file:///etc/passwd") == 2
    assert "expected an http:// or https:// URL" in one_error_line(capsys)


def test_unknown_model_lists_close_matches(tmp_path, capsys):
    write_catalog(tmp_path / "catalog.yaml")
    assert main(["weights", "fetch", "qkformer_2_256", "--catalog", str(tmp_path / "catalog.yaml")]) == 2
    line = one_error_line(capsys)
    assert "unknown model 'qkformer_2_256'; did you mean" in line and MODEL in line


def test_second_fetch_of_the_same_file_is_refused_while_one_runs(tmp_path, release, capsys):
    import fcntl

    folder = stored_folder(tmp_path)
    folder.mkdir(parents=True)
    part = folder / (FILE + ".part")
    with part.open("a+b") as running:  # what a fetch that just started holds: an empty, locked partial file
        fcntl.flock(running.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert fetch(tmp_path) == 2
        assert part.exists()  # the running fetch's file is left alone
    assert "another fetch of this file is running" in one_error_line(capsys)
    assert release[2].requests == []
