"""Fixtures of the weights tests: checkpoints in an official key layout, a catalog naming them, and a loopback HTTP
server (Range requests, optional early close) that serves them. Nothing reaches the internet."""

from __future__ import annotations

import argparse
import json
import re
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import yaml

ZOO_DATA = Path(__file__).resolve().parents[2] / "zoo" / "data"
MODEL = "qkformer_2_256.cifar10dvs"  # the smallest configuration with a recorded official layout (1.5M values)
OTHER_MODEL = "qkformer_2_256.dvs128"  # same family, another configuration (MLP ratio 4, 11 classes)
FILE = "checkpoint-7.pth"


def official_layout(zoo_name: str) -> dict[str, list[int]]:
    """The official code's state_dict layout (key -> shape) recorded for a zoo configuration."""
    for path in sorted(ZOO_DATA.glob("official_keys_*.json")):
        for name, spec in json.loads(path.read_text()).items():
            if not name.startswith("_") and spec["zoo"] == zoo_name:
                return spec["keys"]
    raise LookupError(zoo_name)


def official_checkpoint(path: Path, zoo_name: str = MODEL) -> Path:
    """Write a checkpoint as the official MAE-style scripts save one: seeded tensors in the official layout under
    'model', with the epoch and the training script's argparse.Namespace beside them."""
    state = {}
    for key, shape in official_layout(zoo_name).items():
        gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        state[key] = torch.tensor(0) if key.endswith("num_batches_tracked") else torch.randn(shape, generator=gen)
    torch.save({"model": state, "epoch": 199, "args": argparse.Namespace(model="QKFormer", lr=6e-4)}, path)
    return path


def write_catalog(path: Path, **fields) -> Path:
    """A one-entry catalog for ``MODEL`` (fields override the defaults)."""
    entry = {"model": MODEL, "source": "https://example.org/README.md", "url": None, "file": FILE,
             "format": "official", "checked": "written by the test", **fields}
    path.write_text(yaml.safe_dump({"entries": [entry]}, sort_keys=False))
    return path


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A released-looking checkpoint of ``MODEL`` in a download folder outside the data root."""
    folder = tmp_path / "downloaded"
    folder.mkdir()
    return official_checkpoint(folder / FILE)


class Served:
    """What the loopback server serves and what it saw: ``files`` by path, ``requests`` as (path, Range header);
    ``truncate`` sends only that many body bytes (after announcing the full length); ``send_length`` False omits
    Content-Length."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.truncate: int | None = None
        self.send_length = True


def _handler(served: Served):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            served.requests.append((self.path, self.headers.get("Range")))
            data = served.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if match:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            if served.send_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:served.truncate] if served.truncate is not None else body)
            self.close_connection = True

    return Handler


class QuietServer(ThreadingHTTPServer):
    """A client that hangs up early (a refused oversized file) is expected: no traceback on stderr for it."""

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def server():
    """``(base_url, served)``: a threaded HTTP server on 127.0.0.1, shut down after the test."""
    served = Served()
    httpd = QuietServer(("127.0.0.1", 0), _handler(served))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()
