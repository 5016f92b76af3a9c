"""The code fingerprint of a run: it changes with the code that computes that run, and only with that code
(never with comments, docstrings, layout, untracked files, another family's model or code that moves numbers)."""

import ast
import re
import shutil
import subprocess

import pytest

import zoo
from harness.engine.provenance import REPO, changed_modules, code_fingerprint, code_modules, git_state, run_code

# the zoo's own models (not those other test modules register, which live outside the repository's packages)
ZOO_MODELS = [name for name in zoo.list_models() if zoo.registry.model_module(name).startswith("zoo.")]
FAMILIES = sorted({zoo.model_card(name).family for name in ZOO_MODELS})
# one configuration of each family, run with its own recipe
RUNS = {family: next(n for n in ZOO_MODELS if zoo.model_card(n).family == family) for family in FAMILIES}


def _git(root, *args):
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A git repository holding a committed copy of the zoo and harness packages."""
    root = tmp_path / "repo"
    for package in ("zoo", "harness"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _git(root, "init", "-q")
    _git(root, "add", "zoo", "harness")
    _git(root, "commit", "-qm", "copy")
    return root


def fingerprints(root):
    """Each family's run -> its code fingerprint under ``root``."""
    return {family: code_fingerprint(name, zoo.model_card(name).recipe, root=root) for family, name in RUNS.items()}


def _model_file(root, family):
    return root / (zoo.registry.model_module(RUNS[family]).replace(".", "/") + ".py")


def _append(path, text):
    path.write_text(path.read_text() + text)


def _change_first_float(path):
    """Change the first float literal of the code (not of a comment or docstring): a numerics change."""
    lines = path.read_text().splitlines(keepends=True)
    number = next(node for node in ast.walk(ast.parse("".join(lines))) if isinstance(node, ast.Constant)
                  and isinstance(node.value, float) and node.lineno == node.end_lineno)
    line = lines[number.lineno - 1]
    lines[number.lineno - 1] = line[:number.col_offset] + repr(number.value * 2 + 1) + line[number.end_col_offset:]
    path.write_text("".join(lines))


def _families_importing(root, family):
    """The families whose model file imports ``family``'s, directly or through another family (read from the
    import lines' text), and ``family`` itself."""
    module = zoo.registry.model_module(RUNS[family])
    parent, leaf = module.rsplit(".", 1)
    found = {family}
    while True:
        pattern = "|".join(rf"from {re.escape(zoo.registry.model_module(RUNS[f]))} import|"
                           rf"from {re.escape(parent)} import .*\b{f}\b" for f in found)
        more = {f for f in FAMILIES if re.search(pattern, _model_file(root, f).read_text())} - found
        if not more:
            return found
        found |= more


def test_comments_docstrings_and_layout_change_no_fingerprint(repo):
    before = fingerprints(repo)
    for family in FAMILIES:
        path = _model_file(repo, family)
        text = path.read_text()
        docstring = re.search(r'"""(.+?)"""', text, re.S)
        text = text.replace(docstring[0], '"""Reworded."""', 1) + "\n\n# a comment at the end\n"
        path.write_text(re.sub(r"^(import .*)$", r"\1  # why", text, count=1, flags=re.M))
    core = repo / "zoo" / "core" / "lif.py"
    core.write_text("# a header comment\n\n\n" + core.read_text().replace(",\n", ",  # note\n", 3))
    _append(repo / "harness" / "engine" / "trainer.py", "\n\n\n# trailing comment\n")
    recipe = repo / "harness" / "recipes" / f"{zoo.model_card(RUNS[FAMILIES[0]]).recipe}.yaml"
    lines = recipe.read_text().splitlines()
    moved = next(i for i, line in enumerate(lines)  # a one-line top-level key, moved to the end
                 if re.match(r"\w+: \S", line) and (i + 1 == len(lines) or not lines[i + 1].startswith(" ")))
    recipe.write_text("\n".join(["# a comment", *lines[:moved], *lines[moved + 1:], lines[moved], "# the end"]))
    assert fingerprints(repo) == before


@pytest.mark.parametrize("family", ["swformer", "spikformer"])
def test_a_numerics_change_in_one_family_stales_exactly_the_runs_that_use_it(repo, family):
    before = fingerprints(repo)
    path = _model_file(repo, family)
    _change_first_float(path)
    after = fingerprints(repo)
    assert {f for f in FAMILIES if after[f] != before[f]} == _families_importing(repo, family)


def test_a_change_in_the_shared_core_stales_every_run(repo):
    before = fingerprints(repo)
    _append(repo / "zoo" / "core" / "surrogate.py", "\nSCALE = 2.0\n")
    after = fingerprints(repo)
    assert all(after[f] != before[f] for f in FAMILIES)


def test_untracked_and_non_python_files_change_nothing(repo):
    before = fingerprints(repo)
    (repo / "zoo" / "notes.py").write_text("x = 1\n")
    (repo / "zoo" / "core" / "scratch.py").write_text("import torch\n")
    (repo / "zoo" / "models" / ".swformer.py.swp").write_bytes(b"\x00swap")
    (repo / "zoo" / "models" / "README.md").write_text("notes\n")
    assert fingerprints(repo) == before
    _append(repo / "zoo" / "core" / "__init__.py", "\nfrom zoo.core import scratch\n")
    importing = fingerprints(repo)
    assert importing != before  # the import statement is code; the untracked module it names is not counted
    _git(repo, "add", "zoo/core/scratch.py", "zoo/models/README.md")
    tracked = fingerprints(repo)
    assert tracked != importing  # once tracked, the module counts; a README never does
    (repo / "zoo" / "models" / "README.md").write_text("other notes\n")
    assert fingerprints(repo) == tracked


