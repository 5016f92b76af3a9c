"""YAML configuration files (suites, recipes, cluster profiles) validated by pydantic models.

One reader for all of them, so every error has the same form: ``FILE: line N: field a.b: what was expected``
(with the allowed keys when a key is unknown).

Files are read as hostile input: at most ``MAX_FILE_BYTES``, UTF-8 only, and YAML aliases may not expand the
document beyond ``MAX_EXPANDED_NODES`` nodes (a "billion laughs" file is refused before anything expands it).
"""

from __future__ import annotations

import inspect
import re
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, PydanticSchemaGenerationError, TypeAdapter, ValidationError

Model = TypeVar("Model", bound=BaseModel)

MAX_FILE_BYTES = 1 << 20  # configuration files are a few KiB; a larger one is a mistake or an attack
MAX_EXPANDED_NODES = 100_000  # nodes of the document with every alias written out


class ConfigError(ValueError):
    """A configuration file is malformed; the message names the file, line and field."""


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at a pydantic error location (the nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``list[GridEntry]`` or ``Budget | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed where an unknown key ``loc`` was written (its parent mapping's fields)."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        inner = _submodel(field.annotation) if field is not None else None
        if inner is None:
            break
        model = inner
    return sorted(model.model_fields)


_EXPONENT = re.compile(r"[-+]?\d+[eE][-+]?\d+")  # a number YAML 1.1 reads as a string (no dot)


def type_name(annotation: Any) -> str:
    """A Python annotation as a user reads it: ``Sequence[int]``, ``float | None``, ``Literal['a', 'b']``."""
    text = annotation.__name__ if isinstance(annotation, type) else repr(annotation)
    return re.sub(r"\b(typing|collections\.abc)\.", "", text)


def _as_tuples(value: Any) -> Any:
    """YAML has no tuples: its lists stand for them where an annotation asks for one."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _as_tuples(v) for k, v in value.items()}
    return value


def value_problem(value: Any, annotation: Any) -> str | None:
    """What was expected when ``value`` (as a YAML file gives it, passed on unconverted) does not fit the Python
    ``annotation``; None when it fits. Strict: "3" is no int, 3.0 no int, 1 no bool; an int is a float."""
    if annotation in (inspect.Parameter.empty, Any):
        return None
    try:
        adapter = TypeAdapter(annotation)
    except PydanticSchemaGenerationError:  # an arbitrary class (a module, a callable...) no YAML value can be
        if isinstance(annotation, type) and isinstance(value, annotation):
            return None
    else:
        for candidate in (value, _as_tuples(value)):
            try:
                adapter.validate_python(candidate, strict=True)
                return None
            except ValidationError:
                continue
    shown = repr(value)
    hint = "; YAML reads 1e-3 as text, write 1.0e-3" if isinstance(value, str) and _EXPONENT.fullmatch(value) else ""
    return f"expected {type_name(annotation)}, got {shown if len(shown) <= 60 else shown[:57] + '...'}{hint}"


def read_text(path: Path, what: str, error: type[ConfigError] = ConfigError) -> str:
    """The UTF-8 text of a configuration file; missing, unreadable, binary or oversized files are one-line errors."""
    if not path.is_file():
        raise error(f"{path}: {what} file not found")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as err:  # ValueError: a NUL in the path
        raise error(f"{path}: cannot read the {what} file: {getattr(err, 'strerror', None) or err}") from None
    if len(data) > MAX_FILE_BYTES:
        raise error(f"{path}: {what} file is larger than {MAX_FILE_BYTES // 1024} KiB; expected a small YAML file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{path}: not a text file: byte {err.start} is not UTF-8; expected a YAML {what} file") from None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _expanded_sizes(root: yaml.Node) -> dict[int, int]:
    """Node count of every (shared) node with its aliases written out, without expanding anything; a node
    that contains itself (a recursive alias) raises ValueError."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in _children(node))
            continue
        if id(node) in sizes:
            continue
        open_nodes.add(id(node))
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise ValueError("an alias refers to a node that contains it (a recursive structure)")
            stack.append((child, False))
    return sizes


def _alias_bomb(root: yaml.Node) -> str | None:
    """Why the document expands too far (naming where), or None when it is small enough once expanded."""
    try:
        sizes = _expanded_sizes(root)
    except ValueError as err:
        return str(err)
    if sizes[id(root)] <= MAX_EXPANDED_NODES:
        return None
    node, loc = root, []
    while True:  # descend to the smallest part that is too large on its own
        big = [(k, v) for k, v in (node.value if isinstance(node, yaml.MappingNode) else enumerate(_children(node)))
               if sizes.get(id(v), 0) > MAX_EXPANDED_NODES]
        if not big:
            break
        key, node = big[0]
        loc.append(key.value if isinstance(key, yaml.Node) else key)
    where = f"line {node.start_mark.line + 1}: " + (f"field {'.'.join(str(p) for p in loc)}: " if loc else "")
    return (f"{where}aliases expand to {sizes[id(node)]:,} nodes, more than {MAX_EXPANDED_NODES:,} "
            "(a YAML alias bomb?); write the values out")


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
# what a quoted part of PyYAML's message may show: one character (escaped or not) or a token kind ('<scalar>')
_SHOWN_QUOTE = re.compile(r"""(['"])(?:\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\U[0-9a-fA-F]{8}|\\.|[^\\]|<[a-z ]+>)\1""")


def _without_file_text(problem: str) -> str:
    """PyYAML's problem with the file's text it quotes (a tag, an alias, an anchor) left out: a file that is
    not YAML (a key, a password file) must not be echoed; single characters and token kinds stay."""
    return _QUOTED.sub(lambda m: m[0] if _SHOWN_QUOTE.fullmatch(m[0]) else "[text left out]", problem)


def _yaml_error(err: yaml.YAMLError, path: Path, error: type[ConfigError], text: str = "") -> ConfigError:
    """PyYAML's multi-line message as one line: file, line, the problem (no text quoted from the file)."""
    if isinstance(err, yaml.reader.ReaderError):  # a character YAML does not accept, at a text position
        line = text.count("\n", 0, err.position) + 1
        character = chr(err.character)
        return error(f"{path}: line {line}: not valid YAML: unacceptable character {character!r}: {err.reason}")
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark is not None else ""
    parts = [getattr(err, "context", None), getattr(err, "problem", None)]
    problem = "; ".join(p for p in parts if p) or str(err).splitlines()[0]
    return error(f"{path}: {where}not valid YAML: {_without_file_text(problem)}")


# libyaml's parser when PyYAML was built with it: the same node tree with the same marks, ten times faster (a suite
# of 10,000 runs took most of `status`'s time in the pure-Python one)
COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def compose(text: str, path: Path, error: type[ConfigError] = ConfigError) -> yaml.Node | None:
    """The YAML node tree of ``text`` (aliases shared, nothing expanded); a syntax error or an alias bomb is a
    one-line error naming ``path`` and the line."""
    try:
        tree = yaml.compose(text, Loader=COMPOSER)
    except yaml.YAMLError as err:
        raise _yaml_error(err, path, error, text) from None
    except RecursionError:
        raise error(f"{path}: not valid YAML: nested too deeply") from None
    problem = _alias_bomb(tree) if tree is not None else None
    if problem:
        raise error(f"{path}: {problem}")
    return tree


def _read_tree(path: Path, what: str, error: type[ConfigError]) -> tuple[yaml.Node | None, Any]:
    """The YAML node tree of a file and its content, read as hostile input (size, encoding, alias bombs)."""
    tree = compose(read_text(path, what, error), path, error)
    try:
        return tree, (yaml.SafeLoader("").construct_document(tree) if tree is not None else None)
    except yaml.YAMLError as err:
        raise _yaml_error(err, path, error) from None


def read_yaml(path: Path, what: str, error: type[ConfigError] = ConfigError) -> Any:
    """A YAML file's content, read with the same bounds as every config file (no model to validate against)."""
    return _read_tree(Path(path), what, error)[1]


def load_yaml(path: Path, model: type[Model], what: str, error: type[ConfigError] = ConfigError,
              defaults: dict[str, Any] | None = None) -> Model:
    """Read ``path`` and validate it as ``model``; ``error`` lists every problem with its line and field."""
    path = Path(path)
    tree, raw = _read_tree(path, what, error)
    if not isinstance(raw, dict):
        raise error(f"{path}: line 1: a {what} must be a mapping with keys {', '.join(sorted(model.model_fields))}")
    for key, value in (defaults or {}).items():
        raw.setdefault(key, value)
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            loc = tuple(e["loc"])
            hint = f" (allowed keys: {', '.join(allowed_keys(model, loc))})" if e["type"] == "extra_forbidden" else ""
            field = ".".join(str(p) for p in loc) or f"({what})"
            message = e["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: line {line_of(tree, loc)}: field {field}: {message}{hint}")
        header = [] if len(lines) == 1 else [f"invalid {what}: {len(lines)} problems"]
        raise error("\n".join(header + lines)) from None
