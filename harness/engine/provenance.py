"""Where a run's numbers come from: library versions, git commit, host, threads and a fingerprint of its code.

The run id (``harness.suite.RunSpec.run_id``) names WHAT is computed (model, data, recipe, budget, threads) and
holds no code version; ``code_fingerprint(model, recipe)`` names the code that computes it. A run records the
fingerprint it was computed with; a run whose fingerprint differs from the checkout's is stale (``harness status``
says so, naming the modules that changed) and a rerun recomputes it, keeping the old directory under
``<results>/stale/``. So an edit that changes results never silently reuses old ones, an edit that cannot change
them (a comment, a docstring, formatting, another family's model, an untracked file) never discards them, and the
same experiment keeps its id across code versions to compare them.

The fingerprint covers what a run imports: every tracked module of the shared code (``SHARED_CODE``), the run's
family model file (and a zoo distillation teacher's), and their imports inside ``RESULT_CODE``, each as its syntax
tree without docstrings (``ast.dump``: comments and layout never count), plus its recipe's parsed YAML. Family
model files enter only through a family file's own imports: ``zoo.models`` imports every family to register it,
which computes nothing. Tracked means listed by ``git ls-files``; a SLURM code snapshot (not a checkout) lists
its files in ``snapshot.json``; code outside both (an installed package) counts every ``.py`` file.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import platform
import socket
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("spikebench", "torch", "torchvision", "timm", "numpy", "spikingjelly", "scikit-learn")
REPO = Path(__file__).resolve().parents[2]
# the code that can compute a run's numbers (relative to the repository root): models, engine, data, metrics and
# recipes; imports are followed inside it only (the launchers, tracking and reports just move the numbers around)
RESULT_CODE = ("zoo", "harness/engine", "harness/data", "harness/metrics", "harness/recipe.py")
# the part of it every run executes, whatever its model
SHARED_CODE = ("zoo/core", "harness/engine", "harness/data", "harness/metrics", "harness/recipe.py")
RECIPES = "harness/recipes"
FACTS_CACHE = "code-facts"  # harness.usercache entry of each counted file's parsed facts (``CodeFacts``)
FACTS_KEPT = 2048  # facts the entry keeps: several checkouts' modules, a few versions each
SNAPSHOT = "snapshot.json"  # written by a SLURM code snapshot beside its packages: git state and tracked files
ZOO_TEACHER = "zoo:"  # a distillation teacher built from the zoo (``distill.teacher: zoo:<name>``)


def code_fingerprint(model: str, recipe: str | None, teacher: str | None = None, root: Path = REPO) -> str:
    """A hash of the code that computes a run of ``model`` with ``recipe`` (and distillation ``teacher``, a
    ``zoo:<name>`` or ``timm:<name>``): ``code_modules``. Equal fingerprints mean the same code computed the runs."""
    return _digest(code_modules(model, recipe, teacher, root))


def _digest(modules: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(modules, sort_keys=True).encode()).hexdigest()[:16]


def code_modules(model: str, recipe: str | None, teacher: str | None = None, root: Path = REPO) -> dict[str, str]:
    """Each source a run's numbers come from (path relative to ``root``) with a hash of its meaning: the tracked
    Python modules it imports (syntax without docstrings) and its named recipe (parsed YAML; a recipe given
    inline is part of the run id instead)."""
    import zoo

    root = Path(root).resolve()
    counted = _counted_modules(root, tracked_files(root))
    registered = set(zoo.list_models())
    families = frozenset(zoo.registry.model_module(name) for name in registered)
    models = [model] + ([teacher.removeprefix(ZOO_TEACHER)] if teacher and teacher.startswith(ZOO_TEACHER) else [])
    entries = [name for name, path in counted.items()
               if any(path == part or path.startswith(part.removesuffix(".py") + "/") for part in SHARED_CODE)]
    # a model no longer registered has no code here: its runs are stale
    entries += [zoo.registry.model_module(name) for name in models if name in registered]
    facts = CodeFacts.load()
    modules = {}
    for name, stamp in _import_closure(root, entries, counted, families, facts).items():
        registrations = frozenset() if name in families else families
        modules[counted[name]] = facts.semantic_hash(root, counted[name], stamp, registrations)
    facts.save()
    if recipe is not None:
        recipe_file = root / RECIPES / f"{Path(recipe).name}.yaml"
        modules[recipe_file.relative_to(root).as_posix()] = (_recipe_hash(recipe_file, _stamp(recipe_file))
                                                              if recipe_file.is_file() else "missing")
    return dict(sorted(modules.items()))


def changed_modules(config: dict[str, Any], model: str, recipe: str | None, root: Path = REPO) -> list[str] | None:
    """The sources (``code_modules``) whose hash differs between what a run recorded in its ``config.json`` and
    this checkout, added and removed ones included; None when the run recorded no module hashes."""
    recorded = config.get("provenance", {}).get("code_modules") if isinstance(config, dict) else None
    if not isinstance(recorded, dict):
        return None
    current = code_modules(*run_code(model, recipe, config.get("recipe")), root=root)
    return sorted(name for name in {*recorded, *current} if recorded.get(name) != current.get(name))


def run_code(model: str, recipe: Any, resolved_recipe: Any) -> tuple[str, str | None, str | None]:
    """The arguments of ``code_fingerprint`` for a run: its model, its recipe's name (None for a recipe given
    inline) and the distillation teacher its resolved recipe (``config.json["recipe"]``) names, if any."""
    distill = resolved_recipe.get("distill") if isinstance(resolved_recipe, dict) else None
    teacher = distill.get("teacher") if isinstance(distill, dict) else None
    return model, recipe if isinstance(recipe, str) else None, teacher if isinstance(teacher, str) else None


def tracked_files(root: Path) -> frozenset[str] | None:
    """The files of ``root`` under version control (relative POSIX paths): a code snapshot's recorded list, else
    ``git ls-files``; None when neither knows (outside git, or a copy inside a repository that tracks none of
    it, such as an installed package): then every file counts."""
    snapshot = root / SNAPSHOT
    if snapshot.is_file():
        files = json.loads(snapshot.read_text()).get("tracked")
        return frozenset(files) if isinstance(files, list) else None
    index = _git_index(root)
    if index is None or not index.is_file():
        return None
    stat = index.stat()  # git rewrites the index (a new inode) whenever what is tracked changes
    return _listed_files(root, (stat.st_ino, stat.st_size, stat.st_mtime_ns))


@functools.cache
def _git_index(root: Path) -> Path | None:
    """The index file of the git repository ``root`` lies in, or None outside git."""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--git-path", "index"], capture_output=True,
                             text=True, check=True, timeout=30).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired):
        return None
    return (root / out).resolve()


@functools.lru_cache(maxsize=64)
def _listed_files(root: Path, index_stamp: tuple[int, int, int]) -> frozenset[str] | None:
    """``git ls-files`` of the code and recipes under ``root`` (None when it tracks none of them)."""
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--", *RESULT_CODE, RECIPES],
                                capture_output=True, check=True, timeout=30).stdout
    except (subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired):
        return None
    return frozenset(name for name in listed.decode().split("\0") if name) or None


def _counted_modules(root: Path, tracked: frozenset[str] | None) -> dict[str, str]:
    """Every module that can count (dotted name -> path relative to ``root``): the tracked ``.py`` files inside
    ``RESULT_CODE``."""
    modules = {}
    for part in RESULT_CODE:
        base = root / part
        for path in [base] if base.is_file() else sorted(base.rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if path.is_file() and "__pycache__" not in path.parts and (tracked is None or relative in tracked):
                modules[_module_name(relative)] = relative
    return modules


def _module_name(relative: str) -> str:
    parts = relative.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(relative: str) -> str:
    """The package relative imports in the file ``relative`` start from."""
    name = _module_name(relative)
    return name if relative.endswith("/__init__.py") else name.rpartition(".")[0]


def _import_closure(root: Path, entries: Iterable[str], counted: dict[str, str], families: frozenset[str],
                    facts: CodeFacts) -> dict[str, tuple[str, str]]:
    """The modules ``entries`` import, directly or not, among ``counted`` (each with its ``_stamp``); a family
    model module is entered only as an entry or from another family module."""
    seen: dict[str, tuple[str, str]] = {}
    todo = [name for name in entries if name in counted]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = _stamp(root / counted[name])
        for imported in facts.imports(root, counted[name], seen[name]):
            if imported in counted and imported not in seen and (imported not in families or name in families):
                todo.append(imported)
    return seen


def _stamp(path: Path) -> tuple[str, str]:
    """What identifies a file's version for the caches: its path and content (times miss quick edits)."""
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


