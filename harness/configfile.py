"""YAML configuration files (suites, recipes, cluster profiles) validated by pydantic models.

One reader for all of them, so every error has the same form: ``FILE: line N: field a.b: what was expected``
(with the allowed keys when a key is unknown).
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


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


def load_yaml(path: Path, model: type[Model], what: str, error: type[ConfigError] = ConfigError,
              defaults: dict[str, Any] | None = None) -> Model:
    """Read ``path`` and validate it as ``model``; ``error`` lists every problem with its line and field."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} file not found")
    text = path.read_text()
    try:
        raw = yaml.safe_load(text)
        tree = yaml.compose(text)
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML: {err}") from None
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
            lines.append(f"{path}: line {line_of(tree, loc)}: field {field}: {e['msg']}{hint}")
        raise error(f"invalid {what}\n" + "\n".join(lines)) from None
