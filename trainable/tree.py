"""Config trees (nested dicts read from YAML): reading a file, one `--set key=value`,
and the dotted-key reader and writer every module uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from trainable.errors import ConfigError

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def parse_override(text: str) -> tuple[str, Any]:
    """'optim.eps=1e-8' -> ('optim.eps', 1e-8); values are read as YAML scalars."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. optim.eps=1e-8")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML 1.1 reads '1e-8' as a string; accept plain numbers written that way.
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = float(value)
    return key, value


def set_dotted(tree: dict, key: str, value: Any) -> None:
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


_MISSING = object()


def _walk(tree: dict, key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def get_dotted(tree: dict, key: str) -> Any:
    """The value at 'section.key' in a nested dict, or None where a part is missing."""
    node = _walk(tree, key)
    return None if node is _MISSING else node


def has_dotted(tree: dict, key: str) -> bool:
    """Whether 'section.key' names a value of the nested dict (a None value counts)."""
    return _walk(tree, key) is not _MISSING


def flatten(tree: dict, prefix: str = "", leaves: tuple[str, ...] = ()) -> dict[str, Any]:
    """{'section.key': value} of a nested dict; a dict at a dotted key in `leaves` stays one
    value (e.g. the official file's dataset.bad_trials_dict)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in leaves:
            flat.update(flatten(value, name + ".", leaves))
        else:
            flat[name] = value
    return flat


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the syntax") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return tree