class CodeFacts:
    """What parsing each counted file gives (its imports, its semantic hash), shared by the processes of this user
    through ``harness.usercache`` (entry ``FACTS_CACHE``): each file is parsed once per content, not once per run
    (parsing every module cost a worker about a second of CPU). Facts are keyed by the file's path relative to its
    checkout and the SHA-256 of its content (times miss quick edits); the entry's key is the Python version
    (``ast.dump``'s format is the interpreter's) and this module's own source (the hashing rules). A damaged
    entry is ignored; a damaged fact is recomputed. The same facts come out with or without the cache."""

    def __init__(self, facts: dict[str, dict[str, Any]]) -> None:
        self.facts, self.changed = facts, False
        self.used: dict[str, None] = {}  # the facts this process used, in order

    @classmethod
    def load(cls) -> CodeFacts:
        """The facts stored by earlier processes (none when the entry is missing, foreign or damaged)."""
        from harness import usercache

        stored = usercache.lookup(FACTS_CACHE, _facts_key(), lambda value: isinstance(value, dict))
        return cls(stored or {})

    def save(self) -> None:
        """Store the facts when this process learnt new ones: those it used first, then the others it read, at
        most ``FACTS_KEPT`` in all (the oldest, usually of files since edited, are dropped)."""
        if not self.changed:
            return
        from harness import usercache

        order = [*self.used, *(name for name in self.facts if name not in self.used)]
        usercache.store(FACTS_CACHE, _facts_key(), {name: self.facts[name] for name in order[:FACTS_KEPT]})
        self.changed = False

    def imports(self, root: Path, relative: str, stamp: tuple[str, str]) -> tuple[str, ...]:
        """``_imports`` of the file ``relative`` under ``root``, from the cache when it holds them."""
        fact = self._fact(relative, stamp)
        listed = fact.get("imports")
        if not (isinstance(listed, list) and all(isinstance(name, str) for name in listed)):
            listed = fact["imports"] = list(_imports(root / relative, stamp, _package_of(relative)))
            self.changed = True
        return tuple(listed)

    def semantic_hash(self, root: Path, relative: str, stamp: tuple[str, str],
                      registrations: frozenset[str]) -> str:
        """``_semantic_hash`` of the file ``relative`` under ``root``, from the cache when it holds it."""
        fact = self._fact(relative, stamp)
        if not isinstance(fact.get("hashes"), dict):
            fact["hashes"] = {}
        hashes = fact["hashes"]
        which = hashlib.sha256(" ".join(sorted(registrations)).encode()).hexdigest()[:16]
        if not isinstance(hashes.get(which), str):
            hashes[which] = _semantic_hash(root / relative, stamp, _package_of(relative), registrations)
            self.changed = True
        return hashes[which]

    def _fact(self, relative: str, stamp: tuple[str, str]) -> dict[str, Any]:
        name = self._name(relative, stamp)
        if not isinstance(self.facts.get(name), dict):
            self.facts[name] = {}
            self.changed = True
        self.used[name] = None
        return self.facts[name]

    @staticmethod
    def _name(relative: str, stamp: tuple[str, str]) -> str:
        return f"{relative} {stamp[1]}"


