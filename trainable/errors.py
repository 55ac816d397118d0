"""Errors meant for people: one line naming what is wrong and what to do."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in input (config, flag, data file). CLIs print it on one line and exit 2."""

    exit_code = 2


class ConfigError(UserError):
    pass


class DataError(UserError):
    pass