@pytest.mark.parametrize("part", ["harness/report/tables.py", "harness/launch/local.py", "harness/tracking.py",
                                  "harness/cli.py"])
def test_code_that_only_moves_numbers_changes_nothing(repo, part):
    before = fingerprints(repo)
    _append(repo / part, "\nMOVED = 1\n")
    assert fingerprints(repo) == before


def test_registering_families_changes_no_other_familys_run(repo):
    """``zoo.models`` imports every family to register it: (un)registering one is no change to the others."""
    before = fingerprints(repo)
    registry = repo / "zoo" / "models" / "__init__.py"
    registry.write_text("".join(line for line in registry.read_text().splitlines(keepends=True)
                                if not line.startswith("from zoo.models import swformer")))
    after = fingerprints(repo)
    assert {f for f in FAMILIES if after[f] != before[f]} == set()
    _append(registry, "WIDTH = 3\n")  # anything else in it is code
    assert all(fingerprints(repo)[f] != before[f] for f in FAMILIES)


def test_a_recipe_value_stales_the_runs_of_that_recipe_only(repo):
    before = fingerprints(repo)
    family = FAMILIES[0]
    recipe = repo / "harness" / "recipes" / f"{zoo.model_card(RUNS[family]).recipe}.yaml"
    recipe.write_text(re.sub(r"(lr: )([0-9.e-]+)", r"\g<1>0.123", recipe.read_text(), count=1))
    after = fingerprints(repo)
    recipes = {f: zoo.model_card(RUNS[f]).recipe for f in FAMILIES}
    assert {f for f in FAMILIES if after[f] != before[f]} == {f for f in FAMILIES if recipes[f] == recipes[family]}


def test_a_zoo_distillation_teacher_counts(repo):
    student, teacher = RUNS["sdt_v3"], RUNS["swformer"]
    plain = code_fingerprint(student, None, root=repo)
    distilled = code_fingerprint(*run_code(student, None, {"distill": {"teacher": f"zoo:{teacher}"}}), root=repo)
    _append(_model_file(repo, "swformer"), "\nSCALE = 2.0\n")
    assert code_fingerprint(student, None, root=repo) == plain
    assert code_fingerprint(*run_code(student, None, {"distill": {"teacher": f"zoo:{teacher}"}}), root=repo) != distilled


def test_stale_runs_name_the_modules_that_changed(repo):
    name = RUNS["swformer"]
    recipe = zoo.model_card(name).recipe
    config = {"provenance": {"code_modules": code_modules(name, recipe, root=repo)}, "recipe": {}}
    assert changed_modules(config, name, recipe, root=repo) == []
    _append(_model_file(repo, "swformer"), "\nSCALE = 2.0\n")
    _append(repo / "zoo" / "core" / "lif.py", "\nSCALE = 2.0\n")
    assert changed_modules(config, name, recipe, root=repo) == ["zoo/core/lif.py", "zoo/models/swformer.py"]
    assert changed_modules({"provenance": {}}, name, recipe, root=repo) is None


def test_a_slurm_code_snapshot_has_the_fingerprints_of_its_checkout(tmp_path):
    """The snapshot is no git checkout, though it may lie inside one (a results directory in the repository): it
    counts the files its checkout tracked and reports its checkout's git state."""
    from harness.launch.slurm import snapshot_code

    _git(tmp_path, "init", "-q")
    _git(tmp_path, "commit", "--allow-empty", "-qm", "a repository around the results")
    code = snapshot_code(tmp_path / "results" / "slurm" / "sub")
    (code / "zoo" / "core" / "untracked_probe.py").write_text("x = 1\n")
    name = RUNS["qkformer"]
    recipe = zoo.model_card(name).recipe
    assert code_fingerprint(name, recipe, root=code) == code_fingerprint(name, recipe)
    assert git_state(code) == {**git_state(), "snapshot": str(code)}


def test_outside_git_every_python_file_counts(tmp_path):
    """An installed copy (no git, no snapshot) cannot tell tracked files: each of its modules counts."""
    root = tmp_path / "installed"
    for package in ("zoo", "harness"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    name = RUNS["qkformer"]
    before = code_fingerprint(name, None, root=root)
    (root / "zoo" / "core" / "extra.py").write_text("x = 1\n")
    assert code_fingerprint(name, None, root=root) != before


def test_the_gpu_driver_is_recorded_from_nvidia_smi(tmp_path, monkeypatch):
    """The driver comes from ``nvidia-smi`` where a CUDA device is seen (a stand-in script here: this machine has
    neither), and is None without a device or the tool."""
    import torch

    from harness.engine.provenance import gpu_driver, provenance

    assert "driver" in provenance(RUNS[FAMILIES[0]], zoo.model_card(RUNS[FAMILIES[0]]).recipe)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_driver() is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_driver() is None  # no nvidia-smi on the PATH
    tool = tmp_path / "nvidia-smi"
    tool.write_text("#!/bin/sh\necho 550.54.15\necho 550.54.15\n")
    tool.chmod(0o755)
    assert gpu_driver() == "550.54.15"