@functools.cache
def _facts_key() -> str:
    """The cache entry's key: the Python version and a hash of this module's source."""
    return f"{platform.python_version()} {hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]}"


@functools.lru_cache(maxsize=4096)
def _imports(path: Path, stamp: tuple, package: str) -> tuple[str, ...]:
    """Every module an ``import`` statement of the file can load (its parent packages included), anywhere in
    the file (functions too); relative imports resolved against ``package``."""
    tree = _parse(path, stamp)
    if tree is None:
        return ()
    loaded = {prefix for node in ast.walk(tree) for name in _imported(node, package)
              for prefix in _with_parents(name)}
    return tuple(sorted(loaded))


def _imported(node: ast.AST, package: str) -> list[str]:
    """The modules (or module attributes) one statement names: ``import a.b`` -> a.b; ``from a import b, c``
    -> a, a.b, a.c (b is a module or a name in a)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        base = ".".join([*parts[:len(parts) - node.level + 1], *([node.module] if node.module else [])])
    return [base] + [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@functools.lru_cache(maxsize=4096)
def _parse(path: Path, stamp: tuple) -> ast.Module | None:
    """The file's syntax tree (shared: never modify it), or None when it does not parse."""
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return None


@functools.lru_cache(maxsize=4096)
def _semantic_hash(path: Path, stamp: tuple, package: str, registrations: frozenset[str]) -> str:
    """A hash of what the module does: its syntax tree without docstrings, and without the statements that only
    import modules of ``registrations`` (family modules imported to register them); a file that does not parse
    counts by its bytes."""
    if _parse(path, stamp) is None:
        return "bytes-" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    tree = _Semantics(package, registrations).visit(ast.parse(path.read_bytes(), filename=str(path)))
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


