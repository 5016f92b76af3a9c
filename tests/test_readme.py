"""README's Python snippet runs as written (a newcomer pastes it first)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_python_snippet_runs():
    snippets = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert snippets, "README has no Python snippet"
    for code in snippets:
        exec(compile(code, str(README), "exec"), {})


def _released_weights_commands() -> list[list[str]]:
    """The three commands of README's "Check a paper's row from its released weights", as argument lists."""
    import shlex

    section = README.read_text().split("## Check a paper's row from its released weights", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]
    assert all(c[:3] == ["python", "-m", "harness"] for c in commands), commands
    return [c[3:] for c in commands]


def test_the_released_weights_commands_run_as_written(tmp_path, monkeypatch, capsys):
    # fixtures only: ImageNet in its real folder layout (3 classes), a catalog entry for the README's model (shrunk
    # through the catalog's model_args) whose URL is a loopback server, and a checkpoint of that model
    import hashlib
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    import torch
    import yaml

    import zoo
    from harness.cli import main
    from tests.harness.data.data_formats import write_imagenet

    commands = _released_weights_commands()
    model = commands[0][2]
    small = {"widths": [16, 32, 64], "depths": [1, 1, 1], "heads": 2}
    served, data = tmp_path / "served", tmp_path / "data"
    served.mkdir()
    torch.manual_seed(0)
    torch.save({"model": zoo.create_model(model, **small).state_dict()}, served / "checkpoint.pth")
    write_imagenet(data)  # an explicit data root holds the dataset's own folders
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(served)))
    httpd.RequestHandlerClass.log_message = lambda *args: None
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    catalog = {"entries": [{
        "model": model, "source": "https://example.org/README.md", "file": "checkpoint.pth", "format": "spikebench",
        "url": f"http://127.0.0.1:{httpd.server_address[1]}/checkpoint.pth", "model_args": small,
        "sha256": hashlib.sha256((served / "checkpoint.pth").read_bytes()).hexdigest(), "checked": "the test's"}]}
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump(catalog))
    monkeypatch.setenv("SPIKEBENCH_WEIGHTS_CATALOG", str(tmp_path / "catalog.yaml"))
    monkeypatch.setenv("SPIKEBENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.chdir(README.parent)  # the suite paths are relative to the repository
    try:
        for argv in commands:
            argv = [str(data) if a == "/data" else a for a in argv]
            assert main(argv) == 0, argv
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert (data / "weights" / model / "checkpoint.pth").is_file()
    out = capsys.readouterr().out
    assert "Released weights vs paper" in out and model in out.split("Released weights vs paper", 1)[1]
