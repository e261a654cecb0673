"""Exceptions a user or a host developer can hit, each with a one-line message saying what to do."""

from __future__ import annotations


class S2SError(Exception):
    """Base class of the plugin's own errors."""


class InputError(S2SError, ValueError):
    """Bad input from outside (an inbound postback, a command-line value): a 4xx, not a crash."""


class ConfigError(S2SError, ValueError):
    """A postback, source or setting that cannot work as configured."""
