"""Errors meant for people: one line naming what is wrong and what to do."""

from __future__ import annotations

import argparse
import difflib


class UserError(Exception):
    """A mistake in input (config, flag, data file). CLIs print it on one line and exit 2."""

    exit_code = 2


class ConfigError(UserError):
    pass


class DataError(UserError):
    pass


def _fields_at(model, loc: tuple) -> list[str]:
    """Field names of the pydantic model reached by following `loc` from `model`."""
    from pydantic import BaseModel

    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(getattr(model, "model_fields", {}))


def validation_line(err, source: str, rename=None, model=None, noun: str = "key") -> str:
    """One line for a pydantic ValidationError: the file or flag, the key, the value and
    what was expected; an unknown key gets the closest known name. `rename` maps an error
    location to the names a person knows (e.g. a claim's id instead of its index)."""
    first = err.errors()[0]
    loc = tuple(rename(first["loc"]) if rename else first["loc"])
    key = ".".join(str(p) for p in loc)
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        known = _fields_at(model, first["loc"][:-1]) if model is not None else []
        close = difflib.get_close_matches(str(first["loc"][-1]), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{source}: unknown {noun} {key!r}{hint}"
    value = first.get("input")
    if isinstance(value, dict) or not key:  # a model's own check names its keys
        return f"{source}: {key or 'top level'}: {msg}"
    return f"{source}: {key}={value!r}: {msg}"


def run_cli(body) -> int:
    """Run a command's body: a UserError prints one line on stderr and returns its exit
    code (no traceback); Ctrl-C returns 130."""
    import sys

    try:
        return body()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (exit 2), not the whole usage block."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")
