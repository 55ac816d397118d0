"""Errors meant for people: one line naming what is wrong and what to do."""

from __future__ import annotations

import argparse


class UserError(Exception):
    """A mistake in input (config, flag, data file). CLIs print it on one line and exit 2."""

    exit_code = 2


class ConfigError(UserError):
    pass


class DataError(UserError):
    pass


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
