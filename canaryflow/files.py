"""Config and segment files (YAML) into domain models, with errors that name the file, the line, the
field path and what is allowed. Loading validates everything before anything is written."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.segments import SegmentFile
from canaryflow.domain.validation import parse
from canaryflow.errors import ValidationFailed

M = TypeVar("M", bound=pydantic.BaseModel)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode,
                       deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}: each key may appear once", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | Path) -> tuple[Any, yaml.Node | None]:
    """The single YAML document in ``path`` and its node tree (for line numbers)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ValidationFailed("no such file", source=str(path)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"cannot read the file ({exc})", source=str(path)) from exc
    try:
        docs = list(yaml.load_all(text, Loader=_UniqueKeyLoader))
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationFailed(f"{where}invalid YAML: {problem}", source=str(path)) from exc
    if len(docs) > 1:
        raise ValidationFailed(f"{len(docs)} YAML documents: put one config version per file",
                               source=str(path))
    if not docs or docs[0] is None:
        raise ValidationFailed("the file is empty", source=str(path))
    return docs[0], nodes[0] if nodes else None


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the value at ``loc`` (or of the nearest parent that exists)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            match = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                return line
            node = match[1]
            line = match[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _with_lines(exc: ValidationFailed, node: yaml.Node | None, source: str) -> ValidationFailed:
    cause = exc.__cause__
    if not isinstance(cause, pydantic.ValidationError):
        return exc
    problems = []
    for err, text in zip(cause.errors(include_url=False), exc.problems, strict=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        line = _line_of(node, loc)
        problems.append(f"line {line}: {text}" if line is not None else text)
    return ValidationFailed("; ".join(problems), source=source, problems=problems)


def load_model(model: type[M], path: str | Path) -> M:
    """Validate the YAML file at ``path`` into ``model``."""
    data, node = read_yaml(path)
    try:
        return parse(model, data, source=str(path))
    except ValidationFailed as exc:
        raise _with_lines(exc, node, str(path)) from exc.__cause__


def _check_endpoints(spec: ConfigSpec, node: yaml.Node | None, source: str,
                     known: Collection[str]) -> None:
    """Refuse a ``provider`` (primary or fallback) that names no endpoint in ``known``."""
    named: list[tuple[list[int | str], str]] = [(["provider"], spec.provider)]
    named += [(["fallback", i, "provider"], f.provider) for i, f in enumerate(spec.fallback)]
    problems = []
    for loc, name in named:
        if name not in known:
            field = f"fallback[{loc[1]}].provider" if len(loc) > 1 else "provider"
            problems.append(f"line {_line_of(node, loc)}: {field}: unknown provider {name!r}: this process "
                            f"knows {sorted(known)}; define {name!r} in the providers file "
                            "(CANARYFLOW_PROVIDERS_FILE, see docs/providers.md)")
    if problems:
        raise ValidationFailed("; ".join(problems), source=source, problems=problems)


def load_config(path: str | Path, *, endpoints: Collection[str] | None = None) -> ConfigSpec:
    """One config version from one file.

    Args:
        path: the YAML file.
        endpoints: the provider endpoint names a ``provider`` may use; ``None``: the endpoints this process
            knows (``openai``, ``anthropic`` and those of its providers file).
    """
    data, node = read_yaml(path)
    try:
        spec = parse(ConfigSpec, data, source=str(path))
    except ValidationFailed as exc:
        raise _with_lines(exc, node, str(path)) from exc.__cause__
    if endpoints is None:
        from canaryflow.providers.endpoints import endpoint_names

        endpoints = endpoint_names()
    _check_endpoints(spec, node, str(path), endpoints)
    return spec


def load_configs(paths: Iterable[str | Path], *,
                 endpoints: Collection[str] | None = None) -> list[ConfigSpec]:
    """Every file validated before any is returned; all problems reported together (see
    :func:`load_config` for ``endpoints``)."""
    specs: list[ConfigSpec] = []
    problems: list[str] = []
    if endpoints is None:
        from canaryflow.providers.endpoints import endpoint_names

        endpoints = endpoint_names()
    for path in paths:
        try:
            specs.append(load_config(path, endpoints=endpoints))
        except ValidationFailed as exc:
            problems.append(str(exc))
    if problems:
        raise ValidationFailed("; ".join(problems), problems=problems)
    return specs


def load_segments(path: str | Path) -> SegmentFile:
    """A segment file (``segments: [...]``, names unique)."""
    return load_model(SegmentFile, path)


__all__ = ["load_config", "load_configs", "load_model", "load_segments", "read_yaml"]
