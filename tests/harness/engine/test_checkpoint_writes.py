"""Atomic writes that fail: the temporary file is removed and the OSError names the final path, also when torch
wraps the failed write in a RuntimeError. Real failures: a file size limit (RLIMIT_FSIZE) in a subprocess."""

import subprocess
import sys

PROBE = """
import errno, resource, signal, sys, torch
from pathlib import Path
from harness.atomicfile import atomic_write_text
from harness.engine.checkpoint import CheckpointStore
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
directory = Path(sys.argv[1])
for write in (lambda: CheckpointStore(directory, keep_last=2).save({"w": torch.zeros(100_000)}, 1, 0),
              lambda: atomic_write_text("x" * 200_000, directory / "final.json")):
    try:
        write()
    except OSError as err:
        print(errno.errorcode[err.errno], err.filename)
"""


def test_a_refused_write_names_the_final_path_and_leaves_no_temp_file(tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"EFBIG {tmp_path / 'ckpt-e0001-b000000.pt'}",
                                        f"EFBIG {tmp_path / 'final.json'}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a half-written or temporary file was left"