class _Semantics(ast.NodeTransformer):
    """Drops docstrings and registration-only imports from a syntax tree (``_semantic_hash``)."""

    def __init__(self, package: str, registrations: frozenset[str]) -> None:
        self.package, self.registrations = package, registrations

    def generic_visit(self, node: ast.AST) -> ast.AST:
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body and \
                isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and \
                isinstance(body[0].value.value, str):
            node.body = body[1:]
        return super().generic_visit(node)

    def _registration_only(self, node: ast.Import | ast.ImportFrom) -> ast.AST | None:
        names = _imported(node, self.package)
        leaves = names[1:] if isinstance(node, ast.ImportFrom) else names
        return None if leaves and all(name in self.registrations for name in leaves) else node

    visit_Import = _registration_only
    visit_ImportFrom = _registration_only


@functools.lru_cache(maxsize=256)
def _recipe_hash(path: Path, stamp: tuple[str, str]) -> str:
    """A hash of a recipe's parsed content (comments and layout do not count)."""
    from harness.configfile import ConfigError, read_yaml

    try:
        content = read_yaml(path, "recipe")
    except ConfigError:
        return "unreadable-" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape results (None: not installed)."""
    import torch

    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["torch"] = torch.__version__  # with its build tag (+cpu, +cu130)
    versions["python"] = platform.python_version()
    versions["cuda"] = torch.version.cuda
    return versions


def git_state(repo: Path = REPO) -> dict[str, Any]:
    """The checked-out commit and whether tracked files differ from it. A code snapshot made for a SLURM
    submission (not a checkout, though it may lie inside one) answers from the ``snapshot.json`` written beside
    its packages; outside git the commit is None, with the reason."""
    snapshot = repo / SNAPSHOT
    if snapshot.is_file():
        return {**json.loads(snapshot.read_text())["git"], "snapshot": str(repo)}

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return {"commit": commit, "dirty": dirty}
    except (subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired) as err:
        reason = err.stderr.strip() if isinstance(err, subprocess.CalledProcessError) else str(err)
        return {"commit": None, "dirty": None, "reason": reason}


def thread_settings() -> dict[str, Any]:
    """This process's CPU parallelism: torch intra- and inter-op threads and the OpenMP/MKL environment."""
    import torch

    return {"torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
            **{name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}


def gpu_driver() -> str | None:
    """The NVIDIA driver's version as ``nvidia-smi`` reports it (None without a CUDA device or the tool)."""
    import torch

    if not torch.cuda.is_available():
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def provenance(model: str, recipe: str | None, teacher: str | None = None) -> dict[str, Any]:
    """Versions, git state, the code fingerprint of a run of ``model`` with ``recipe`` (and distillation
    ``teacher``) with its modules' hashes (to say which changed), threads, host and device of this process."""
    import torch

    modules = code_modules(model, recipe, teacher)
    return {
        "versions": library_versions(),
        "git": git_state(),
        "code_fingerprint": _digest(modules),
        "code_modules": modules,
        "threads": thread_settings(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "driver": gpu_driver(),
    }
