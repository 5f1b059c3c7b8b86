"""The one exception for bad user input. Every command line turns it into `error: <key>: <why>` and
exit code 2 (smart/cli.py); `smart.config` re-exports it."""
from __future__ import annotations


class ConfigError(ValueError):
    """Bad user input, always tied to the dotted key (or file/flag) it concerns."""

    def __init__(self, key: str, why: str):
        super().__init__(f"{key}: {why}")
        self.key = key
        self.why = why
